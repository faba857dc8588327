package accounts_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/accounts"
)

// TestWSToken checks the WebSocket token: it authenticates one connection,
// once, within 60 s, as the session's account, and not after the session
// has ended.
func TestWSToken(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)

	var tok accounts.WSTokenResponse
	b.do("POST", "/v1/ws-token", nil).want(http.StatusOK, &tok)
	if tok.ExpiresIn != 60 || !strings.HasPrefix(tok.Token, "w1.salon.") {
		t.Fatalf("token %+v", tok)
	}
	if _, err := b.dialWS(tok.Token); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := b.dialWS(tok.Token); err == nil {
		t.Fatal("a WebSocket token worked twice")
	}

	b.do("POST", "/v1/ws-token", nil).want(http.StatusOK, &tok)
	e.clock.Advance(61 * time.Second)
	if _, err := b.dialWS(tok.Token); err == nil {
		t.Fatal("a WebSocket token worked after 61 s")
	}

	b.do("POST", "/v1/ws-token", nil).want(http.StatusOK, &tok)
	b.do("POST", "/v1/sign-out", nil).want(http.StatusNoContent, nil)
	if _, err := b.dialWS(tok.Token); err == nil {
		t.Fatal("a WebSocket token worked after its session ended")
	}

	// Without a session there is no token.
	e.browser().do("POST", "/v1/ws-token", nil).wantError(http.StatusUnauthorized, "unauthorized")
	// A session cookie is no WebSocket token.
	c := e.browser()
	c.signIn("ada@example.com", goodPassword)
	if _, err := c.dialWS(c.cookie(accounts.SessionCookie)); err == nil {
		t.Fatal("the session id worked as a WebSocket token")
	}
}

// TestStoredRecordsHoldNoSecrets signs in with every factor, enrols TOTP,
// takes WebSocket tokens and starts a forced enrolment, then scans every
// stored record of the tenant for the raw session ids, passwords, TOTP
// secrets, recovery codes and tokens, in the forms they were handed out
// and decoded.
func TestStoredRecordsHoldNoSecrets(t *testing.T) {
	e := newEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	e.account("bob@example.com", accounts.RoleStaff, otherPassword)
	var secrets []string
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, codes := b.enrolTOTP()
	secrets = append(secrets, goodPassword, otherPassword, secret, b.cookie(accounts.SessionCookie), b.csrf)
	secrets = append(secrets, codes...)
	for _, c := range codes {
		secrets = append(secrets, strings.ReplaceAll(c, "-", ""))
	}
	var tok accounts.WSTokenResponse
	b.do("POST", "/v1/ws-token", nil).want(http.StatusOK, &tok)
	secrets = append(secrets, tok.Token)

	c := e.browser()
	c.signInTOTP("ada@example.com", goodPassword, map[string]string{"code": e.code(secret)}).want(http.StatusOK, nil)
	secrets = append(secrets, c.cookie(accounts.SessionCookie))
	// A challenge in flight, and a pending enrolment forced by policy.
	d := e.browser()
	d.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "ada@example.com", "password": goodPassword}).want(http.StatusOK, nil)
	secrets = append(secrets, d.cookie(accounts.ChallengeCookie))
	e.owner().do("PUT", "/v1/tenants/salon/account-policy", map[string]any{"require_mfa": true}).want(http.StatusOK, nil)
	f := e.browser()
	var forced accounts.SignInResponse
	f.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": "bob@example.com", "password": otherPassword}).want(http.StatusOK, &forced)
	secrets = append(secrets, forced.TOTP.Secret, forced.TOTP.URL, f.cookie(accounts.ChallengeCookie))

	// Each secret as text, and the random part of bearer secrets and TOTP
	// secrets decoded to bytes.
	var needles [][]byte
	for _, s := range secrets {
		if s == "" {
			t.Fatal("an empty secret: the test did not collect one")
		}
		needles = append(needles, []byte(s))
		if i := strings.LastIndexByte(s, '.'); i > 0 {
			if raw, err := base64.RawURLEncoding.DecodeString(s[i+1:]); err == nil && len(raw) >= 16 {
				needles = append(needles, raw, []byte(s[i+1:]))
			}
		}
		if raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s); err == nil && len(raw) >= 16 {
			needles = append(needles, raw)
		}
	}
	ctx := context.Background()
	kinds := []string{"account", "account_email", "account_session", "session", "signin_challenge", "signin_throttle",
		"ws_token", "oidc_state", "account_policy"}
	n, sawEmail := 0, false
	for _, kind := range kinds {
		recs, err := e.store.ListRecords(ctx, "salon", kind, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			n++
			sawEmail = sawEmail || bytes.Contains(r.Value, []byte("ada@example.com"))
			for _, hay := range [][]byte{[]byte(r.Key), r.Value} {
				for i, needle := range needles {
					if bytes.Contains(hay, needle) || bytes.Contains(bytes.ToLower(hay), bytes.ToLower(needle)) {
						t.Errorf("record %s/%s holds secret #%d in the clear", kind, r.Key, i)
					}
				}
			}
		}
	}
	if !sawEmail {
		t.Fatal("the scan did not even find the email: it is not reading the stored values")
	}
	if n < 10 {
		t.Fatalf("scanned only %d records; the test lost track of where things are stored", n)
	}
	if !strings.HasPrefix(storedField(t, e, mustID(t, e, "ada@example.com"), "password_hash"), "$argon2id$") {
		t.Error("password not stored as an Argon2id hash")
	}
}

func mustID(t *testing.T, e *env, email string) string {
	t.Helper()
	a, ok, err := e.svc.AccountByEmail(context.Background(), "salon", email)
	if err != nil || !ok {
		t.Fatalf("AccountByEmail(%s) = %v, %v", email, ok, err)
	}
	return a.ID
}
