package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/password"
)

// PasswordHasher hashes and checks passwords (*password.Hasher).
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(encoded, password string) (ok, needsRehash bool, err error)
	VerifyDummy(password string)
}

// Sealer encrypts small secrets bound to a tenant and a record id
// (*secrets.Keyring).
type Sealer interface {
	Seal(tenantID, recordID string, plaintext []byte) ([]byte, error)
	Open(blob []byte, tenantID, recordID string) ([]byte, error)
}

// GrantCloser closes the WebSockets opened with a credential
// (*gateway.Server).
type GrantCloser interface {
	CloseGrant(grant string) int
}

// Config holds the service's dependencies and settings.
type Config struct {
	Records   persistence.RecordStore
	Passwords PasswordHasher
	Secrets   Sealer
	Audit     AuditSink // nil: events are only logged at debug level
	// OnDeleted runs after an account is deleted and its sessions ended:
	// slotd revokes its OAuth grants and disconnects its calendars there.
	OnDeleted func(ctx context.Context, tenant, accountID, actor string) error
	Logger    *slog.Logger
	Now       func() time.Time

	// Policy for new passwords; the zero value is password.DefaultPolicy.
	Policy password.Policy

	// Issuer names slotd in authenticator apps; "slotd".
	Issuer string

	// OIDC providers offered for sign-in (Google, Microsoft, …).
	OIDC []OIDCProvider
	// HTTPClient talks to the OIDC providers; http.DefaultClient.
	HTTPClient *http.Client

	// Pages the browser is sent to after an OIDC sign-in: AfterSignIn ("/")
	// when signed in, SecondFactorPage ("/?sign_in=second_factor") when a
	// TOTP code (or enrolment) is still needed, SignInFailedPage
	// ("/?sign_in=failed") otherwise.
	AfterSignIn, SecondFactorPage, SignInFailedPage string

	// AllowedOrigins are further origins ("https://admin.example.com") whose
	// requests count as same-origin, besides the request's own host.
	AllowedOrigins []string

	// ClientIP returns the address a request comes from, for per-IP
	// throttling; nil: the host of r.RemoteAddr. Behind a proxy, pass a
	// function that trusts its forwarding header.
	ClientIP func(r *http.Request) string

	IdleTimeout     time.Duration // 30 min
	AbsoluteTimeout time.Duration // 12 h
	WSTokenTTL      time.Duration // 60 s
	ChallengeTTL    time.Duration // 5 min: between password and second factor

	// Throttling. FreeFailures (5) failed attempts per account are allowed
	// before each further one makes the account wait BaseDelay (1 s),
	// doubling up to MaxDelay (15 min). Each IP address may fail IPBurst (20)
	// times at once, and then once every IPInterval (5 s).
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	IPBurst      int
	IPInterval   time.Duration
	IPTableSize  int // distinct addresses remembered; 10,000
}

// Service is the accounts service. Its zero value is not usable: call New.
type Service struct {
	cfg     Config
	log     *slog.Logger
	records persistence.RecordStore
	now     func() time.Time
	ips     *lru.Cache[string, *rate.Limiter]
	oidc    map[string]*oidcClient
	grants  atomic.Pointer[GrantCloser]
}

// New returns a Service. Records, Passwords and Secrets are required.
func New(cfg Config) (*Service, error) {
	if cfg.Records == nil || cfg.Passwords == nil || cfg.Secrets == nil {
		return nil, errors.New("accounts: Records, Passwords and Secrets are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "slotd"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.AfterSignIn == "" {
		cfg.AfterSignIn = "/"
	}
	if cfg.SecondFactorPage == "" {
		cfg.SecondFactorPage = "/?sign_in=second_factor"
	}
	if cfg.SignInFailedPage == "" {
		cfg.SignInFailedPage = "/?sign_in=failed"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 30*time.Minute)
	def(&cfg.AbsoluteTimeout, 12*time.Hour)
	def(&cfg.WSTokenTTL, 60*time.Second)
	def(&cfg.ChallengeTTL, 5*time.Minute)
	def(&cfg.BaseDelay, time.Second)
	def(&cfg.MaxDelay, 15*time.Minute)
	def(&cfg.IPInterval, 5*time.Second)
	if cfg.FreeFailures <= 0 {
		cfg.FreeFailures = 5
	}
	if cfg.IPBurst <= 0 {
		cfg.IPBurst = 20
	}
	if cfg.IPTableSize <= 0 {
		cfg.IPTableSize = 10000
	}
	ips, err := lru.New[string, *rate.Limiter](cfg.IPTableSize)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, records: cfg.Records, now: cfg.Now, ips: ips,
		oidc: map[string]*oidcClient{}}
	for _, p := range cfg.OIDC {
		if err := p.check(); err != nil {
			return nil, err
		}
		if _, dup := s.oidc[p.Name]; dup {
			return nil, fmt.Errorf("accounts: OIDC provider %q configured twice", p.Name)
		}
		s.oidc[p.Name] = &oidcClient{p: p}
	}
	return s, nil
}

// SetGrantCloser gives the service the gateway whose WebSockets it closes
// when it ends a session. The gateway is built with the service's routes,
// so it can only be set after both exist.
func (s *Service) SetGrantCloser(g GrantCloser) { s.grants.Store(&g) }

func (s *Service) closeGrant(grant string) {
	if g := s.grants.Load(); g != nil && *g != nil {
		(*g).CloseGrant(grant)
	}
}

func (s *Service) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Record kinds. Every record lives under its tenant.
const (
	kindAccount      = "account"          // key: account id
	kindAccountEmail = "account_email"    // key: normalised email; value: account id
	kindAccountSess  = "account_session"  // key: account id "/" session hash; empty value
	kindSession      = "session"          // key: session hash
	kindChallenge    = "signin_challenge" // key: challenge hash
	kindThrottle     = "signin_throttle"  // key: hash of the normalised email
	kindWSToken      = "ws_token"         // key: token hash
	kindOIDCState    = "oidc_state"       // key: state hash
	kindPolicy       = "account_policy"   // key: policyKey
	policyKey        = "tenant"
)
