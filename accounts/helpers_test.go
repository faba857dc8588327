package accounts_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/pquerna/otp/totp"
	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/password"
	"github.com/slotd/slotd/security/secrets"
)

const operatorToken = "sk_test_operator_0123456789"

// t0 is the start of every test clock.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

// Passwords long enough for password-only accounts and on no blocklist.
const (
	goodPassword  = "correct horse battery staple zebra"
	otherPassword = "purple elephants juggle quietly at dawn"
)

// countingHasher counts hash verifications, real and dummy, so that tests
// can check that every sign-in attempt costs exactly one.
type countingHasher struct {
	*password.Hasher
	verifies atomic.Int64
}

func (h *countingHasher) Verify(enc, pw string) (bool, bool, error) {
	h.verifies.Add(1)
	return h.Hasher.Verify(enc, pw)
}

func (h *countingHasher) VerifyDummy(pw string) {
	h.verifies.Add(1)
	h.Hasher.VerifyDummy(pw)
}

// auditRecorder forwards to a real security/audit log and remembers the
// actions, so that tests see events and the log's checks (no secrets in
// entries) run.
type auditRecorder struct {
	sink accounts.AuditSink

	mu     sync.Mutex // guards events
	events []accounts.AuditEvent
}

func (a *auditRecorder) Record(ctx context.Context, tenant string, e accounts.AuditEvent) error {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
	return a.sink.Record(ctx, tenant, e)
}

// actions returns the recorded actions, in order.
func (a *auditRecorder) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Action)
	}
	return out
}

func (a *auditRecorder) has(action string) bool {
	for _, x := range a.actions() {
		if x == action {
			return true
		}
	}
	return false
}

// env is slotd's gateway with the accounts service, actors and a memstore,
// served over TLS (the cookies are Secure) on 127.0.0.1:0.
type env struct {
	tb     testing.TB
	clock  *clock.Manual
	store  *memstore.Store
	svc    *accounts.Service
	gw     *gateway.Server
	srv    *httptest.Server
	hasher *countingHasher
	audit  *auditRecorder
	logs   *logBuffer
	ring   *secrets.Keyring
	URL    string
}

type envOption func(*accounts.Config)

// newEnv starts an environment with tenant "salon".
func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	e := &env{tb: tb, clock: clock.NewManual(t0), store: memstore.New(), logs: &logBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := password.New(password.Options{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		tb.Fatal(err)
	}
	e.hasher = &countingHasher{Hasher: h}
	e.ring = mustKeyring(tb)
	skey, vkey, err := audit.GenerateKey("slotd-test")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	alog, err := audit.New(audit.NewMemoryStore(), audit.Options{Signer: signer, Verifier: verifier, Now: e.clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	e.audit = &auditRecorder{sink: accounts.AuditLog(alog)}
	cfg := accounts.Config{
		Records: e.store, Passwords: e.hasher, Secrets: e.ring, Audit: e.audit,
		Logger: log.With("component", "accounts"), Now: e.clock.Now,
		// Tests name the client address in a header, to play several.
		ClientIP: func(r *http.Request) string {
			if ip := r.Header.Get("X-Test-IP"); ip != "" {
				return ip
			}
			return "192.0.2.1"
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.svc, err = accounts.New(cfg)
	if err != nil {
		tb.Fatalf("accounts.New: %v", err)
	}
	reg := actors.NewRegistry(actors.Config{Store: e.store, Clock: e.clock, Logger: log.With("component", "actors")})
	e.gw = gateway.New(gateway.Config{
		Tenants: reg, Directory: e.store, Logger: log.With("component", "gateway"), Now: e.clock.Now,
		Auth:     gateway.ChainAuth(gateway.NewOperatorToken(operatorToken), e.svc.WSTokens()),
		Sessions: e.svc,
		Routes:   e.svc.Routes(),
	})
	e.svc.SetGrantCloser(e.gw)
	e.srv = httptest.NewTLSServer(e.gw)
	e.URL = e.srv.URL
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.gw.Shutdown(ctx)
		e.srv.Close()
		reg.Close()
		if errs := e.logs.errors(); len(errs) > 0 {
			tb.Errorf("error-level log lines:\n%s", strings.Join(errs, "\n"))
		}
		if tb.Failed() {
			tb.Logf("server log:\n%s", e.logs.String())
		}
	})
	op := e.browser()
	op.bearer = operatorToken
	op.do("POST", "/v1/tenants", gateway.CreateTenantRequest{ID: "salon",
		Config: engine.TenantConfig{Name: "Salon", TimeZone: "Europe/Rome"}}).want(http.StatusCreated, nil)
	return e
}

func mustKeyring(tb testing.TB) *secrets.Keyring {
	tb.Helper()
	k := make([]byte, secrets.KeySize)
	_, _ = rand.Read(k)
	ring, err := secrets.NewKeyring(secrets.Key{ID: "test-1", Secret: k})
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

// account creates an account in salon.
func (e *env) account(email string, role accounts.Role, pw string) accounts.Account {
	e.tb.Helper()
	a, err := e.svc.CreateAccount(context.Background(), "salon", accounts.NewAccount{Email: email, Name: "Test Person", Role: role, Password: pw})
	if err != nil {
		e.tb.Fatalf("CreateAccount(%s) = %v", email, err)
	}
	return a
}

// browser is an HTTP client with a cookie jar, sending what a browser on
// our own page sends (Origin, Sec-Fetch-Site) and the CSRF token it has.
type browser struct {
	e      *env
	client *http.Client
	csrf   string
	bearer string
	ip     string
	hdr    http.Header // extra headers on every request
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, client: &c, hdr: http.Header{}}
}

type result struct {
	tb     testing.TB
	Status int
	Header http.Header
	Body   []byte
}

func (b *browser) do(method, path string, body any, hdr ...string) result {
	tb := b.e.tb
	tb.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.e.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != "GET" && method != "HEAD" {
		req.Header.Set("Origin", b.e.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if b.csrf != "" {
			req.Header.Set(accounts.CSRFHeader, b.csrf)
		}
	}
	if b.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+b.bearer)
	}
	if b.ip != "" {
		req.Header.Set("X-Test-IP", b.ip)
	}
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return result{tb: tb, Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func (r result) want(status int, out any) result {
	r.tb.Helper()
	if r.Status != status {
		r.tb.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			r.tb.Fatalf("decode %s: %v", r.Body, err)
		}
	}
	return r
}

// wantError checks the status and the error code.
func (r result) wantError(status int, code string) result {
	r.tb.Helper()
	var eb struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	r.want(status, &eb)
	if eb.Error.Code != code {
		r.tb.Fatalf("error code %q, want %q; body %s", eb.Error.Code, code, r.Body)
	}
	return r
}

// signIn signs in with a password and expects a session.
func (b *browser) signIn(email, pw string) accounts.SignInResponse {
	b.e.tb.Helper()
	var resp accounts.SignInResponse
	b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": email, "password": pw}).want(http.StatusOK, &resp)
	if resp.Next == "" {
		b.csrf = resp.CSRFToken
	}
	return resp
}

// cookie returns the browser's cookie called name, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie plants a cookie in the browser.
func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.e.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

// code is the current TOTP code of secret.
func (e *env) code(secret string) string {
	e.tb.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.tb.Fatal(err)
	}
	return c
}

// enrolTOTP enrols a second factor on b's session and returns the secret
// and the recovery codes.
func (b *browser) enrolTOTP() (string, []string) {
	b.e.tb.Helper()
	var enrol accounts.TOTPEnrolment
	b.do("POST", "/v1/account/totp", nil).want(http.StatusOK, &enrol)
	var rc accounts.RecoveryCodesResponse
	b.do("POST", "/v1/account/totp/verify", map[string]string{"code": b.e.code(enrol.Secret)}).want(http.StatusOK, &rc)
	if len(rc.RecoveryCodes) != 10 {
		b.e.tb.Fatalf("%d recovery codes, want 10", len(rc.RecoveryCodes))
	}
	// The code just used may not be used again: move to the next step.
	b.e.clock.Advance(30 * time.Second)
	return enrol.Secret, rc.RecoveryCodes
}

// wsConn is a WebSocket authenticated with a token from b's session.
type wsConn struct {
	conn *websocket.Conn
	done chan error // the error that ended reading
}

func (b *browser) openWS() *wsConn {
	tb := b.e.tb
	tb.Helper()
	var tok accounts.WSTokenResponse
	b.do("POST", "/v1/ws-token", nil).want(http.StatusOK, &tok)
	c, err := b.dialWS(tok.Token)
	if err != nil {
		tb.Fatalf("WebSocket auth with a fresh token: %v", err)
	}
	return c
}

// dialWS connects and authenticates with token; an error frame is an
// error.
func (b *browser) dialWS(token string) (*wsConn, error) {
	tb := b.e.tb
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "wss" + strings.TrimPrefix(b.e.URL, "https") + "/v1/ws"
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: b.e.srv.Client(), Subprotocols: []string{gateway.Subprotocol}})
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { _ = conn.CloseNow() })
	var f gateway.Frame
	if err := wsjson.Read(ctx, conn, &f); err != nil || f.Type != gateway.TypeWelcome {
		tb.Fatalf("welcome: %v %+v", err, f)
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"v": 1, "id": "a1", "type": "auth", "token": token}); err != nil {
		tb.Fatal(err)
	}
	if err := wsjson.Read(ctx, conn, &f); err != nil {
		return nil, err
	}
	if f.Type != gateway.TypeAuthed {
		return nil, fmt.Errorf("auth answered %s: %s", f.Type, mustJSON(f))
	}
	c := &wsConn{conn: conn, done: make(chan error, 1)}
	go func() {
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				c.done <- err
				return
			}
		}
	}()
	return c, nil
}

// wantClosed waits for the server to close the socket as revoked.
func (c *wsConn) wantClosed(tb testing.TB) {
	tb.Helper()
	select {
	case err := <-c.done:
		if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation {
			tb.Fatalf("WebSocket ended with %v (status %d), want policy violation", err, s)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("WebSocket still open 10 s after its session ended")
	}
}

func (c *wsConn) wantOpen(tb testing.TB) {
	tb.Helper()
	select {
	case err := <-c.done:
		tb.Fatalf("WebSocket closed: %v", err)
	default:
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
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

func (l *logBuffer) errors() []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}
