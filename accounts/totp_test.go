package accounts_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/slotd/slotd/accounts"
)

// signInTOTP runs both sign-in steps and returns the final answer.
func (b *browser) signInTOTP(email, pw string, second map[string]string) result {
	b.e.tb.Helper()
	var resp accounts.SignInResponse
	b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": email, "password": pw}).want(http.StatusOK, &resp)
	if resp.Next != accounts.NextTOTP {
		b.e.tb.Fatalf("sign-in next %q, want %q", resp.Next, accounts.NextTOTP)
	}
	if resp.CSRFToken != "" || b.cookie(accounts.SessionCookie) != "" {
		b.e.tb.Fatal("a session started before the second factor")
	}
	return b.do("POST", "/v1/sign-in/totp", second)
}

// TestTOTPSignIn enrols TOTP and signs in with a code.
func TestTOTPSignIn(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, _ := b.enrolTOTP()
	if !e.audit.has(accounts.ActionMFAEnabled) {
		t.Errorf("audit %v, want mfa_enabled", e.audit.actions())
	}
	b2 := e.browser()
	var resp accounts.SignInResponse
	b2.signInTOTP("ada@example.com", goodPassword, map[string]string{"code": e.code(secret)}).want(http.StatusOK, &resp)
	if resp.Account == nil || !resp.Account.MFA || resp.CSRFToken == "" || b2.cookie(accounts.SessionCookie) == "" {
		t.Fatalf("second step answer %+v, want a session", resp)
	}
	if b2.cookie(accounts.ChallengeCookie) != "" {
		t.Error("challenge cookie kept after sign-in")
	}
	// A wrong code is the same generic failure as a wrong password.
	e.clock.Advance(30 * time.Second)
	b3 := e.browser()
	b3.signInTOTP("ada@example.com", goodPassword, map[string]string{"code": "000000"}).wantError(http.StatusUnauthorized, "unauthorized")
	// Codes one step old or new are accepted (clock drift), two are not.
	for _, tt := range []struct {
		skew time.Duration
		ok   bool
	}{{-60 * time.Second, false}, {+60 * time.Second, false}, {-30 * time.Second, true}, {+30 * time.Second, true}} {
		e.clock.Advance(2 * time.Minute)
		code, _ := totp.GenerateCode(secret, e.clock.Now().Add(tt.skew))
		r := e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"code": code})
		if tt.ok {
			r.want(http.StatusOK, nil)
		} else {
			r.wantError(http.StatusUnauthorized, "unauthorized")
		}
	}
}

// TestTOTPCodeIsSingleUse replays an accepted code, in sequence and
// concurrently, and an older code after a newer one.
func TestTOTPCodeIsSingleUse(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, _ := b.enrolTOTP()

	code := e.code(secret)
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"code": code}).want(http.StatusOK, nil)
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"code": code}).wantError(http.StatusUnauthorized, "unauthorized")

	// The previous step's code is still within the window, but older than
	// the one used: refused too.
	e.clock.Advance(30 * time.Second)
	newer := e.code(secret)
	older, _ := totp.GenerateCode(secret, e.clock.Now().Add(-30*time.Second))
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"code": older}).wantError(http.StatusUnauthorized, "unauthorized")
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"code": newer}).want(http.StatusOK, nil)

	// Many browsers racing with one fresh code: exactly one gets in.
	e.clock.Advance(30 * time.Second)
	code = e.code(secret)
	const n = 8
	var browsers []*browser
	for i := 0; i < n; i++ {
		c := e.browser()
		var resp accounts.SignInResponse
		c.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "ada@example.com", "password": goodPassword}).want(http.StatusOK, &resp)
		browsers = append(browsers, c)
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i, c := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.do("POST", "/v1/sign-in/totp", map[string]string{"code": code}).Status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent sign-ins with one code succeeded (%v), want exactly 1", ok, n, statuses)
	}
}

// TestRecoveryCodeIsSingleUse signs in with a recovery code, then tries
// it again; and checks that regenerated codes replace the old ones.
func TestRecoveryCodeIsSingleUse(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, codes := b.enrolTOTP()
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c] || len(c) != 19 {
			t.Fatalf("recovery codes %q: want 10 distinct xxxx-xxxx-xxxx-xxxx", codes)
		}
		seen[c] = true
	}
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"recovery_code": codes[3]}).want(http.StatusOK, nil)
	if !e.audit.has(accounts.ActionRecoveryCodeUsed) {
		t.Errorf("audit %v, want recovery_code_used", e.audit.actions())
	}
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"recovery_code": codes[3]}).wantError(http.StatusUnauthorized, "unauthorized")
	// Case and dashes do not matter.
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"recovery_code": upperNoDash(codes[4])}).want(http.StatusOK, nil)

	// New codes replace the old ones.
	var rc accounts.RecoveryCodesResponse
	b.do("POST", "/v1/account/recovery-codes", map[string]string{"code": e.code(secret)}).want(http.StatusOK, &rc)
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"recovery_code": codes[5]}).wantError(http.StatusUnauthorized, "unauthorized")
	e.browser().signInTOTP("ada@example.com", goodPassword, map[string]string{"recovery_code": rc.RecoveryCodes[0]}).want(http.StatusOK, nil)
}

func upperNoDash(s string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			continue
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// TestChallengeLimits checks that a challenge takes at most five wrong
// codes and expires.
func TestChallengeLimits(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config) { c.FreeFailures = 100 })
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, _ := b.enrolTOTP()

	c := e.browser()
	c.signInTOTP("ada@example.com", goodPassword, map[string]string{"code": "111111"}).wantError(http.StatusUnauthorized, "unauthorized")
	for i := 0; i < 4; i++ {
		c.do("POST", "/v1/sign-in/totp", map[string]string{"code": "111111"}).wantError(http.StatusUnauthorized, "unauthorized")
	}
	c.do("POST", "/v1/sign-in/totp", map[string]string{"code": e.code(secret)}).wantError(http.StatusUnauthorized, "unauthorized")

	d := e.browser()
	var resp accounts.SignInResponse
	d.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "ada@example.com", "password": goodPassword}).want(http.StatusOK, &resp)
	e.clock.Advance(5*time.Minute + time.Second)
	d.do("POST", "/v1/sign-in/totp", map[string]string{"code": e.code(secret)}).wantError(http.StatusUnauthorized, "unauthorized")
}

// TestOwnersRequireSecondFactor has an owner require a second factor: a
// staff account without one must enrol at its next sign-in, before any
// session exists, and may not turn it off.
func TestOwnersRequireSecondFactor(t *testing.T) {
	e := newEnv(t)
	e.account("staff@example.com", accounts.RoleStaff, goodPassword)
	admin := e.account("admin@example.com", accounts.RoleAdmin, goodPassword)
	_ = admin
	// Only owners may require it.
	ab := e.browser()
	ab.signIn("admin@example.com", goodPassword)
	ab.do("PUT", "/v1/tenants/salon/account-policy", map[string]any{"require_mfa": true}).wantError(http.StatusForbidden, "forbidden")
	var pol accounts.Policy
	e.owner().do("PUT", "/v1/tenants/salon/account-policy", map[string]any{"require_mfa": true}).want(http.StatusOK, &pol)
	if !pol.RequireMFA {
		t.Fatalf("policy %+v", pol)
	}

	b := e.browser()
	var resp accounts.SignInResponse
	b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "staff@example.com", "password": goodPassword}).want(http.StatusOK, &resp)
	if resp.Next != accounts.NextTOTPEnrol || resp.TOTP == nil || resp.TOTP.Secret == "" || resp.CSRFToken != "" {
		t.Fatalf("sign-in answer %+v, want a forced TOTP enrolment and no session", resp)
	}
	if b.cookie(accounts.SessionCookie) != "" {
		t.Fatal("a session started before enrolment")
	}
	// The enrolment can be fetched again (an OIDC sign-in lands on a page).
	var again accounts.SignInResponse
	b.do("GET", "/v1/sign-in/challenge", nil).want(http.StatusOK, &again)
	if again.TOTP == nil || again.TOTP.Secret != resp.TOTP.Secret {
		t.Fatalf("GET /v1/sign-in/challenge = %+v", again)
	}
	b.do("POST", "/v1/sign-in/totp", map[string]string{"code": "123456"}).wantError(http.StatusUnauthorized, "unauthorized")
	var done accounts.SignInResponse
	b.do("POST", "/v1/sign-in/totp", map[string]string{"code": e.code(resp.TOTP.Secret)}).want(http.StatusOK, &done)
	if done.CSRFToken == "" || len(done.RecoveryCodes) != 10 || done.Account == nil || !done.Account.MFA {
		t.Fatalf("enrolment answer %+v, want a session and 10 recovery codes", done)
	}
	b.csrf = done.CSRFToken
	e.clock.Advance(30 * time.Second)
	b.do("POST", "/v1/account/totp/disable", map[string]string{"password": goodPassword, "code": e.code(resp.TOTP.Secret)}).
		wantError(http.StatusForbidden, "forbidden")
	// Next time, the code is asked for.
	e.browser().signInTOTP("staff@example.com", goodPassword, map[string]string{"code": e.code(resp.TOTP.Secret)}).want(http.StatusOK, nil)
}

// TestPasswordPolicy checks the NIST rules through the API: 15 characters
// without a second factor, 8 with one, at least 64 allowed, common
// passwords refused, no composition rules.
func TestPasswordPolicy(t *testing.T) {
	e := newEnv(t)
	owner := e.owner()
	create := func(email, pw string) result {
		return owner.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": email, "role": "staff", "password": pw})
	}
	reason := func(r result, want string) {
		t.Helper()
		var body struct {
			Reason string `json:"reason"`
		}
		r.want(http.StatusBadRequest, &body)
		if body.Reason != want {
			t.Errorf("reason %q, want %q", body.Reason, want)
		}
	}
	reason(create("a@example.com", "fourteen chars"), "password_too_short")
	reason(create("a@example.com", "passwordpassword"), "password_common")
	reason(create("a@example.com", "a@example.com and more"), "password_contextual")
	create("a@example.com", "all lowercase no digits").want(http.StatusCreated, nil)
	long := "a sixty four character passphrase is fine and so is much longer!"
	if len(long) != 64 {
		t.Fatalf("len %d", len(long))
	}
	create("b@example.com", long).want(http.StatusCreated, nil)

	// With a second factor, 8 characters will do; turning the factor off
	// then needs a longer password.
	b := e.browser()
	b.signIn("a@example.com", "all lowercase no digits")
	secret, _ := b.enrolTOTP()
	var resp accounts.SignInResponse
	b.do("POST", "/v1/account/password", map[string]string{"current_password": "all lowercase no digits", "new_password": "short"}).wantError(http.StatusBadRequest, "invalid")
	b.do("POST", "/v1/account/password", map[string]string{"current_password": "all lowercase no digits", "new_password": "tangerine"}).want(http.StatusOK, &resp)
	b.csrf = resp.CSRFToken
	var body struct {
		Reason string `json:"reason"`
	}
	b.do("POST", "/v1/account/totp/disable", map[string]string{"password": "tangerine", "code": e.code(secret)}).want(http.StatusBadRequest, &body)
	if body.Reason != "password_too_short" {
		t.Errorf("disabling the second factor with a 9-character password: reason %q, want password_too_short", body.Reason)
	}
	b.do("POST", "/v1/account/password", map[string]string{"current_password": "tangerine", "new_password": "tangerine and a long tail"}).want(http.StatusOK, &resp)
	b.csrf = resp.CSRFToken
	b.do("POST", "/v1/account/totp/disable", map[string]string{"password": "wrong password entirely", "code": e.code(secret)}).wantError(http.StatusForbidden, "forbidden")
	b.do("POST", "/v1/account/totp/disable", map[string]string{"password": "tangerine and a long tail", "code": "000000"}).wantError(http.StatusForbidden, "forbidden")
	e.clock.Advance(30 * time.Second)
	b.do("POST", "/v1/account/totp/disable", map[string]string{"password": "tangerine and a long tail", "code": e.code(secret)}).want(http.StatusNoContent, nil)
	if !e.audit.has(accounts.ActionMFADisabled) {
		t.Errorf("audit %v, want mfa_disabled", e.audit.actions())
	}
	e.browser().signIn("a@example.com", "tangerine and a long tail")
}
