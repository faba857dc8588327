package oauth

import (
	"context"
	"errors"
	"slices"

	"github.com/ory/fosite"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

var _ gateway.Authenticator = (*Server)(nil)

func unauthorized() error {
	return engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
}

// AuthenticateToken implements gateway.Authenticator for access tokens:
// the token must be live (fosite introspection: known signature, valid
// HMAC, not expired, grant not revoked) and an access token, not a refresh
// token. The principal is bound to the token's tenant, carries its granted
// scopes (never nil, so the gateway always checks them) and, as Perm, the
// lesser of the consenting account's role and what the scopes reach. A
// token that is not slotd's is CodeUnauthorized, so that ChainAuth tries
// the next authenticator.
func (s *Server) AuthenticateToken(ctx context.Context, token string) (gateway.Principal, error) {
	tenant, _, ok := splitToken(prefixAccess, token)
	if !ok {
		return gateway.Principal{}, unauthorized()
	}
	ctx = withTenant(ctx, tenant)
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, &Session{})
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrServerError.ErrorField {
			return gateway.Principal{}, err // the store failed: not the client's fault
		}
		return gateway.Principal{}, unauthorized()
	}
	sess := sessionOf(ar)
	if use != fosite.AccessToken || sess == nil || sess.Tenant != tenant {
		return gateway.Principal{}, unauthorized()
	}
	scopes := slices.Clone([]string(ar.GetGrantedScopes()))
	if scopes == nil {
		scopes = []string{}
	}
	perm := scopesPermission(scopes)
	switch sess.Kind {
	case KindStaff:
		perm = min(perm, rolePermission(sess.Role))
	case KindApp:
		perm = min(perm, gateway.PermAdmin)
	default:
		return gateway.Principal{}, unauthorized()
	}
	return gateway.Principal{Kind: sess.Kind, Subject: sess.Subject, Tenant: tenant, Perm: perm,
		Scopes: scopes, Grant: grantName(ar.GetID())}, nil
}
