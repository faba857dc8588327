package gateway_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// wantSecurityHeaders are the headers every response carries.
var wantSecurityHeaders = map[string]string{
	"X-Content-Type-Options":     "nosniff",
	"Referrer-Policy":            "no-referrer",
	"X-Frame-Options":            "DENY",
	"Cross-Origin-Opener-Policy": "same-origin",
}

// checkSecurityHeaders checks the headers every response must carry, and
// HSTS exactly when the request was HTTPS.
func checkSecurityHeaders(tb testing.TB, what string, h http.Header, https bool) {
	tb.Helper()
	for k, want := range wantSecurityHeaders {
		if got := h.Get(k); got != want {
			tb.Errorf("%s: %s %q, want %q", what, k, got, want)
		}
	}
	// Only the public assets may be loaded by other origins' pages.
	corp := "same-origin"
	if strings.Contains(what, " /static/") {
		corp = "cross-origin"
	}
	if got := h.Get("Cross-Origin-Resource-Policy"); got != corp {
		tb.Errorf("%s: Cross-Origin-Resource-Policy %q, want %q", what, got, corp)
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			tb.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		tb.Errorf("%s: Content-Security-Policy %q allows unsafe sources", what, csp)
	}
	if pp := h.Get("Permissions-Policy"); !strings.Contains(pp, "camera=()") || !strings.Contains(pp, "geolocation=()") {
		tb.Errorf("%s: Permissions-Policy %q", what, pp)
	}
	switch hsts := h.Get("Strict-Transport-Security"); {
	case https && hsts != gateway.HSTS:
		tb.Errorf("%s over HTTPS: Strict-Transport-Security %q, want %q", what, hsts, gateway.HSTS)
	case !https && hsts != "":
		tb.Errorf("%s over plain HTTP: Strict-Transport-Security %q, want none", what, hsts)
	}
}

// serve runs one request through the gateway handler; tlsOn marks it as
// having come over TLS.
func serve(ts *testServer, method, target string, tlsOn bool, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if tlsOn {
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	ts.gw.ServeHTTP(w, r)
	return w
}

// TestSecurityHeadersEverywhere: every response, of every status, carries
// the security headers and a strict CSP; HSTS on HTTPS responses only
// (TLS, or a trusted proxy's X-Forwarded-Proto), never on plain HTTP.
func TestSecurityHeadersEverywhere(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.RateLimits = gateway.RateLimits{IP: gateway.Rate{PerSec: 0.001, Burst: 1000}}
	}))
	link := ts.createTenant(t, "salon", testConfig())
	paths := []struct{ method, path string }{
		{"GET", "/healthz"}, {"GET", "/"}, {"GET", "/book/" + link}, {"GET", "/static/app.js"}, {"GET", "/nope"},
		{"GET", "/v1/public/" + link}, {"GET", "/v1/tenants"}, {"DELETE", "/v1/tenants"}, {"GET", "/v1/ws"},
		{"PUT", "/v1/tenants/salon/origins"},
	}
	for _, p := range paths {
		for _, https := range []bool{false, true} {
			w := serve(ts, p.method, p.path, https)
			checkSecurityHeaders(t, p.method+" "+p.path, w.Header(), https)
		}
	}
	// A proxy's word counts only when trusted.
	w := serve(ts, "GET", "/healthz", false, "X-Forwarded-Proto", "https")
	checkSecurityHeaders(t, "untrusted X-Forwarded-Proto https", w.Header(), false)

	trusting := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.TrustProxy = true }))
	for _, tt := range []struct {
		proto string
		https bool
	}{{"https", true}, {"HTTPS", true}, {"http", false}, {"https, http", false}, {"http,https", true}, {"", false}} {
		w := serve(trusting, "GET", "/healthz", false, "X-Forwarded-Proto", tt.proto)
		checkSecurityHeaders(t, "trusted X-Forwarded-Proto "+tt.proto, w.Header(), tt.https)
	}

	// A rate-limited answer carries them too.
	limited := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.RateLimits = gateway.RateLimits{IP: gateway.Rate{PerSec: 0.001, Burst: 1}}
	}))
	serve(limited, "GET", "/", true)
	w = serve(limited, "GET", "/", true)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("second request = %d, want 429", w.Code)
	}
	checkSecurityHeaders(t, "429", w.Header(), true)
}

// TestHTTPSOnly: in HTTPS-only mode plain HTTP gets health checks and
// redirects for GET and HEAD only; everything else is refused before it
// reaches a handler. Behind a trusted proxy, X-Forwarded-Proto tells.
func TestHTTPSOnly(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.HTTPSOnly, c.HTTPSPort = true, 8443
	}))
	rec, err := ts.gw.CreateTenant(timeout(t, 10*time.Second), "salon", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	link := rec.Link
	before := ts.seq(t, "salon")

	tests := []struct {
		name     string
		method   string
		target   string
		tls      bool
		hdr      []string
		status   int
		location string
	}{
		{name: "health", method: "GET", target: "/healthz", status: 200},
		{name: "readiness", method: "GET", target: "/readyz", status: 200},
		{name: "health HEAD", method: "HEAD", target: "/healthz", status: 200},
		{name: "page", method: "GET", target: "http://book.example.com/book/" + link + "?x=1", status: 308,
			location: "https://book.example.com:8443/book/" + link + "?x=1"},
		{name: "host with port", method: "GET", target: "http://book.example.com:8080/", status: 308, location: "https://book.example.com:8443/"},
		{name: "IPv6 host", method: "GET", target: "http://[::1]:8080/", status: 308, location: "https://[::1]:8443/"},
		{name: "API GET with a token", method: "GET", target: "/v1/tenants", hdr: []string{"Authorization", "Bearer " + operatorToken},
			status: 308, location: "https://example.com:8443/v1/tenants"},
		{name: "metrics", method: "GET", target: "/metrics", status: 308, location: "https://example.com:8443/metrics"},
		{name: "POST", method: "POST", target: "/v1/tenants/salon/bookings", hdr: []string{"Authorization", "Bearer " + operatorToken}, status: 403},
		{name: "PUT", method: "PUT", target: "/v1/tenants/salon/origins", hdr: []string{"Authorization", "Bearer " + operatorToken}, status: 403},
		{name: "POST health", method: "POST", target: "/healthz", status: 403},
		{name: "WebSocket upgrade", method: "GET", target: "/v1/ws?link=" + link, hdr: []string{"Upgrade", "websocket", "Connection", "Upgrade"}, status: 403},
		{name: "hostile host", method: "GET", target: "/", hdr: []string{"Host", "evil.example/x"}, status: 403},
		{name: "untrusted X-Forwarded-Proto", method: "GET", target: "/", hdr: []string{"X-Forwarded-Proto", "https"}, status: 308,
			location: "https://example.com:8443/"},
		{name: "over TLS", method: "GET", target: "/v1/public/" + link, tls: true, status: 200},
		{name: "over TLS, API", method: "GET", target: "/v1/tenants", tls: true, hdr: []string{"Authorization", "Bearer " + operatorToken}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(ts, tt.method, tt.target, tt.tls, tt.hdr...)
			if w.Code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.target, w.Code, w.Body, tt.status)
			}
			if got := w.Header().Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if tt.status == 403 {
				checkErrorBody(t, w.Header(), w.Body.Bytes(), engine.CodeForbidden)
			}
			checkSecurityHeaders(t, tt.name, w.Header(), tt.tls)
		})
	}
	if after := ts.seq(t, "salon"); after != before {
		t.Errorf("plain-HTTP requests changed the journal: seq %d → %d", before, after)
	}

	proxied := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.HTTPSOnly, c.TrustProxy = true, true }))
	if w := serve(proxied, "GET", "/v1/tenants", false, "Authorization", "Bearer "+operatorToken, "X-Forwarded-Proto", "https"); w.Code != 200 {
		t.Errorf("behind a trusted proxy, X-Forwarded-Proto https: %d, want 200", w.Code)
	}
	if w := serve(proxied, "GET", "/v1/tenants", false, "Authorization", "Bearer "+operatorToken, "X-Forwarded-Proto", "http"); w.Code != 308 ||
		w.Header().Get("Location") != "https://example.com/v1/tenants" {
		t.Errorf("behind a trusted proxy, X-Forwarded-Proto http: %d to %q, want 308 to https://example.com/v1/tenants", w.Code, w.Header().Get("Location"))
	}
	if w := serve(proxied, "GET", "/healthz", false); w.Code != 200 {
		t.Errorf("health check behind a proxy without X-Forwarded-Proto: %d", w.Code)
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		xff    []string
		trust  bool
		want   string
	}{
		{"peer", "192.0.2.1:1234", nil, false, "192.0.2.1"},
		{"peer IPv6", "[2001:db8::1]:1234", nil, false, "2001:db8::1"},
		{"IPv4-mapped peer", "[::ffff:192.0.2.1]:1234", nil, false, "192.0.2.1"},
		{"forwarded, not trusted", "192.0.2.1:1234", []string{"203.0.113.9"}, false, "192.0.2.1"},
		{"forwarded, trusted", "192.0.2.1:1234", []string{"203.0.113.9"}, true, "203.0.113.9"},
		{"the proxy's element, not the client's", "192.0.2.1:1234", []string{"1.1.1.1, 203.0.113.9"}, true, "203.0.113.9"},
		{"several header lines", "192.0.2.1:1234", []string{"1.1.1.1", "8.8.8.8,203.0.113.9"}, true, "203.0.113.9"},
		{"with port", "192.0.2.1:1234", []string{"203.0.113.9:5555"}, true, "203.0.113.9"},
		{"IPv6 bracketed with port", "192.0.2.1:1234", []string{"[2001:db8::7]:443"}, true, "2001:db8::7"},
		{"IPv6 bracketed", "192.0.2.1:1234", []string{"[2001:db8::7]"}, true, "2001:db8::7"},
		{"garbage falls back to the peer", "192.0.2.1:1234", []string{"1.1.1.1, not-an-ip"}, true, "192.0.2.1"},
		{"empty last element falls back to the peer", "192.0.2.1:1234", []string{"1.1.1.1,"}, true, "192.0.2.1"},
		{"unknown", "192.0.2.1:1234", []string{"unknown"}, true, "192.0.2.1"},
		{"zone dropped", "192.0.2.1:1234", []string{"fe80::1%eth0"}, true, "fe80::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := gateway.ClientIP(r, tt.trust); got != tt.want {
				t.Errorf("ClientIP(%s, %q, trust %v) = %q, want %q", tt.remote, tt.xff, tt.trust, got, tt.want)
			}
		})
	}
}
