package integrations_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence"
)

// fakeAuth stands in for accounts' and oauth's authenticators: each token is one account's
// session or token, its principal carrying the grant id that revoking it closes.
type fakeAuth map[string]gateway.Principal

func (f fakeAuth) AuthenticateToken(_ context.Context, token string) (gateway.Principal, error) {
	if p, ok := f[token]; ok {
		return p, nil
	}
	return gateway.Principal{}, engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
}

// fakeEnder stands in for accounts (sessions) and oauth (tokens): it ends an account's
// credentials and returns their grants.
type fakeEnder struct {
	grants map[string][]string // account → grants

	mu    sync.Mutex // guards calls
	calls []string
}

func (f *fakeEnder) EndAccount(_ context.Context, tenant, account string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, tenant+"/"+account)
	g := f.grants[account]
	delete(f.grants, account)
	return g, nil
}

func (f *fakeEnder) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// wsConn is a real WebSocket client on the gateway, reading every frame until the
// connection ends.
type wsConn struct {
	c    *websocket.Conn
	done chan error // the error that ended reading
}

func dial(tb testing.TB, srv *httptest.Server, token string) *wsConn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}, Subprotocols: []string{gateway.Subprotocol}})
	if err != nil {
		tb.Fatalf("Dial = %v", err)
	}
	tb.Cleanup(func() { _ = c.CloseNow() })
	_, welcome, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(welcome), gateway.TypeWelcome) {
		tb.Fatalf("first frame = %s, %v; want the welcome", welcome, err)
	}
	w := &wsConn{c: c, done: make(chan error, 1)}
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				w.done <- err
				return
			}
		}
	}()
	return w
}

// closed waits (bounded) for the connection to end and returns why.
func (w *wsConn) closed(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(10 * time.Second):
		tb.Fatal("the WebSocket is still open")
		return nil
	}
}

// TestAccountDeletionDisconnectsEverything is the promise of issue 4: deleting an account
// disconnects every third-party connection it made (revoked at the provider where the
// provider offers revocation, our stored credentials deleted) and ends all its sessions and
// tokens, closing the WebSockets they opened.
func TestAccountDeletionDisconnectsEverything(t *testing.T) {
	ctx := context.Background()
	const adaGoogle, bobGoogle = "1//ada-google-refresh-token", "1//bob-google-refresh-token"
	e := newEnv(t, adaGoogle, bobGoogle)

	// A tenant served by the real gateway and actors, on the same store.
	reg := actors.NewRegistry(actors.Config{Store: e.rs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(reg.Close)
	auth := fakeAuth{
		"ada-session": {Kind: "staff", Subject: "account:ada", Tenant: "t1", Perm: gateway.PermStaff, Grant: "session:ada-1"},
		"ada-oauth": {Kind: "staff", Subject: "account:ada", Tenant: "t1", Perm: gateway.PermStaff, Grant: "oauth:ada-app",
			Scopes: []string{gateway.ScopeBookingsRead}},
		"bob-session": {Kind: "staff", Subject: "account:bob", Tenant: "t1", Perm: gateway.PermStaff, Grant: "session:bob-1"},
	}
	gw := gateway.New(gateway.Config{Tenants: reg, Directory: e.rs, Auth: auth,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Shutdown(sctx)
	})
	for _, tenant := range []string{"t1", "t2"} {
		if _, err := gw.CreateTenant(ctx, tenant, tenantConfig()); err != nil {
			t.Fatalf("CreateTenant(%s) = %v", tenant, err)
		}
	}

	// Ada connected Google and iCloud; Bob (same tenant) and a t2 account connected Google.
	adaG := mustConnect(t, e.svc, "t1", googleConn("ada", adaGoogle))
	adaI := mustConnect(t, e.svc, "t1", icloudConn("ada", icloudAppPass))
	bobG := mustConnect(t, e.svc, "t1", googleConn("bob", bobGoogle))
	otherG := mustConnect(t, e.svc, "t2", googleConn("ada", "1//t2-ada-token"))

	adaWS, adaAppWS, bobWS := dial(t, srv, "ada-session"), dial(t, srv, "ada-oauth"), dial(t, srv, "bob-session")

	sessions := &fakeEnder{grants: map[string][]string{"ada": {"session:ada-1"}, "bob": {"session:bob-1"}}}
	tokens := &fakeEnder{grants: map[string][]string{"ada": {"oauth:ada-app"}}}
	lc := &integrations.AccountLifecycle{Integrations: e.svc, Sessions: []integrations.SessionEnder{sessions, tokens},
		Sockets: gw, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}

	rep, err := lc.AccountDeleted(ctx, "t1", "ada", "account:owner")
	if err != nil {
		t.Fatalf("AccountDeleted = %v", err)
	}

	// Revoked at Google: the fake endpoint received Ada's refresh token, and only hers.
	if got := e.google.Revoked(); !slices.Equal(got, []string{adaGoogle}) {
		t.Fatalf("Google revoked %d tokens (Ada's: %v), want exactly Ada's", len(got), slices.Contains(got, adaGoogle))
	}
	outcomes := map[string]integrations.Revocation{}
	for _, r := range rep.Disconnected {
		outcomes[r.Connection.ID] = r.Revocation
	}
	want := map[string]integrations.Revocation{adaG.ID: integrations.Revoked, adaI.ID: integrations.NotSupported}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("disconnected = %v, want Google revoked and iCloud not supported: %v", outcomes, want)
	}

	// Our stored credentials are gone: a scan of every record finds neither secret, and the
	// only connections left are Bob's and the other tenant's.
	wantNoSecret(t, e.rs, "t1", e.logs.String(), adaGoogle, icloudAppPass)
	var left []string
	for _, tenant := range []string{"t1", "t2"} {
		rs, err := e.rs.ListRecords(ctx, tenant, integrations.KindConnection, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			left = append(left, r.Key)
		}
	}
	if slices.Sort(left); !slices.Equal(left, sorted(bobG.ID, otherG.ID)) {
		t.Fatalf("connection records left = %v, want Bob's and t2's", left)
	}
	if _, err := e.rs.GetRecord(ctx, "t1", integrations.KindConnection, adaG.ID); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetRecord(Ada's Google connection) = %v, want not found", err)
	}

	// Sessions and tokens ended, through both enders, for Ada only.
	if s, k := sessions.Calls(), tokens.Calls(); !slices.Equal(s, []string{"t1/ada"}) || !slices.Equal(k, []string{"t1/ada"}) {
		t.Fatalf("sessions ended for %v, tokens for %v; want t1/ada each", s, k)
	}
	if rep.GrantsEnded != 2 || rep.SocketsClosed != 2 {
		t.Fatalf("report = %+v, want 2 grants ended and 2 sockets closed", rep)
	}

	// Ada's WebSockets (session and OAuth app) are closed with a policy violation; Bob's
	// stays open.
	for name, w := range map[string]*wsConn{"session": adaWS, "oauth": adaAppWS} {
		if err := w.closed(t); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("Ada's %s WebSocket ended with %v, want close status %v", name, err, websocket.StatusPolicyViolation)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bobWS.c.Ping(pctx); err != nil {
		t.Fatalf("Bob's WebSocket: Ping = %v, want it open", err)
	}
	// The client hears the close before the server's side of each closed
	// connection has finished and left the gateway's count.
	for deadline := time.Now().Add(10 * time.Second); gw.Conns() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gateway has %d WebSockets 10 s after Ada's were closed, want Bob's only", gw.Conns())
		}
	}

	// The audit trail records both disconnects, with their outcome and without secrets.
	acts := auditActions(t, e.audit, "t1")
	var disconnects []string
	for _, a := range acts {
		if strings.HasPrefix(a, "integration_disconnected") {
			disconnects = append(disconnects, a)
		}
	}
	if len(disconnects) != 2 || !strings.Contains(strings.Join(disconnects, "\n"), `"revocation":"revoked"`) ||
		!strings.Contains(strings.Join(disconnects, "\n"), `"revocation":"not_supported"`) {
		t.Fatalf("audit disconnects = %q", disconnects)
	}

	// Deleting again is harmless: nothing left to do.
	rep, err = lc.AccountDeleted(ctx, "t1", "ada", "account:owner")
	if err != nil || len(rep.Disconnected) != 0 || rep.SocketsClosed != 0 {
		t.Fatalf("second AccountDeleted = %+v, %v; want nothing to do", rep, err)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// tenantConfig is a one-resource tenant.
func tenantConfig() engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
		week[d] = []engine.Range{{Start: "09:00", End: "17:00"}}
	}
	return engine.TenantConfig{
		Name: "Salon", TimeZone: "UTC", HoldTTLSec: 120,
		Resources: []engine.Resource{{ID: "alice", Name: "Alice", Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: week}},
		Services:  []engine.Service{{ID: "cut", Name: "Haircut", DurationMin: 30, StepMin: 30, Resources: []string{"alice"}}},
	}
}
