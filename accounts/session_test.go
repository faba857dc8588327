package accounts_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/slotd/slotd/accounts"
)

// TestSessionIDChangesAtSignIn plants a session id in the browser before
// sign-in (fixation) and checks that sign-in issues a different one and
// that the planted one, even a valid session of the victim's, is ended.
func TestSessionIDChangesAtSignIn(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	e.account("eve@example.com", accounts.RoleStaff, otherPassword)

	// An attacker signs in, and plants their own session id in Ada's
	// browser.
	eve := e.browser()
	eve.signIn("eve@example.com", otherPassword)
	planted := eve.cookie(accounts.SessionCookie)

	ada := e.browser()
	ada.setCookie(accounts.SessionCookie, planted)
	resp := ada.signIn("ada@example.com", goodPassword)
	got := ada.cookie(accounts.SessionCookie)
	if got == "" || got == planted {
		t.Fatalf("session cookie after sign-in %q, want a new id", got)
	}
	var who accounts.SignInResponse
	ada.do("GET", "/v1/session", nil).want(http.StatusOK, &who)
	if who.Account.ID != resp.Account.ID {
		t.Fatalf("signed in as %s, want %s", who.Account.ID, resp.Account.ID)
	}
	// The planted id was ended, so the attacker is not riding along.
	eve.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")

	// A made-up id is never accepted.
	mallory := e.browser()
	mallory.setCookie(accounts.SessionCookie, "s1.salon.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	mallory.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
}

// TestIdleTimeout checks that a session used within the idle timeout goes
// on, and one left idle longer ends.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	for i := 0; i < 4; i++ {
		e.clock.Advance(29 * time.Minute)
		b.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
	}
	e.clock.Advance(30*time.Minute + time.Second)
	b.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
	// And it stays ended: the record is gone.
	b.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
}

// TestAbsoluteTimeout keeps a session busy and checks that it ends 12 h
// after sign-in all the same.
func TestAbsoluteTimeout(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
		e.clock.Advance(20 * time.Minute)
		b.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
	}
	e.clock.Set(t0.Add(12 * time.Hour))
	b.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
}

// TestSessionsEndWith signs an account in on two browsers, opens a live
// WebSocket from each, then changes its password, disables it, deletes it
// or changes its role: every session must end at once and every WebSocket
// must be closed. Another account's session and socket are untouched.
func TestSessionsEndWith(t *testing.T) {
	cases := []struct {
		name   string
		action func(e *env, victim *browser, id string)
		// survivor reports whether the browser that acted keeps a (new)
		// session.
		survivor bool
		audit    string
	}{
		{"password change", func(e *env, victim *browser, id string) {
			var resp accounts.SignInResponse
			victim.do("POST", "/v1/account/password", map[string]string{"current_password": goodPassword, "new_password": otherPassword}).
				want(http.StatusOK, &resp)
			victim.csrf = resp.CSRFToken
		}, true, accounts.ActionPasswordChanged},
		{"disabled", func(e *env, _ *browser, id string) {
			e.owner().do("PATCH", "/v1/tenants/salon/accounts/"+id, map[string]any{"disabled": true}).want(http.StatusOK, nil)
		}, false, accounts.ActionAccountDisabled},
		{"deleted", func(e *env, _ *browser, id string) {
			e.owner().do("DELETE", "/v1/tenants/salon/accounts/"+id, nil).want(http.StatusNoContent, nil)
		}, false, accounts.ActionAccountDeleted},
		{"role changed", func(e *env, _ *browser, id string) {
			e.owner().do("PATCH", "/v1/tenants/salon/accounts/"+id, map[string]any{"role": "admin"}).want(http.StatusOK, nil)
		}, false, accounts.ActionRoleChanged},
		{"password set by an owner", func(e *env, _ *browser, id string) {
			e.owner().do("PATCH", "/v1/tenants/salon/accounts/"+id, map[string]any{"password": otherPassword}).want(http.StatusOK, nil)
		}, false, accounts.ActionPasswordChanged},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.account("ada@example.com", accounts.RoleStaff, goodPassword)
			e.account("bob@example.com", accounts.RoleStaff, goodPassword)
			b1, b2, bob := e.browser(), e.browser(), e.browser()
			b1.signIn("ada@example.com", goodPassword)
			b2.signIn("ada@example.com", goodPassword)
			bob.signIn("bob@example.com", goodPassword)
			ws1, ws2, wsBob := b1.openWS(), b2.openWS(), bob.openWS()

			tt.action(e, b1, a.ID)

			ws1.wantClosed(t)
			ws2.wantClosed(t)
			b2.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
			if tt.survivor {
				b1.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
				b1.openWS().wantOpen(t)
			} else {
				b1.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
			}
			bob.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
			wsBob.wantOpen(t)
			if !e.audit.has(tt.audit) {
				t.Errorf("audit %v, want %s", e.audit.actions(), tt.audit)
			}
			if tt.name == "password change" {
				// The old password no longer works; the new one does.
				e.browser().do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "ada@example.com", "password": goodPassword}).
					wantError(http.StatusUnauthorized, "unauthorized")
				e.browser().signIn("ada@example.com", otherPassword)
			}
		})
	}
}

// owner returns a browser signed in as the tenant's owner, creating it on
// first use.
func (e *env) owner() *browser {
	e.tb.Helper()
	if _, found, _ := e.svc.AccountByEmail(context.Background(), "salon", "owner@example.com"); !found {
		e.account("owner@example.com", accounts.RoleOwner, goodPassword)
	}
	b := e.browser()
	b.ip = "192.0.2.200"
	b.signIn("owner@example.com", goodPassword)
	return b
}

// TestSignOut ends the session and closes its WebSocket.
func TestSignOut(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b, other := e.browser(), e.browser()
	b.signIn("ada@example.com", goodPassword)
	other.signIn("ada@example.com", goodPassword)
	ws, wsOther := b.openWS(), other.openWS()
	r := b.do("POST", "/v1/sign-out", nil).want(http.StatusNoContent, nil)
	if c := r.Header.Get("Set-Cookie"); c == "" {
		t.Error("sign-out did not clear the cookie")
	}
	ws.wantClosed(t)
	b.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")
	other.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
	wsOther.wantOpen(t)
	if !e.audit.has(accounts.ActionSignOut) {
		t.Errorf("audit %v, want sign_out", e.audit.actions())
	}
}

// TestCSRF sends state-changing requests on a valid session the way
// another site could, and checks each is refused.
func TestCSRF(t *testing.T) {
	e := newEnv(t, func(c *accounts.Config) { c.AllowedOrigins = []string{"https://admin.salon.example"} })
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	token := b.signIn("ada@example.com", goodPassword).CSRFToken
	cases := []struct {
		name string
		hdr  []string
		want int
	}{
		{"no token", []string{accounts.CSRFHeader, ""}, http.StatusForbidden},
		{"wrong token", []string{accounts.CSRFHeader, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, http.StatusForbidden},
		{"another session's token", []string{accounts.CSRFHeader, e.otherCSRF()}, http.StatusForbidden},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site fetch", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign origin", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"null origin", []string{"Origin", "null"}, http.StatusForbidden},
		{"allowed origin", []string{"Origin", "https://admin.salon.example", "Sec-Fetch-Site", ""}, http.StatusOK},
		{"good", nil, http.StatusOK},
		{"no browser headers (not a browser)", []string{"Origin", "", "Sec-Fetch-Site", ""}, http.StatusOK},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			b.csrf = token
			r := b.do("POST", "/v1/ws-token", nil, tt.hdr...)
			if tt.want == http.StatusOK {
				r.want(http.StatusOK, nil)
			} else {
				r.wantError(tt.want, "forbidden")
			}
		})
	}
	// Safe methods need no token.
	b.csrf = ""
	b.do("GET", "/v1/session", nil).want(http.StatusOK, nil)
}

// otherCSRF is the CSRF token of another account's session.
func (e *env) otherCSRF() string {
	e.tb.Helper()
	e.account("other@example.com", accounts.RoleStaff, goodPassword)
	return e.browser().signIn("other@example.com", goodPassword).CSRFToken
}

// TestBearerTokenCannotManageTheAccount checks that a principal from a
// bearer token (here the operator) may not use the session-only routes.
func TestBearerTokenCannotManageTheAccount(t *testing.T) {
	e := newEnv(t)
	op := e.browser()
	op.bearer = operatorToken
	for _, path := range []string{"/v1/ws-token", "/v1/account/totp", "/v1/sign-out"} {
		op.do("POST", path, nil).wantError(http.StatusForbidden, "forbidden")
	}
	op.do("POST", "/v1/account/password", map[string]string{"current_password": "x", "new_password": otherPassword}).
		wantError(http.StatusForbidden, "forbidden")
}
