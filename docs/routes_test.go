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

type noAudit struct{}

func (noAudit) Append(context.Context, string, audit.Entry) (int64, audit.Checkpoint, error) {
	return 0, audit.Checkpoint{}, nil
}
