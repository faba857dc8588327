package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/slotd/slotd/engine"
)

// Permission is one kind of thing a principal may do within a tenant.
type Permission int

// Permissions, from least to most.
const (
	// PermBook: read availability and public tenant info, hold, release, book.
	PermBook Permission = iota + 1
	// PermStaff: read bookings and the live booking feed, cancel, reschedule.
	PermStaff
	// PermAdmin: configure the tenant (resources, services, hours).
	PermAdmin
	// PermOperator: create tenants and act on any tenant.
	PermOperator
)

// Principal is who is calling, and which tenant that binds them to. The
// tenant an operation acts on always comes from here (or from a booking
// link), never from an id the client merely claims: only an operator,
// authorised for every tenant, may name one.
type Principal struct {
	Kind    string // "public", "staff", "admin" or "operator"
	Subject string // who, for logs and audit; never a secret
	Tenant  string // the bound tenant; "" only for operators
	Perm    Permission
	// Scopes narrow what a delegated token may do (OAuth 2); nil means the
	// principal's full permission.
	Scopes []string
	// Grant identifies the credential (session, token or OAuth grant) the
	// principal came from, so that revoking it can close its WebSockets.
	Grant string
}

// HasScope reports whether p carries scope, or is not scope-limited.
func (p Principal) HasScope(scope string) bool {
	if p.Scopes == nil {
		return true
	}
	for _, s := range p.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// PrincipalFrom returns the principal an authorized route was called with.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey).(Principal)
	return p, ok
}

// ChainAuth tries each authenticator in turn and returns the first
// principal; a token none of them knows is unauthorized.
func ChainAuth(as ...Authenticator) Authenticator { return chain(as) }

type chain []Authenticator

func (c chain) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	var last error = engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
	for _, a := range c {
		p, err := a.AuthenticateToken(ctx, token)
		if err == nil {
			return p, nil
		}
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Code != engine.CodeUnauthorized {
			return Principal{}, err // a real failure, not "not mine"
		}
		last = err
	}
	return Principal{}, last
}

// Can reports whether p may do perm within tenant.
func (p Principal) Can(tenant string, perm Permission) bool {
	if p.Perm < perm {
		return false
	}
	return p.Perm == PermOperator || (p.Tenant != "" && p.Tenant == tenant)
}

// Authenticator turns a bearer token into a principal. It is the seam where
// accounts and OAuth 2 access tokens plug in; the built-in one knows only
// the operator token from configuration.
type Authenticator interface {
	AuthenticateToken(ctx context.Context, token string) (Principal, error)
}

// RequestAuthenticator authenticates a browser request by something other
// than a bearer token: a session cookie (package accounts). Because a
// browser sends cookies on requests that other sites start, it must also
// refuse, with CodeForbidden, a state-changing request (any method but GET,
// HEAD and OPTIONS) that fails its cross-site request forgery checks. A
// request without its kind of credential is CodeUnauthorized.
type RequestAuthenticator interface {
	AuthenticateRequest(r *http.Request) (Principal, error)
}

// OperatorToken authenticates the single operator token from configuration.
// Tokens are compared in constant time on their SHA-256 digests.
type OperatorToken struct{ digest [32]byte }

// NewOperatorToken returns an Authenticator for token.
func NewOperatorToken(token string) *OperatorToken {
	return &OperatorToken{digest: sha256.Sum256([]byte(token))}
}

// AuthenticateToken accepts the operator token.
func (o *OperatorToken) AuthenticateToken(_ context.Context, token string) (Principal, error) {
	d := sha256.Sum256([]byte(token))
	if token == "" || subtle.ConstantTimeCompare(d[:], o.digest[:]) != 1 {
		return Principal{}, engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
	}
	return Principal{Kind: "operator", Subject: "operator", Perm: PermOperator}, nil
}

// bearer extracts the token of an "Authorization: Bearer …" header
// (parseBearer, in transport.go).
func bearer(r *http.Request) string { return parseBearer(r.Header.Get("Authorization")) }

// Scopes a delegated principal (an OAuth 2 access token) may carry. Every
// route (Route.Scope) and every WebSocket message (messageNeeds) names the
// one it needs; a scoped principal without it is refused, and one calling
// a route that names none (operator, account and OAuth administration) is
// refused too. Scopes are only ever added, never renamed.
const (
	// ScopeAvailabilityRead: tenant info, availability (subscribe, GET).
	ScopeAvailabilityRead = "availability:read"
	// ScopeBookingsRead: list and read bookings, the live booking feed.
	ScopeBookingsRead = "bookings:read"
	// ScopeBookingsWrite: hold, release, book, cancel, reschedule.
	ScopeBookingsWrite = "bookings:write"
	// ScopeConfigRead: the tenant's configuration.
	ScopeConfigRead = "config:read"
	// ScopeConfigWrite: resources, services, hours, overrides, busy blocks.
	ScopeConfigWrite = "config:write"
)

// Scopes lists every scope, for the OAuth server's metadata and client
// registration.
func Scopes() []string {
	return []string{ScopeAvailabilityRead, ScopeBookingsRead, ScopeBookingsWrite, ScopeConfigRead, ScopeConfigWrite}
}

// ScopePermission is the most a principal holding scope can do: a
// delegated principal's Perm is at most the highest of its scopes' (and at
// most its role's). 0 for an unknown scope.
func ScopePermission(scope string) Permission {
	switch scope {
	case ScopeAvailabilityRead, ScopeBookingsRead, ScopeBookingsWrite, ScopeConfigRead:
		return PermStaff
	case ScopeConfigWrite:
		return PermAdmin
	}
	return 0
}

// checkScope refuses a scoped principal without scope. No scoped principal
// holds "": routes that name no scope are for unscoped principals only.
func checkScope(p Principal, scope string) error {
	if p.Scopes == nil {
		return nil
	}
	if scope == "" {
		return engine.Errorf(engine.CodeForbidden, "not allowed with a delegated (OAuth) token")
	}
	if !p.HasScope(scope) {
		return engine.Errorf(engine.CodeForbidden, "this token lacks the %q scope", scope)
	}
	return nil
}
