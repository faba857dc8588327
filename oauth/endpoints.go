package oauth

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/slotd/slotd/gateway"
)

// formClient returns the client id a token, revocation or introspection
// request authenticates as (HTTP Basic, else the client_id parameter),
// and binds its tenant to the request's context. The tenant is never taken
// from anything else the client sends.
func formClient(r *http.Request) (*http.Request, string) {
	id := r.PostForm.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok {
		if dec, err := url.QueryUnescape(u); err == nil {
			id = dec
		}
	}
	tenant, _ := ClientTenant(id) // "": every store call fails, as for an unknown client
	return r.WithContext(withTenant(r.Context(), tenant)), id
}

// parseForm reads a bounded application/x-www-form-urlencoded body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body is not a form of at most 64 KiB.")
	}
	return nil
}

// token is the token endpoint (RFC 6749 section 3.2).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := &Session{}
	if err := parseForm(w, r); err != nil {
		s.provider.WriteAccessError(ctx, w, fosite.NewAccessRequest(sess), err)
		return
	}
	r, clientID := formClient(r)
	ctx = r.Context()
	switch gt := r.PostForm.Get("grant_type"); gt {
	case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
	default:
		// fosite answers a grant type no handler serves with
		// invalid_request; RFC 6749 section 5.2 says unsupported_grant_type.
		s.provider.WriteAccessError(ctx, w, fosite.NewAccessRequest(sess),
			fosite.ErrUnsupportedGrantType.WithHintf("slotd supports the grant types authorization_code, refresh_token and client_credentials, not %q.", gt))
		return
	}
	sess.Tenant, _ = ClientTenant(clientID)
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne(GrantClientCredentials) {
		// The app acts as itself, within the scopes it was registered
		// for (fosite has checked the requested ones against them).
		scopes := ar.GetRequestedScopes()
		if len(scopes) == 0 {
			scopes = ar.GetClient().GetScopes()
		}
		for _, sc := range scopes {
			ar.GrantScope(sc)
		}
		sess.Subject, sess.Kind = ar.GetClient().GetID(), KindApp
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// revoke is the revocation endpoint (RFC 7009). Revoking an access or a
// refresh token revokes its whole grant (every token of the refresh
// family), and OnRevoke closes the grant's WebSockets. A token that is
// unknown, of another client or of another tenant is answered 200 and
// left alone, as RFC 7009 section 2.2 asks.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.provider.WriteRevocationResponse(r.Context(), w, err)
		return
	}
	r, _ = formClient(r)
	err := s.provider.NewRevocationRequest(r.Context(), r)
	s.provider.WriteRevocationResponse(r.Context(), w, err)
}

// introspect is the introspection endpoint (RFC 7662). Only a confidential
// client authenticating with HTTP Basic may call it (a bearer token is not
// enough), and it learns only about its own tokens: any other is
// {"active":false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseForm(w, r); err != nil {
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	if _, _, basic := r.BasicAuth(); !basic || strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
		w.Header().Set("WWW-Authenticate", `Basic realm="slotd"`)
		s.provider.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithHint("Authenticate with the client id and secret (HTTP Basic)."))
		return
	}
	r, clientID := formClient(r)
	ctx = r.Context()
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, &Session{})
	if err != nil {
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	if ir.IsActive() && ir.GetAccessRequester().GetClient().GetID() != clientID {
		ir = &fosite.IntrospectionResponse{Active: false}
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// metadata is the authorization server metadata (RFC 8414).
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.cfg.Issuer
	if iss == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		iss = scheme + "://" + r.Host
	}
	auth := []string{"client_secret_basic", "client_secret_post", "none"}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        iss,
		"authorization_endpoint":                        iss + "/oauth2/authorize",
		"token_endpoint":                                iss + "/oauth2/token",
		"revocation_endpoint":                           iss + "/oauth2/revoke",
		"introspection_endpoint":                        iss + "/oauth2/introspect",
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query"},
		"grant_types_supported":                         []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
		"code_challenge_methods_supported":              []string{"S256"},
		"token_endpoint_auth_methods_supported":         auth,
		"revocation_endpoint_auth_methods_supported":    auth,
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"scopes_supported":                              gateway.Scopes(),
	})
}
