package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/gateway"
)

func TestParseEdgeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" for none
		check   func(e edgeOptions) string
	}{
		{name: "defaults", check: func(e edgeOptions) string {
			if e.tlsOn() || e.httpsOnly || e.trustProxy || e.httpAddr != "" || e.rateIP != 50 || e.burstIP != 200 ||
				e.rateToken != 50 || e.rateTenant != 1000 || e.burstTenant != 20000 || e.rateKeys != 10000 {
				return fmt.Sprintf("%+v", e)
			}
			return ""
		}},
		{name: "env", env: map[string]string{"SLOTD_TLS_SELF_SIGNED": "true", "SLOTD_HTTPS_ONLY": "1", "SLOTD_HTTP_ADDR": ":80",
			"SLOTD_TRUST_PROXY": "true", "SLOTD_RATE_IP": "0", "SLOTD_RATE_TENANT": "7.5", "SLOTD_RATE_TENANT_BURST": "9"},
			check: func(e edgeOptions) string {
				if !e.tlsSelfSigned || !e.httpsOnly || e.httpAddr != ":80" || !e.trustProxy || e.rateIP != 0 || e.rateTenant != 7.5 || e.burstTenant != 9 {
					return fmt.Sprintf("%+v", e)
				}
				if rl := e.rateLimits(); rl.IP.PerSec != 0 || rl.Tenant != (gateway.Rate{PerSec: 7.5, Burst: 9}) || !rl.ExemptLoopback {
					return fmt.Sprintf("rateLimits() = %+v", rl)
				}
				return ""
			}},
		{name: "flags beat env", args: []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-trust-proxy=false"},
			env: map[string]string{"SLOTD_TLS_CERT": "x.pem", "SLOTD_TRUST_PROXY": "true"}, check: func(e edgeOptions) string {
				if e.tlsCert != "c.pem" || e.tlsKey != "k.pem" || e.trustProxy {
					return fmt.Sprintf("%+v", e)
				}
				return ""
			}},
		{name: "HTTPS-only behind a trusted proxy", args: []string{"-https-only", "-trust-proxy"}},
		{name: "cert without key", args: []string{"-tls-cert", "c.pem"}, wantErr: "-tls-cert and -tls-key"},
		{name: "key without cert", env: map[string]string{"SLOTD_TLS_KEY": "k.pem"}, wantErr: "-tls-cert and -tls-key"},
		{name: "self-signed and files", args: []string{"-tls-self-signed", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, wantErr: "not both"},
		{name: "plain listener without TLS", args: []string{"-http-addr", ":80"}, wantErr: "-http-addr"},
		{name: "HTTPS-only without TLS or proxy", args: []string{"-https-only"}, wantErr: "-trust-proxy"},
		{name: "negative rate", args: []string{"-rate-ip", "-1"}, wantErr: "-rate-ip"},
		{name: "rate without burst", args: []string{"-rate-token", "5", "-rate-token-burst", "0"}, wantErr: "-rate-token"},
		{name: "no buckets", args: []string{"-rate-max-keys", "0"}, wantErr: "-rate-max-keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, envOf(tt.env), io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseFlags(%q) = %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parseFlags(%q) = %v, want an error mentioning %q", tt.args, err, tt.wantErr)
			}
			if tt.check != nil {
				if msg := tt.check(o.edge); msg != "" {
					t.Errorf("parseFlags(%q) with env %v: %s", tt.args, tt.env, msg)
				}
			}
		})
	}
}

// tlsSlotd is an in-process slotd serving HTTPS, and a client that trusts
// exactly the certificate it printed.
type tlsSlotd struct {
	*slotd
	fingerprint string // SHA-256 of the certificate, as printed
	plain       string // http://host:port of -http-addr, if printed
	client      *http.Client
}

var (
	fingerprintRE = regexp.MustCompile(`SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})`)
	plainRE       = regexp.MustCompile(`(?m)^plain HTTP on (http://\S+):`)
)

// pinnedClient trusts only a certificate with the SHA-256 fingerprint fp,
// and checks that it is valid for host.
func pinnedClient(fp, host string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true, // every request sees the certificate served now
			TLSClientConfig: &tls.Config{
				// Verification is by pin: VerifyConnection checks the
				// fingerprint, then the name, against that certificate.
				InsecureSkipVerify: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return errors.New("no certificate")
					}
					leaf := cs.PeerCertificates[0]
					if got := fingerprint(leaf.Raw); got != fp {
						return fmt.Errorf("certificate fingerprint %s, want %s", got, fp)
					}
					pool := x509.NewCertPool()
					pool.AddCert(leaf)
					_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool})
					return err
				},
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// startTLSSlotd runs slotd with args (which select TLS) and waits until it
// answers /healthz over HTTPS with the certificate it printed.
func startTLSSlotd(tb testing.TB, args []string, env map[string]string) *tlsSlotd {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &slotd{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return testSecrets[k]
	}
	go func() { s.done <- run(ctx, args, getenv, s.stdout, s.stderr) }()
	tb.Cleanup(func() {
		if err := s.stop(tb); err != nil {
			tb.Errorf("run returned %v after cancel; stderr:\n%s", err, s.stderr)
		}
	})
	ts := &tlsSlotd{slotd: s}
	checkFor(tb, 30*time.Second, 5*time.Millisecond, func() error {
		select {
		case err := <-s.done:
			s.done <- err
			tb.Fatalf("run returned early: %v\nstdout:\n%s\nstderr:\n%s", err, s.stdout, s.stderr)
		default:
		}
		out := s.stdout.String()
		b, ok := parseBanner(out)
		m := fingerprintRE.FindStringSubmatch(out)
		if !ok || m == nil {
			return fmt.Errorf("no banner yet; stdout:\n%s", out)
		}
		s.banner, ts.fingerprint = b, m[1]
		if p := plainRE.FindStringSubmatch(out); p != nil {
			ts.plain = p[1]
		}
		return nil
	})
	if !strings.HasPrefix(ts.base, "https://localhost:") {
		tb.Fatalf("base URL %q, want https://localhost:port", ts.base)
	}
	ts.client = pinnedClient(ts.fingerprint, "localhost")
	checkFor(tb, 30*time.Second, 10*time.Millisecond, func() error {
		resp, err := ts.client.Get(ts.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	})
	return ts
}

// fetch sends a request with client and returns the response, body read.
func fetch(tb testing.TB, c *http.Client, method, url, token string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// wantEdgeHeaders checks the security headers, and HSTS exactly over HTTPS.
func wantEdgeHeaders(tb testing.TB, what string, h http.Header, https bool) {
	tb.Helper()
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		"Cross-Origin-Opener-Policy": "same-origin",
	} {
		if got := h.Get(k); got != want {
			tb.Errorf("%s: %s %q, want %q", what, k, got, want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		tb.Errorf("%s: Content-Security-Policy %q", what, csp)
	}
	if h.Get("Permissions-Policy") == "" {
		tb.Errorf("%s: no Permissions-Policy", what)
	}
	switch hsts := h.Get("Strict-Transport-Security"); {
	case https && hsts != "max-age=63072000; includeSubDomains":
		tb.Errorf("%s over HTTPS: Strict-Transport-Security %q", what, hsts)
	case !https && hsts != "":
		tb.Errorf("%s over plain HTTP: Strict-Transport-Security %q, want none", what, hsts)
	}
}

// TestTLSSelfSigned runs slotd with a self-signed certificate, HTTPS-only,
// with a plain-HTTP listener beside it, and talks to it as a client that
// trusts only the printed fingerprint: HTTPS with HSTS and the security
// headers, TLS 1.2 at least with AEAD suites only, the WebSocket API over
// wss, and plain HTTP limited to health checks, redirects and 403.
func TestTLSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	ts := startTLSSlotd(t, []string{"-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-https-only", "-tls-self-signed",
		"-data", filepath.Join(dir, "data"), "-log-level", "warn"}, nil)
	if ts.plain == "" {
		t.Fatalf("no plain-HTTP line in the banner:\n%s", ts.stdout)
	}

	// HTTPS: pages, API, errors, all with HSTS.
	for _, tt := range []struct{ method, path, token string }{
		{"GET", "/healthz", ""}, {"GET", "/", ""}, {"GET", "/book/" + ts.link, ""}, {"GET", "/v1/tenants", ts.token},
		{"GET", "/v1/tenants", ""}, {"POST", "/v1/tenants", ts.token}, {"GET", "/nope", ""},
	} {
		resp, body := fetch(t, ts.client, tt.method, ts.base+tt.path, tt.token)
		if resp.StatusCode >= 500 {
			t.Errorf("%s %s = %s %s", tt.method, tt.path, resp.Status, body)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s %s: TLS %+v", tt.method, tt.path, resp.TLS)
		}
		wantEdgeHeaders(t, tt.method+" "+tt.path, resp.Header, true)
	}
	if resp, body := fetch(t, ts.client, "GET", ts.base+"/v1/tenants", ts.token); resp.StatusCode != 200 || !bytes.Contains(body, []byte("demo")) {
		t.Errorf("GET /v1/tenants over HTTPS = %s %s", resp.Status, body)
	}

	// Old protocol versions and non-AEAD suites are refused.
	addr := strings.TrimPrefix(ts.base, "https://")
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.1":       {MaxVersion: tls.VersionTLS11},
		"TLS 1.2 CBC":   {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		"TLS 1.2 plain": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}},
	} {
		cfg.InsecureSkipVerify = true
		if c, err := tls.Dial("tcp", addr, cfg); err == nil {
			c.Close()
			t.Errorf("%s handshake succeeded, want it refused", name)
		}
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("TLS 1.2 handshake: %v", err)
	} else {
		c.Close()
	}

	// The WebSocket API over wss, through the pinned client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+addr+"/v1/ws?link="+ts.link, &websocket.DialOptions{HTTPClient: ts.client})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	w := &wsClient{c: ws}
	defer w.close()
	if f, err := w.read(ctx); err != nil || f.Type != gateway.TypeWelcome {
		t.Fatalf("first wss frame %+v, %v; want welcome", f, err)
	}
	if f, err := w.do(ctx, gateway.Request{Type: gateway.TypeTenantInfo}); err != nil || f.Type != gateway.TypeTenantInfo {
		t.Fatalf("tenant_info over wss = %+v, %v", f, err)
	}
	// A client that does not trust the certificate gets nowhere.
	if _, _, err := websocket.Dial(ctx, "wss://"+addr+"/v1/ws?link="+ts.link, nil); err == nil {
		t.Error("wss dial without trusting the certificate succeeded")
	}
	if _, _, err := websocket.Dial(ctx, "wss://"+addr+"/v1/ws?link="+ts.link,
		&websocket.DialOptions{HTTPClient: pinnedClient(strings.Repeat("00:", 31)+"00", "localhost")}); err == nil {
		t.Error("wss dial pinning another fingerprint succeeded")
	}

	// Plain HTTP: health checks, redirects for GET, 403 for the rest.
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, body := fetch(t, plain, "GET", ts.plain+p, "")
		if resp.StatusCode != 200 {
			t.Errorf("plain GET %s = %s %s", p, resp.Status, body)
		}
		wantEdgeHeaders(t, "plain GET "+p, resp.Header, false)
	}
	for _, p := range []string{"/", "/v1/tenants", "/book/" + ts.link + "?x=1"} {
		resp, body := fetch(t, plain, "GET", ts.plain+p, ts.token)
		if want := ts.base + p; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("plain GET %s = %s to %q, want 308 to %q; body %s", p, resp.Status, resp.Header.Get("Location"), want, body)
		}
		wantEdgeHeaders(t, "plain GET "+p, resp.Header, false)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resp, body := fetch(t, plain, m, ts.plain+"/v1/tenants", ts.token)
		if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte(`"forbidden"`)) {
			t.Errorf("plain %s /v1/tenants = %s %s, want 403 forbidden", m, resp.Status, body)
		}
	}
	if _, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.plain, "http")+"/v1/ws?link="+ts.link, nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain ws dial = %v (response %v), want 403", err, resp)
	}
}

// writeCert writes a fresh self-signed certificate and its key as PEM
// files and returns its fingerprint.
func writeCert(tb testing.TB, certPath, keyPath string) string {
	tb.Helper()
	c, err := selfSigned(time.Now(), "")
	if err != nil {
		tb.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	// Write to temporary names and rename: a reload never sees half a file.
	if err := os.WriteFile(certPath+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath+".tmp", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(keyPath+".tmp", keyPath); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(certPath+".tmp", certPath); err != nil {
		tb.Fatal(err)
	}
	return fingerprint(c.Certificate[0])
}

// TestTLSCertFilesReload serves HTTPS from certificate files, replaces
// them, and checks that SIGHUP makes new connections get the new
// certificate, and that a broken file keeps the current one.
func TestTLSCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certPath, keyPath)
	ts := startTLSSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", filepath.Join(dir, "data"), "-log-level", "warn"},
		map[string]string{"SLOTD_TLS_CERT": certPath, "SLOTD_TLS_KEY": keyPath})
	if ts.fingerprint != first {
		t.Fatalf("printed fingerprint %s, want the file's %s", ts.fingerprint, first)
	}
	resp, _ := fetch(t, ts.client, "GET", ts.base+"/v1/tenants", ts.token)
	wantEdgeHeaders(t, "GET /v1/tenants", resp.Header, true)

	second := writeCert(t, certPath, keyPath)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := pinnedClient(second, "localhost")
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := next.Get(ts.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// A broken certificate file is refused; the current one stays.
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(ts.stderr.String(), "reload TLS certificate") {
			return errors.New("no reload failure logged yet")
		}
		return nil
	})
	if resp, err := next.Get(ts.base + "/healthz"); err != nil {
		t.Errorf("after a failed reload: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestHTTPSOnlyBehindProxy: without TLS, -https-only -trust-proxy serves
// what the proxy says came over HTTPS (with HSTS), and answers the rest
// with health checks, redirects to the default HTTPS port, and 403.
func TestHTTPSOnlyBehindProxy(t *testing.T) {
	dir := t.TempDir()
	s := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-https-only", "-trust-proxy", "-data", filepath.Join(dir, "data"), "-log-level", "warn"}, nil)
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, proto string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := do("GET", "/v1/tenants", "https"); resp.StatusCode != 200 {
		t.Errorf("X-Forwarded-Proto https: %s", resp.Status)
	} else {
		wantEdgeHeaders(t, "forwarded HTTPS", resp.Header, true)
	}
	host := strings.TrimPrefix(s.base, "http://")
	host = host[:strings.LastIndexByte(host, ':')]
	if resp := do("GET", "/v1/tenants", "http"); resp.StatusCode != 308 || resp.Header.Get("Location") != "https://"+host+"/v1/tenants" {
		t.Errorf("X-Forwarded-Proto http: %s to %q", resp.Status, resp.Header.Get("Location"))
	} else {
		wantEdgeHeaders(t, "forwarded HTTP", resp.Header, false)
	}
	if resp := do("POST", "/v1/tenants", ""); resp.StatusCode != 403 {
		t.Errorf("POST without X-Forwarded-Proto: %s, want 403", resp.Status)
	}
	if resp := do("GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("health check: %s", resp.Status)
	}
}
