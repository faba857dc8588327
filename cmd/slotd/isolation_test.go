package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// The tenant isolation suite (DESIGN.md invariant 4). Two tenants, alpha
// and bravo, are set up in one slotd started through run, each with
// bookings of named customers, a live hold, an owner, an admin and a staff
// account signed in, OAuth clients and an access token. Then each tenant in
// turn attacks the other:
//
//   - every route of the live router (gateway.Server.Routes, reached through
//     gatewayHook, so routes added by any package count) is called with the
//     victim's ids in its path and body, as the attacker's staff, admin and
//     owner sessions, OAuth access token and WebSocket token; and, where the
//     route addresses objects by id, on the attacker's own tenant with the
//     victim's object ids. A route without a case in isolationCases fails
//     the suite;
//   - every WebSocket message type (gateway.RequestTypes) is sent with the
//     victim's ids on connections bound to the attacker's tenant (booking
//     link, staff WebSocket token, OAuth token); a message type without a
//     case fails the suite; and a connection cannot be moved to the other
//     tenant.
//
// Every answer must be a refusal (401, 403, 404, or an error frame) unless
// the case says why not, and no answer may carry anything identifying of
// the victim that the request did not already contain. The victim's state
// (journal version, bookings, accounts, OAuth clients and grants, read as
// the operator) must be the same afterwards.

// isoTenant is one tenant of the suite and every credential and id it has.
type isoTenant struct {
	id, name, link       string
	resource, service    string // ids (tenant-chosen names, not secrets)
	resName, svcName     string
	bookings             []string
	hold                 string
	customers            []engine.Customer // this tenant's only
	shared               engine.Customer   // isoSharedEmail, with a name of this tenant's
	ownerID, adminID     string
	staffID              string
	ownerEmail           string
	adminEmail           string
	staffEmail, password string
	owner, admin, staff  isoSession
	client, clientSecret string // client credentials app
	codeClient           string // authorization-code app
	token                string // OAuth access token (client credentials, every scope)
	grant                string
}

// isoSession is a signed-in browser: its session cookie and CSRF token.
type isoSession struct{ cookie, csrf string }

// needles are the victim's identifying strings that must not reach the
// attacker. private ones must not appear even on routes that are public by
// design (the booking link shows the tenant's name and services).
func (v *isoTenant) needles() (private, public []string) {
	private = append(private, v.bookings...)
	private = append(private, v.hold, v.ownerID, v.adminID, v.staffID, v.ownerEmail, v.adminEmail, v.staffEmail, v.client, v.clientSecret,
		v.codeClient, v.token, v.grant)
	for _, c := range v.customers {
		private = append(private, c.Name, c.Email, c.Phone)
	}
	private = append(private, v.shared.Name, v.shared.Phone)
	public = []string{v.name, v.link, v.resName, v.svcName}
	return private, public
}

const isoRedirect = "https://app.example.net/callback"

// isoSharedEmail is a customer of both tenants.
const isoSharedEmail = "same.person@shared-mail.example.com"

// isoEnv is the running slotd and both tenants.
type isoEnv struct {
	ctx    context.Context
	base   string
	op     string // operator token
	gw     *gateway.Server
	client *http.Client
	day    time.Time // tomorrow, 00:00 UTC

	requests, messages atomic.Int64 // attempts, for the log
}

// TestTenantIsolationSuite is the suite described at the top of this file.
func TestTenantIsolationSuite(t *testing.T) {
	var gw *gateway.Server
	hook := context.WithValue(context.Background(), gatewayHook{}, func(s *gateway.Server) { gw = s })
	s := startSlotdCtx(t, hook, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-demo=false", "-log-level", "error"}, nil)
	if gw == nil {
		t.Fatal("run did not call the gateway hook")
	}

	// Every route and message type needs a case before anything runs.
	cases := isolationCases()
	mounted := map[string]bool{}
	for _, r := range gw.Routes() {
		mounted[r.Pattern] = true
		if _, ok := cases[r.Pattern]; !ok {
			t.Errorf("route %q has no isolation case: add one to isolationCases in cmd/slotd/isolation_test.go", r.Pattern)
		}
	}
	for p := range cases {
		if !mounted[p] {
			t.Logf("isolation case for %q, which is not mounted: remove it if the route is gone", p)
		}
	}
	wsCases := wsIsolationCases()
	for _, typ := range gateway.RequestTypes() {
		if _, ok := wsCases[typ]; !ok {
			t.Errorf("WebSocket message %q has no isolation case: add one to wsIsolationCases in cmd/slotd/isolation_test.go", typ)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	e := &isoEnv{ctx: t.Context(), base: s.base, op: s.token, gw: gw,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		day:    time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)}
	var (
		alpha, bravo *isoTenant
		witness      = map[string]isoSession{} // sessions nobody signs out
		mu           sync.Mutex                // guards witness
	)
	if !t.Run("setup", func(t *testing.T) {
		for _, tn := range []struct {
			into                  **isoTenant
			id, name, person, pfx string
		}{{&alpha, "alpha", "Alpha Atelier Ltd", "Annika Aalto", "a"}, {&bravo, "bravo", "Bravo Barbers Ltd", "Bartholomew Brightwater", "b"}} {
			t.Run(tn.id, func(t *testing.T) {
				t.Parallel()
				v := e.setupTenant(t, tn.id, tn.name, tn.person, tn.pfx)
				w := e.signIn(t, v.id, v.staffEmail, v.password)
				mu.Lock()
				witness[v.id] = w
				mu.Unlock()
				*tn.into = v
			})
		}
	}) {
		t.FailNow()
	}

	for _, pair := range [][2]*isoTenant{{alpha, bravo}, {bravo, alpha}} {
		att, vic := pair[0], pair[1]
		t.Run(att.id+"_attacks_"+vic.id, func(t *testing.T) {
			before := e.snapshot(t, vic)
			t.Run("routes", func(t *testing.T) {
				for _, r := range gw.Routes() {
					if c := cases[r.Pattern]; !c.last {
						t.Run(r.Pattern, func(t *testing.T) {
							t.Parallel()
							e.attackRoute(t, r.Pattern, c, att, vic)
						})
					}
				}
			})
			t.Run("websocket", func(t *testing.T) { e.attackWebSocket(t, wsCases, att, vic) })
			if after := e.snapshot(t, vic); after != before {
				t.Errorf("%s's state changed under %s's attack:\nbefore %s\nafter  %s", vic.id, att.id, before, after)
			}
		})
	}
	// Routes that end the caller's own session run last.
	for _, pair := range [][2]*isoTenant{{alpha, bravo}, {bravo, alpha}} {
		att, vic := pair[0], pair[1]
		t.Run(att.id+"_signs_out", func(t *testing.T) {
			before := e.snapshot(t, vic)
			for _, r := range gw.Routes() {
				if c := cases[r.Pattern]; c.last {
					e.attackRoute(t, r.Pattern, c, att, vic)
				}
			}
			if after := e.snapshot(t, vic); after != before {
				t.Errorf("%s's state changed when %s signed out", vic.id, att.id)
			}
			if st, body := e.do(t, http.MethodGet, "/v1/session", "", withSession(witness[vic.id])); st != http.StatusOK {
				t.Errorf("%s's session after %s signed out: %d %s, want 200", vic.id, att.id, st, body)
			}
		})
	}
	t.Logf("%d routes, %d HTTP attempts as the other tenant's principals; %d message types, %d WebSocket attempts",
		len(gw.Routes()), e.requests.Load(), len(gateway.RequestTypes()), e.messages.Load())
}

// --- the route cases ---

// routeCase says how to attack one route. Path parameters are filled in
// from the victim: {tenant}, {booking}, {resource}, {service}, {account},
// {client}, {grant}, {link}; {date}, {source}, {provider} and {file...}
// get harmless values. Body, query and form use the same placeholders,
// plus {hold}, {email} (a customer's), {staff_email}, {start}, {token}
// (the victim's OAuth access token) and {att_…} for the attacker's own.
type routeCase struct {
	kind  caseKind
	query string
	body  string // JSON, Content-Type application/json
	form  string // url-encoded form instead of JSON
	// allow are statuses accepted besides 401, 403 and 404 for refused
	// cases (429: failed sign-ins are throttled per address).
	allow []int
	// own also sends the request on the attacker's own tenant with the
	// victim's object ids (the ones a client could try to reach across
	// tenants); ownBody replaces body there. The answer must be a 4xx,
	// or anything but 5xx with ownActs (the route then acts on the
	// attacker's tenant only: that the victim is untouched is checked by
	// the snapshot).
	own     bool
	ownBody string
	ownActs bool
	last    bool // ends the caller's session: run after everything else
	once    bool // principal-independent: one attempt (failed sign-ins are throttled)
	custom  func(e *isoEnv, t *testing.T, att, vic *isoTenant)
	why     string // for kinds that are not refusals: why the route may answer
}

type caseKind int

const (
	// refused: the attacker's every principal is refused on the victim's
	// tenant (401/403/404), nothing of the victim's in the answer.
	refused caseKind = iota + 1
	// public: no tenant data behind the route; any non-5xx answer, nothing
	// of the victim's in it.
	public
	// link: the booking link is public by design; the victim's public
	// booking page may be shown, none of its private data.
	link
	// self: the route acts on the caller's own account and tenant (no ids
	// in it); any non-5xx answer, nothing of the victim's in it.
	self
	// custom: its own checks.
	custom
)

const isoConfigBody = `{"name":"Pwned","time_zone":"UTC","resources":[],"services":[]}`

// isolationCases maps every route pattern of the router to its case.
func isolationCases() map[string]routeCase {
	return map[string]routeCase{
		// gateway: health, static, public booking link
		"GET /healthz":                       {kind: public, why: "health check"},
		"GET /readyz":                        {kind: public, why: "readiness check"},
		"GET /metrics":                       {kind: public, why: "process metrics, no tenant labels"},
		"GET /{$}":                           {kind: public, why: "the static start page"},
		"GET /static/{file...}":              {kind: public, why: "static assets"},
		"GET /book/{link}":                   {kind: link, why: "the booking page is the same static page for every link"},
		"GET /v1/public/{link}":              {kind: link, why: "a booking link shows its tenant's public page"},
		"GET /v1/public/{link}/availability": {kind: link, query: "service={service}&from={date}&to={date2}&tz=UTC", why: "a booking link shows its tenant's free slots"},
		"GET /v1/ws":                         {kind: custom, custom: (*isoEnv).attackHandshake},
		"POST /v1/tenants":                   {kind: refused, body: `{"id":"pwned","config":` + isoConfigBody + `}`},
		"GET /v1/tenants":                    {kind: refused},
		"GET /v1/tenants/{tenant}":           {kind: refused},
		"PUT /v1/tenants/{tenant}/config":    {kind: refused, body: isoConfigBody},
		"GET /v1/tenants/{tenant}/origins":   {kind: refused},
		"PUT /v1/tenants/{tenant}/origins":   {kind: refused, body: `{"allowed_origins":["https://evil.example.org"]}`},
		"PUT /v1/tenants/{tenant}/resources/{resource}": {kind: refused,
			body: `{"name":"Pwned","kind":"room","time_zone":"UTC","capacity":9,"weekly":{}}`},
		"PUT /v1/tenants/{tenant}/services/{service}": {kind: refused,
			body: `{"name":"Pwned","duration_min":5,"resources":["{resource}"]}`},
		"PUT /v1/tenants/{tenant}/resources/{resource}/overrides/{date}":    {kind: refused, body: `{"open":[]}`, own: true},
		"DELETE /v1/tenants/{tenant}/resources/{resource}/overrides/{date}": {kind: refused, own: true},
		"PUT /v1/tenants/{tenant}/resources/{resource}/busy/{source}": {kind: refused, own: true,
			body: `{"blocks":[{"start":"{start}","end":"{end}"}]}`},
		"GET /v1/tenants/{tenant}/availability": {kind: refused, own: true, query: "service={service}&from={date}&to={date2}&tz=UTC"},
		"GET /v1/tenants/{tenant}/bookings":     {kind: refused},
		"POST /v1/tenants/{tenant}/bookings": {kind: refused, own: true,
			body:    `{"service":"{service}","resource":"{resource}","start":"{start}","customer":{"name":"Mallory","email":"mallory@evil.example.org"}}`,
			ownBody: `{"hold_id":"{hold}","customer":{"name":"Mallory","email":"mallory@evil.example.org"}}`},
		"GET /v1/tenants/{tenant}/bookings/{booking}":             {kind: refused, own: true},
		"POST /v1/tenants/{tenant}/bookings/{booking}/cancel":     {kind: refused, own: true, body: `{"reason":"pwned"}`},
		"POST /v1/tenants/{tenant}/bookings/{booking}/reschedule": {kind: refused, own: true, body: `{"start":"{start2}"}`},

		// accounts
		"POST /v1/tenants/{tenant}/sign-in": {kind: refused, once: true, own: true, allow: []int{http.StatusTooManyRequests},
			body:    `{"email":"{att_staff_email}","password":"{password}"}`,
			ownBody: `{"email":"{staff_email}","password":"{password}"}`},
		"GET /v1/sign-in/challenge":                        {kind: refused, once: true},
		"POST /v1/sign-in/totp":                            {kind: refused, once: true, body: `{"code":"123456"}`, allow: []int{http.StatusTooManyRequests}},
		"GET /v1/tenants/{tenant}/sign-in/oidc/{provider}": {kind: refused, once: true, allow: []int{http.StatusBadRequest}},
		"GET /v1/oidc/{provider}/callback":                 {kind: refused, once: true, query: "state=x&code=y", allow: []int{http.StatusBadRequest}},
		"GET /v1/session":                                  {kind: self, why: "the caller's own session"},
		"POST /v1/sign-out":                                {kind: self, last: true, why: "ends the caller's own session"},
		"POST /v1/ws-token":                                {kind: self, why: "a WebSocket token for the caller's own session"},
		"POST /v1/account/password":                        {kind: self, body: `{"current_password":"not the password at all","new_password":"pwned pwned pwned pwned"}`, why: "the caller's own password (wrong current password)"},
		"POST /v1/account/totp":                            {kind: self, why: "starts the caller's own second-factor enrolment"},
		"POST /v1/account/totp/verify":                     {kind: self, body: `{"code":"000000"}`, why: "the caller's own enrolment (wrong code)"},
		"POST /v1/account/totp/disable":                    {kind: self, body: `{"password":"not the password at all","code":"000000"}`, why: "the caller's own second factor (none)"},
		"POST /v1/account/recovery-codes":                  {kind: self, body: `{"code":"000000"}`, why: "the caller's own recovery codes (no second factor)"},
		"GET /v1/tenants/{tenant}/accounts":                {kind: refused},
		"POST /v1/tenants/{tenant}/accounts": {kind: refused,
			body: `{"email":"mallory@evil.example.org","name":"Mallory","role":"owner","password":"pwned pwned pwned pwned"}`},
		"GET /v1/tenants/{tenant}/accounts/{account}":    {kind: refused, own: true},
		"PATCH /v1/tenants/{tenant}/accounts/{account}":  {kind: refused, own: true, body: `{"role":"owner"}`},
		"DELETE /v1/tenants/{tenant}/accounts/{account}": {kind: refused, own: true},
		"GET /v1/tenants/{tenant}/account-policy":        {kind: refused},
		"PUT /v1/tenants/{tenant}/account-policy":        {kind: refused, body: `{"require_mfa":true,"oidc_domains":["evil.example.org"]}`},

		// OAuth 2
		"GET /.well-known/oauth-authorization-server": {kind: public, why: "server metadata"},
		"GET /oauth2/authorize":                       {kind: custom, custom: (*isoEnv).attackAuthorize},
		"POST /oauth2/authorize":                      {kind: custom, custom: (*isoEnv).attackAuthorize},
		"POST /oauth2/token":                          {kind: custom, custom: (*isoEnv).attackToken},
		"POST /oauth2/revoke":                         {kind: custom, custom: (*isoEnv).attackRevoke},
		"POST /oauth2/introspect":                     {kind: custom, custom: (*isoEnv).attackIntrospect},
		"POST /v1/tenants/{tenant}/oauth/clients": {kind: refused,
			body: `{"name":"Pwned","grant_types":["client_credentials"],"scopes":["bookings:read"]}`},
		"GET /v1/tenants/{tenant}/oauth/clients":                    {kind: refused},
		"GET /v1/tenants/{tenant}/oauth/clients/{client}":           {kind: refused, own: true},
		"DELETE /v1/tenants/{tenant}/oauth/clients/{client}":        {kind: refused, own: true},
		"DELETE /v1/tenants/{tenant}/oauth/clients/{client}/grants": {kind: refused, own: true},
		"GET /v1/tenants/{tenant}/oauth/grants":                     {kind: refused},
		"DELETE /v1/tenants/{tenant}/oauth/grants/{grant}":          {kind: refused, own: true},

		// privacy
		"POST /v1/tenants/{tenant}/privacy/export-customer": {kind: refused, body: `{"email":"{email}"}`, own: true, ownActs: true,
			ownBody: `{"email":"{shared_email}"}`},
		"GET /v1/tenants/{tenant}/privacy/export": {kind: refused},
		"POST /v1/tenants/{tenant}/privacy/erase": {kind: refused, body: `{"email":"{email}"}`, own: true, ownActs: true,
			ownBody: `{"email":"{shared_email}"}`},
	}
}

// principal adds one kind of credential to a request.
type principal struct {
	name  string
	apply func(r *http.Request)
}

func withSession(s isoSession) func(*http.Request) {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: accounts.SessionCookie, Value: s.cookie})
		r.Header.Set(accounts.CSRFHeader, s.csrf)
	}
}

func withBearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// principals are the attacker's credentials: staff, admin and owner sessions,
// the OAuth access token, and a fresh WebSocket token per request (the
// gateway's token chain accepts it as a bearer token, once).
func (e *isoEnv) principals(t testing.TB, att *isoTenant) []principal {
	return []principal{
		{"staff session", withSession(att.staff)},
		{"admin session", withSession(att.admin)},
		{"owner session", withSession(att.owner)},
		{"OAuth token", withBearer(att.token)},
		{"WebSocket token", func(r *http.Request) { withBearer(e.wsToken(t, att.staff))(r) }},
	}
}

// fill substitutes the placeholders of s with the victim's ids (and
// {tenant} with tenant).
func (e *isoEnv) fill(s, tenant string, att, vic *isoTenant) string {
	start := e.day.Add(20 * time.Hour)
	return strings.NewReplacer(
		"{tenant}", tenant,
		"{booking}", vic.bookings[0],
		"{resource}", vic.resource,
		"{service}", vic.service,
		"{account}", vic.staffID,
		"{client}", vic.client,
		"{grant}", vic.grant,
		"{link}", vic.link,
		"{hold}", vic.hold,
		"{email}", vic.customers[0].Email,
		"{shared_email}", isoSharedEmail,
		"{staff_email}", vic.staffEmail,
		"{password}", vic.password,
		"{token}", vic.token,
		"{att_staff_email}", att.staffEmail,
		"{date}", e.day.Format(time.DateOnly),
		"{date2}", e.day.AddDate(0, 0, 1).Format(time.DateOnly),
		"{start}", start.Format(time.RFC3339),
		"{start2}", start.Add(time.Hour).Format(time.RFC3339),
		"{end}", start.Add(30*time.Minute).Format(time.RFC3339),
		"{source}", "pwned",
		"{provider}", "google",
		"{file...}", "app.js",
	).Replace(s)
}

// request is one attempt and what came back.
type attempt struct {
	who, method, path, sent string
	status                  int
	body                    string
}

func (e *isoEnv) send(t testing.TB, method, path, query, body, form string, apply func(*http.Request)) attempt {
	t.Helper()
	u := e.base + path
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else if form != "" {
		rd = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, u, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	} else if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if apply != nil {
		apply(req)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// Headers can leak too (Location, Set-Cookie).
	var hdr strings.Builder
	for _, k := range []string{"Location", "Set-Cookie", "Content-Disposition"} {
		for _, v := range resp.Header.Values(k) {
			hdr.WriteString(k + ": " + v + "\n")
		}
	}
	return attempt{method: method, path: path, sent: path + "?" + query + "\n" + body + form + fmt.Sprint(req.Header),
		status: resp.StatusCode, body: hdr.String() + string(b)}
}

// leaks returns the needles found in the answer that the request did not
// carry itself.
func leaks(a attempt, needles []string) []string {
	var out []string
	for _, n := range needles {
		if n != "" && strings.Contains(a.body, n) && !strings.Contains(a.sent, n) {
			out = append(out, n)
		}
	}
	return out
}

func (a attempt) String() string {
	body := a.body
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%s %s as %s = %d %s", a.method, a.path, a.who, a.status, strings.TrimSpace(body))
}

func refusal(status int, allow []int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	for _, s := range allow {
		if status == s {
			return true
		}
	}
	return false
}

func (e *isoEnv) attackRoute(t *testing.T, pattern string, c routeCase, att, vic *isoTenant) {
	t.Helper()
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.TrimSuffix(path, "{$}")
	private, pub := vic.needles()
	all := append(append([]string{}, private...), pub...)
	if c.kind == custom {
		c.custom(e, t, att, vic)
		return
	}
	prins := e.principals(t, att)
	if c.once {
		prins = prins[:1]
	}
	if c.kind == self || c.last {
		// The session that signs out goes last; a WebSocket token needs
		// the staff session.
		prins = []principal{prins[3], prins[4], prins[0], prins[1], prins[2]}
	}
	for _, p := range prins {
		a := e.send(t, method, e.fill(path, vic.id, att, vic), e.fill(c.query, vic.id, att, vic),
			e.fill(c.body, vic.id, att, vic), e.fill(c.form, vic.id, att, vic), p.apply)
		a.who = att.id + "'s " + p.name
		e.requests.Add(1)
		switch c.kind {
		case refused:
			if !refusal(a.status, c.allow) {
				t.Errorf("%s on %s's tenant: %v, want a refusal (401, 403 or 404)", pattern, vic.id, a)
			}
			if l := leaks(a, all); len(l) > 0 {
				t.Errorf("%s on %s's tenant leaks %q: %v", pattern, vic.id, l, a)
			}
		case public, self:
			if a.status >= 500 {
				t.Errorf("%s: %v", pattern, a)
			}
			if l := leaks(a, all); len(l) > 0 {
				t.Errorf("%s leaks %s's %q: %v", pattern, vic.id, l, a)
			}
		case link:
			if a.status >= 500 {
				t.Errorf("%s: %v", pattern, a)
			}
			if l := leaks(a, private); len(l) > 0 {
				t.Errorf("%s with %s's booking link leaks private %q: %v", pattern, vic.id, l, a)
			}
		default:
			t.Fatalf("%s: case of unknown kind %d", pattern, c.kind)
		}
		if !c.own {
			continue
		}
		body := c.body
		if c.ownBody != "" {
			body = c.ownBody
		}
		a = e.send(t, method, e.fill(path, att.id, att, vic), e.fill(c.query, att.id, att, vic),
			e.fill(body, att.id, att, vic), e.fill(c.form, att.id, att, vic), p.apply)
		a.who = att.id + "'s " + p.name
		e.requests.Add(1)
		ok := a.status >= 400 && a.status < 500
		if c.ownActs {
			ok = a.status < 500
		}
		if !ok {
			t.Errorf("%s on %s's own tenant with %s's ids: %v, want a 4xx", pattern, att.id, vic.id, a)
		}
		if l := leaks(a, all); len(l) > 0 {
			t.Errorf("%s on %s's own tenant with %s's ids leaks %q: %v", pattern, att.id, vic.id, l, a)
		}
	}
}

// attackHandshake: GET /v1/ws cannot bind a connection to the victim with
// the attacker's credentials (the messages are attackWebSocket's).
func (e *isoEnv) attackHandshake(t *testing.T, att, vic *isoTenant) {
	_, all := vic.needles()
	priv, _ := vic.needles()
	all = append(all, priv...)
	for _, tok := range []struct{ name, tok string }{{"OAuth token", att.token}, {"WebSocket token", e.wsToken(t, att.staff)}} {
		a := e.send(t, http.MethodGet, "/v1/ws", "tenant="+vic.id, "", "", withBearer(tok.tok))
		a.who = att.id + "'s " + tok.name
		if !refusal(a.status, nil) {
			t.Errorf("WebSocket handshake with ?tenant=%s: %v, want a refusal", vic.id, a)
		}
		if l := leaks(a, all); len(l) > 0 {
			t.Errorf("WebSocket handshake with ?tenant=%s leaks %q", vic.id, l)
		}
	}
}

// attackAuthorize: signed in to the attacker's tenant, one cannot consent
// to (and get a code for) the victim's app.
func (e *isoEnv) attackAuthorize(t *testing.T, att, vic *isoTenant) {
	q := url.Values{"client_id": {vic.codeClient}, "redirect_uri": {isoRedirect}, "response_type": {"code"},
		"scope": {gateway.ScopeBookingsRead}, "state": {"state-0123456789abcdef"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbWQRjGXMztA"}, "code_challenge_method": {"S256"}}
	priv, _ := vic.needles()
	for _, sess := range []struct {
		name string
		s    isoSession
	}{{"staff session", att.staff}, {"admin session", att.admin}, {"owner session", att.owner}} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			var a attempt
			if method == http.MethodGet {
				a = e.send(t, method, "/oauth2/authorize", q.Encode(), "", "", withSession(sess.s))
			} else {
				f := url.Values{"consent": {"forged"}, "decision": {"allow"}}
				for k, v := range q {
					f[k] = v
				}
				a = e.send(t, method, "/oauth2/authorize", "", "", f.Encode(), withSession(sess.s))
			}
			a.who = att.id + "'s " + sess.name
			refusedRedirect := a.status >= 300 && a.status < 400 && strings.Contains(a.body, "error=") && !strings.Contains(a.body, "code=")
			if !(a.status >= 400 && a.status < 500) && !refusedRedirect {
				t.Errorf("authorize %s's app: %v, want a refusal", vic.id, a)
			}
			if strings.Contains(a.body, "Allow ") || strings.Contains(a.body, "code=") {
				t.Errorf("authorize %s's app offered consent or a code: %v", vic.id, a)
			}
			if l := leaks(a, priv); len(l) > 0 {
				t.Errorf("authorize %s's app leaks %q: %v", vic.id, l, a)
			}
		}
	}
}

// attackToken: the victim's client id with the attacker's secret gets no
// token.
func (e *isoEnv) attackToken(t *testing.T, att, vic *isoTenant) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {gateway.ScopeBookingsRead}}.Encode()
	a := e.send(t, http.MethodPost, "/oauth2/token", "", "", form, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(vic.client), url.QueryEscape(att.clientSecret))
	})
	a.who = att.id + "'s client secret"
	if a.status != http.StatusUnauthorized && a.status != http.StatusBadRequest || strings.Contains(a.body, "access_token") {
		t.Errorf("token for %s's client with %s's secret: %v, want 401 and no token", vic.id, att.id, a)
	}
}

// attackRevoke: the attacker's client cannot revoke the victim's token
// (RFC 7009 answers 200 whatever happened: the token must still work).
func (e *isoEnv) attackRevoke(t *testing.T, att, vic *isoTenant) {
	form := url.Values{"token": {vic.token}}.Encode()
	a := e.send(t, http.MethodPost, "/oauth2/revoke", "", "", form, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(att.client), url.QueryEscape(att.clientSecret))
	})
	a.who = att.id + "'s client"
	if a.status >= 500 {
		t.Errorf("revoke %s's token: %v", vic.id, a)
	}
	if st, body := e.do(t, http.MethodGet, "/v1/tenants/"+vic.id+"/bookings", "", withBearer(vic.token)); st != http.StatusOK {
		t.Errorf("%s's token after %s's client revoked it: %d %s, want it to work", vic.id, att.id, st, body)
	}
}

// attackIntrospect: the attacker's client learns nothing of the victim's
// token.
func (e *isoEnv) attackIntrospect(t *testing.T, att, vic *isoTenant) {
	priv, pub := vic.needles()
	form := url.Values{"token": {vic.token}}.Encode()
	a := e.send(t, http.MethodPost, "/oauth2/introspect", "", "", form, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(att.client), url.QueryEscape(att.clientSecret))
	})
	a.who = att.id + "'s client"
	var out struct {
		Active bool `json:"active"`
	}
	_ = json.Unmarshal([]byte(a.body), &out)
	if a.status >= 500 || out.Active {
		t.Errorf("introspect %s's token: %v, want inactive", vic.id, a)
	}
	if l := leaks(a, append(priv, pub...)); len(l) > 0 {
		t.Errorf("introspect %s's token leaks %q: %v", vic.id, l, a)
	}
}

// --- WebSocket ---

// wsCase builds a message with the victim's ids; ok says whether a
// non-error answer is acceptable (it is then checked for leaks only).
type wsCase struct {
	req func(t testing.TB, e *isoEnv, att, vic *isoTenant) gateway.Request
	ok  bool
}

func wsIsolationCases() map[string]wsCase {
	customer := &engine.Customer{Name: "Mallory", Email: "mallory@evil.example.org"}
	return map[string]wsCase{
		gateway.TypeAuth: {req: func(t testing.TB, e *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeAuth, Token: e.wsToken(t, vic.staff)}
		}},
		gateway.TypePing: {ok: true, req: func(testing.TB, *isoEnv, *isoTenant, *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypePing}
		}},
		gateway.TypeTenantInfo: {ok: true, req: func(testing.TB, *isoEnv, *isoTenant, *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeTenantInfo}
		}},
		gateway.TypeSubscribe: {req: func(t testing.TB, e *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeSubscribe, Service: vic.service, Resource: vic.resource,
				From: e.day.Format(time.DateOnly), To: e.day.AddDate(0, 0, 1).Format(time.DateOnly), TZ: "UTC"}
		}},
		gateway.TypeUnsubscribe: {req: func(testing.TB, *isoEnv, *isoTenant, *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeUnsubscribe, Sub: "s1"} // the victim's connection has one
		}},
		gateway.TypeHold: {req: func(t testing.TB, e *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeHold, Service: vic.service, Resource: vic.resource,
				Start: e.day.Add(21 * time.Hour).Format(time.RFC3339)}
		}},
		gateway.TypeRelease: {req: func(_ testing.TB, _ *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeRelease, HoldID: vic.hold}
		}},
		gateway.TypeBook: {req: func(_ testing.TB, _ *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeBook, HoldID: vic.hold, Customer: customer}
		}},
		gateway.TypeCancel: {req: func(_ testing.TB, _ *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeCancel, BookingID: vic.bookings[0], Reason: "pwned"}
		}},
		gateway.TypeReschedule: {req: func(t testing.TB, e *isoEnv, _, vic *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeReschedule, BookingID: vic.bookings[1],
				Start: e.day.Add(22 * time.Hour).Format(time.RFC3339)}
		}},
		gateway.TypeSubscribeBookings: {ok: true, req: func(testing.TB, *isoEnv, *isoTenant, *isoTenant) gateway.Request {
			return gateway.Request{Type: gateway.TypeSubscribeBookings}
		}},
	}
}

func (e *isoEnv) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(e.base, "http") + "/v1/ws?" + query
}

// dial opens a WebSocket with an optional bearer token and reads the
// welcome.
func (e *isoEnv) dial(t *testing.T, query, bearer string) *wsClient {
	t.Helper()
	var opts *websocket.DialOptions
	if bearer != "" {
		opts = &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + bearer}}}
	}
	c, _, err := websocket.Dial(e.ctx, e.wsURL(query), opts)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	w := &wsClient{c: c}
	t.Cleanup(func() { c.CloseNow() })
	f, err := w.read(e.ctx)
	if err != nil || f.Type != gateway.TypeWelcome {
		t.Fatalf("dial %s: first frame %+v, %v; want welcome", query, f, err)
	}
	return w
}

// attackWebSocket sends every message type with the victim's ids on
// connections bound to the attacker's tenant, and tries to move one to the
// victim's tenant.
func (e *isoEnv) attackWebSocket(t *testing.T, cases map[string]wsCase, att, vic *isoTenant) {
	priv, pub := vic.needles()
	all := append(priv, pub...)

	// The victim has a live subscription "s1" that the attacker's
	// unsubscribe must not end.
	victim := e.dial(t, "link="+url.QueryEscape(vic.link), "")
	f, err := victim.do(e.ctx, gateway.Request{Type: gateway.TypeSubscribe, Service: vic.service,
		From: e.day.Format(time.DateOnly), To: e.day.AddDate(0, 0, 1).Format(time.DateOnly), TZ: "UTC"})
	if err != nil || f.Type != gateway.TypeSubscribed || f.Sub != "s1" {
		t.Fatalf("victim subscribe = %+v, %v; want subscribed s1", f, err)
	}

	staff := e.dial(t, "", "")
	if f, err := staff.do(e.ctx, gateway.Request{Type: gateway.TypeAuth, Token: e.wsToken(t, att.staff)}); err != nil || f.Type != gateway.TypeAuthed {
		t.Fatalf("staff auth = %+v, %v", f, err)
	}
	conns := []struct {
		name string
		w    *wsClient
	}{
		{"booking link", e.dial(t, "link="+url.QueryEscape(att.link), "")},
		{"staff WebSocket token", staff},
		{"OAuth token", e.dial(t, "", att.token)},
	}
	for _, cn := range conns {
		// In RequestTypes' order: unsubscribe before this connection has
		// a subscription "s1" of its own.
		for _, typ := range gateway.RequestTypes() {
			c := cases[typ]
			req := c.req(t, e, att, vic)
			sent, _ := json.Marshal(req)
			f, err := cn.w.do(e.ctx, req)
			e.messages.Add(1)
			if err != nil {
				t.Errorf("%s on %s's %s connection: %v", typ, att.id, cn.name, err)
				continue
			}
			got, _ := json.Marshal(f)
			a := attempt{who: att.id + "'s " + cn.name, method: "ws", path: typ, sent: string(sent), status: 0, body: string(got)}
			if f.Type != gateway.TypeError && !c.ok {
				t.Errorf("%s with %s's ids on %s's %s connection answered %s, want an error frame", typ, vic.id, att.id, cn.name, got)
			}
			if l := leaks(a, all); len(l) > 0 {
				t.Errorf("%s with %s's ids on %s's %s connection leaks %q: %s", typ, vic.id, att.id, cn.name, l, got)
			}
			if f.Principal != nil && f.Principal.Tenant != att.id {
				t.Errorf("%s on %s's %s connection: now bound to %q", typ, att.id, cn.name, f.Principal.Tenant)
			}
		}
		// Still bound to the attacker's tenant.
		f, err := cn.w.do(e.ctx, gateway.Request{Type: gateway.TypeTenantInfo})
		if err != nil || f.Type != gateway.TypeTenantInfo || f.Tenant == nil || f.Tenant.Name != att.name {
			t.Errorf("tenant_info on %s's %s connection after the attack = %+v, %v; want %s's", att.id, cn.name, f.Tenant, err, att.id)
		}
	}

	// A connection claiming the victim's tenant cannot authenticate with
	// the attacker's token, and one claiming the attacker's cannot with the
	// victim's.
	for _, tc := range []struct {
		claim string
		token string
	}{{vic.id, e.wsToken(t, att.staff)}, {att.id, e.wsToken(t, vic.staff)}} {
		w := e.dial(t, "tenant="+tc.claim, "")
		f, err := w.do(e.ctx, gateway.Request{Type: gateway.TypeAuth, Token: tc.token})
		if err != nil || f.Type != gateway.TypeError {
			t.Errorf("auth with a token of the other tenant on a connection claiming %s = %+v, %v; want an error frame", tc.claim, f, err)
		}
		f, err = w.do(e.ctx, gateway.Request{Type: gateway.TypeSubscribeBookings})
		if err != nil || f.Type != gateway.TypeError {
			t.Errorf("subscribe_bookings after the refused auth (claim %s) = %+v, %v; want an error frame", tc.claim, f, err)
		}
	}

	// The victim's subscription survived the attacker's unsubscribe.
	f, err = victim.do(e.ctx, gateway.Request{Type: gateway.TypeUnsubscribe, Sub: "s1"})
	if err != nil || f.Type != gateway.TypeUnsubscribed {
		t.Errorf("victim unsubscribe s1 = %+v, %v; want unsubscribed (still live)", f, err)
	}
}

// --- set-up ---

// do sends a request and returns its status and body.
func (e *isoEnv) do(t testing.TB, method, path, body string, apply func(*http.Request)) (int, string) {
	t.Helper()
	a := e.send(t, method, path, "", body, "", apply)
	return a.status, a.body
}

// must sends a request that has to succeed and decodes its answer into v.
func (e *isoEnv) must(t testing.TB, method, path, body string, apply func(*http.Request), v any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasPrefix(body, "grant_type=") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	apply(req)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s = %s %s", method, path, resp.Status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp
}

func jsonBody(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// setupTenant creates a tenant with a resource and a service open every
// day, three bookings of named customers, a live hold, an owner, an admin and a
// staff account signed in, and OAuth apps with an access token.
func (e *isoEnv) setupTenant(t testing.TB, id, name, person, p string) *isoTenant {
	t.Helper()
	op := withBearer(e.op)
	up := strings.ToUpper(p)
	v := &isoTenant{id: id, name: name, resource: p + "-room", service: p + "-cut",
		resName: name + " Back Room", svcName: name + " Signature Cut",
		ownerEmail: "owner@" + id + "-owner.example.com", adminEmail: "admin@" + id + "-admin.example.com", staffEmail: "staff@" + id + "-staff.example.com",
		password: "tulip ocean marble quartz " + id}
	allDay := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		allDay[d] = []engine.Range{{Start: "00:00", End: "24:00"}}
	}
	cfg := engine.TenantConfig{Name: name, TimeZone: "UTC", HoldTTLSec: engine.MaxHoldTTLSec,
		Resources: []engine.Resource{{ID: v.resource, Name: v.resName, Kind: "room", TimeZone: "UTC", Capacity: 1, Weekly: allDay}},
		Services:  []engine.Service{{ID: v.service, Name: v.svcName, DurationMin: 30, HorizonDays: 30, Resources: []string{v.resource}}}}
	var rec gateway.TenantView
	e.must(t, http.MethodPost, "/v1/tenants", jsonBody(gateway.CreateTenantRequest{ID: id, Config: cfg}), op, &rec)
	v.link = rec.Link

	// Three customers of this tenant only, and one whose email both
	// tenants know (the same person booked with both): erasing or
	// exporting them in one tenant must not touch the other's bookings.
	for i := 0; i < 4; i++ {
		c := engine.Customer{Name: fmt.Sprintf("%s %c%d", person, 'I'+i, i), Email: fmt.Sprintf("%s.customer%d@%s-mail.example.com", p, i, id),
			Phone: fmt.Sprintf("+4479%s%07d", map[string]string{"a": "11", "b": "22"}[p], 1234567+i)}
		if i == 3 {
			c.Email = isoSharedEmail
		}
		var out struct {
			Booking engine.Booking `json:"booking"`
		}
		e.must(t, http.MethodPost, "/v1/tenants/"+id+"/bookings", jsonBody(gateway.BookRequest{Service: v.service, Resource: v.resource,
			Start: e.day.Add(time.Duration(9+i) * time.Hour).Format(time.RFC3339), Customer: c}), op, &out)
		v.bookings = append(v.bookings, out.Booking.ID)
		if i == 3 {
			v.shared = c
		} else {
			v.customers = append(v.customers, c)
		}
	}
	w, err := dialLink(e.ctx, e.base, v.link)
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.do(e.ctx, gateway.Request{Type: gateway.TypeHold, Service: v.service, Resource: v.resource,
		Start: e.day.Add(15 * time.Hour).Format(time.RFC3339), TTLSec: engine.MaxHoldTTLSec})
	w.close()
	if err != nil || f.Hold == nil {
		t.Fatalf("hold on %s = %+v, %v", id, f, err)
	}
	v.hold = f.Hold.ID

	var acc accounts.Account
	e.must(t, http.MethodPost, "/v1/tenants/"+id+"/accounts", jsonBody(accounts.NewAccount{Email: v.ownerEmail,
		Name: up + " Owner Person", Role: accounts.RoleOwner, Password: v.password}), op, &acc)
	v.ownerID = acc.ID
	e.must(t, http.MethodPost, "/v1/tenants/"+id+"/accounts", jsonBody(accounts.NewAccount{Email: v.adminEmail,
		Name: up + " Admin Person", Role: accounts.RoleAdmin, Password: v.password}), op, &acc)
	v.adminID = acc.ID
	e.must(t, http.MethodPost, "/v1/tenants/"+id+"/accounts", jsonBody(accounts.NewAccount{Email: v.staffEmail,
		Name: up + " Staff Person", Role: accounts.RoleStaff, Password: v.password}), op, &acc)
	v.staffID = acc.ID
	v.owner = e.signIn(t, id, v.ownerEmail, v.password)
	v.admin = e.signIn(t, id, v.adminEmail, v.password)
	v.staff = e.signIn(t, id, v.staffEmail, v.password)

	var app struct {
		ID     string `json:"id"`
		Secret string `json:"client_secret"`
	}
	e.must(t, http.MethodPost, "/v1/tenants/"+id+"/oauth/clients", jsonBody(map[string]any{"name": name + " Reports",
		"grant_types": []string{"client_credentials"}, "scopes": gateway.Scopes()}), withSession(v.owner), &app)
	v.client, v.clientSecret = app.ID, app.Secret
	e.must(t, http.MethodPost, "/v1/tenants/"+id+"/oauth/clients", jsonBody(map[string]any{"name": name + " Mobile",
		"redirect_uris": []string{isoRedirect}, "scopes": gateway.Scopes(), "public": true}), withSession(v.owner), &app)
	v.codeClient = app.ID
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(gateway.Scopes(), " ")}}.Encode()
	e.must(t, http.MethodPost, "/oauth2/token", form, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(v.client), url.QueryEscape(v.clientSecret))
	}, &tok)
	v.token = tok.AccessToken
	var grants struct {
		Grants []struct {
			ID string `json:"id"`
		} `json:"grants"`
	}
	e.must(t, http.MethodGet, "/v1/tenants/"+id+"/oauth/grants", "", withSession(v.owner), &grants)
	if len(grants.Grants) != 1 || v.token == "" {
		t.Fatalf("%s: grants %+v, token %q; want one grant and a token", id, grants, v.token)
	}
	v.grant = grants.Grants[0].ID
	return v
}

func (e *isoEnv) signIn(t testing.TB, tenant, email, password string) isoSession {
	t.Helper()
	var out accounts.SignInResponse
	resp := e.must(t, http.MethodPost, "/v1/tenants/"+tenant+"/sign-in",
		jsonBody(map[string]string{"email": email, "password": password}), func(*http.Request) {}, &out)
	for _, c := range resp.Cookies() {
		if c.Name == accounts.SessionCookie {
			return isoSession{cookie: c.Value, csrf: out.CSRFToken}
		}
	}
	t.Fatalf("sign-in of %s on %s set no session cookie (next %q)", email, tenant, out.Next)
	return isoSession{}
}

// wsToken gets a fresh WebSocket token on a session.
func (e *isoEnv) wsToken(t testing.TB, s isoSession) string {
	t.Helper()
	var out accounts.WSTokenResponse
	e.must(t, http.MethodPost, "/v1/ws-token", "", withSession(s), &out)
	return out.Token
}

// snapshot is everything of a tenant the operator can read, to compare
// before and after an attack: journal version and configuration, bookings,
// accounts, OAuth clients and grants, account policy, origins.
func (e *isoEnv) snapshot(t testing.TB, v *isoTenant) string {
	t.Helper()
	var b bytes.Buffer
	for _, p := range []string{"", "/bookings", "/accounts", "/oauth/clients", "/oauth/grants", "/account-policy", "/origins"} {
		st, body := e.do(t, http.MethodGet, "/v1/tenants/"+v.id+p, "", withBearer(e.op))
		fmt.Fprintf(&b, "%s: %d %s\n", p, st, body)
	}
	return b.String()
}
