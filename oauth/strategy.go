package oauth

import (
	"context"
	"strings"

	"github.com/ory/fosite"
	fositeoauth2 "github.com/ory/fosite/handler/oauth2"

	"github.com/slotd/slotd/persistence"
)

// Prefixes of slotd's codes and tokens. After the prefix comes the tenant
// id, a dot, and fosite's HMAC-SHA token ("<key>.<signature>"). The tenant
// in the clear lets a token be looked up under its tenant without a global
// index; it is not trusted: the signature is looked up only among that
// tenant's records, and the stored session must name the same tenant.
// The prefixes also keep token types apart: a refresh token is never
// taken for an access token.
const (
	prefixAccess  = "slotd_at_"
	prefixRefresh = "slotd_rt_"
	prefixCode    = "slotd_ac_"
)

// tenantStrategy is fosite's HMAC-SHA strategy with slotd's tenant
// prefixes. The store keeps only what Signature returns, the HMAC of the
// token's random key: a token cannot be rebuilt from the database.
type tenantStrategy struct {
	inner *fositeoauth2.HMACSHAStrategyUnPrefixed
}

var _ fositeoauth2.CoreStrategy = (*tenantStrategy)(nil)

// splitToken returns the tenant and fosite token of a slotd token with
// prefix, or false.
func splitToken(prefix, token string) (tenant, inner string, ok bool) {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", "", false
	}
	tenant, inner, ok = strings.Cut(rest, ".")
	if !ok || !persistence.ValidTenant(tenant) || inner == "" {
		return "", "", false
	}
	return tenant, inner, true
}

// generate wraps a fosite token for r's tenant.
func (t *tenantStrategy) generate(prefix string, r fosite.Requester, gen func() (string, string, error)) (string, string, error) {
	sess := sessionOf(r)
	if sess == nil || !persistence.ValidTenant(sess.Tenant) {
		return "", "", fosite.ErrServerError.WithDebug("token for a session without a tenant")
	}
	token, sig, err := gen()
	if err != nil {
		return "", "", err
	}
	return prefix + sess.Tenant + "." + token, sig, nil
}

// signature is the stored key of a token: "" (found nowhere) for one
// without the right prefix.
func (t *tenantStrategy) signature(prefix, token string, sig func(string) string) string {
	_, inner, ok := splitToken(prefix, token)
	if !ok {
		return ""
	}
	return sig(inner)
}

// validate checks that token belongs to r's tenant, then fosite's checks
// (expiry, HMAC).
func (t *tenantStrategy) validate(prefix string, r fosite.Requester, token string, check func(string) error) error {
	tenant, inner, ok := splitToken(prefix, token)
	sess := sessionOf(r)
	if !ok || sess == nil || sess.Tenant != tenant {
		return fosite.ErrInvalidTokenFormat
	}
	return check(inner)
}

// AccessTokenSignature implements fositeoauth2.AccessTokenStrategy.
func (t *tenantStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	return t.signature(prefixAccess, token, func(s string) string { return t.inner.AccessTokenSignature(ctx, s) })
}

// GenerateAccessToken implements fositeoauth2.AccessTokenStrategy.
func (t *tenantStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return t.generate(prefixAccess, r, func() (string, string, error) { return t.inner.GenerateAccessToken(ctx, r) })
}

// ValidateAccessToken implements fositeoauth2.AccessTokenStrategy.
func (t *tenantStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	return t.validate(prefixAccess, r, token, func(s string) error { return t.inner.ValidateAccessToken(ctx, r, s) })
}

// RefreshTokenSignature implements fositeoauth2.RefreshTokenStrategy.
func (t *tenantStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return t.signature(prefixRefresh, token, func(s string) string { return t.inner.RefreshTokenSignature(ctx, s) })
}

// GenerateRefreshToken implements fositeoauth2.RefreshTokenStrategy.
func (t *tenantStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return t.generate(prefixRefresh, r, func() (string, string, error) { return t.inner.GenerateRefreshToken(ctx, r) })
}

// ValidateRefreshToken implements fositeoauth2.RefreshTokenStrategy.
func (t *tenantStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return t.validate(prefixRefresh, r, token, func(s string) error { return t.inner.ValidateRefreshToken(ctx, r, s) })
}

// AuthorizeCodeSignature implements fositeoauth2.AuthorizeCodeStrategy.
func (t *tenantStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return t.signature(prefixCode, token, func(s string) string { return t.inner.AuthorizeCodeSignature(ctx, s) })
}

// GenerateAuthorizeCode implements fositeoauth2.AuthorizeCodeStrategy.
func (t *tenantStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return t.generate(prefixCode, r, func() (string, string, error) { return t.inner.GenerateAuthorizeCode(ctx, r) })
}

// ValidateAuthorizeCode implements fositeoauth2.AuthorizeCodeStrategy.
func (t *tenantStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return t.validate(prefixCode, r, token, func(s string) error { return t.inner.ValidateAuthorizeCode(ctx, r, s) })
}
