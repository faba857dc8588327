package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/slotd/slotd/engine"
)

// securityHeaders go on every response, whatever its status or route.
var securityHeaders = [][2]string{
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Frame-Options", "DENY"},
	{"Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Cross-Origin-Resource-Policy", "same-origin"}, // but /static/ (edge)
	{"Permissions-Policy", "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"},
}

// HSTS is the Strict-Transport-Security of every HTTPS response: two
// years, subdomains included. Plain-HTTP responses never carry it (a
// browser ignores it there, and a proxy's plain hop must not set it).
const HSTS = "max-age=63072000; includeSubDomains"

// edge is what every request goes through before the router: the
// security headers, HSTS on HTTPS, the HTTPS-only refusal of plain HTTP
// (Config.HTTPSOnly) and the per-address rate limit. It returns false when
// it has answered the request itself.
func (s *Server) edge(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	for _, kv := range securityHeaders {
		h.Set(kv[0], kv[1])
	}
	if strings.HasPrefix(r.URL.Path, "/static/") {
		// Public assets, which a tenant's own page (an allowed origin)
		// may load; API answers and pages stay same-origin.
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	}
	https := s.isHTTPS(r)
	if https {
		h.Set("Strict-Transport-Security", HSTS)
	}
	if s.cfg.HTTPSOnly && !https && !isHealthCheck(r) {
		s.refusePlainHTTP(w, r)
		return false
	}
	return s.allowIP(w, r)
}

// isHTTPS reports whether r reached slotd over TLS, or, with TrustProxy,
// reached the proxy over TLS (its X-Forwarded-Proto is https).
func (s *Server) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return s.cfg.TrustProxy && strings.EqualFold(lastListElement(r.Header.Values("X-Forwarded-Proto")), "https")
}

// isHealthCheck reports whether r is a liveness or readiness probe, which
// plain HTTP and rate limits never refuse.
func isHealthCheck(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
}

// refusePlainHTTP answers a plain-HTTP request in HTTPS-only mode: a
// permanent redirect to the same URL over HTTPS for GET and HEAD (not
// WebSocket upgrades: use wss://), 403 forbidden for everything else, so
// that nothing a client sends in the clear is acted upon.
func (s *Server) refusePlainHTTP(w http.ResponseWriter, r *http.Request) {
	host, ok := redirectHost(r.Host, s.cfg.HTTPSPort)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Upgrade") != "" {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "this server accepts HTTPS only; use https:// (wss:// for WebSockets)"))
		return
	}
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.WriteHeader(http.StatusPermanentRedirect)
}

// redirectHost is the host[:port] of the HTTPS URL a plain request for
// host is sent to: its name, and port unless it is 0 or 443. host comes
// from the client: anything but a plain name or address is refused.
func redirectHost(host string, port int) (string, bool) {
	if len(host) == 0 || len(host) > 260 {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return "", false
		}
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		name = host[1 : len(host)-1]
	}
	if name == "" || strings.ContainsAny(name, "[]") {
		return "", false
	}
	if strings.Contains(name, ":") { // an IPv6 literal
		if _, err := netip.ParseAddr(name); err != nil {
			return "", false
		}
		name = "[" + name + "]"
	}
	if port == 0 || port == 443 {
		return name, true
	}
	return name + ":" + strconv.Itoa(port), true
}

// ClientIP is the address r comes from: the TCP peer's, or with trustProxy
// the one the proxy in front appended to X-Forwarded-For (its last
// element). Earlier elements are whatever the client sent and are never
// believed. Set trustProxy only when every request passes through a proxy
// that appends to X-Forwarded-For; otherwise any client picks its address.
// An unparseable forwarded address falls back to the TCP peer's.
func ClientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if a, ok := parseForwardedFor(r.Header.Values("X-Forwarded-For")); ok {
			return a.String()
		}
	}
	if a, ok := parseAddr(r.RemoteAddr); ok {
		return a.String()
	}
	return r.RemoteAddr
}

// ClientIP is ClientIP with the server's Config.TrustProxy.
func (s *Server) ClientIP(r *http.Request) string { return ClientIP(r, s.cfg.TrustProxy) }

// parseForwardedFor returns the last address of X-Forwarded-For header
// values: the one the nearest proxy appended. Header lines are one list in
// order (RFC 9110, 5.3).
func parseForwardedFor(values []string) (netip.Addr, bool) {
	return parseAddr(lastListElement(values))
}

// lastListElement is the last element of a comma-separated header list
// spread over values, trimmed of spaces; "" if it is empty.
func lastListElement(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// parseAddr parses an address as peers and proxies write it: "1.2.3.4",
// "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:443".
// IPv4-mapped IPv6 addresses become IPv4, and zones are dropped.
func parseAddr(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	return a.Unmap().WithZone(""), true
}

// MaxTokenLen is the longest bearer token the gateway reads.
const MaxTokenLen = 4096

// parseBearer extracts the token of an "Authorization: Bearer …" header
// value: the scheme case-insensitively, then a token of visible ASCII
// (RFC 6750's b64token and more, never a space, a control character or
// anything that could forge a log line) of at most MaxTokenLen bytes.
// Anything else is no token: "".
func parseBearer(h string) string {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	tok := strings.Trim(h[len(scheme):], " \t")
	if len(tok) > MaxTokenLen {
		return ""
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return ""
		}
	}
	return tok
}
