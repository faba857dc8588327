package gateway_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

func TestNormalizeOrigin(t *testing.T) {
	good := map[string]string{
		"https://a.example":             "https://a.example",
		"HTTPS://Book.Example.COM":      "https://book.example.com",
		"https://*.example.com":         "https://*.example.com",
		"http://localhost:3000":         "http://localhost:3000",
		"https://127.0.0.1:8443":        "https://127.0.0.1:8443",
		"https://[2001:db8::1]":         "https://[2001:db8::1]",
		"https://[2001:db8::1]:8443":    "https://[2001:db8::1]:8443",
		"https://xn--bcher-kva.example": "https://xn--bcher-kva.example",
	}
	for in, want := range good {
		if got, err := gateway.NormalizeOrigin(in); err != nil || got != want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "*", "https://*", "*://a.example", "https://*.*.example", "https://a*.example", "https://a.*.example",
		"a.example", "ftp://a.example", "javascript://a.example", "https://a.example/", "https://a.example/path",
		"https://user@a.example", "https://a.example?x", "https://a.example#x", "https://a.example:", "https://a.example:0",
		"https://a.example:65536", "https://a.example:08443", "https://a..example", "https://-a.example", "https://a_b.example",
		"https://[2001:db8::1", "https://[fe80::1%25eth0]", "https://[127.0.0.1]", "https://a.example:443:443", "https://a.[x].example",
		"https://" + strings.Repeat("a", 64) + ".example", "https://a.example\n", "https:// a.example", "null",
	} {
		if got, err := gateway.NormalizeOrigin(in); err == nil {
			t.Errorf("NormalizeOrigin(%q) = %q, want an error", in, got)
		} else if ee, ok := err.(*engine.Error); !ok || ee.Code != engine.CodeInvalid {
			t.Errorf("NormalizeOrigin(%q) = %v, want an invalid error", in, err)
		}
	}
}

// originAuth: staff and admins of salon and barber.
var originAuth = scopedAuth{
	"salon-admin":   {Kind: "admin", Subject: "a1", Tenant: "salon", Perm: gateway.PermAdmin},
	"salon-staff":   {Kind: "staff", Subject: "s1", Tenant: "salon", Perm: gateway.PermStaff},
	"barber-admin":  {Kind: "admin", Subject: "a2", Tenant: "barber", Perm: gateway.PermAdmin},
	"barber-staff":  {Kind: "staff", Subject: "s2", Tenant: "barber", Perm: gateway.PermStaff},
	"salon-app-cfg": {Kind: "app", Subject: "app", Tenant: "salon", Perm: gateway.PermAdmin, Scopes: []string{gateway.ScopeConfigRead}, Grant: "g"},
}

// TestTenantOriginsAPI: a tenant's admins set its allow-list; it is
// validated and normalised before anything is stored; staff, other
// tenants' admins and tokens without config:write cannot.
func TestTenantOriginsAPI(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.Auth = gateway.ChainAuth(c.Auth, originAuth) }))
	ts.createTenant(t, "salon", testConfig())
	ts.createTenant(t, "barber", testConfig())
	var got gateway.Origins
	ts.do(t, "GET", "/v1/tenants/salon/origins", "salon-admin", nil).want(t, 200, &got)
	if got.AllowedOrigins == nil || len(got.AllowedOrigins) != 0 {
		t.Errorf("initial origins = %#v, want []", got.AllowedOrigins)
	}
	put := map[string]any{"allowed_origins": []string{"https://A.example", "https://a.example", "https://*.apps.example"}}
	ts.do(t, "PUT", "/v1/tenants/salon/origins", "salon-admin", put).want(t, 200, &got)
	want := []string{"https://a.example", "https://*.apps.example"}
	if !slices.Equal(got.AllowedOrigins, want) {
		t.Errorf("PUT origins = %q, want %q", got.AllowedOrigins, want)
	}
	check := func(what string) {
		t.Helper()
		var now gateway.Origins
		ts.do(t, "GET", "/v1/tenants/salon/origins", operatorToken, nil).want(t, 200, &now)
		if !slices.Equal(now.AllowedOrigins, want) {
			t.Errorf("after %s: origins = %q, want %q", what, now.AllowedOrigins, want)
		}
	}
	check("PUT")

	many := make([]string, gateway.MaxTenantOrigins+1)
	for i := range many {
		many[i] = "https://a" + strings.Repeat("b", i) + ".example"
	}
	for _, tt := range []struct {
		name   string
		token  string
		path   string
		body   any
		status int
		code   engine.Code
	}{
		{"a bad origin among good ones", "salon-admin", "salon", map[string]any{"allowed_origins": []string{"https://ok.example", "*"}}, 400, engine.CodeInvalid},
		{"too many", "salon-admin", "salon", map[string]any{"allowed_origins": many}, 400, engine.CodeInvalid},
		{"unknown field", "salon-admin", "salon", `{"allowed_origins":[],"all":true}`, 400, engine.CodeInvalid},
		{"not JSON", "salon-admin", "salon", `https://x.example`, 400, engine.CodeInvalid},
		{"staff", "salon-staff", "salon", map[string]any{"allowed_origins": []string{}}, 403, engine.CodeForbidden},
		{"another tenant's admin", "barber-admin", "salon", map[string]any{"allowed_origins": []string{}}, 403, engine.CodeForbidden},
		{"a token without config:write", "salon-app-cfg", "salon", map[string]any{"allowed_origins": []string{}}, 403, engine.CodeForbidden},
		{"no token", "", "salon", map[string]any{"allowed_origins": []string{}}, 401, engine.CodeUnauthorized},
		{"unknown tenant", operatorToken, "nope", map[string]any{"allowed_origins": []string{}}, 404, engine.CodeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts.do(t, "PUT", "/v1/tenants/"+tt.path+"/origins", tt.token, tt.body).wantError(t, tt.status, tt.code)
			check(tt.name)
		})
	}
	ts.do(t, "GET", "/v1/tenants/salon/origins", "barber-admin", nil).wantError(t, 403, engine.CodeForbidden)
	ts.do(t, "GET", "/v1/tenants/salon/origins", "salon-staff", nil).wantError(t, 403, engine.CodeForbidden)
	ts.do(t, "GET", "/v1/tenants/nope/origins", operatorToken, nil).wantError(t, 404, engine.CodeNotFound)
}

// TestTenantOriginAllowList: a WebSocket bound to a tenant (by booking
// link, token or a claimed ?tenant= its auth must match) accepts slotd's
// own origin, the server-wide patterns and that tenant's allowed origins,
// and refuses every other origin with 403; one tenant's origins never
// open another's connections.
func TestTenantOriginAllowList(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.Auth = gateway.ChainAuth(c.Auth, originAuth)
		c.OriginPatterns = []string{"*.global.example"}
	}))
	linkA := ts.createTenant(t, "salon", testConfig())
	linkB := ts.createTenant(t, "barber", testConfig())
	ts.do(t, "PUT", "/v1/tenants/salon/origins", "salon-admin",
		map[string]any{"allowed_origins": []string{"https://a.example", "https://*.apps.example", "http://[::1]:3000"}}).want(t, 200, nil)

	tests := []struct {
		name   string
		query  string
		auth   string
		origin string
		ok     bool
	}{
		{"A's origin, A's link", "link=" + linkA, "", "https://a.example", true},
		{"A's origin, B's link", "link=" + linkB, "", "https://a.example", false},
		{"A's origin over http", "link=" + linkA, "", "http://a.example", false},
		{"A's origin, another port", "link=" + linkA, "", "https://a.example:8443", false},
		{"A's wildcard", "link=" + linkA, "", "https://shop.apps.example", true},
		{"A's wildcard needs a subdomain", "link=" + linkA, "", "https://apps.example", false},
		{"A's wildcard, B's link", "link=" + linkB, "", "https://shop.apps.example", false},
		{"lookalike", "link=" + linkA, "", "https://a.example.evil.example", false},
		{"A's IPv6 origin", "link=" + linkA, "", "http://[::1]:3000", true},
		{"IPv6 brackets are not a pattern", "link=" + linkA, "", "http://1:3000", false},
		{"global pattern, A", "link=" + linkA, "", "https://x.global.example", true},
		{"global pattern, B", "link=" + linkB, "", "https://x.global.example", true},
		{"own origin, B", "link=" + linkB, "", ts.URL, true},
		{"A's staff token, A's origin", "", "salon-staff", "https://a.example", true},
		{"B's staff token, A's origin", "", "barber-staff", "https://a.example", false},
		{"B's staff claiming A", "tenant=salon", "barber-staff", "https://a.example", false},
		{"operator on A, A's origin", "tenant=salon", operatorToken, "https://a.example", true},
		{"operator on B, A's origin", "tenant=barber", operatorToken, "https://a.example", false},
		{"unauthenticated claiming A", "tenant=salon", "", "https://a.example", true},
		{"unauthenticated claiming B", "tenant=barber", "", "https://a.example", false},
		{"unauthenticated, no tenant", "", "", "https://a.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Origin": {tt.origin}}
			if tt.auth != "" {
				hdr.Set("Authorization", "Bearer "+tt.auth)
			}
			conn, resp, err := ts.rawDial(t, tt.query, dialOptions{header: hdr})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Dial(%s) from %s = %v, want success", tt.query, tt.origin, err)
			case tt.ok:
				conn.Close(websocket.StatusNormalClosure, "")
			case err == nil:
				conn.CloseNow()
				t.Fatalf("Dial(%s) from %s succeeded, want refused", tt.query, tt.origin)
			case resp == nil || resp.StatusCode != http.StatusForbidden:
				t.Fatalf("Dial(%s) from %s = %v (response %v), want 403", tt.query, tt.origin, err, resp)
			}
		})
	}

	// A connection opened from A's origin claiming A cannot authenticate
	// as B's staff: the tenant its origin was checked for is the one it
	// gets, or none.
	c := ts.dial(t, "tenant=salon", http.Header{"Origin": {"https://a.example"}})
	c.wantErr("auth", map[string]any{"token": "barber-staff"}, engine.CodeForbidden)
	if f := c.mustCall("auth", map[string]any{"token": "salon-staff"}, gateway.TypeAuthed); f.Principal.Tenant != "salon" {
		t.Errorf("authed as %+v, want salon", f.Principal)
	}

	// Taking an origin off the list takes effect at the next handshake.
	ts.do(t, "PUT", "/v1/tenants/salon/origins", "salon-admin", map[string]any{"allowed_origins": []string{}}).want(t, 200, nil)
	wantHandshakeRefused(t, ts, "link="+linkA, http.Header{"Origin": {"https://a.example"}}, http.StatusForbidden)
}
