package gateway

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
)

// Fuzz tests of the edge's parsers of untrusted headers, from inside the
// package (the parsers are unexported). Seeds are in testdata/fuzz:
//
//	go test -run '^$' -fuzz FuzzParseBearer -fuzztime 30s ./gateway/
//	go test -run '^$' -fuzz FuzzForwardedFor -fuzztime 30s ./gateway/
//	go test -run '^$' -fuzz FuzzNormalizeOrigin -fuzztime 30s ./gateway/

// FuzzParseBearer: the Authorization header parser never panics, and a
// token it returns is a piece of the header after a case-insensitive
// "Bearer " of visible ASCII only, at most MaxTokenLen bytes: nothing that
// could split a log line or smuggle a second value.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer sk_x", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a b", "BEARER \tx\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok := parseBearer(h)
		if tok == "" {
			return
		}
		if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
			t.Fatalf("parseBearer(%q) = %q without the Bearer scheme", h, tok)
		}
		if !strings.Contains(h[7:], tok) {
			t.Fatalf("parseBearer(%q) = %q, not a piece of the header", h, tok)
		}
		if len(tok) > MaxTokenLen {
			t.Fatalf("parseBearer(%q): token of %d bytes", h, len(tok))
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] > '~' {
				t.Fatalf("parseBearer(%q) = %q: byte %#x is not visible ASCII", h, tok, tok[i])
			}
		}
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if got := bearer(r); got != tok {
			t.Fatalf("bearer(request with %q) = %q, parseBearer = %q", h, got, tok)
		}
	})
}

// FuzzForwardedFor: ClientIP never panics and always names a valid
// address; without trust it is the peer's whatever the header says; with
// trust it is the header's last element when that parses, else the
// peer's — never an element a client put before the proxy's.
func FuzzForwardedFor(f *testing.F) {
	f.Add("203.0.113.9", "", "192.0.2.1:1234")
	f.Add("1.1.1.1, 203.0.113.9", "8.8.8.8", "[2001:db8::1]:443")
	f.Add("[2001:db8::7]:443", "", "192.0.2.1:1234")
	f.Add("unknown", "garbage,", "[::ffff:192.0.2.1]:1")
	f.Fuzz(func(t *testing.T, xff1, xff2, remote string) {
		peer, peerOK := parseAddr(remote)
		if !peerOK {
			remote = "192.0.2.1:1234"
			peer = netip.MustParseAddr("192.0.2.1")
		}
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Add("X-Forwarded-For", xff1)
		if xff2 != "" {
			r.Header.Add("X-Forwarded-For", xff2)
		}
		if got := ClientIP(r, false); got != peer.String() {
			t.Fatalf("ClientIP(untrusted, peer %q, XFF %q %q) = %q, want the peer %s", remote, xff1, xff2, got, peer)
		}
		got := ClientIP(r, true)
		a, err := netip.ParseAddr(got)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ClientIP(trusted, XFF %q %q) = %q: not a plain address", xff1, xff2, got)
		}
		last := lastListElement(r.Header.Values("X-Forwarded-For"))
		if want, ok := parseAddr(last); ok {
			if a != want {
				t.Fatalf("ClientIP(trusted, XFF %q %q) = %s, want the last element %q", xff1, xff2, a, last)
			}
		} else if a != peer {
			t.Fatalf("ClientIP(trusted, XFF %q %q) = %s; the last element %q does not parse, want the peer %s", xff1, xff2, a, last, peer)
		}
		_ = (&limiters{exemptLoopback: true}).ipBucket(got) // never panics
	})
}

// FuzzNormalizeOrigin: an allowed origin accepted is lowercase, idempotent,
// http(s)://host[:port] with no character path.Match or a URL would read
// specially but the bracketed IPv6 and a leading "*." label, and it
// matches through the handshake's patterns exactly the origin it names.
func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://a.example", "https://*.a.example", "http://[::1]:3000", "*", "https://a.example/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, o string) {
		n, err := NormalizeOrigin(o)
		if err != nil {
			if ee, ok := err.(*engine.Error); !ok || ee.Code != engine.CodeInvalid || ee.Message == "" {
				t.Fatalf("NormalizeOrigin(%q) = %v, want an invalid error with a message", o, err)
			}
			return
		}
		if n != strings.ToLower(n) {
			t.Fatalf("NormalizeOrigin(%q) = %q, not lowercase", o, n)
		}
		if again, err := NormalizeOrigin(n); err != nil || again != n {
			t.Fatalf("NormalizeOrigin(%q) = %q, then %q, %v", o, n, again, err)
		}
		scheme, host, ok := strings.Cut(n, "://")
		if !ok || (scheme != "http" && scheme != "https") || host == "" {
			t.Fatalf("NormalizeOrigin(%q) = %q", o, n)
		}
		if strings.ContainsAny(host, "/?#@\\ ") || strings.Contains(strings.TrimPrefix(host, "*."), "*") {
			t.Fatalf("NormalizeOrigin(%q) = %q: host %q has a special character", o, n, host)
		}
	})
}
