package oauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/oauth"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
)

const operatorToken = "sk_test_operator_0123456789"

// t0 is the actors' and gateway's clock: Monday 2030-01-07 07:00 in Rome.
// fosite keeps the wall clock for token lifetimes.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

const (
	tenantA     = "salon"
	tenantB     = "rival"
	callback    = "https://app.example/callback"
	sessionName = "test_session"
)

// fakeAccounts is the fake of package accounts: a cookie names a signed-in
// account. It serves oauth.Accounts (consent) and gateway's Sessions
// (administration routes with a cookie), as the real one will.
type fakeAccounts struct {
	mu   sync.Mutex // guards byID
	byID map[string]oauth.Account
}

func (a *fakeAccounts) add(acc oauth.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byID[acc.ID] = acc
}

func (a *fakeAccounts) CurrentAccount(r *http.Request) (oauth.Account, bool) {
	c, err := r.Cookie(sessionName)
	if err != nil {
		return oauth.Account{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, ok := a.byID[c.Value]
	return acc, ok
}

func (a *fakeAccounts) AuthenticateRequest(r *http.Request) (gateway.Principal, error) {
	acc, ok := a.CurrentAccount(r)
	if !ok {
		return gateway.Principal{}, engine.Errorf(engine.CodeUnauthorized, "not signed in")
	}
	perm := gateway.PermStaff
	if acc.Role == oauth.RoleOwner || acc.Role == oauth.RoleAdmin {
		perm = gateway.PermAdmin
	}
	return gateway.Principal{Kind: "staff", Subject: acc.ID, Tenant: acc.Tenant, Perm: perm, Grant: "session:" + acc.ID}, nil
}

// recordingStore remembers every key and value ever written, so that a
// test can look for secrets in everything that reached storage, deleted
// records included.
type recordingStore struct {
	persistence.RecordStore
	mu     sync.Mutex // guards the fields below
	writes [][]byte
	// Hooks for race tests: onGet after a read, the others before the
	// write.
	onGet    func(kind, key string)
	onPut    func(kind, key string, expect uint64)
	onDelete func(kind, key string)
}

func (s *recordingStore) DeleteRecord(ctx context.Context, tenant, kind, key string, expect uint64) error {
	s.mu.Lock()
	hook := s.onDelete
	s.mu.Unlock()
	if hook != nil {
		hook(kind, key)
	}
	return s.RecordStore.DeleteRecord(ctx, tenant, kind, key, expect)
}

func (s *recordingStore) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	rec, err := s.RecordStore.GetRecord(ctx, tenant, kind, key)
	s.mu.Lock()
	hook := s.onGet
	s.mu.Unlock()
	if hook != nil {
		hook(kind, key)
	}
	return rec, err
}

func (s *recordingStore) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expect uint64) (uint64, error) {
	s.mu.Lock()
	s.writes = append(s.writes, []byte(tenant+"\x00"+kind+"\x00"+key+"\x00"), bytes.Clone(value))
	hook := s.onPut
	s.mu.Unlock()
	if hook != nil {
		hook(kind, key, expect)
	}
	return s.RecordStore.PutRecord(ctx, tenant, kind, key, value, expect)
}

// hooks sets the race-test hooks.
func (s *recordingStore) hooks(onGet func(kind, key string), onPut func(kind, key string, expect uint64), onDelete func(kind, key string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onGet, s.onPut, s.onDelete = onGet, onPut, onDelete
}

// barrier returns a hook that counts calls for kind, and a wait that
// blocks until n of them have happened (failing the test after 5 s).
func barrier(tb testing.TB, kind string, n int32) (count func(kind, key string), wait func()) {
	var seen atomic.Int32
	all := make(chan struct{})
	count = func(k, _ string) {
		if k == kind && seen.Add(1) == n {
			close(all)
		}
	}
	wait = func() {
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			tb.Errorf("%d reads of %s did not overlap", n, kind)
		}
	}
	return count, wait
}

func (s *recordingStore) written() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.writes, []byte("\n"))
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

// env is slotd in-process: memstore, tenant actors, the gateway with the
// OAuth server's routes and authenticator, behind httptest on 127.0.0.1:0.
// Tenants salon (A) and rival (B) exist; accounts ownerA, staffA and
// ownerB are signed in by cookie.
type env struct {
	tb      testing.TB
	store   *memstore.Store
	records *recordingStore
	reg     *actors.Registry
	gw      *gateway.Server
	oauth   *oauth.Server
	srv     *httptest.Server
	URL     string
	accs    *fakeAccounts
	logs    *logBuffer
	revoked chan string // grants passed to OnRevoke
}

var (
	ownerA = oauth.Account{ID: "acc_owner_a", Tenant: tenantA, Role: oauth.RoleOwner, Name: "Olivia Owner"}
	staffA = oauth.Account{ID: "acc_staff_a", Tenant: tenantA, Role: oauth.RoleStaff, Name: "Sam Staff"}
	ownerB = oauth.Account{ID: "acc_owner_b", Tenant: tenantB, Role: oauth.RoleOwner, Name: "Rita Rival"}
)

// newEnv starts an env; opts adjust the OAuth server's configuration.
func newEnv(tb testing.TB, opts ...func(*oauth.Config)) *env {
	tb.Helper()
	e := &env{tb: tb, store: memstore.New(), accs: &fakeAccounts{byID: map[string]oauth.Account{}}, logs: &logBuffer{},
		revoked: make(chan string, 64)}
	for _, a := range []oauth.Account{ownerA, staffA, ownerB} {
		e.accs.add(a)
	}
	e.records = &recordingStore{RecordStore: e.store}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := clock.NewManual(t0)
	e.reg = actors.NewRegistry(actors.Config{Store: e.store, Clock: clk, Logger: log.With("component", "actors")})
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		tb.Fatal(err)
	}
	var gw *gateway.Server // set below; OnRevoke is called only once serving
	cfg := oauth.Config{
		Records:  e.records,
		Accounts: e.accs,
		Secret:   secret,
		OnRevoke: func(grant string) {
			gw.CloseGrant(grant)
			select {
			case e.revoked <- grant:
			default:
			}
		},
		Logger:     log.With("component", "oauth"),
		SecretCost: bcrypt.MinCost,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := oauth.New(cfg)
	if err != nil {
		tb.Fatalf("oauth.New: %v", err)
	}
	e.oauth = srv
	gw = gateway.New(gateway.Config{
		Tenants:   e.reg,
		Directory: e.store,
		Auth:      gateway.ChainAuth(gateway.NewOperatorToken(operatorToken), srv),
		Sessions:  e.accs,
		Routes:    srv.Routes(),
		Logger:    log.With("component", "gateway"),
		Now:       clk.Now,
	})
	e.gw = gw
	e.srv = httptest.NewServer(gw)
	e.URL = e.srv.URL
	tb.Cleanup(e.close)
	e.createTenant(tenantA)
	e.createTenant(tenantB)
	return e
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.gw.Shutdown(ctx)
	e.srv.Close()
	e.reg.Close()
	_ = e.store.Close()
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			e.tb.Errorf("error logged: %s", line)
		}
	}
	if e.tb.Failed() {
		e.tb.Logf("server log:\n%s", e.logs.String())
	}
}

// tenantConfig is a salon open 09:00–17:00 in Rome every day, hourly slots.
func tenantConfig() engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "09:00", End: "17:00"}}
	}
	return engine.TenantConfig{
		Name: "Salon", TimeZone: "Europe/Rome", HoldTTLSec: 120,
		Resources: []engine.Resource{{ID: "alice", Name: "Alice", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1, Weekly: week}},
		Services:  []engine.Service{{ID: "cut", Name: "Haircut", DurationMin: 30, StepMin: 60, Resources: []string{"alice"}}},
	}
}

func (e *env) createTenant(id string) {
	e.tb.Helper()
	e.do("POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: id, Config: tenantConfig()}).want(e.tb, http.StatusCreated, nil)
}

// slot is the n-th bookable slot start on Tuesday 2030-01-08 (10:00 Rome + n hours).
func slot(n int) string {
	loc, _ := time.LoadLocation("Europe/Rome")
	return time.Date(2030, time.January, 8, 10+n, 0, 0, 0, loc).Format(time.RFC3339)
}

// --- HTTP ---

type result struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r result) want(tb testing.TB, status int, out any) result {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			tb.Fatalf("decode %s: %v", r.Body, err)
		}
	}
	return r
}

// oauthError returns the "error" of an OAuth JSON error body.
func (r result) oauthError(tb testing.TB) string {
	tb.Helper()
	var b struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		tb.Fatalf("decode OAuth error %s: %v", r.Body, err)
	}
	return b.Error
}

// client does not follow redirects: tests read Location.
func (e *env) client() *http.Client {
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (e *env) send(req *http.Request) result {
	e.tb.Helper()
	resp, err := e.client().Do(req)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.tb.Cleanup(cancel)
	return ctx
}

// do sends a JSON request with an optional bearer token.
func (e *env) do(method, path, token string, body any) result {
	e.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx(), method, e.URL+path, rd)
	if err != nil {
		e.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.send(req)
}

// asAccount sends a request with acc's session cookie.
func (e *env) asAccount(acc oauth.Account, method, path string, body any) result {
	e.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx(), method, e.URL+path, rd)
	if err != nil {
		e.tb.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sessionName, Value: acc.ID})
	return e.send(req)
}

// postForm posts an OAuth form, with HTTP Basic client authentication if
// secret is not "".
func (e *env) postForm(path string, form url.Values, clientID, secret string) result {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), "POST", e.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	return e.send(req)
}

// register registers a client with tenant through the administration
// route, as the tenant's owner.
func (e *env) register(owner oauth.Account, spec oauth.ClientSpec) oauth.ClientView {
	e.tb.Helper()
	var v oauth.ClientView
	e.asAccount(owner, "POST", "/v1/tenants/"+owner.Tenant+"/oauth/clients", spec).want(e.tb, http.StatusCreated, &v)
	return v
}

// publicApp registers a public authorization-code client of owner's tenant.
func (e *env) publicApp(owner oauth.Account, scopes ...string) oauth.ClientView {
	e.tb.Helper()
	return e.register(owner, oauth.ClientSpec{Name: "Calendar Sync", RedirectURIs: []string{callback}, Scopes: scopes, Public: true})
}

// config is a golang.org/x/oauth2 client for app.
func (e *env) config(app oauth.ClientView, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     app.ID,
		ClientSecret: app.Secret,
		Endpoint: oauth2.Endpoint{AuthURL: e.URL + "/oauth2/authorize", TokenURL: e.URL + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: callback,
		Scopes:      scopes,
	}
}

// oauthCtx makes golang.org/x/oauth2 use the test server's client.
func (e *env) oauthCtx() context.Context {
	return context.WithValue(e.ctx(), oauth2.HTTPClient, e.srv.Client())
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// consent opens authURL in acc's browser: it returns the consent page's
// form (hidden fields), failing unless the page is shown.
func (e *env) consent(acc oauth.Account, authURL string) url.Values {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), "GET", authURL, nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sessionName, Value: acc.ID})
	r := e.send(req)
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`action="/oauth2/authorize"`)) {
		e.tb.Fatalf("GET %s = %d, Location %q, want the consent page; body %s", authURL, r.Status, r.Header.Get("Location"), r.Body)
	}
	form := url.Values{}
	for _, m := range hiddenRE.FindAllSubmatch(r.Body, -1) {
		form.Set(html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2])))
	}
	return form
}

// submit posts a consent form with decision as acc and returns the
// redirect's Location.
func (e *env) submit(acc oauth.Account, form url.Values, decision string) *url.URL {
	e.tb.Helper()
	r := e.submitRaw(acc, form, decision)
	if r.Status != http.StatusSeeOther && r.Status != http.StatusFound {
		e.tb.Fatalf("POST /oauth2/authorize = %d, want a redirect; body %s", r.Status, r.Body)
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		e.tb.Fatalf("Location %q: %v", r.Header.Get("Location"), err)
	}
	return u
}

func (e *env) submitRaw(acc oauth.Account, form url.Values, decision string) result {
	e.tb.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("decision", decision)
	req, err := http.NewRequestWithContext(e.ctx(), "POST", e.URL+"/oauth2/authorize", strings.NewReader(f.Encode()))
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.URL)
	req.AddCookie(&http.Cookie{Name: sessionName, Value: acc.ID})
	return e.send(req)
}

// redirectOf GETs authURL as acc and returns where it redirects (an error
// sent back to the app).
func (e *env) redirectOf(acc oauth.Account, authURL string) *url.URL {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), "GET", authURL, nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sessionName, Value: acc.ID})
	r := e.send(req)
	if r.Status != http.StatusSeeOther && r.Status != http.StatusFound {
		e.tb.Fatalf("GET %s = %d, want a redirect; body %s", authURL, r.Status, r.Body)
	}
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		e.tb.Fatal(err)
	}
	return u
}

// callbackParams returns the query (or, for implicit-style answers, the
// fragment) parameters of a redirect to the app.
func callbackParams(tb testing.TB, u *url.URL) url.Values {
	tb.Helper()
	if got := u.Scheme + "://" + u.Host + u.Path; got != callback {
		tb.Fatalf("redirected to %s, want %s", u, callback)
	}
	q := u.Query()
	if q.Get("code") == "" && q.Get("error") == "" && u.Fragment != "" {
		q, _ = url.ParseQuery(u.Fragment)
	}
	return q
}

// login runs the authorization-code flow with PKCE as app's user acc and
// returns the tokens, as a real client would.
func (e *env) login(acc oauth.Account, conf *oauth2.Config) *oauth2.Token {
	e.tb.Helper()
	verifier := oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()[:24]
	form := e.consent(acc, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	q := callbackParams(e.tb, e.submit(acc, form, "allow"))
	if q.Get("state") != state || q.Get("code") == "" {
		e.tb.Fatalf("callback %v: want state %q and a code", q, state)
	}
	tok, err := conf.Exchange(e.oauthCtx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.tb.Fatalf("Exchange: %v", err)
	}
	return tok
}

// --- WebSocket ---

// ws is a WebSocket client of the gateway's protocol with a reader
// goroutine; it records the close status the server sent.
type ws struct {
	tb     testing.TB
	conn   *websocket.Conn
	frames chan gateway.Frame
	done   chan struct{}
	status websocket.StatusCode // valid after done
	nextID int
	// pending holds frames read while waiting for another (the test's
	// goroutine only).
	pending []gateway.Frame
}

// dialWS connects to /v1/ws with header and query; it fails the test on a
// refused handshake.
func (e *env) dialWS(query string, header http.Header) *ws {
	e.tb.Helper()
	c, status, err := e.tryDialWS(query, header)
	if err != nil {
		e.tb.Fatalf("dial /v1/ws?%s = HTTP %d, %v", query, status, err)
	}
	return c
}

func (e *env) tryDialWS(query string, header http.Header) (*ws, int, error) {
	u := "ws" + strings.TrimPrefix(e.URL, "http") + "/v1/ws"
	if query != "" {
		u += "?" + query
	}
	conn, resp, err := websocket.Dial(e.ctx(), u, &websocket.DialOptions{HTTPHeader: header, HTTPClient: e.srv.Client()})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	c := &ws{tb: e.tb, conn: conn, frames: make(chan gateway.Frame, 256), done: make(chan struct{}), status: -1}
	go c.read()
	e.tb.Cleanup(func() { _ = conn.CloseNow(); <-c.done })
	if f := c.next(gateway.TypeWelcome); f.Type != gateway.TypeWelcome {
		e.tb.Fatalf("first frame %s, want welcome", f.Type)
	}
	return c, http.StatusSwitchingProtocols, nil
}

func (c *ws) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.status = websocket.CloseStatus(err)
			return
		}
		var f gateway.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.tb.Errorf("frame %s: %v", data, err)
			continue
		}
		select {
		case c.frames <- f:
		default:
			c.tb.Errorf("frame buffer full; dropped %s", f.Type)
		}
	}
}

// next returns the next frame of type typ, keeping others for later.
func (c *ws) next(typ string) gateway.Frame {
	c.tb.Helper()
	for i, f := range c.pending {
		if f.Type == typ {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return f
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-c.frames:
			if f.Type == typ {
				return f
			}
			c.pending = append(c.pending, f)
		case <-c.done:
			c.tb.Fatalf("connection closed (status %d) while waiting for %s", c.status, typ)
		case <-deadline:
			c.tb.Fatalf("no %s frame within 10 s", typ)
		}
	}
}

// call sends a request and returns the reply with its id.
func (c *ws) call(typ string, fields map[string]any) gateway.Frame {
	c.tb.Helper()
	c.nextID++
	id := fmt.Sprintf("r%d", c.nextID)
	m := map[string]any{"v": gateway.ProtocolVersion, "id": id, "type": typ}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.tb.Fatalf("write %s: %v", typ, err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-c.frames:
			if f.ID == id {
				return f
			}
			c.pending = append(c.pending, f)
		case <-c.done:
			c.tb.Fatalf("connection closed (status %d) while waiting for the reply to %s", c.status, typ)
		case <-deadline:
			c.tb.Fatalf("no reply to %s within 10 s", typ)
		}
	}
}

func (c *ws) mustCall(typ string, fields map[string]any, want string) gateway.Frame {
	c.tb.Helper()
	f := c.call(typ, fields)
	if f.Type != want {
		c.tb.Fatalf("%s = %s %s (%s), want %s", typ, f.Type, f.Code, f.Message, want)
	}
	return f
}

func (c *ws) wantErr(typ string, fields map[string]any, code engine.Code) {
	c.tb.Helper()
	f := c.call(typ, fields)
	if f.Type != gateway.TypeError || f.Code != string(code) {
		c.tb.Fatalf("%s = %s %s (%s), want error %s", typ, f.Type, f.Code, f.Message, code)
	}
}

// closedWith waits for the server to close the connection and returns the
// status it sent.
func (c *ws) closedWith() websocket.StatusCode {
	c.tb.Helper()
	select {
	case <-c.done:
		return c.status
	case <-time.After(10 * time.Second):
		c.tb.Fatalf("connection still open after 10 s")
		return 0
	}
}

func subscribeFields() map[string]any {
	return map[string]any{"service": "cut", "resource": "alice", "from": "2030-01-08", "to": "2030-01-09", "tz": "Europe/Rome"}
}

func bookFields(n int) map[string]any {
	return map[string]any{"service": "cut", "resource": "alice", "start": slot(n),
		"customer": map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"}}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}
