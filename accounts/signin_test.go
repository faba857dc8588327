package accounts_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slotd/slotd/accounts"
)

// TestSignInSetsExactSessionCookie signs in with a password and checks the
// session cookie attribute by attribute.
func TestSignInSetsExactSessionCookie(t *testing.T) {
	e := newEnv(t)
	a := e.account("Ada@Example.com", accounts.RoleStaff, goodPassword)
	if a.Email != "ada@example.com" {
		t.Fatalf("stored email %q, want it lower-cased", a.Email)
	}
	b := e.browser()
	r := b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": " ADA@example.COM ", "password": goodPassword})
	var resp accounts.SignInResponse
	r.want(http.StatusOK, &resp)
	if resp.Next != "" || resp.Account == nil || resp.Account.ID != a.ID || resp.CSRFToken == "" {
		t.Fatalf("sign-in answer %s, want a session for %s", r.Body, a.ID)
	}
	cookies := r.Header.Values("Set-Cookie")
	if len(cookies) != 1 {
		t.Fatalf("Set-Cookie %q, want one", cookies)
	}
	name, attrs, _ := strings.Cut(cookies[0], ";")
	n, value, _ := strings.Cut(name, "=")
	if n != accounts.SessionCookie {
		t.Fatalf("cookie name %q, want %q", n, accounts.SessionCookie)
	}
	if want := "; Path=/; HttpOnly; Secure; SameSite=Lax"; ";"+attrs != want {
		t.Errorf("cookie attributes %q, want exactly %q (no Domain, no Expires: a browser-session cookie)", ";"+attrs, want)
	}
	// s1.<tenant>.<43 base64url characters> = 256 random bits.
	parts := strings.Split(value, ".")
	if len(parts) != 3 || parts[0] != "s1" || parts[1] != "salon" || len(parts[2]) != 43 {
		t.Errorf("session id %q, want s1.salon.<256 bits>", value)
	}
	b.csrf = resp.CSRFToken
	var who accounts.SignInResponse
	b.do("GET", "/v1/session", nil).want(http.StatusOK, &who)
	if who.Account == nil || who.Account.ID != a.ID || who.CSRFToken != resp.CSRFToken {
		t.Fatalf("GET /v1/session = %+v", who)
	}
	if !e.audit.has(accounts.ActionSignIn) {
		t.Errorf("audit %v, want sign_in", e.audit.actions())
	}
}

// TestNoAccountEnumeration tries an unknown email, an unknown tenant, a
// wrong password, a disabled account and an OIDC-only account: the answers
// must be byte-for-byte the same, and each must cost exactly one password
// hash verification (a dummy one for unknown accounts), so that timing
// does not tell them apart either.
func TestNoAccountEnumeration(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	off := e.account("off@example.com", accounts.RoleStaff, goodPassword)
	if _, err := e.svc.Update(context.Background(), "salon", off.ID, "test", accounts.Change{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	e.account("sso@example.com", accounts.RoleStaff, "")
	cases := []struct{ name, path, email, pw string }{
		{"unknown email", "/v1/tenants/salon/sign-in", "nobody@example.com", goodPassword},
		{"unknown tenant", "/v1/tenants/nosuch/sign-in", "ada@example.com", goodPassword},
		{"malformed tenant", "/v1/tenants/NO_SUCH/sign-in", "ada@example.com", goodPassword},
		{"wrong password", "/v1/tenants/salon/sign-in", "ada@example.com", otherPassword},
		{"disabled account", "/v1/tenants/salon/sign-in", "off@example.com", goodPassword},
		{"account without password", "/v1/tenants/salon/sign-in", "sso@example.com", goodPassword},
		{"malformed email", "/v1/tenants/salon/sign-in", "not an email", goodPassword},
	}
	var first []byte
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			b.ip = "198.51.100." + string(rune('1'+i))
			before := e.hasher.verifies.Load()
			r := b.do("POST", tt.path, map[string]string{"email": tt.email, "password": tt.pw})
			r.wantError(http.StatusUnauthorized, "unauthorized")
			if got := e.hasher.verifies.Load() - before; got != 1 {
				t.Errorf("%d hash verifications, want exactly 1", got)
			}
			if first == nil {
				first = r.Body
			} else if string(r.Body) != string(first) {
				t.Errorf("body %s, want the same as for an unknown account: %s", r.Body, first)
			}
			if len(r.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("a failed sign-in set cookies: %q", r.Header.Values("Set-Cookie"))
			}
		})
	}
}

// TestAccountThrottleBacksOff fails sign-in for one account until it is
// throttled, and checks that the wait doubles, that the right password is
// refused while waiting, that an unknown email is throttled the same way,
// and that a success clears the count.
func TestAccountThrottleBacksOff(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	for _, email := range []string{"ada@example.com", "ghost@example.com"} {
		t.Run(email, func(t *testing.T) {
			b := e.browser()
			try := func(pw string) result {
				b.ip = "203.0.113." + string(rune('0'+int(e.clock.Now().Unix()%10))) // spread IPs: this is the account limit
				return b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": email, "password": pw})
			}
			for i := 0; i < 5; i++ {
				try(otherPassword).wantError(http.StatusUnauthorized, "unauthorized")
			}
			r := try(goodPassword).wantError(http.StatusTooManyRequests, "rate_limited")
			if r.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			e.clock.Advance(time.Second)
			try(otherPassword).wantError(http.StatusUnauthorized, "unauthorized")
			e.clock.Advance(1500 * time.Millisecond) // the wait is now 2 s
			try(otherPassword).wantError(http.StatusTooManyRequests, "rate_limited")
			e.clock.Advance(time.Second)
			try(otherPassword).wantError(http.StatusUnauthorized, "unauthorized")
			e.clock.Advance(4 * time.Second)
			if email == "ada@example.com" {
				b.signIn(email, goodPassword)
				// A success clears the failures: five free ones again.
				for i := 0; i < 5; i++ {
					try(otherPassword).wantError(http.StatusUnauthorized, "unauthorized")
				}
			}
			e.clock.Advance(time.Hour)
		})
	}
}

// TestIPThrottle fails sign-in for many accounts from one address.
func TestIPThrottle(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config) { c.IPBurst = 3; c.IPInterval = 10 * time.Second })
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.ip = "198.51.100.7"
	for i := 0; i < 3; i++ {
		b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "x" + string(rune('a'+i)) + "@example.com", "password": "x"}).
			wantError(http.StatusUnauthorized, "unauthorized")
	}
	b.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "ada@example.com", "password": goodPassword}).
		wantError(http.StatusTooManyRequests, "rate_limited")
	other := e.browser()
	other.ip = "198.51.100.8"
	other.signIn("ada@example.com", goodPassword)
	e.clock.Advance(10 * time.Second)
	b.signIn("ada@example.com", goodPassword)
}

// TestBcryptHashUpgradedAtSignIn imports an account with a bcrypt hash
// and checks that signing in works and replaces it with Argon2id.
func TestBcryptHashUpgradedAtSignIn(t *testing.T) {
	e := newEnv(t)
	a := e.account("imported@example.com", accounts.RoleStaff, "")
	bh, err := bcrypt.GenerateFromPassword([]byte(goodPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	setStoredField(t, e, a.ID, "password_hash", string(bh))
	e.browser().signIn("imported@example.com", goodPassword)
	if got := storedField(t, e, a.ID, "password_hash"); !strings.HasPrefix(got, "$argon2id$") {
		t.Fatalf("after sign-in the stored hash is %.10q…, want $argon2id$", got)
	}
	e.browser().signIn("imported@example.com", goodPassword)
	e.browser().do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "imported@example.com", "password": otherPassword}).
		wantError(http.StatusUnauthorized, "unauthorized")
}

// TestSignInRefusesCrossSite checks login CSRF: another site may not sign
// a browser in to an account of the attacker's.
func TestSignInRefusesCrossSite(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	body := map[string]string{"email": "ada@example.com", "password": goodPassword}
	b := e.browser()
	b.do("POST", "/v1/tenants/salon/sign-in", body, "Sec-Fetch-Site", "cross-site").wantError(http.StatusForbidden, "forbidden")
	b.do("POST", "/v1/tenants/salon/sign-in", body, "Sec-Fetch-Site", "same-site").wantError(http.StatusForbidden, "forbidden")
	b.do("POST", "/v1/tenants/salon/sign-in", body, "Sec-Fetch-Site", "", "Origin", "https://evil.example").wantError(http.StatusForbidden, "forbidden")
	b.do("POST", "/v1/tenants/salon/sign-in", body, "Content-Type", "text/plain").wantError(http.StatusBadRequest, "invalid")
	if b.cookie(accounts.SessionCookie) != "" {
		t.Fatal("a refused sign-in set a session cookie")
	}
	b.signIn("ada@example.com", goodPassword)
}

func ptr[T any](v T) *T { return &v }

// storedField reads a field of the stored account record.
func storedField(t *testing.T, e *env, id, field string) string {
	t.Helper()
	rec, err := e.store.GetRecord(context.Background(), "salon", "account", id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Value, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[field].(string)
	return s
}

// setStoredField rewrites a field of the stored account record, as an
// import would.
func setStoredField(t *testing.T, e *env, id, field string, v any) {
	t.Helper()
	ctx := context.Background()
	rec, err := e.store.GetRecord(ctx, "salon", "account", id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Value, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = v
	j, _ := json.Marshal(m)
	if _, err := e.store.PutRecord(ctx, "salon", "account", id, j, rec.Version); err != nil {
		t.Fatal(err)
	}
}
