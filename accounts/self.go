package accounts

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/security/password"
)

// The signed-in person's own settings. Each route needs the browser
// session (not a bearer token) and re-checks a factor before it weakens
// anything: the current password to change it, a code to turn the second
// factor off.

var errWrongPassword = engine.Errorf(engine.CodeForbidden, "the current password is not right")
var errWrongCode = engine.Errorf(engine.CodeForbidden, "the code is not right or was already used")

// reauth throttles and checks a factor the signed-in person re-enters.
// check returns false for a wrong factor, which counts as a failed
// sign-in attempt.
func (s *Service) reauth(r *http.Request, tenant string, a *accountRecord, wrong error, check func() (bool, error)) error {
	ctx, ip := r.Context(), s.clientIP(r)
	if d := s.ipWait(ip); d > 0 {
		return &rateLimited{d}
	}
	d, err := s.accountWait(ctx, tenant, a.Email)
	if err == nil && d > 0 {
		return &rateLimited{d}
	}
	ok, err := check()
	if err != nil && !errors.Is(err, errBadCode) {
		return err
	}
	if !ok {
		s.ipFailed(ip)
		return wrong
	}
	return nil
}

func (s *Service) checkPassword(a *accountRecord, pw string) (bool, error) {
	if a.PasswordHash == "" {
		s.cfg.Passwords.VerifyDummy(pw)
		return false, nil
	}
	ok, _, err := s.cfg.Passwords.Verify(a.PasswordHash, pw)
	if err != nil {
		s.log.Warn("stored password hash unusable", "account", a.ID, "err", err)
	}
	return ok, nil
}

func (s *Service) handleChangePassword(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	sec, a, ok := s.sessionWithBody(w, r, &in)
	if !ok {
		return
	}
	ctx, tenant := r.Context(), sec.tenant
	if a.PasswordHash != "" {
		err := s.reauth(r, tenant, &a, errWrongPassword, func() (bool, error) { return s.checkPassword(&a, in.Current) })
		if err != nil {
			if errors.Is(err, errWrongPassword) {
				s.accountFailed(ctx, tenant, a.Email)
			}
			s.writeError(w, err)
			return
		}
	}
	h, err := s.newPasswordHash(in.New, &a)
	if err != nil {
		s.writeError(w, err)
		return
	}
	errChanged := engine.Errorf(engine.CodeConflict, "the account changed meanwhile; try again")
	a, err = update(ctx, s, tenant, kindAccount, a.ID, func(rec *accountRecord) error {
		if rec.PasswordHash != a.PasswordHash || rec.Generation != a.Generation {
			return errChanged
		}
		rec.PasswordHash = h
		rec.Generation++
		rec.Updated = s.now().UTC()
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	// Every session ends, this one too; the person gets a new one.
	s.endSessions(ctx, tenant, a.ID)
	s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionPasswordChanged, Target: "account:" + a.ID})
	sess, err := s.startSession(ctx, w, r, tenant, &a, "password")
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.signedIn(&a, tenant, sess))
}

func (a *accountRecord) pendingRecordID() string { return "account/" + a.ID + "/totp_pending" }

func (s *Service) handleTOTPBegin(w http.ResponseWriter, r *http.Request) {
	sec, a, err := s.requireSession(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if len(a.TOTP) > 0 {
		s.writeError(w, engine.Errorf(engine.CodeConflict, "a second factor is already enabled; disable it first"))
		return
	}
	enrol, err := s.newTOTP(a.Email)
	if err != nil {
		s.writeError(w, err)
		return
	}
	sealed, err := s.cfg.Secrets.Seal(sec.tenant, a.pendingRecordID(), []byte(enrol.Secret))
	if err != nil {
		s.writeError(w, fmt.Errorf("seal totp secret: %w", err))
		return
	}
	_, err = update(r.Context(), s, sec.tenant, kindAccount, a.ID, func(rec *accountRecord) error {
		rec.TOTPPending = sealed
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, enrol)
}

// RecoveryCodesResponse carries recovery codes, shown once.
type RecoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func (s *Service) handleTOTPVerify(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Code string `json:"code"`
	}
	sec, a, ok := s.sessionWithBody(w, r, &in)
	if !ok {
		return
	}
	if len(a.TOTP) > 0 || len(a.TOTPPending) == 0 {
		s.writeError(w, engine.Errorf(engine.CodeConflict, "no second factor is being enrolled: start with POST /v1/account/totp"))
		return
	}
	secret, err := s.cfg.Secrets.Open(a.TOTPPending, sec.tenant, a.pendingRecordID())
	if err != nil {
		s.writeError(w, fmt.Errorf("open pending totp secret: %w", err))
		return
	}
	var st int64
	err = s.reauth(r, sec.tenant, &a, errWrongCode, func() (bool, error) {
		var ok bool
		st, ok = checkTOTP(string(secret), in.Code, s.now(), 0)
		return ok, nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	a, codes, err := s.enableTOTP(r.Context(), sec.tenant, a.ID, secret, st, a.Generation)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(r.Context(), sec.tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionMFAEnabled, Target: "account:" + a.ID,
		Detail: map[string]string{"factor": "totp"}})
	writeJSON(w, http.StatusOK, RecoveryCodesResponse{RecoveryCodes: codes})
}

// secondFactorCheck re-checks a TOTP or recovery code of the signed-in
// account, consuming it.
func (s *Service) secondFactorCheck(r *http.Request, tenant string, a *accountRecord, code, recovery string) error {
	return s.reauth(r, tenant, a, errWrongCode, func() (bool, error) {
		_, _, err := s.verifySecondFactor(r.Context(), tenant, a.ID, code, recovery)
		if errors.Is(err, errBadCode) {
			return false, nil
		}
		return err == nil, err
	})
}

func (s *Service) handleTOTPDisable(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password     string `json:"password"`
		Code         string `json:"code"`
		RecoveryCode string `json:"recovery_code"`
	}
	sec, a, ok := s.sessionWithBody(w, r, &in)
	if !ok {
		return
	}
	ctx, tenant := r.Context(), sec.tenant
	if len(a.TOTP) == 0 {
		s.writeError(w, engine.Errorf(engine.CodeConflict, "no second factor is enabled"))
		return
	}
	pol, err := s.policy(ctx, tenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if pol.RequireMFA {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "this tenant's owners require a second factor for every account"))
		return
	}
	if a.PasswordHash != "" {
		if err := s.reauth(r, tenant, &a, errWrongPassword, func() (bool, error) { return s.checkPassword(&a, in.Password) }); err != nil {
			if errors.Is(err, errWrongPassword) {
				s.accountFailed(ctx, tenant, a.Email)
			}
			s.writeError(w, err)
			return
		}
		// Without a second factor the password must meet the longer
		// password-only minimum (NIST SP 800-63B: 15).
		err := s.cfg.Policy.Check(in.Password, password.Account{Email: a.Email})
		var pe *password.PolicyError
		if errors.As(err, &pe) && pe.Code == password.CodeTooShort {
			s.writeError(w, &policyError{&password.PolicyError{Code: pe.Code, Limit: pe.Limit,
				Message: fmt.Sprintf("Without a second factor your password must have at least %d characters: change it first.", pe.Limit)}})
			return
		}
	}
	if err := s.secondFactorCheck(r, tenant, &a, in.Code, in.RecoveryCode); err != nil {
		if errors.Is(err, errWrongCode) {
			s.accountFailed(ctx, tenant, a.Email)
		}
		s.writeError(w, err)
		return
	}
	_, err = update(ctx, s, tenant, kindAccount, a.ID, func(rec *accountRecord) error {
		rec.TOTP, rec.TOTPPending, rec.RecoveryHashes = nil, nil, nil
		rec.Updated = s.now().UTC()
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(ctx, tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionMFADisabled, Target: "account:" + a.ID,
		Detail: map[string]string{"factor": "totp"}})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Code string `json:"code"`
	}
	sec, a, ok := s.sessionWithBody(w, r, &in)
	if !ok {
		return
	}
	if len(a.TOTP) == 0 {
		s.writeError(w, engine.Errorf(engine.CodeConflict, "no second factor is enabled"))
		return
	}
	if in.Code == "" {
		s.writeError(w, engine.Errorf(engine.CodeInvalid, "code (a current TOTP code) is required"))
		return
	}
	if err := s.secondFactorCheck(r, sec.tenant, &a, in.Code, ""); err != nil {
		if errors.Is(err, errWrongCode) {
			s.accountFailed(r.Context(), sec.tenant, a.Email)
		}
		s.writeError(w, err)
		return
	}
	codes, hashes := newRecoveryCodes()
	if _, err := update(r.Context(), s, sec.tenant, kindAccount, a.ID, func(rec *accountRecord) error {
		rec.RecoveryHashes = hashes
		return nil
	}); err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(r.Context(), sec.tenant, AuditEvent{Actor: "account:" + a.ID, Action: ActionAdminAction, Target: "account:" + a.ID,
		Detail: map[string]string{"change": "recovery_codes_replaced"}})
	writeJSON(w, http.StatusOK, RecoveryCodesResponse{RecoveryCodes: codes})
}
