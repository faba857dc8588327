package oauth

import (
	"maps"
	"time"

	"github.com/ory/fosite"
)

// Session is what slotd keeps with every code and token besides fosite's
// request: which tenant it acts on, for whom, and with what role.
type Session struct {
	Tenant string `json:"tenant"`
	// Subject is the account that consented (Kind "staff"), or the client
	// itself (Kind "app", client credentials).
	Subject string `json:"sub"`
	Kind    string `json:"kind"`
	// Role is the account's role when it consented; "" for apps.
	Role      string                         `json:"role,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"exp,omitempty"`
}

// Principal kinds of OAuth principals.
const (
	KindStaff = "staff" // an account's delegation (authorization code)
	KindApp   = "app"   // the app itself (client credentials)
)

var (
	_ fosite.Session            = (*Session)(nil)
	_ fosite.ExtraClaimsSession = (*Session)(nil)
)

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.ExpiresAt[key]
}

// GetUsername implements fosite.Session; slotd has none to tell.
func (s *Session) GetUsername() string { return "" }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string {
	if s == nil {
		return ""
	}
	return s.Subject
}

// Clone implements fosite.Session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	return &c
}

// GetExtraClaims adds the tenant and kind to introspection responses.
func (s *Session) GetExtraClaims() map[string]any {
	if s == nil {
		return nil
	}
	return map[string]any{"tenant": s.Tenant, "kind": s.Kind}
}

// sessionOf returns r's session as a *Session, or nil.
func sessionOf(r fosite.Requester) *Session {
	if r == nil {
		return nil
	}
	s, _ := r.GetSession().(*Session)
	return s
}
