package docs

import (
	"context"
	"net/http"
	"testing"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/oauth"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/password"
	"github.com/slotd/slotd/security/secrets"
)

// extraRoutes builds the routes slotd mounts besides the gateway's own
// (cmd/slotd/run.go: gateway.Config.Routes) — the accounts service, the
// OAuth 2 server and the privacy service — with minimal dependencies: only
// their Routes() are used, so a route added to any of them without a
// section and a route-table row in protocol.md fails TestRoutesDocumented.
func extraRoutes(t *testing.T) []gateway.ExtraRoute {
	t.Helper()
	store := memstore.New()
	key := make([]byte, secrets.KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	ring, err := secrets.NewKeyring(secrets.Key{ID: "docs-1", Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.New(password.Options{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	accs, err := accounts.New(accounts.Config{Records: store, Passwords: hasher, Secrets: ring})
	if err != nil {
		t.Fatalf("accounts.New: %v", err)
	}
	srv, err := oauth.New(oauth.Config{
		Records:  store,
		Accounts: oauth.AccountsFunc(func(*http.Request) (oauth.Account, bool) { return oauth.Account{}, false }),
		Secret:   key,
	})
	if err != nil {
		t.Fatalf("oauth.New: %v", err)
	}
	priv, err := privacy.NewService(privacy.Config{Tenants: noTenants{}, Codec: privacy.NewCodec(ring, store), Audit: noAudit{}})
	if err != nil {
		t.Fatalf("privacy.NewService: %v", err)
	}
	var out []gateway.ExtraRoute
	for _, rs := range [][]gateway.ExtraRoute{accs.Routes(), srv.Routes(), priv.Routes()} {
		if len(rs) == 0 {
			t.Fatal("a service contributes no routes")
		}
		out = append(out, rs...)
	}
	return out
}

// noTenants and noAudit satisfy privacy.Config; the test never calls them.
type noTenants struct{}

func (noTenants) Do(context.Context, string, engine.Command) (actors.Reply, error) {
	return actors.Reply{}, nil
}

func (noTenants) Read(context.Context, string, func(*engine.State, uint64) error) error { return nil }

func (noTenants) ReadLatest(context.Context, string, func(*engine.State, uint64) error) error {
	return nil
}

type noAudit struct{}

func (noAudit) Append(context.Context, string, audit.Entry) (int64, audit.Checkpoint, error) {
	return 0, audit.Checkpoint{}, nil
}

// TestScopesDocumented checks the OAuth scope table (first header cell
// "Scope"): each route that names a scope is listed in that scope's row and
// no other, every route listed is real, and every message listed exists.
func TestScopesDocumented(t *testing.T) {
	d := load(t)
	routes := gateway.New(gateway.Config{Auth: gateway.NewOperatorToken("docs"), Routes: extraRoutes(t)}).Routes()
	scopeOf := map[string]string{}
	for _, r := range routes {
		scopeOf[r.Pattern] = r.Scope
	}
	rows := d.table("Scope")
	if len(rows) == 0 {
		t.Fatalf("docs/%s has no scope table (first header cell \"Scope\")", docPath)
	}
	msgs := set(gateway.RequestTypes())
	listed := map[string]string{} // route → the scope row listing it
	for _, r := range rows {
		if len(r.cells) < 4 {
			t.Errorf("%s:%d: scope table row needs scope, allows, routes and messages", docPath, r.n)
			continue
		}
		names := spans(r.cells[0])
		if len(names) != 1 {
			t.Errorf("%s:%d: scope table row names %d scopes, want 1", docPath, r.n, len(names))
			continue
		}
		scope := names[0]
		if gateway.ScopePermission(scope) == 0 {
			t.Errorf("%s:%d: %q is not a scope the gateway knows", docPath, r.n, scope)
		}
		for _, pat := range spans(r.cells[2]) {
			got, ok := scopeOf[pat]
			switch {
			case !ok:
				t.Errorf("%s:%d: scope %s lists %q, which is no route", docPath, r.n, scope, pat)
			case got != scope:
				t.Errorf("%s:%d: scope %s lists %q, which needs scope %q", docPath, r.n, scope, pat, got)
			}
			listed[pat] = scope
		}
		for _, m := range spans(r.cells[3]) {
			if !msgs[m] {
				t.Errorf("%s:%d: scope %s lists message %q, which gateway.RequestTypes() does not list", docPath, r.n, scope, m)
			}
		}
	}
	for pat, scope := range scopeOf {
		if scope != "" && listed[pat] == "" {
			t.Errorf("route %q needs scope %q but the scope table of docs/%s does not list it", pat, scope, docPath)
		}
	}
}
