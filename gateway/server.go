// Package gateway is slotd's edge: the HTTP JSON API, the WebSocket
// protocol (docs/protocol.md) and the embedded booking page. It
// authenticates every caller, binds each request to exactly one tenant
// (from the principal or the booking link), validates shape and limits, and
// hands commands to the tenant actors.
package gateway

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base32"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
)

//go:embed web
var webFS embed.FS

// Tenants is what the gateway needs from the actor system (*actors.Registry).
type Tenants interface {
	Do(ctx context.Context, tenant string, cmd engine.Command) (actors.Reply, error)
	Read(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error
	// ReadLatest is Read after catching up with every other instance's
	// writes: for reads that return customers' personal data.
	ReadLatest(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error
	SubscribeAvailability(ctx context.Context, tenant string, q engine.AvailabilityQuery, queue int) (*actors.Subscription, error)
	SubscribeFeed(ctx context.Context, tenant string, queue int) (*actors.Subscription, error)
}

// Directory is the small lookup store for tenants and booking links
// (persistence.Store satisfies it).
type Directory interface {
	PutDirectory(ctx context.Context, kind, key string, value []byte) error
	GetDirectory(ctx context.Context, kind, key string) ([]byte, error)
	ListDirectory(ctx context.Context, kind string) ([]string, error)
}

// Config holds the gateway's dependencies and limits.
type Config struct {
	Tenants   Tenants
	Directory Directory
	Auth      Authenticator
	// Sessions authenticates browser requests that carry no bearer token
	// (a session cookie); nil: bearer tokens only.
	Sessions RequestAuthenticator
	Logger   *slog.Logger
	Metrics  *Metrics
	// Metrics handler for /metrics (e.g. promhttp); nil: 404.
	MetricsHandler http.Handler
	// Ready reports readiness for /readyz; nil: always ready.
	Ready func(ctx context.Context) error
	Now   func() time.Time

	// Regions places new tenants in their home regions (data residency);
	// nil: no regions, one store serves every tenant, and a create that
	// names a region is refused.
	Regions Regions

	// OriginPatterns allowed for WebSocket handshakes from browsers, besides
	// the server's own host (path.Match patterns on host[:port]), for every
	// tenant; each tenant adds its own (PUT /v1/tenants/{tenant}/origins).
	OriginPatterns []string

	// TrustProxy believes X-Forwarded-For (the client address, for rate
	// limits) and X-Forwarded-Proto (HTTPS or not): set it only when every
	// request comes through a proxy that sets both (transport.go).
	TrustProxy bool
	// HTTPSOnly refuses plain HTTP but health checks: GET and HEAD are
	// redirected to HTTPS, anything else is 403 (transport.go).
	HTTPSOnly bool
	// HTTPSPort is the port HTTPSOnly redirects to; 0: the default (443).
	HTTPSPort int
	// RateLimits per client address, credential and tenant (limits.go);
	// the zero value limits nothing.
	RateLimits RateLimits

	// Routes adds routes from other packages (accounts, OAuth): each is
	// enumerated by Routes() like the built-in ones, and one with a
	// permission gets the same authentication and tenant check.
	Routes []ExtraRoute

	MaxBodyBytes   int64         // HTTP request bodies; 1 MiB
	MaxFrameBytes  int64         // WebSocket frames read; 16 KiB
	MsgRate        float64       // WebSocket messages per second per connection; 20
	MsgBurst       int           // 40
	WriteTimeout   time.Duration // per WebSocket write of the frames queued together (one write(2)); 5 s
	RequestTimeout time.Duration // per command or read; 10 s
	OutQueue       int           // frames queued per connection before it is closed as too slow; 256
	MaxSubsPerConn int           // 16
}

// Metrics are the gateway's Prometheus instruments.
type Metrics struct {
	Connections *prometheus.GaugeVec   // by principal kind
	Messages    *prometheus.CounterVec // by type and result
	Handshakes  *prometheus.CounterVec // refused handshakes by reason
}

// NewMetrics creates the gateway instruments, registered with reg if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "slotd_websocket_connections", Help: "Open WebSocket connections."}, []string{"kind"}),
		Messages:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotd_websocket_messages_total", Help: "WebSocket requests by type and result code."}, []string{"type", "result"}),
		Handshakes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotd_websocket_refused_total", Help: "Refused WebSocket handshakes by reason."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Messages, m.Handshakes)
	}
	return m
}

// Server serves the API. Its zero value is not usable: call New.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	limits *limiters

	mu    sync.Mutex // guards conns
	conns map[*conn]struct{}

	snapshots snapshotCache
	frames    sync.Pool // *[]byte: the writers' buffers for frames assembled from shared encodings

	createMu sync.Mutex // serializes CreateTenant's check for an existing tenant and its writes
}

// New builds a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = 16 << 10
	}
	if cfg.MsgRate <= 0 {
		cfg.MsgRate = 20
	}
	if cfg.MsgBurst <= 0 {
		cfg.MsgBurst = 40
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.OutQueue <= 0 {
		cfg.OutQueue = 256
	}
	if cfg.MaxSubsPerConn <= 0 {
		cfg.MaxSubsPerConn = 16
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), conns: map[*conn]struct{}{}, limits: newLimiters(cfg.RateLimits)}
	s.snapshots.seed = maphash.MakeSeed()
	s.routes()
	return s
}

// Route is one entry of the router, for the isolation and docs tests that
// enumerate it.
type Route struct {
	Pattern string
	Perm    Permission // 0: public (health, static, booking link)
	// Scope is what a scoped principal (Principal.Scopes, an OAuth 2
	// token) must carry to call the route; "" refuses every scoped
	// principal (operator, account and OAuth administration routes).
	// Public routes need none.
	Scope string
}

func (s *Server) routeTable() []struct {
	Route
	h http.HandlerFunc
} {
	type r = struct {
		Route
		h http.HandlerFunc
	}
	return []r{
		{Route{"GET /healthz", 0, ""}, s.healthz},
		{Route{"GET /readyz", 0, ""}, s.readyz},
		{Route{"GET /metrics", 0, ""}, s.metrics},
		{Route{"GET /{$}", 0, ""}, s.index},
		{Route{"GET /book/{link}", 0, ""}, s.bookingPage},
		{Route{"GET /static/{file...}", 0, ""}, s.static},
		{Route{"GET /v1/ws", 0, ""}, s.websocket},
		{Route{"GET /v1/public/{link}", 0, ""}, s.publicInfo},
		{Route{"GET /v1/public/{link}/availability", 0, ""}, s.publicAvailability},
		{Route{"POST /v1/tenants", PermOperator, ""}, s.createTenant},
		{Route{"GET /v1/tenants", PermOperator, ""}, s.listTenants},
		{Route{"GET /v1/tenants/{tenant}", PermStaff, ScopeConfigRead}, s.getTenant},
		{Route{"PUT /v1/tenants/{tenant}/config", PermAdmin, ScopeConfigWrite}, s.putConfig},
		{Route{"GET /v1/tenants/{tenant}/origins", PermAdmin, ScopeConfigRead}, s.getOrigins},
		{Route{"PUT /v1/tenants/{tenant}/origins", PermAdmin, ScopeConfigWrite}, s.putOrigins},
		{Route{"PUT /v1/tenants/{tenant}/resources/{resource}", PermAdmin, ScopeConfigWrite}, s.putResource},
		{Route{"PUT /v1/tenants/{tenant}/services/{service}", PermAdmin, ScopeConfigWrite}, s.putService},
		{Route{"PUT /v1/tenants/{tenant}/resources/{resource}/overrides/{date}", PermAdmin, ScopeConfigWrite}, s.putOverride},
		{Route{"DELETE /v1/tenants/{tenant}/resources/{resource}/overrides/{date}", PermAdmin, ScopeConfigWrite}, s.deleteOverride},
		{Route{"PUT /v1/tenants/{tenant}/resources/{resource}/busy/{source}", PermAdmin, ScopeConfigWrite}, s.putBusy},
		{Route{"GET /v1/tenants/{tenant}/availability", PermStaff, ScopeAvailabilityRead}, s.staffAvailability},
		{Route{"GET /v1/tenants/{tenant}/bookings", PermStaff, ScopeBookingsRead}, s.listBookings},
		{Route{"POST /v1/tenants/{tenant}/bookings", PermStaff, ScopeBookingsWrite}, s.createBooking},
		{Route{"GET /v1/tenants/{tenant}/bookings/{booking}", PermStaff, ScopeBookingsRead}, s.getBooking},
		{Route{"POST /v1/tenants/{tenant}/bookings/{booking}/cancel", PermStaff, ScopeBookingsWrite}, s.cancelBooking},
		{Route{"POST /v1/tenants/{tenant}/bookings/{booking}/reschedule", PermStaff, ScopeBookingsWrite}, s.rescheduleBooking},
	}
}

// Routes lists every route with the permission it needs.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.routeTable() {
		out = append(out, r.Route)
	}
	for _, r := range s.cfg.Routes {
		out = append(out, r.Route)
	}
	return out
}

// CloseGrant closes every WebSocket whose principal came from grant (a
// revoked session, token or OAuth grant), with a policy-violation status.
// It returns how many it closed.
func (s *Server) CloseGrant(grant string) int {
	if grant == "" {
		return 0
	}
	s.mu.Lock()
	var hit []*conn
	for c := range s.conns {
		c.mu.Lock()
		if c.authed && c.principal.Grant == grant {
			hit = append(hit, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range hit {
		c.close(websocket.StatusPolicyViolation, "credential revoked")
	}
	return len(hit)
}

// ExtraRoute is a route contributed by another package.
type ExtraRoute struct {
	Route
	Handler http.Handler
}

func (s *Server) routes() {
	for _, r := range s.cfg.Routes {
		h := r.Handler.ServeHTTP
		if r.Perm != 0 {
			h = s.authorized(r.Perm, r.Scope, h)
		}
		s.mux.HandleFunc(r.Pattern, h)
	}
	for _, r := range s.routeTable() {
		h := r.h
		if r.Perm != 0 {
			h = s.authorized(r.Perm, r.Scope, h)
		}
		s.mux.HandleFunc(r.Pattern, h)
	}
}

// ServeHTTP adds the security headers every response carries, refuses
// plain HTTP in HTTPS-only mode and rate-limits by client address (edge,
// in transport.go), then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.edge(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

type ctxKey int

const principalKey ctxKey = 1

// authorized authenticates the bearer token, or without one the session
// (Config.Sessions, which also checks CSRF), and checks perm against the
// tenant in the path (if any) and scope against a scoped principal, before
// calling h.
func (s *Server) authorized(perm Permission, scope string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			p   Principal
			err error
		)
		if tok := bearer(r); tok != "" || s.cfg.Sessions == nil {
			p, err = s.cfg.Auth.AuthenticateToken(r.Context(), tok)
		} else {
			p, err = s.cfg.Sessions.AuthenticateRequest(r)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="slotd"`)
			s.writeError(w, err)
			return
		}
		tenant := r.PathValue("tenant")
		if (tenant == "" && p.Perm < perm) || (tenant != "" && !p.Can(tenant, perm)) {
			s.writeError(w, engine.Errorf(engine.CodeForbidden, "not allowed"))
			return
		}
		if err := checkScope(p, scope); err != nil {
			s.writeError(w, err)
			return
		}
		if tenant == "" {
			tenant = p.Tenant
		}
		if !s.allowCaller(w, p, tenant) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.MetricsHandler == nil {
		http.NotFound(w, r)
		return
	}
	s.cfg.MetricsHandler.ServeHTTP(w, r)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	s.serveFile(w, r, "web/index.html")
}

func (s *Server) bookingPage(w http.ResponseWriter, r *http.Request) {
	if !validLink(r.PathValue("link")) {
		http.NotFound(w, r)
		return
	}
	s.serveFile(w, r, "web/book.html")
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if strings.Contains(name, "..") || strings.HasSuffix(name, ".html") {
		http.NotFound(w, r)
		return
	}
	s.serveFile(w, r, "web/"+name)
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := fs.ReadFile(webFS, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".html"):
		ct = "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		ct = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		ct = "text/css; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// Shutdown closes every WebSocket with a going-away status and waits for
// their goroutines, up to ctx. http.Server.Shutdown does not do this:
// hijacked connections are ours to close.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusGoingAway, "server shutting down")
	}
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
	}
}

// Conns is the number of open WebSocket connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + 26 random base32 characters (128 bits).
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + b32.EncodeToString(b[:])
}

func validLink(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func newLimiter(cfg Config) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(cfg.MsgRate), cfg.MsgBurst)
}
