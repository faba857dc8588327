package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// Cookie names. The __Host- prefix makes browsers refuse the cookie unless
// it is Secure, has Path=/ and no Domain, so neither a sibling subdomain
// nor a plain-HTTP response can plant or overwrite it.
const (
	SessionCookie   = "__Host-slotd_session"
	ChallengeCookie = "__Host-slotd_challenge"
	OIDCCookie      = "__Host-slotd_oidc"
	// CSRFHeader carries the session's CSRF token on state-changing requests.
	CSRFHeader = "X-CSRF-Token"
	// CSRFField carries it in HTML form posts.
	CSRFField = "csrf_token"
)

// sessionRecord is a session as stored, under the hash of its id.
type sessionRecord struct {
	Account    string    `json:"account"`
	Generation uint64    `json:"generation"` // the account's, at sign-in
	Method     string    `json:"method"`     // "password", "password+totp", "oidc:google", …
	Created    time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen"`
}

// touchEvery is how stale LastSeen may get before a request rewrites it:
// the idle timeout is accurate to this, and a busy session writes its record
// at most once per interval.
const touchEvery = time.Minute

var errNoSession = engine.Errorf(engine.CodeUnauthorized, "sign in first")

// startSession creates a session for the account and sets its cookie. It
// always makes a new id (no fixation), and ends the session the request
// came with, if any.
func (s *Service) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant string, a *accountRecord, method string) (bearerSecret, error) {
	if old, ok := sessionCookie(r); ok {
		s.endSession(ctx, old)
	}
	s.pruneSessions(ctx, tenant, a.ID)
	sec := newSecret(tagSession, tenant)
	now := s.now().UTC()
	rec := sessionRecord{Account: a.ID, Generation: a.Generation, Method: method, Created: now, LastSeen: now}
	// Index first: a session without its index could not be ended with the
	// account's others.
	if _, err := s.records.PutRecord(ctx, tenant, kindAccountSess, a.ID+"/"+sec.hash(), []byte{}, 0); err != nil {
		return bearerSecret{}, fmt.Errorf("index session: %w", err)
	}
	if _, err := s.putJSON(ctx, tenant, kindSession, sec.hash(), &rec, 0); err != nil {
		return bearerSecret{}, fmt.Errorf("store session: %w", err)
	}
	http.SetCookie(w, s.sessionCookieFor(sec))
	return sec, nil
}

// sessionCookieFor is the session cookie. It has no Max-Age: the browser
// drops it when it closes, and the server enforces both timeouts anyway.
func (s *Service) sessionCookieFor(sec bearerSecret) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: sec.String(), Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode}
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode})
}

// sessionCookie decodes the request's session cookie.
func sessionCookie(r *http.Request) (bearerSecret, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return bearerSecret{}, false
	}
	return parseSecret(tagSession, c.Value)
}

// session validates the session stored under key: it exists, is within both
// timeouts, and its account exists, is enabled and has not moved on to a
// newer generation. A session that fails is deleted. A valid one has its
// LastSeen moved forward (at most once per touchEvery).
func (s *Service) session(ctx context.Context, tenant, key string) (sessionRecord, accountRecord, error) {
	var sr sessionRecord
	ver, err := s.getJSON(ctx, tenant, kindSession, key, &sr)
	if errors.Is(err, persistence.ErrNotFound) {
		return sr, accountRecord{}, errNoSession
	}
	if err != nil {
		return sr, accountRecord{}, err
	}
	now := s.now()
	if !now.Before(sr.Created.Add(s.cfg.AbsoluteTimeout)) || !now.Before(sr.LastSeen.Add(s.cfg.IdleTimeout)) {
		s.deleteSession(ctx, tenant, sr.Account, key)
		return sr, accountRecord{}, errNoSession
	}
	a, err := s.account(ctx, tenant, sr.Account)
	var ee *engine.Error
	if errors.As(err, &ee) && ee.Code == engine.CodeNotFound {
		s.deleteSession(ctx, tenant, sr.Account, key)
		return sr, accountRecord{}, errNoSession
	}
	if err != nil {
		return sr, accountRecord{}, err
	}
	if a.Disabled || a.Generation != sr.Generation {
		s.deleteSession(ctx, tenant, sr.Account, key)
		return sr, accountRecord{}, errNoSession
	}
	if now.Sub(sr.LastSeen) >= touchEvery {
		sr.LastSeen = now.UTC()
		// A conflict means a concurrent request touched it: fine.
		if _, err := s.putJSON(ctx, tenant, kindSession, key, &sr, ver); err != nil && !errors.Is(err, persistence.ErrConflict) {
			s.log.Warn("touch session", "tenant", tenant, "err", err)
		}
	}
	return sr, a, nil
}

func principalFor(tenant string, a *accountRecord, grant string) gateway.Principal {
	return gateway.Principal{Kind: a.Role.kind(), Subject: a.ID, Tenant: tenant, Perm: a.Role.Perm(), Grant: grant}
}

// AuthenticateRequest authenticates the session cookie for the gateway's
// authorized routes (gateway.Config.Sessions). State-changing requests must
// also pass the CSRF checks.
func (s *Service) AuthenticateRequest(r *http.Request) (gateway.Principal, error) {
	sec, ok := sessionCookie(r)
	if !ok {
		return gateway.Principal{}, errNoSession
	}
	if err := s.checkCSRF(r, sec); err != nil {
		return gateway.Principal{}, err
	}
	_, a, err := s.session(r.Context(), sec.tenant, sec.hash())
	if err != nil {
		return gateway.Principal{}, err
	}
	return principalFor(sec.tenant, &a, sec.grant()), nil
}

// CurrentAccount returns the account signed in on r's session, for pages
// outside this package that need the person (the OAuth consent page). It
// does not check CSRF: call CheckCSRF before acting on a POST.
func (s *Service) CurrentAccount(r *http.Request) (Account, bool) {
	sec, ok := sessionCookie(r)
	if !ok {
		return Account{}, false
	}
	_, a, err := s.session(r.Context(), sec.tenant, sec.hash())
	if err != nil {
		return Account{}, false
	}
	return a.public(sec.tenant), true
}

// CSRFToken returns the CSRF token of r's session, to embed in a form as
// CSRFField.
func (s *Service) CSRFToken(r *http.Request) (string, bool) {
	sec, ok := sessionCookie(r)
	if !ok {
		return "", false
	}
	return sec.csrf(), true
}

// CheckCSRF refuses a state-changing request on r's session that another
// site could have made: it must come from our origin and carry the
// session's CSRF token (header CSRFHeader, or form field CSRFField).
func (s *Service) CheckCSRF(r *http.Request) error {
	sec, ok := sessionCookie(r)
	if !ok {
		return errNoSession
	}
	return s.checkCSRF(r, sec)
}

var errCSRF = engine.Errorf(engine.CodeForbidden, "cross-site request refused: send the X-CSRF-Token header from the same origin")

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (s *Service) checkCSRF(r *http.Request, sec bearerSecret) error {
	if safeMethod(r.Method) {
		return nil
	}
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue(CSRFField)
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sec.csrf())) != 1 {
		return errCSRF
	}
	return nil
}

// checkOrigin refuses requests the browser says another site started:
// Sec-Fetch-Site (Fetch Metadata) other than same-origin, or an Origin
// that is not this host or one of AllowedOrigins. Clients that send
// neither header (not a browser) pass; they do not carry a victim's cookie
// either.
func (s *Service) checkOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errCSRF
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(origin, o) {
			return nil
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) || (u.Scheme != "https" && u.Scheme != "http") {
		return errCSRF
	}
	return nil
}

// endSession ends the session sec and closes its WebSockets.
func (s *Service) endSession(ctx context.Context, sec bearerSecret) {
	var sr sessionRecord
	if _, err := s.getJSON(ctx, sec.tenant, kindSession, sec.hash(), &sr); err != nil {
		return
	}
	s.deleteSession(ctx, sec.tenant, sr.Account, sec.hash())
}

// deleteSession deletes a session and its index entry, and closes the
// WebSockets opened through it.
func (s *Service) deleteSession(ctx context.Context, tenant, account, key string) {
	if err := s.records.DeleteRecord(ctx, tenant, kindSession, key, persistence.AnyVersion); err != nil {
		s.log.Warn("delete session", "tenant", tenant, "err", err)
	}
	if err := s.records.DeleteRecord(ctx, tenant, kindAccountSess, account+"/"+key, persistence.AnyVersion); err != nil {
		s.log.Warn("delete session index", "tenant", tenant, "err", err)
	}
	s.closeGrant(grantPrefix + key)
}

// endSessions ends every session of the account and closes their
// WebSockets. The account's Generation has already moved on, so sessions
// it misses (a sign-in racing with it) are refused at their next use; this
// removes the records and closes the sockets now.
func (s *Service) endSessions(ctx context.Context, tenant, account string) int {
	recs, err := s.records.ListRecords(ctx, tenant, kindAccountSess, account+"/", "", 0)
	if err != nil {
		s.log.Warn("list sessions", "tenant", tenant, "account", account, "err", err)
		return 0
	}
	for _, r := range recs {
		s.deleteSession(ctx, tenant, account, strings.TrimPrefix(r.Key, account+"/"))
	}
	return len(recs)
}

// pruneSessions deletes the account's expired sessions, so that sessions
// nobody signs out of do not pile up.
func (s *Service) pruneSessions(ctx context.Context, tenant, account string) {
	recs, err := s.records.ListRecords(ctx, tenant, kindAccountSess, account+"/", "", 0)
	if err != nil {
		return
	}
	now := s.now()
	for _, r := range recs {
		key := strings.TrimPrefix(r.Key, account+"/")
		var sr sessionRecord
		_, err := s.getJSON(ctx, tenant, kindSession, key, &sr)
		if errors.Is(err, persistence.ErrNotFound) ||
			(err == nil && (!now.Before(sr.Created.Add(s.cfg.AbsoluteTimeout)) || !now.Before(sr.LastSeen.Add(s.cfg.IdleTimeout)))) {
			s.deleteSession(ctx, tenant, account, key)
		}
	}
}
