// Package oauth is slotd's OAuth 2 authorization server: third-party and
// staff apps get scoped, tenant-bound access tokens for the HTTP and
// WebSocket API.
//
// The flows are ory/fosite's, composed with its HMAC-SHA token strategy:
// authorization code with PKCE (S256 only, required of every client),
// client credentials, refresh tokens with rotation, revocation (RFC 7009)
// and introspection (RFC 7662). There is no implicit and no password
// grant. This package adds what is slotd's own:
//
//   - storage of clients, codes and tokens as tenant records
//     (persistence.RecordStore), tokens only by their HMAC signatures;
//
//   - tenancy: a client belongs to one tenant (its id starts with the
//     tenant id), and so does every code and token (their prefix names
//     it); the tenant of a request always comes from the client or token,
//     and every store call is made under it;
//
//   - grants: every token descends from one grant (fosite's request id),
//     the unit that is revoked at once — by RFC 7009, by refresh-token
//     reuse, by a replayed code, or by an owner revoking an app — and that
//     the gateway closes WebSockets by (Principal.Grant, Config.OnRevoke);
//
//   - the consent page, client registration and grant administration;
//
//   - an Authenticator that turns an access token into a gateway.Principal.
//
//     app ──/oauth2/authorize──► consent (signed-in account, Accounts)
//     ──/oauth2/token──────► fosite ──► store ──► RecordStore (tenant records)
//     ──Bearer at /v1/...──► gateway ──► Server.AuthenticateToken ──► Principal
//     owner ──DELETE grant────► store.revokeGrant ──► OnRevoke ──► gateway.CloseGrant
package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	fositeoauth2 "github.com/ory/fosite/handler/oauth2"
	fositehmac "github.com/ory/fosite/token/hmac"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// Account is who is signed in on a request, as far as consent needs to know.
type Account struct {
	ID     string // stable account id: the subject of tokens it grants
	Tenant string
	Role   string // RoleOwner, RoleAdmin or RoleStaff
	Name   string // shown on the consent page; may be empty
}

// Account roles, and what each may delegate (rolePermission).
const (
	RoleOwner = "owner"
	RoleAdmin = "admin"
	RoleStaff = "staff"
)

// Accounts tells who is signed in on a browser request (package accounts'
// CurrentAccount). The authorize endpoint asks it; nothing else does.
type Accounts interface {
	CurrentAccount(r *http.Request) (Account, bool)
}

// AccountsFunc adapts a function to Accounts.
type AccountsFunc func(r *http.Request) (Account, bool)

// CurrentAccount calls f.
func (f AccountsFunc) CurrentAccount(r *http.Request) (Account, bool) { return f(r) }

// Config holds the server's dependencies and settings.
type Config struct {
	// Records keeps clients, codes, tokens and grants, under their tenant.
	Records persistence.RecordStore
	// Accounts tells who is signed in, for consent.
	Accounts Accounts
	// Secret keys the HMAC of every code and token (at least 32 bytes,
	// random, kept out of the database). RotatedSecrets still verify
	// tokens issued under earlier secrets.
	Secret         []byte
	RotatedSecrets [][]byte
	// Issuer is the server's base URL, as clients reach it
	// ("https://slotd.example.com"): the issuer of the metadata document
	// and the origin of the endpoints it lists. "": taken from each
	// metadata request's Host.
	Issuer string
	// SignInURL is where the authorize endpoint sends a visitor who is
	// not signed in, with ?next= the authorize URL; "": it answers 401.
	SignInURL string
	// OnRevoke is called with the Principal.Grant of every grant revoked,
	// once, after the revocation is durable: the gateway's CloseGrant.
	OnRevoke func(grant string)
	Logger   *slog.Logger
	Now      func() time.Time // grant timestamps; fosite itself uses the wall clock

	AccessTokenLifespan   time.Duration // 15 min
	RefreshTokenLifespan  time.Duration // 30 days
	AuthorizeCodeLifespan time.Duration // 1 min
	ConsentLifespan       time.Duration // how long a consent page may be submitted; 10 min
	// SecretCost is the bcrypt cost of client secrets; 12.
	SecretCost int
}

// Server is the authorization server. Its zero value is not usable: call New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	provider fosite.OAuth2Provider
	store    *store
	strategy *tenantStrategy
	hasher   fosite.Hasher
	consent  []byte // key of consent-form MACs, derived from Secret
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Records == nil {
		return nil, errors.New("oauth: Config.Records is required")
	}
	if cfg.Accounts == nil {
		return nil, errors.New("oauth: Config.Accounts is required")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("oauth: Config.Secret must be at least 32 bytes")
	}
	for _, s := range cfg.RotatedSecrets {
		if len(s) < 32 {
			return nil, errors.New("oauth: every Config.RotatedSecrets entry must be at least 32 bytes")
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnRevoke == nil {
		cfg.OnRevoke = func(string) {}
	}
	if cfg.AccessTokenLifespan <= 0 {
		cfg.AccessTokenLifespan = 15 * time.Minute
	}
	if cfg.RefreshTokenLifespan <= 0 {
		cfg.RefreshTokenLifespan = 30 * 24 * time.Hour
	}
	if cfg.AuthorizeCodeLifespan <= 0 {
		cfg.AuthorizeCodeLifespan = time.Minute
	}
	if cfg.ConsentLifespan <= 0 {
		cfg.ConsentLifespan = 10 * time.Minute
	}
	if cfg.SecretCost <= 0 {
		cfg.SecretCost = 12
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")

	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenLifespan,
		RefreshTokenLifespan:  cfg.RefreshTokenLifespan,
		AuthorizeCodeLifespan: cfg.AuthorizeCodeLifespan,
		GlobalSecret:          cfg.Secret,
		RotatedGlobalSecrets:  cfg.RotatedSecrets,
		HashCost:              cfg.SecretCost,
		// PKCE for every client, S256 only.
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		// Scopes match exactly; a refresh token comes with every
		// authorization-code grant whose client may refresh.
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.ExactAudienceMatchingStrategy,
		RefreshTokenScopes:       []string{},
		TokenURL:                 cfg.Issuer + "/oauth2/token",
		// Set here rather than lazily by fosite's getters, which would
		// write them on first use from concurrent requests.
		SendDebugMessagesToClients: false,
	}
	fc.ClientSecretsHasher = &fosite.BCrypt{Config: fc}
	strategy := &tenantStrategy{inner: fositeoauth2.NewHMACSHAStrategyUnPrefixed(&fositehmac.HMACStrategy{Config: fc}, fc)}
	st := &store{records: cfg.Records, log: cfg.Logger, now: cfg.Now, onRevoke: cfg.OnRevoke}
	provider := compose.Compose(fc, st, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	mac := hmacSHA256(cfg.Secret, []byte("slotd oauth consent v1"))
	return &Server{cfg: cfg, log: cfg.Logger, provider: provider, store: st, strategy: strategy, hasher: fc.ClientSecretsHasher, consent: mac}, nil
}

// Routes are the server's routes for gateway.Config.Routes. Administration
// routes need an unscoped principal of the tenant (PermAdmin: owners and
// admins); the OAuth endpoints authenticate clients themselves.
func (s *Server) Routes() []gateway.ExtraRoute {
	r := func(pattern string, perm gateway.Permission, h http.HandlerFunc) gateway.ExtraRoute {
		return gateway.ExtraRoute{Route: gateway.Route{Pattern: pattern, Perm: perm}, Handler: h}
	}
	return []gateway.ExtraRoute{
		r("GET /.well-known/oauth-authorization-server", 0, s.metadata),
		r("GET /oauth2/authorize", 0, s.authorize),
		r("POST /oauth2/authorize", 0, s.authorize),
		r("POST /oauth2/token", 0, s.token),
		r("POST /oauth2/revoke", 0, s.revoke),
		r("POST /oauth2/introspect", 0, s.introspect),
		r("POST /v1/tenants/{tenant}/oauth/clients", gateway.PermAdmin, s.createClient),
		r("GET /v1/tenants/{tenant}/oauth/clients", gateway.PermAdmin, s.listClients),
		r("GET /v1/tenants/{tenant}/oauth/clients/{client}", gateway.PermAdmin, s.getClient),
		r("DELETE /v1/tenants/{tenant}/oauth/clients/{client}", gateway.PermAdmin, s.deleteClient),
		r("DELETE /v1/tenants/{tenant}/oauth/clients/{client}/grants", gateway.PermAdmin, s.revokeClientGrants),
		r("GET /v1/tenants/{tenant}/oauth/grants", gateway.PermAdmin, s.listGrants),
		r("DELETE /v1/tenants/{tenant}/oauth/grants/{grant}", gateway.PermAdmin, s.revokeGrantRoute),
	}
}

// GrantPrefix starts the Principal.Grant of every OAuth principal, so that
// it never collides with another kind of credential's.
const GrantPrefix = "oauth2:"

// grantName is the Principal.Grant of the grant with fosite request id id.
func grantName(id string) string { return GrantPrefix + id }

// rolePermission is the most an account of role may delegate.
func rolePermission(role string) gateway.Permission {
	switch role {
	case RoleOwner, RoleAdmin:
		return gateway.PermAdmin
	case RoleStaff:
		return gateway.PermStaff
	}
	return 0
}

// scopesPermission is the most a principal with scopes may do.
func scopesPermission(scopes []string) gateway.Permission {
	var p gateway.Permission
	for _, s := range scopes {
		p = max(p, gateway.ScopePermission(s))
	}
	return p
}

// knownScope reports whether s is one of gateway.Scopes().
func knownScope(s string) bool {
	for _, k := range gateway.Scopes() {
		if s == k {
			return true
		}
	}
	return false
}

type ctxKey int

const tenantKey ctxKey = 1

// withTenant binds the tenant every store call of a request acts on.
func withTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey, tenant)
}

// tenantFrom returns the tenant bound by withTenant.
func tenantFrom(ctx context.Context) (string, error) {
	t, _ := ctx.Value(tenantKey).(string)
	if !persistence.ValidTenant(t) {
		return "", fmt.Errorf("oauth store call without a tenant: %w", fosite.ErrNotFound)
	}
	return t, nil
}

// ClientTenant returns the tenant of a client id ("<tenant>.<random>").
func ClientTenant(clientID string) (string, bool) {
	t, rest, ok := strings.Cut(clientID, ".")
	if !ok || rest == "" || !persistence.ValidTenant(t) {
		return "", false
	}
	return t, true
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
