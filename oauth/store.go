package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	fositeoauth2 "github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"

	"github.com/slotd/slotd/persistence"
)

// Record kinds. Keys are a client id, a grant id, or the HMAC signature of
// a code or token (never the code or token).
const (
	kindClient  = "oauth_client"
	kindGrant   = "oauth_grant"
	kindCode    = "oauth_code"
	kindPKCE    = "oauth_pkce"
	kindAccess  = "oauth_access"
	kindRefresh = "oauth_refresh"
)

// storedForm lists the request parameters kept with a code or token: what
// fosite reads back (the redirect URI the token request must repeat, the
// PKCE challenge) and nothing that could be a credential (no code, token,
// verifier or client secret).
var storedForm = []string{"redirect_uri", "code_challenge", "code_challenge_method", "response_type", "grant_type", "scope", "client_id"}

// store implements fosite's storage over tenant records. Every call acts
// on the tenant bound to its context (withTenant): the server binds it
// from the client id or the token before calling fosite.
//
// Tokens belong to a grant (fosite's request id, shared by a refresh
// family). The grant record lists its tokens and carries the revoked flag;
// every token lookup checks it, so one compare-and-swap on the grant
// revokes all of its tokens at once, and a token written after that is
// refused.
type store struct {
	records  persistence.RecordStore
	log      *slog.Logger
	now      func() time.Time
	onRevoke func(grant string)
}

var (
	_ fosite.Storage                      = (*store)(nil)
	_ fositeoauth2.CoreStorage            = (*store)(nil)
	_ fositeoauth2.TokenRevocationStorage = (*store)(nil)
	_ pkce.PKCERequestStorage             = (*store)(nil)
)

// storedRequest is a fosite request as a record value.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScopes   []string   `json:"requested_scopes,omitempty"`
	GrantedScopes     []string   `json:"granted_scopes,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *Session   `json:"session"`
	// Inactive marks a redeemed code or a rotated refresh token, kept so
	// that a second use is recognised (and revokes the grant).
	Inactive bool `json:"inactive,omitempty"`
}

// grantRecord is one grant: the tokens issued under it and whether it was
// revoked. It stays after revocation so that late writes are refused.
type grantRecord struct {
	ID        string     `json:"id"`
	ClientID  string     `json:"client_id"`
	Subject   string     `json:"sub"`
	Kind      string     `json:"kind"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	Revoked   bool       `json:"revoked,omitempty"`
	RevokedAt time.Time  `json:"revoked_at,omitzero"`
	Tokens    []tokenRef `json:"tokens,omitempty"`
}

// tokenRef names one code or token record of a grant.
type tokenRef struct {
	Kind    string    `json:"k"`
	Sig     string    `json:"s"`
	Expires time.Time `json:"e,omitzero"`
}

// Grant is a grant as the administration routes show it.
type Grant struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"subject"`
	Kind      string    `json:"kind"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	Revoked   bool      `json:"revoked"`
}

func (g *grantRecord) view() Grant {
	return Grant{ID: g.ID, ClientID: g.ClientID, Subject: g.Subject, Kind: g.Kind, Scopes: nonNil(g.Scopes),
		CreatedAt: g.CreatedAt, Revoked: g.Revoked}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeRequest turns r into a record value, keeping only storedForm.
func encodeRequest(r fosite.Requester) ([]byte, error) {
	sess := sessionOf(r)
	if sess == nil {
		return nil, errors.New("oauth: request without a slotd session")
	}
	form := url.Values{}
	for _, k := range storedForm {
		if v, ok := r.GetRequestForm()[k]; ok {
			form[k] = slices.Clone(v)
		}
	}
	return json.Marshal(storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScopes: r.GetRequestedScopes(), GrantedScopes: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: form, Session: sess,
	})
}

// loadRequest reads the record of kind under sig in the context's tenant
// and rebuilds the request, hydrating into (as fosite's stores do) when it
// is a *Session. A token of a revoked grant, or of a client since deleted,
// is not found.
func (s *store) loadRequest(ctx context.Context, kind, sig string, into fosite.Session) (*fosite.Request, *storedRequest, uint64, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	if sig == "" {
		return nil, nil, 0, fosite.ErrNotFound
	}
	rec, err := s.records.GetRecord(ctx, tenant, kind, sig)
	if err != nil {
		return nil, nil, 0, storeErr(err)
	}
	var sr storedRequest
	if err := json.Unmarshal(rec.Value, &sr); err != nil || sr.Session == nil {
		return nil, nil, 0, fmt.Errorf("decode %s record: %w", kind, errors.Join(err, fosite.ErrNotFound))
	}
	if sr.Session.Tenant != tenant {
		return nil, nil, 0, fosite.ErrNotFound // cannot happen unless records were copied across tenants
	}
	g, _, err := s.getGrant(ctx, tenant, sr.ID)
	if err != nil {
		return nil, nil, 0, err
	}
	if g.Revoked {
		return nil, nil, 0, fosite.ErrNotFound
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, nil, 0, err
	}
	if dst, ok := into.(*Session); ok && dst != nil {
		hydrate(dst, sr.Session)
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScopes, GrantedScope: sr.GrantedScopes,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: sr.Session,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	return req, &sr, rec.Version, nil
}

// hydrate loads src into dst as decoding a stored session into it would:
// expiry times are merged, so that the ones fosite has just set on dst for
// the tokens it is about to issue survive a reload of the code's session.
func hydrate(dst, src *Session) {
	exp := dst.ExpiresAt
	*dst = *src
	dst.ExpiresAt = exp
	if dst.ExpiresAt == nil {
		dst.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	for k, v := range src.ExpiresAt {
		dst.ExpiresAt[k] = v
	}
}

// storeErr maps a record store error to fosite's vocabulary.
func storeErr(err error) error {
	if errors.Is(err, persistence.ErrNotFound) {
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	if errors.Is(err, persistence.ErrInvalid) {
		return fmt.Errorf("%w: %w", fosite.ErrNotFound, err) // a malformed key names nothing
	}
	return err
}

// --- grants ---

func (s *store) getGrant(ctx context.Context, tenant, id string) (*grantRecord, uint64, error) {
	if id == "" {
		return nil, 0, fosite.ErrNotFound
	}
	rec, err := s.records.GetRecord(ctx, tenant, kindGrant, id)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	var g grantRecord
	if err := json.Unmarshal(rec.Value, &g); err != nil {
		return nil, 0, fmt.Errorf("decode grant record: %w", err)
	}
	return &g, rec.Version, nil
}

// updateGrant applies f to the grant of r (creating it from r if there is
// none) by compare-and-swap, retrying on conflict. f returns false to
// write nothing.
func (s *store) updateGrant(ctx context.Context, tenant, id string, r fosite.Requester, f func(g *grantRecord) (bool, error)) error {
	for attempt := 0; ; attempt++ {
		g, ver, err := s.getGrant(ctx, tenant, id)
		switch {
		case errors.Is(err, fosite.ErrNotFound) && r != nil:
			sess := sessionOf(r)
			g = &grantRecord{ID: id, ClientID: r.GetClient().GetID(), Subject: sess.Subject, Kind: sess.Kind,
				Scopes: slices.Clone(r.GetGrantedScopes()), CreatedAt: s.now().UTC()}
			ver = 0
		case err != nil:
			return err
		}
		write, err := f(g)
		if err != nil || !write {
			return err
		}
		b, err := json.Marshal(g)
		if err != nil {
			return err
		}
		_, err = s.records.PutRecord(ctx, tenant, kindGrant, id, b, ver)
		if errors.Is(err, persistence.ErrConflict) && attempt < 16 {
			continue
		}
		if err != nil {
			return fmt.Errorf("put grant: %w", err)
		}
		return nil
	}
}

// addToken records a new code or token under its grant, refusing it if
// the grant was revoked, then writes the token's own record. Expired
// entries are dropped from the grant as it is rewritten.
func (s *store) addToken(ctx context.Context, kind, sig string, exp time.Time, r fosite.Requester) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	if sess := sessionOf(r); sess == nil || sess.Tenant != tenant {
		return fosite.ErrServerError.WithDebug("token for another tenant")
	}
	value, err := encodeRequest(r)
	if err != nil {
		return err
	}
	var expired []tokenRef
	now := s.now()
	err = s.updateGrant(ctx, tenant, r.GetID(), r, func(g *grantRecord) (bool, error) {
		if g.Revoked {
			return false, fmt.Errorf("grant was revoked: %w", fosite.ErrInactiveToken)
		}
		expired = expired[:0]
		keep := g.Tokens[:0:0]
		for _, t := range g.Tokens {
			if !t.Expires.IsZero() && t.Expires.Before(now) {
				expired = append(expired, t)
			} else {
				keep = append(keep, t)
			}
		}
		g.Tokens = append(keep, tokenRef{Kind: kind, Sig: sig, Expires: exp})
		return true, nil
	})
	if err != nil {
		return err
	}
	if _, err := s.records.PutRecord(ctx, tenant, kind, sig, value, 0); err != nil {
		return fmt.Errorf("put %s: %w", kind, err)
	}
	s.deleteTokens(ctx, tenant, expired)
	return nil
}

// deleteTokens removes token records; failures leave records that no
// lookup accepts (their grant says revoked, or they have expired).
func (s *store) deleteTokens(ctx context.Context, tenant string, refs []tokenRef) {
	for _, t := range refs {
		if err := s.records.DeleteRecord(ctx, tenant, t.Kind, t.Sig, persistence.AnyVersion); err != nil {
			s.log.Warn("oauth: delete token record", "tenant", tenant, "kind", t.Kind, "err", err)
		}
	}
}

// revokeGrant revokes grant id of the context's tenant: one
// compare-and-swap marks it revoked, which every token lookup checks, then
// its token records are deleted and OnRevoke is called. Revoking a revoked
// grant does nothing; an unknown one is fosite.ErrNotFound.
func (s *store) revokeGrant(ctx context.Context, tenant, id string) error {
	var (
		tokens  []tokenRef
		revoked bool
	)
	err := s.updateGrant(ctx, tenant, id, nil, func(g *grantRecord) (bool, error) {
		if g.Revoked {
			return false, nil
		}
		g.Revoked, g.RevokedAt, revoked = true, s.now().UTC(), true
		tokens, g.Tokens = g.Tokens, nil
		return true, nil
	})
	if err != nil {
		return err
	}
	if revoked {
		s.deleteTokens(ctx, tenant, tokens)
		s.log.Info("oauth: grant revoked", "tenant", tenant, "grant", id)
		s.onRevoke(grantName(id))
	}
	return nil
}

// listedGrant is a grant as listed, with the version it was read at.
type listedGrant struct {
	*grantRecord
	version uint64
}

// listGrants returns the tenant's grants for which keep is true.
func (s *store) listGrants(ctx context.Context, tenant string, keep func(*grantRecord) bool) ([]listedGrant, error) {
	var (
		out   []listedGrant
		after string
	)
	for {
		recs, err := s.records.ListRecords(ctx, tenant, kindGrant, "", after, 500)
		if err != nil {
			return nil, fmt.Errorf("list grants: %w", err)
		}
		for _, rec := range recs {
			var g grantRecord
			if err := json.Unmarshal(rec.Value, &g); err != nil {
				return nil, fmt.Errorf("decode grant record: %w", err)
			}
			if keep(&g) {
				out = append(out, listedGrant{&g, rec.Version})
			}
		}
		if len(recs) < 500 {
			return out, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// --- fosite.ClientManager ---

// GetClient implements fosite.ClientManager. The tenant is the client id's;
// a client of another tenant than the context's is not found.
func (s *store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, _, err := s.getClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *store) getClient(ctx context.Context, id string) (*Client, uint64, error) {
	tenant, ok := ClientTenant(id)
	if !ok {
		return nil, 0, fosite.ErrNotFound
	}
	if t, _ := ctx.Value(tenantKey).(string); t != tenant {
		return nil, 0, fosite.ErrNotFound
	}
	rec, err := s.records.GetRecord(ctx, tenant, kindClient, id)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	var c Client
	if err := json.Unmarshal(rec.Value, &c); err != nil {
		return nil, 0, fmt.Errorf("decode client record: %w", err)
	}
	return &c, rec.Version, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager. slotd accepts no
// client assertions: every JTI counts as used.
func (s *store) ClientAssertionJWTValid(context.Context, string) error { return fosite.ErrJTIKnown }

// SetClientAssertionJWT implements fosite.ClientManager; unused.
func (s *store) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

// --- authorization codes ---

// CreateAuthorizeCodeSession implements fositeoauth2.AuthorizeCodeStorage.
func (s *store) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.addToken(ctx, kindCode, sig, r.GetSession().GetExpiresAt(fosite.AuthorizeCode), r)
}

// GetAuthorizeCodeSession implements fositeoauth2.AuthorizeCodeStorage: a
// redeemed code revokes its grant (RFC 6749 section 4.1.2) and is returned
// with fosite.ErrInvalidatedAuthorizeCode. fosite revokes too, but only
// when it finds the code spent at its first look, not when a concurrent
// redemption spent it in between.
func (s *store) GetAuthorizeCodeSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	req, sr, _, err := s.loadRequest(ctx, kindCode, sig, into)
	if err != nil {
		return nil, err
	}
	if sr.Inactive {
		tenant, err := tenantFrom(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.revokeGrant(ctx, tenant, sr.ID); err != nil {
			return nil, err
		}
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements
// fositeoauth2.AuthorizeCodeStorage by compare-and-swap: of two concurrent
// redemptions exactly one succeeds, and the loser revokes the grant (RFC
// 6749 section 4.1.2: a code used twice revokes what it gave).
func (s *store) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	_, sr, ver, err := s.loadRequest(ctx, kindCode, sig, nil)
	if err != nil {
		return err
	}
	if !sr.Inactive {
		sr.Inactive = true
		b, err := json.Marshal(sr)
		if err != nil {
			return err
		}
		_, err = s.records.PutRecord(ctx, tenant, kindCode, sig, b, ver)
		if err == nil {
			return nil
		}
		if !errors.Is(err, persistence.ErrConflict) {
			return fmt.Errorf("invalidate code: %w", err)
		}
	}
	if err := s.revokeGrant(ctx, tenant, sr.ID); err != nil {
		return err
	}
	return fosite.ErrInvalidatedAuthorizeCode
}

// --- PKCE ---

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *store) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.addToken(ctx, kindPKCE, sig, r.GetSession().GetExpiresAt(fosite.AuthorizeCode), r)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *store) GetPKCERequestSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.loadRequest(ctx, kindPKCE, sig, into)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *store) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.deleteRecord(ctx, kindPKCE, sig)
}

func (s *store) deleteRecord(ctx context.Context, kind, sig string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	if sig == "" {
		return fosite.ErrNotFound
	}
	if err := s.records.DeleteRecord(ctx, tenant, kind, sig, persistence.AnyVersion); err != nil {
		return storeErr(err)
	}
	return nil
}

// --- access tokens ---

// CreateAccessTokenSession implements fositeoauth2.AccessTokenStorage.
func (s *store) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.addToken(ctx, kindAccess, sig, r.GetSession().GetExpiresAt(fosite.AccessToken), r)
}

// GetAccessTokenSession implements fositeoauth2.AccessTokenStorage.
func (s *store) GetAccessTokenSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.loadRequest(ctx, kindAccess, sig, into)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteAccessTokenSession implements fositeoauth2.AccessTokenStorage.
func (s *store) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.deleteRecord(ctx, kindAccess, sig)
}

// --- refresh tokens ---

// CreateRefreshTokenSession implements fositeoauth2.RefreshTokenStorage.
func (s *store) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return s.addToken(ctx, kindRefresh, sig, r.GetSession().GetExpiresAt(fosite.RefreshToken), r)
}

// GetRefreshTokenSession implements fositeoauth2.RefreshTokenStorage: a
// rotated token is returned with fosite.ErrInactiveToken, on which fosite
// detects reuse and revokes the grant.
func (s *store) GetRefreshTokenSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	req, sr, _, err := s.loadRequest(ctx, kindRefresh, sig, into)
	if err != nil {
		return nil, err
	}
	if sr.Inactive {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements fositeoauth2.RefreshTokenStorage.
func (s *store) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.deleteRecord(ctx, kindRefresh, sig)
}

// RotateRefreshToken implements fositeoauth2.RefreshTokenStorage: the used
// refresh token becomes inactive (kept, so that a reuse is recognised) and
// the grant's access tokens are deleted; the grant itself lives on. The
// compare-and-swap makes one of two concurrent refreshes with the same
// token win; the other is a reuse and revokes the grant.
func (s *store) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	_, sr, ver, err := s.loadRequest(ctx, kindRefresh, sig, nil)
	if err != nil {
		return err
	}
	if sr.ID != requestID {
		return fosite.ErrNotFound
	}
	reused := sr.Inactive
	if !reused {
		sr.Inactive = true
		b, err := json.Marshal(sr)
		if err != nil {
			return err
		}
		_, err = s.records.PutRecord(ctx, tenant, kindRefresh, sig, b, ver)
		if errors.Is(err, persistence.ErrConflict) {
			reused = true
		} else if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
	}
	if reused {
		if err := s.revokeGrant(ctx, tenant, requestID); err != nil {
			return err
		}
		return fosite.ErrInactiveToken
	}
	var access []tokenRef
	err = s.updateGrant(ctx, tenant, requestID, nil, func(g *grantRecord) (bool, error) {
		access = access[:0]
		keep := g.Tokens[:0:0]
		for _, t := range g.Tokens {
			if t.Kind == kindAccess {
				access = append(access, t)
			} else {
				keep = append(keep, t)
			}
		}
		g.Tokens = keep
		return len(access) > 0, nil
	})
	if err != nil {
		return err
	}
	s.deleteTokens(ctx, tenant, access)
	return nil
}

// --- revocation ---

// RevokeRefreshToken implements fositeoauth2.TokenRevocationStorage. fosite
// calls it, with RevokeAccessToken, for RFC 7009 revocation, refresh-token
// reuse and a replayed code: each revokes the whole grant.
func (s *store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	return s.revokeGrant(ctx, tenant, requestID)
}

// RevokeAccessToken implements fositeoauth2.TokenRevocationStorage; see
// RevokeRefreshToken.
func (s *store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.RevokeRefreshToken(ctx, requestID)
}
