package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// errSignInFailed is the one answer to a failed sign-in, whatever failed:
// unknown tenant or account, wrong password, disabled account, wrong or
// reused code, expired challenge. Telling them apart would let anyone list
// a tenant's accounts.
var errSignInFailed = engine.Errorf(engine.CodeUnauthorized, "the email, password or code is not right")

// Sign-in steps named in SignInResponse.Next.
const (
	NextTOTP      = "totp"       // send a TOTP or recovery code to /v1/sign-in/totp
	NextTOTPEnrol = "totp_enrol" // add TOTP to an app, then send its code to /v1/sign-in/totp
)

// SignInResponse answers each sign-in step. With Next empty the browser is
// signed in: the session cookie is set, and CSRFToken must accompany every
// state-changing request (header X-CSRF-Token).
type SignInResponse struct {
	Next           string         `json:"next,omitempty"`
	TOTP           *TOTPEnrolment `json:"totp,omitempty"`
	Account        *Account       `json:"account,omitempty"`
	CSRFToken      string         `json:"csrf_token,omitempty"`
	IdleTimeoutSec int            `json:"idle_timeout_sec,omitempty"`
	ExpiresAt      *time.Time     `json:"expires_at,omitempty"`
	// RecoveryCodes are shown once, when a second factor is enrolled.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

func (s *Service) signedIn(a *accountRecord, tenant string, sec bearerSecret) SignInResponse {
	acc := a.public(tenant)
	exp := s.now().UTC().Add(s.cfg.AbsoluteTimeout)
	return SignInResponse{Account: &acc, CSRFToken: sec.csrf(), IdleTimeoutSec: int(s.cfg.IdleTimeout / time.Second), ExpiresAt: &exp}
}

// challengeRecord is a sign-in half done: the first factor passed, the
// second is still needed. It is stored under the hash of the challenge
// cookie's secret.
type challengeRecord struct {
	Account    string    `json:"account"`
	Generation uint64    `json:"generation"`
	Email      string    `json:"email"` // for the throttle
	Kind       string    `json:"kind"`  // NextTOTP or NextTOTPEnrol
	Method     string    `json:"method"`
	Pending    []byte    `json:"pending,omitempty"` // sealed TOTP secret being enrolled
	Expires    time.Time `json:"expires"`
	Attempts   int       `json:"attempts"`
}

// maxChallengeAttempts is how many wrong codes one challenge takes before
// the password must be entered again.
const maxChallengeAttempts = 5

func challengeRecordID(hash string) string { return "signin_challenge/" + hash }

func (s *Service) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r); err != nil {
		s.writeError(w, err)
		return
	}
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(w, r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	ctx := r.Context()
	tenant, ip := r.PathValue("tenant"), s.clientIP(r)
	if d := s.ipWait(ip); d > 0 {
		s.writeError(w, &rateLimited{d})
		return
	}
	email := NormalizeEmail(in.Email)
	known := persistence.ValidTenant(tenant) && email != ""
	if known {
		d, err := s.accountWait(ctx, tenant, email)
		if err != nil {
			s.writeError(w, err)
			return
		}
		if d > 0 {
			s.writeError(w, &rateLimited{d})
			return
		}
	}
	a, found, err := s.accountByEmail(ctx, tenant, email)
	if err != nil {
		s.writeError(w, err)
		return
	}
	ok := false
	if found && a.PasswordHash != "" {
		match, rehash, verr := s.cfg.Passwords.Verify(a.PasswordHash, in.Password)
		if verr != nil {
			s.log.Warn("stored password hash unusable", "tenant", tenant, "account", a.ID, "err", verr)
		}
		ok = match
		if ok && rehash {
			s.rehash(ctx, tenant, a.ID, a.PasswordHash, in.Password)
		}
	} else {
		// Spend the time a real verification takes, so that response
		// times do not tell unknown accounts from known ones.
		s.cfg.Passwords.VerifyDummy(in.Password)
	}
	if !ok || a.Disabled {
		s.ipFailed(ip)
		if known {
			s.accountFailed(ctx, tenant, email)
			detail := map[string]string{"ip": ip, "method": "password"}
			target := ""
			if found {
				target = "account:" + a.ID
			}
			s.audit(ctx, tenant, AuditEvent{Action: ActionSignInFailed, Target: target, Detail: detail})
		}
		s.writeError(w, errSignInFailed)
		return
	}
	s.accountSucceeded(ctx, tenant, email)
	resp, err := s.afterFirstFactor(ctx, w, r, tenant, &a, "password", ip)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// rehash replaces a legacy or weaker password hash with a current one,
// now that the password is at hand (bcrypt imports, older parameters).
func (s *Service) rehash(ctx context.Context, tenant, id, oldHash, pw string) {
	h, err := s.cfg.Passwords.Hash(pw)
	if err != nil {
		s.log.Warn("rehash password", "tenant", tenant, "account", id, "err", err)
		return
	}
	errChanged := errors.New("password changed meanwhile")
	_, err = update(ctx, s, tenant, kindAccount, id, func(a *accountRecord) error {
		if a.PasswordHash != oldHash {
			return errChanged
		}
		a.PasswordHash = h
		return nil
	})
	if err != nil && !errors.Is(err, errChanged) {
		s.log.Warn("rehash password", "tenant", tenant, "account", id, "err", err)
	}
}

// afterFirstFactor decides what a sign-in that passed its first factor
// (password or OIDC) needs next: a TOTP code, a TOTP enrolment (the tenant
// requires a second factor and the account has none), or nothing, in which
// case the session starts.
func (s *Service) afterFirstFactor(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant string, a *accountRecord, method, ip string) (SignInResponse, error) {
	pol, err := s.policy(ctx, tenant)
	if err != nil {
		return SignInResponse{}, err
	}
	if len(a.TOTP) == 0 && !pol.RequireMFA {
		sec, err := s.startSession(ctx, w, r, tenant, a, method)
		if err != nil {
			return SignInResponse{}, err
		}
		s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionSignIn, Target: "account:" + a.ID,
			Detail: map[string]string{"ip": ip, "method": method}})
		return s.signedIn(a, tenant, sec), nil
	}
	sec := newSecret(tagChallenge, tenant)
	ch := challengeRecord{Account: a.ID, Generation: a.Generation, Email: a.Email, Kind: NextTOTP, Method: method,
		Expires: s.now().UTC().Add(s.cfg.ChallengeTTL)}
	resp := SignInResponse{Next: NextTOTP}
	if len(a.TOTP) == 0 {
		enrol, err := s.newTOTP(a.Email)
		if err != nil {
			return SignInResponse{}, err
		}
		plain, _ := json.Marshal(enrol)
		if ch.Pending, err = s.cfg.Secrets.Seal(tenant, challengeRecordID(sec.hash()), plain); err != nil {
			return SignInResponse{}, fmt.Errorf("seal totp secret: %w", err)
		}
		ch.Kind, resp.Next, resp.TOTP = NextTOTPEnrol, NextTOTPEnrol, &enrol
	}
	if _, err := s.putJSON(ctx, tenant, kindChallenge, sec.hash(), &ch, 0); err != nil {
		return SignInResponse{}, fmt.Errorf("store sign-in challenge: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: ChallengeCookie, Value: sec.String(), Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.ChallengeTTL / time.Second)})
	return resp, nil
}

var errBadCode = errors.New("wrong or used code")

func (s *Service) handleSignInTOTP(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r); err != nil {
		s.writeError(w, err)
		return
	}
	var in struct {
		Code         string `json:"code"`
		RecoveryCode string `json:"recovery_code"`
	}
	if err := decode(w, r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	ctx, ip := r.Context(), s.clientIP(r)
	if d := s.ipWait(ip); d > 0 {
		s.writeError(w, &rateLimited{d})
		return
	}
	c, err := r.Cookie(ChallengeCookie)
	if err != nil {
		s.writeError(w, errSignInFailed)
		return
	}
	sec, ok := parseSecret(tagChallenge, c.Value)
	if !ok {
		s.ipFailed(ip)
		s.writeError(w, errSignInFailed)
		return
	}
	tenant, key := sec.tenant, sec.hash()
	var ch challengeRecord
	ver, err := s.getJSON(ctx, tenant, kindChallenge, key, &ch)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && !s.now().Before(ch.Expires)) {
		if err == nil {
			_ = s.records.DeleteRecord(ctx, tenant, kindChallenge, key, persistence.AnyVersion)
		}
		s.ipFailed(ip)
		clearCookie(w, ChallengeCookie)
		s.writeError(w, errSignInFailed)
		return
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	if d, err := s.accountWait(ctx, tenant, ch.Email); err != nil || d > 0 {
		if err != nil {
			s.writeError(w, err)
		} else {
			s.writeError(w, &rateLimited{d})
		}
		return
	}
	a, err := s.account(ctx, tenant, ch.Account)
	if err == nil && (a.Disabled || a.Generation != ch.Generation) {
		err = errSignInFailed
	}
	method := ch.Method
	var codes []string
	if err == nil {
		switch ch.Kind {
		case NextTOTP:
			var recovered bool
			a, recovered, err = s.verifySecondFactor(ctx, tenant, a.ID, in.Code, in.RecoveryCode)
			method += "+totp"
			if recovered {
				method = ch.Method + "+recovery_code"
				s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionRecoveryCodeUsed, Target: "account:" + a.ID,
					Detail: map[string]string{"ip": ip}})
			}
		case NextTOTPEnrol:
			a, codes, err = s.enrolFromChallenge(ctx, tenant, key, &ch, in.Code)
			method += "+totp"
		default:
			err = errSignInFailed
		}
	}
	if err != nil {
		var ee *engine.Error
		if !errors.Is(err, errBadCode) && !(errors.As(err, &ee) && (ee.Code == engine.CodeNotFound || ee.Code == engine.CodeUnauthorized)) {
			s.writeError(w, err)
			return
		}
		s.ipFailed(ip)
		s.accountFailed(ctx, tenant, ch.Email)
		s.challengeFailed(ctx, tenant, key)
		s.audit(ctx, tenant, AuditEvent{Action: ActionSignInFailed, Target: "account:" + ch.Account,
			Detail: map[string]string{"ip": ip, "method": ch.Method + "+totp"}})
		s.writeError(w, errSignInFailed)
		return
	}
	// The challenge is used once: of two requests racing with good codes,
	// one deletes it.
	if err := s.records.DeleteRecord(ctx, tenant, kindChallenge, key, ver); err != nil {
		if errors.Is(err, persistence.ErrConflict) {
			s.writeError(w, errSignInFailed)
			return
		}
		s.writeError(w, err)
		return
	}
	clearCookie(w, ChallengeCookie)
	s.accountSucceeded(ctx, tenant, ch.Email)
	if codes != nil {
		s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionMFAEnabled, Target: "account:" + a.ID,
			Detail: map[string]string{"factor": "totp", "at": "sign_in"}})
	}
	sess, err := s.startSession(ctx, w, r, tenant, &a, method)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionSignIn, Target: "account:" + a.ID,
		Detail: map[string]string{"ip": ip, "method": method}})
	resp := s.signedIn(&a, tenant, sess)
	resp.RecoveryCodes = codes
	writeJSON(w, http.StatusOK, resp)
}

// challengeFailed counts a wrong code against the challenge, deleting it
// after maxChallengeAttempts.
func (s *Service) challengeFailed(ctx context.Context, tenant, key string) {
	errGone := errors.New("challenge used up")
	_, err := update(ctx, s, tenant, kindChallenge, key, func(c *challengeRecord) error {
		c.Attempts++
		if c.Attempts >= maxChallengeAttempts {
			return errGone
		}
		return nil
	})
	if errors.Is(err, errGone) {
		_ = s.records.DeleteRecord(ctx, tenant, kindChallenge, key, persistence.AnyVersion)
	}
}

// verifySecondFactor checks a TOTP code or a recovery code for the account
// and consumes it: the code's time step becomes the last one accepted, or
// the recovery code is removed, by compare-and-swap on the account. A
// wrong or already used code is errBadCode.
func (s *Service) verifySecondFactor(ctx context.Context, tenant, id, code, recovery string) (accountRecord, bool, error) {
	now := s.now()
	usedRecovery := false
	a, err := update(ctx, s, tenant, kindAccount, id, func(a *accountRecord) error {
		if len(a.TOTP) == 0 {
			return errBadCode
		}
		if code != "" {
			secret, err := s.cfg.Secrets.Open(a.TOTP, tenant, a.totpRecordID())
			if err != nil {
				return fmt.Errorf("open totp secret: %w", err)
			}
			st, ok := checkTOTP(string(secret), code, now, a.TOTPLastStep)
			if !ok {
				return errBadCode
			}
			a.TOTPLastStep = st
			return nil
		}
		rest, ok := useRecoveryCode(a.RecoveryHashes, recovery)
		if !ok {
			return errBadCode
		}
		a.RecoveryHashes, usedRecovery = rest, true
		return nil
	})
	return a, usedRecovery, err
}

// enrolFromChallenge completes a TOTP enrolment forced at sign-in: code
// must be a code of the pending secret. It returns the account and its new
// recovery codes.
func (s *Service) enrolFromChallenge(ctx context.Context, tenant, key string, ch *challengeRecord, code string) (accountRecord, []string, error) {
	enrol, err := s.pendingEnrolment(tenant, key, ch)
	if err != nil {
		return accountRecord{}, nil, err
	}
	st, ok := checkTOTP(enrol.Secret, code, s.now(), 0)
	if !ok {
		return accountRecord{}, nil, errBadCode
	}
	return s.enableTOTP(ctx, tenant, ch.Account, []byte(enrol.Secret), st, ch.Generation)
}

func (s *Service) pendingEnrolment(tenant, key string, ch *challengeRecord) (TOTPEnrolment, error) {
	var enrol TOTPEnrolment
	plain, err := s.cfg.Secrets.Open(ch.Pending, tenant, challengeRecordID(key))
	if err != nil {
		return enrol, fmt.Errorf("open pending totp secret: %w", err)
	}
	if err := json.Unmarshal(plain, &enrol); err != nil {
		return enrol, fmt.Errorf("decode pending totp secret: %w", err)
	}
	return enrol, nil
}

// handleChallenge tells the browser which second step its sign-in needs,
// with the TOTP enrolment when one is forced: an OIDC sign-in arrives at
// the second-factor page by redirect, without the JSON answer.
func (s *Service) handleChallenge(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(ChallengeCookie)
	if err != nil {
		s.writeError(w, errSignInFailed)
		return
	}
	sec, ok := parseSecret(tagChallenge, c.Value)
	if !ok {
		s.writeError(w, errSignInFailed)
		return
	}
	var ch challengeRecord
	_, err = s.getJSON(r.Context(), sec.tenant, kindChallenge, sec.hash(), &ch)
	if errors.Is(err, persistence.ErrNotFound) || (err == nil && !s.now().Before(ch.Expires)) {
		s.writeError(w, errSignInFailed)
		return
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	resp := SignInResponse{Next: ch.Kind}
	if ch.Kind == NextTOTPEnrol {
		enrol, err := s.pendingEnrolment(sec.tenant, sec.hash(), &ch)
		if err != nil {
			s.writeError(w, err)
			return
		}
		resp.TOTP = &enrol
	}
	writeJSON(w, http.StatusOK, resp)
}

// enableTOTP stores secret as the account's second factor, with step as
// the last used, and new recovery codes. generation, if not 0, must still
// be the account's.
func (s *Service) enableTOTP(ctx context.Context, tenant, id string, secret []byte, st int64, generation uint64) (accountRecord, []string, error) {
	codes, hashes := newRecoveryCodes()
	a, err := update(ctx, s, tenant, kindAccount, id, func(a *accountRecord) error {
		if generation != 0 && a.Generation != generation {
			return errSignInFailed
		}
		sealed, err := s.cfg.Secrets.Seal(tenant, a.totpRecordID(), secret)
		if err != nil {
			return fmt.Errorf("seal totp secret: %w", err)
		}
		a.TOTP, a.TOTPPending, a.TOTPLastStep, a.RecoveryHashes = sealed, nil, st, hashes
		a.Updated = s.now().UTC()
		return nil
	})
	if err != nil {
		return accountRecord{}, nil, err
	}
	return a, codes, nil
}

// requireSession returns the browser session an authorized route was
// called with. Routes that change the account itself need one: a bearer
// token (an OAuth app's, say) may not change its owner's password.
// sessionWithBody is requireSession, then the JSON body decoded into in;
// on failure it has written the error and reports false.
func (s *Service) sessionWithBody(w http.ResponseWriter, r *http.Request, in any) (bearerSecret, accountRecord, bool) {
	sec, a, err := s.requireSession(r)
	if err == nil {
		err = decode(w, r, in)
	}
	if err != nil {
		s.writeError(w, err)
		return bearerSecret{}, accountRecord{}, false
	}
	return sec, a, true
}

func (s *Service) requireSession(r *http.Request) (bearerSecret, accountRecord, error) {
	p, ok := gateway.PrincipalFrom(r.Context())
	sec, has := sessionCookie(r)
	if !ok || !has || p.Grant != sec.grant() || p.Tenant != sec.tenant {
		return bearerSecret{}, accountRecord{}, engine.Errorf(engine.CodeForbidden, "this needs a signed-in browser session")
	}
	a, err := s.account(r.Context(), sec.tenant, p.Subject)
	if err != nil {
		return bearerSecret{}, accountRecord{}, err
	}
	return sec, a, nil
}

func (s *Service) handleSession(w http.ResponseWriter, r *http.Request) {
	sec, a, err := s.requireSession(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var sr sessionRecord
	if _, err := s.getJSON(r.Context(), sec.tenant, kindSession, sec.hash(), &sr); err != nil {
		s.writeError(w, err)
		return
	}
	resp := s.signedIn(&a, sec.tenant, sec)
	exp := sr.Created.Add(s.cfg.AbsoluteTimeout)
	resp.ExpiresAt = &exp
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handleSignOut(w http.ResponseWriter, r *http.Request) {
	sec, a, err := s.requireSession(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.endSession(r.Context(), sec)
	clearCookie(w, SessionCookie)
	s.audit(r.Context(), sec.tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionSignOut, Target: "account:" + a.ID})
	w.WriteHeader(http.StatusNoContent)
}
