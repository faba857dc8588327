package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// maxBody bounds the JSON bodies of the accounts routes.
const maxBody = 64 << 10

// Routes returns the HTTP API, for gateway.Config.Routes. Routes with a
// permission are authenticated by the gateway (bearer token, or the session
// cookie through AuthenticateRequest, which checks CSRF); public ones
// (sign-in) check what they need themselves.
func (s *Service) Routes() []gateway.ExtraRoute {
	r := func(pattern string, perm gateway.Permission, h http.HandlerFunc) gateway.ExtraRoute {
		return gateway.ExtraRoute{Route: gateway.Route{Pattern: pattern, Perm: perm}, Handler: h}
	}
	return []gateway.ExtraRoute{
		// Signing in and out.
		r("POST /v1/tenants/{tenant}/sign-in", 0, s.handleSignIn),
		r("GET /v1/sign-in/challenge", 0, s.handleChallenge),
		r("POST /v1/sign-in/totp", 0, s.handleSignInTOTP),
		r("GET /v1/tenants/{tenant}/sign-in/oidc/{provider}", 0, s.handleOIDCStart),
		r("GET /v1/oidc/{provider}/callback", 0, s.handleOIDCCallback),
		r("GET /v1/session", gateway.PermStaff, s.handleSession),
		r("POST /v1/sign-out", gateway.PermStaff, s.handleSignOut),
		r("POST /v1/ws-token", gateway.PermStaff, s.handleWSToken),
		// The signed-in account's own settings.
		r("POST /v1/account/password", gateway.PermStaff, s.handleChangePassword),
		r("POST /v1/account/totp", gateway.PermStaff, s.handleTOTPBegin),
		r("POST /v1/account/totp/verify", gateway.PermStaff, s.handleTOTPVerify),
		r("POST /v1/account/totp/disable", gateway.PermStaff, s.handleTOTPDisable),
		r("POST /v1/account/recovery-codes", gateway.PermStaff, s.handleRecoveryCodes),
		// Managing a tenant's accounts (owners; admins for staff accounts).
		r("GET /v1/tenants/{tenant}/accounts", gateway.PermAdmin, s.handleListAccounts),
		r("POST /v1/tenants/{tenant}/accounts", gateway.PermAdmin, s.handleCreateAccount),
		r("GET /v1/tenants/{tenant}/accounts/{account}", gateway.PermAdmin, s.handleGetAccount),
		r("PATCH /v1/tenants/{tenant}/accounts/{account}", gateway.PermAdmin, s.handleUpdateAccount),
		r("DELETE /v1/tenants/{tenant}/accounts/{account}", gateway.PermAdmin, s.handleDeleteAccount),
		r("GET /v1/tenants/{tenant}/account-policy", gateway.PermAdmin, s.handleGetPolicy),
		r("PUT /v1/tenants/{tenant}/account-policy", gateway.PermAdmin, s.handlePutPolicy),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is the gateway's error JSON, with the password policy's reason
// code beside it when a password was refused.
type errorBody struct {
	Error  *engine.Error `json:"error"`
	Reason string        `json:"reason,omitempty"`
}

// rateLimited is a throttled attempt; Retry-After says when to try again.
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string { return "rate limited" }

func (s *Service) writeError(w http.ResponseWriter, err error) {
	var (
		ee *engine.Error
		pe *policyError
		rl *rateLimited
	)
	body := errorBody{}
	switch {
	case errors.As(err, &pe):
		body.Error = engine.Errorf(engine.CodeInvalid, "%s", pe.pe.Message)
		body.Reason = pe.pe.Code
	case errors.As(err, &rl):
		secs := int64(rl.wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		body.Error = engine.Errorf(engine.CodeRateLimited, "too many failed attempts; try again in %d s", secs)
	case errors.As(err, &ee):
		body.Error = ee
		if ee.Code == engine.CodeInternal {
			s.log.Error("internal error", "err", err)
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		body.Error = engine.Errorf(engine.CodeUnavailable, "the request timed out; it may still complete")
	default:
		s.log.Error("internal error", "err", err)
		body.Error = engine.Errorf(engine.CodeInternal, "internal error")
	}
	writeJSON(w, gateway.HTTPStatus(body.Error.Code), body)
}

// decode reads a JSON body of at most maxBody bytes into v; unknown fields
// are refused, so a typo does not silently do nothing.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return engine.Errorf(engine.CodeInvalid, "send a JSON body with Content-Type: application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return engine.Errorf(engine.CodeTooLarge, "body over %d bytes", maxBody)
		}
		return engine.Errorf(engine.CodeInvalid, "malformed JSON body")
	}
	if _, err := dec.Token(); err != io.EOF {
		return engine.Errorf(engine.CodeInvalid, "one JSON value only")
	}
	return nil
}

// actor names the principal for the audit log.
func actor(p gateway.Principal) string {
	if p.Perm == gateway.PermOperator {
		return "operator"
	}
	if p.Subject == "" {
		return ""
	}
	return "account:" + p.Subject
}
