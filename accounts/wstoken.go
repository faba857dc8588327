package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// A browser cannot set an Authorization header on a WebSocket handshake,
// and the session cookie must not authenticate one (any site can open a
// WebSocket to us with the visitor's cookies). So a signed-in page asks for
// a WebSocket token over its session (POST /v1/ws-token, CSRF-checked),
// and sends it in the connection's first "auth" message. The token works
// once, for WSTokenTTL, and the connection's principal carries the
// session's grant: ending the session closes the socket.

// wsTokenRecord is a WebSocket token as stored, under its hash.
type wsTokenRecord struct {
	Account string    `json:"account"`
	Session string    `json:"session"` // hash of the session it was issued on
	Expires time.Time `json:"expires"`
}

// WSTokenResponse is the answer of POST /v1/ws-token.
type WSTokenResponse struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"` // seconds
}

func (s *Service) handleWSToken(w http.ResponseWriter, r *http.Request) {
	sec, a, err := s.requireSession(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	tok := newSecret(tagWSToken, sec.tenant)
	rec := wsTokenRecord{Account: a.ID, Session: sec.hash(), Expires: s.now().UTC().Add(s.cfg.WSTokenTTL)}
	if _, err := s.putJSON(r.Context(), sec.tenant, kindWSToken, tok.hash(), &rec, 0); err != nil {
		s.writeError(w, fmt.Errorf("store ws token: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, WSTokenResponse{Token: tok.String(), ExpiresIn: int(s.cfg.WSTokenTTL / time.Second)})
}

// WSTokens returns the gateway.Authenticator for WebSocket tokens, to
// chain with the others (gateway.ChainAuth). Tokens it does not recognise
// are unauthorized, so the chain moves on.
func (s *Service) WSTokens() gateway.Authenticator { return wsTokens{s} }

type wsTokens struct{ s *Service }

var errBadToken = engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")

// AuthenticateToken accepts a WebSocket token once, within its lifetime,
// while its session is still valid.
func (t wsTokens) AuthenticateToken(ctx context.Context, token string) (gateway.Principal, error) {
	s := t.s
	if !strings.HasPrefix(token, tagWSToken+".") {
		return gateway.Principal{}, errBadToken
	}
	sec, ok := parseSecret(tagWSToken, token)
	if !ok {
		return gateway.Principal{}, errBadToken
	}
	var rec wsTokenRecord
	ver, err := s.getJSON(ctx, sec.tenant, kindWSToken, sec.hash(), &rec)
	if errors.Is(err, persistence.ErrNotFound) {
		return gateway.Principal{}, errBadToken
	}
	if err != nil {
		return gateway.Principal{}, err
	}
	// Used once: of two connections racing with one token, one deletes it.
	if err := s.records.DeleteRecord(ctx, sec.tenant, kindWSToken, sec.hash(), ver); err != nil {
		if errors.Is(err, persistence.ErrConflict) || errors.Is(err, persistence.ErrNotFound) {
			return gateway.Principal{}, errBadToken
		}
		return gateway.Principal{}, err
	}
	if !s.now().Before(rec.Expires) {
		return gateway.Principal{}, errBadToken
	}
	_, a, err := s.session(ctx, sec.tenant, rec.Session)
	if err != nil {
		return gateway.Principal{}, errBadToken
	}
	if a.ID != rec.Account {
		return gateway.Principal{}, errBadToken
	}
	return principalFor(sec.tenant, &a, grantPrefix+rec.Session), nil
}
