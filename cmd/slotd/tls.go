package main

// The edge: TLS (certificate files reloaded on SIGHUP, or a self-signed
// certificate for development), the plain-HTTP listener beside HTTPS,
// HTTPS-only mode, trusting a proxy's forwarding headers, and the rate
// limits the gateway applies.
//
//	-addr ──────► HTTPS (with -tls-cert/-tls-key or -tls-self-signed), else plain HTTP ─┐
//	-http-addr ─► plain HTTP beside HTTPS: with -https-only health checks,               ├─► gateway
//	              redirects and 403 only                                                 ┘

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	oklogrun "github.com/oklog/run"

	"github.com/slotd/slotd/gateway"
)

// edgeOptions are the transport and abuse settings.
type edgeOptions struct {
	tlsCert, tlsKey string // certificate chain and key, PEM
	tlsSelfSigned   bool   // development: an in-memory self-signed certificate
	httpAddr        string // plain HTTP beside HTTPS
	httpsOnly       bool   // refuse plain HTTP but health checks
	trustProxy      bool   // believe X-Forwarded-For and X-Forwarded-Proto

	rateIP, rateToken, rateTenant    float64 // calls per second; 0: off
	burstIP, burstToken, burstTenant int
	rateKeys                         int // buckets kept per kind
}

// register adds the edge flags to fs, each defaulting to its SLOTD_*
// environment variable.
func (e *edgeOptions) register(fs *flag.FlagSet, getenv func(string) string) {
	str := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	boolean := func(k string) bool {
		v, err := strconv.ParseBool(getenv(k))
		return err == nil && v
	}
	float := func(k string, def float64) float64 {
		if v, err := strconv.ParseFloat(getenv(k), 64); err == nil {
			return v
		}
		return def
	}
	integer := func(k string, def int) int {
		if v, err := strconv.Atoi(getenv(k)); err == nil {
			return v
		}
		return def
	}
	fs.StringVar(&e.tlsCert, "tls-cert", str("SLOTD_TLS_CERT", ""), "serve HTTPS on -addr with this PEM certificate chain; reloaded with -tls-key on SIGHUP (env SLOTD_TLS_CERT)")
	fs.StringVar(&e.tlsKey, "tls-key", str("SLOTD_TLS_KEY", ""), "the PEM private key of -tls-cert (env SLOTD_TLS_KEY)")
	fs.BoolVar(&e.tlsSelfSigned, "tls-self-signed", boolean("SLOTD_TLS_SELF_SIGNED"), "development: serve HTTPS with a self-signed certificate for localhost, made at start and printed with its SHA-256 fingerprint (env SLOTD_TLS_SELF_SIGNED)")
	fs.StringVar(&e.httpAddr, "http-addr", str("SLOTD_HTTP_ADDR", ""), "with TLS: also listen for plain HTTP here, e.g. :80 (with -https-only: health checks and redirects to HTTPS only) (env SLOTD_HTTP_ADDR)")
	fs.BoolVar(&e.httpsOnly, "https-only", boolean("SLOTD_HTTPS_ONLY"), "refuse plain HTTP except /healthz and /readyz: GET and HEAD are redirected to HTTPS, the rest is 403; without TLS, behind a TLS-terminating proxy, needs -trust-proxy (env SLOTD_HTTPS_ONLY)")
	fs.BoolVar(&e.trustProxy, "trust-proxy", boolean("SLOTD_TRUST_PROXY"), "slotd is behind a proxy that appends the client's address to X-Forwarded-For and sets X-Forwarded-Proto: believe them; never set it when clients can reach slotd directly (env SLOTD_TRUST_PROXY)")
	fs.Float64Var(&e.rateIP, "rate-ip", float("SLOTD_RATE_IP", 50), "calls (HTTP requests, WebSocket handshakes and messages) per second per client address (IPv6 by /64; loopback exempt); 0: no limit (env SLOTD_RATE_IP)")
	fs.IntVar(&e.burstIP, "rate-ip-burst", integer("SLOTD_RATE_IP_BURST", 200), "burst of -rate-ip (env SLOTD_RATE_IP_BURST)")
	fs.Float64Var(&e.rateToken, "rate-token", float("SLOTD_RATE_TOKEN", 50), "calls per second per credential (session, token, OAuth grant; the operator token is exempt); 0: no limit (env SLOTD_RATE_TOKEN)")
	fs.IntVar(&e.burstToken, "rate-token-burst", integer("SLOTD_RATE_TOKEN_BURST", 200), "burst of -rate-token (env SLOTD_RATE_TOKEN_BURST)")
	fs.Float64Var(&e.rateTenant, "rate-tenant", float("SLOTD_RATE_TENANT", 1000), "calls per second per tenant, whoever makes them; 0: no limit (env SLOTD_RATE_TENANT)")
	fs.IntVar(&e.burstTenant, "rate-tenant-burst", integer("SLOTD_RATE_TENANT_BURST", 20000), "burst of -rate-tenant (env SLOTD_RATE_TENANT_BURST)")
	fs.IntVar(&e.rateKeys, "rate-max-keys", integer("SLOTD_RATE_MAX_KEYS", 10000), "rate-limit buckets kept per kind (address, credential, tenant), least recently used out first (env SLOTD_RATE_MAX_KEYS)")
}

// tlsOn reports whether -addr serves HTTPS.
func (e edgeOptions) tlsOn() bool { return e.tlsSelfSigned || e.tlsCert != "" }

// check refuses settings that contradict each other.
func (e edgeOptions) check() error {
	switch {
	case (e.tlsCert == "") != (e.tlsKey == ""):
		return errors.New("-tls-cert and -tls-key go together")
	case e.tlsSelfSigned && e.tlsCert != "":
		return errors.New("-tls-self-signed or -tls-cert/-tls-key, not both")
	case e.httpAddr != "" && !e.tlsOn():
		return errors.New("-http-addr is the plain-HTTP listener beside HTTPS: it needs -tls-cert/-tls-key or -tls-self-signed (without TLS, -addr is plain HTTP)")
	case e.httpsOnly && !e.tlsOn() && !e.trustProxy:
		return errors.New("-https-only without TLS: slotd cannot tell HTTPS requests; serve TLS (-tls-cert/-tls-key) or, behind a TLS-terminating proxy that sets X-Forwarded-Proto, add -trust-proxy")
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"-rate-ip", e.rateIP, e.burstIP}, {"-rate-token", e.rateToken, e.burstToken}, {"-rate-tenant", e.rateTenant, e.burstTenant}} {
		if r.rate < 0 || (r.rate > 0 && r.burst < 1) {
			return fmt.Errorf("%s %v with burst %d: want 0 (off), or a positive rate and a burst of at least 1", r.name, r.rate, r.burst)
		}
	}
	if e.rateKeys < 1 {
		return fmt.Errorf("-rate-max-keys %d: want at least 1", e.rateKeys)
	}
	return nil
}

// rateLimits are the gateway's limits.
func (e edgeOptions) rateLimits() gateway.RateLimits {
	return gateway.RateLimits{
		IP:             gateway.Rate{PerSec: e.rateIP, Burst: e.burstIP},
		Token:          gateway.Rate{PerSec: e.rateToken, Burst: e.burstToken},
		Tenant:         gateway.Rate{PerSec: e.rateTenant, Burst: e.burstTenant},
		MaxKeys:        e.rateKeys,
		ExemptLoopback: true,
	}
}

// transport is slotd's listeners and TLS settings.
type transport struct {
	e     edgeOptions
	ln    net.Listener // -addr: HTTPS with TLS, else plain HTTP
	plain net.Listener // -http-addr beside HTTPS; nil without
	tls   *tls.Config  // nil: plain HTTP on ln
	files *certFiles   // certificate files, reloaded on SIGHUP; nil otherwise
	info  []string     // banner lines
}

// openTransport listens on -addr (and -http-addr) and loads or makes the
// certificate. publicURL's host is added to a self-signed certificate.
func openTransport(e edgeOptions, addr, publicURL string) (*transport, error) {
	t := &transport{e: e}
	var err error
	switch {
	case e.tlsCert != "":
		if t.files, err = loadCertFiles(e.tlsCert, e.tlsKey); err != nil {
			return nil, err
		}
		leaf := t.files.current().Leaf
		t.tls = serverTLS(t.files.get)
		t.info = append(t.info, fmt.Sprintf("TLS certificate %s for %s, valid until %s (SHA-256 fingerprint %s); reloaded on SIGHUP",
			e.tlsCert, strings.Join(certNames(leaf), ", "), leaf.NotAfter.UTC().Format(time.DateOnly), fingerprint(leaf.Raw)))
		if time.Until(leaf.NotAfter) < 14*24*time.Hour {
			t.info = append(t.info, "warning: the TLS certificate expires within 14 days")
		}
	case e.tlsSelfSigned:
		cert, err := selfSigned(time.Now(), publicURL)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		t.tls = serverTLS(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil })
		t.info = append(t.info, fmt.Sprintf("TLS: self-signed development certificate for %s (SHA-256 fingerprint %s)",
			strings.Join(certNames(cert.Leaf), ", "), fingerprint(cert.Leaf.Raw)))
	}
	if t.ln, err = net.Listen("tcp", addr); err != nil {
		t.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if e.httpAddr != "" {
		if t.plain, err = net.Listen("tcp", e.httpAddr); err != nil {
			t.close()
			return nil, fmt.Errorf("listen on -http-addr: %w", err)
		}
		what := "serving everything in the clear too (add -https-only to refuse all but health checks)"
		if e.httpsOnly {
			what = "health checks; GET and HEAD redirected to HTTPS, the rest refused"
		}
		t.info = append(t.info, fmt.Sprintf("plain HTTP on http://%s: %s", displayAddr(t.plain.Addr()), what))
	}
	if e.httpsOnly && t.tls == nil {
		t.info = append(t.info, "HTTPS only: requests whose proxy's X-Forwarded-Proto is not https get health checks, redirects and 403 only")
	}
	return t, nil
}

// scheme is https or http, as -addr serves.
func (t *transport) scheme() string {
	if t.tls != nil {
		return "https"
	}
	return "http"
}

// httpsPort is where HTTPS-only mode redirects plain HTTP: -addr's port
// with TLS; 0 (the default, 443) behind a proxy.
func (t *transport) httpsPort() int {
	if t.tls == nil {
		return 0
	}
	return t.ln.Addr().(*net.TCPAddr).Port
}

// close closes the listeners and stops listening for SIGHUP; run defers
// it, for its early returns.
func (t *transport) close() {
	if t.ln != nil {
		t.ln.Close()
	}
	if t.plain != nil {
		t.plain.Close()
	}
	if t.files != nil {
		signal.Stop(t.files.hup)
	}
}

// serve serves srv on -addr until it is shut down.
func (t *transport) serve(srv *http.Server) error {
	if t.tls == nil {
		return srv.Serve(t.ln)
	}
	srv.TLSConfig = t.tls
	return srv.ServeTLS(t.ln, "", "")
}

// addGroups adds the plain-HTTP server (-http-addr) and the certificate
// reloader to g.
func (t *transport) addGroups(g *oklogrun.Group, h http.Handler, log *slog.Logger) {
	if t.plain != nil {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		g.Add(func() error {
			if err := srv.Serve(t.plain); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve plain HTTP: %w", err)
			}
			return nil
		}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
	}
	if t.files != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { t.files.reloadOn(ctx, t.files.hup, log); return nil }, func(error) { cancel() })
	}
}

// serverTLS is the TLS configuration: TLS 1.2 at least, and for TLS 1.2
// only forward-secret AEAD suites (TLS 1.3's are all of that kind).
func serverTLS(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: get,
	}
}

// certFiles is a certificate loaded from files, replaced when they are
// reloaded; connections already open keep the one they started with.
type certFiles struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
	hup       chan os.Signal // SIGHUP, registered from load to close
}

func loadCertFiles(cert, key string) (*certFiles, error) {
	c := &certFiles{cert: cert, key: key, hup: make(chan os.Signal, 1)}
	if err := c.reload(); err != nil {
		return nil, err
	}
	// Registered now, before slotd says it listens: a SIGHUP from then on
	// reloads rather than ends the process.
	signal.Notify(c.hup, syscall.SIGHUP)
	return c, nil
}

func (c *certFiles) current() *tls.Certificate { return c.cur.Load() }

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// reload reads the files again; on failure the current certificate stays.
func (c *certFiles) reload() error {
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.cert, c.key, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", c.cert, err)
		}
	}
	c.cur.Store(&pair)
	return nil
}

// reloadOn reloads the files at every signal on hup until ctx ends.
func (c *certFiles) reloadOn(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := c.reload(); err != nil {
				log.Error("reload TLS certificate; serving the previous one", "err", err)
				continue
			}
			leaf := c.current().Leaf
			log.Info("reloaded TLS certificate", "names", strings.Join(certNames(leaf), ","),
				"not_after", leaf.NotAfter.UTC(), "sha256", fingerprint(leaf.Raw))
		}
	}
}

// selfSigned makes an ECDSA P-256 certificate for localhost, 127.0.0.1,
// ::1 and publicURL's host, valid for a year from now.
func selfSigned(now time.Time, publicURL string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "slotd development (self-signed)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" && u.Hostname() != "localhost" {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			if !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, u.Hostname())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// certNames lists the names a certificate is for.
func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// fingerprint is the SHA-256 of a DER certificate as colon-separated hex
// pairs, as browsers show it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// printBanner prints the banner lines about TLS and listeners.
func (t *transport) printBanner(w io.Writer) {
	for _, l := range t.info {
		fmt.Fprintln(w, l)
	}
}
