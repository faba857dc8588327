package integrations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
	"github.com/slotd/slotd/security/secrets"
)

var t0 = time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)

// fakeGoogle is Google's OAuth 2 revocation endpoint as documented: POST /revoke with a
// form-encoded token; 200 when the token was valid (and is now revoked), 400 with
// {"error": "invalid_token"} when it is unknown, expired or already revoked, 400
// invalid_request for a request without a token or not form-encoded; other methods 404 (as
// Google answers a GET). fail makes the next n requests answer 503.
type fakeGoogle struct {
	*httptest.Server

	mu      sync.Mutex // guards the fields below
	valid   map[string]bool
	revoked []string // tokens revoked, in order
	calls   int
	fail    int
}

func newFakeGoogle(tb testing.TB, tokens ...string) *fakeGoogle {
	tb.Helper()
	g := &fakeGoogle{valid: map[string]bool{}}
	for _, t := range tokens {
		g.valid[t] = true
	}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	tb.Cleanup(g.Close)
	return g
}

func (g *fakeGoogle) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if r.URL.Path != "/revoke" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if g.fail > 0 {
		g.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": "temporarily_unavailable"}`))
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err := r.ParseForm(); err != nil || mt != "application/x-www-form-urlencoded" || r.PostForm.Get("token") == "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error": "invalid_request", "error_description": "Bad Request"}`))
		return
	}
	tok := r.PostForm.Get("token")
	if !g.valid[tok] {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error": "invalid_token", "error_description": "Token expired or revoked"}`))
		return
	}
	delete(g.valid, tok)
	g.revoked = append(g.revoked, tok)
	_, _ = w.Write([]byte("{}"))
}

// FailNext makes the next n requests answer 503.
func (g *fakeGoogle) FailNext(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail = n
}

func (g *fakeGoogle) Revoked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.revoked...)
}

func (g *fakeGoogle) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// MustKeyring returns a keyring of fresh keys named kids, the first active.
func MustKeyring(tb testing.TB, kids ...string) (*secrets.Keyring, []string) {
	tb.Helper()
	var lines []string
	for _, kid := range kids {
		line, err := secrets.GenerateKey(kid)
		if err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, line)
	}
	ring, err := secrets.ParseKeyring(strings.Join(lines, "\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return ring, lines
}

// MustParseKeyring parses keyring lines.
func MustParseKeyring(tb testing.TB, lines ...string) *secrets.Keyring {
	tb.Helper()
	ring, err := secrets.ParseKeyring(strings.Join(lines, "\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

// MustAuditLog returns an audit log over the record store.
func MustAuditLog(tb testing.TB, rs persistence.RecordStore) *audit.Log {
	tb.Helper()
	skey, vkey, err := audit.GenerateKey("slotd-test")
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l, err := audit.New(auditstore.New(rs, nil), audit.Options{Signer: s, Verifier: v, Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// env is a Service over a memstore, with a fake Google and an audit log.
type env struct {
	rs     *memstore.Store
	ring   *secrets.Keyring
	google *fakeGoogle
	audit  *audit.Log
	logs   *logBuffer
	svc    *integrations.Service
}

func newEnv(tb testing.TB, googleTokens ...string) *env {
	tb.Helper()
	e := &env{rs: memstore.New(), google: newFakeGoogle(tb, googleTokens...), logs: &logBuffer{}}
	var lines []string
	e.ring, lines = MustKeyring(tb, "k1")
	keyLines.Store(e.ring, lines[0])
	e.audit = MustAuditLog(tb, e.rs)
	e.svc = e.service(tb, e.ring)
	return e
}

// service returns another Service over the same store with ring.
func (e *env) service(tb testing.TB, ring *secrets.Keyring) *integrations.Service {
	tb.Helper()
	svc, err := integrations.New(integrations.Config{
		Records: e.rs, Keys: ring, HTTP: e.google.Client(), GoogleRevokeURL: e.google.URL + "/revoke",
		Revokers: map[integrations.Provider]integrations.Revoker{integrations.Google: &integrations.GoogleRevoker{
			URL: e.google.URL + "/revoke", HTTP: e.google.Client(), Backoff: time.Millisecond}},
		Audit: e.audit, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { return t0 },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

func googleConn(account, token string) integrations.NewConnection {
	return integrations.NewConnection{Account: account, Resource: "alice", Provider: integrations.Google,
		Email: account + "@gmail.example", Scopes: []string{"https://www.googleapis.com/auth/calendar.freebusy"},
		Credential: integrations.Credential{RefreshToken: token}}
}

func icloudConn(account, password string) integrations.NewConnection {
	return integrations.NewConnection{Account: account, Provider: integrations.ICloud, Email: account + "@icloud.example",
		Credential: integrations.Credential{Username: account + "@icloud.example", Password: password}}
}

func mustConnect(tb testing.TB, svc *integrations.Service, tenant string, nc integrations.NewConnection) integrations.Connection {
	tb.Helper()
	c, err := svc.Connect(context.Background(), tenant, "account:owner", nc)
	if err != nil {
		tb.Fatalf("Connect(%s, %s) = %v", tenant, nc.Provider, err)
	}
	return c
}

// scan returns every record of tenant of the kinds this package and the audit trail write.
func scan(tb testing.TB, rs persistence.RecordStore, tenant string) []persistence.Record {
	tb.Helper()
	var out []persistence.Record
	for _, kind := range []string{integrations.KindConnection, integrations.KindPolicy,
		auditstore.KindBody, auditstore.KindHash, auditstore.KindHead, auditstore.KindIntent} {
		rs, err := rs.ListRecords(context.Background(), tenant, kind, "", "", 0)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rs...)
	}
	return out
}

// wantNoSecret fails if any of secrets appears in the records of tenant or in text.
func wantNoSecret(tb testing.TB, rs persistence.RecordStore, tenant string, text string, secrets ...string) {
	tb.Helper()
	for _, s := range secrets {
		for _, r := range scan(tb, rs, tenant) {
			if bytes.Contains(r.Value, []byte(s)) || strings.Contains(r.Key, s) {
				tb.Fatalf("record %s/%s holds a secret in the clear", r.Kind, r.Key)
			}
		}
		if strings.Contains(text, s) {
			tb.Fatalf("a secret appears in the clear in:\n%s", text)
		}
	}
}

// auditActions returns the tenant's audit entries as "action target detail" lines.
func auditActions(tb testing.TB, l *audit.Log, tenant string) []string {
	tb.Helper()
	ctx := context.Background()
	rep, err := l.Verify(ctx, tenant, nil)
	if err != nil {
		tb.Fatalf("audit Verify(%s) = %v", tenant, err)
	}
	es, err := l.Entries(ctx, tenant, 0, rep.Checkpoint.Size)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range es {
		d, _ := json.Marshal(e.Detail)
		out = append(out, fmt.Sprintf("%s %s %s", e.Action, e.Target, d))
	}
	return out
}
