package accounts

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/security/password"
)

// FuzzParseSecret feeds the decoder of session cookies, WebSocket tokens,
// challenges and OIDC states arbitrary input: it must never panic, and
// what it accepts must be exactly the canonical form (so that two spellings
// never name one secret).
func FuzzParseSecret(f *testing.F) {
	good := newSecret(tagSession, "salon").String()
	for _, s := range []string{good, "", "s1..", "s1.salon.", "s1.SALON." + strings.Repeat("A", 43), "s1.-a." + strings.Repeat("A", 43),
		"s1.salon." + strings.Repeat("A", 42) + "=", "s1.salon." + strings.Repeat("_", 43), "w1.salon." + strings.Repeat("A", 43),
		"s1.a.b.c", strings.Repeat("s1.", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tag := range []string{tagSession, tagChallenge, tagWSToken, tagOIDCState} {
			sec, ok := parseSecret(tag, s)
			if !ok {
				continue
			}
			if sec.String() != s {
				t.Fatalf("parseSecret(%q) accepted a non-canonical form of %q", s, sec.String())
			}
			if len(sec.secret) != secretLen {
				t.Fatalf("parseSecret(%q): %d secret bytes", s, len(sec.secret))
			}
		}
	})
}

// FuzzSessionCookie sends arbitrary cookie headers through the session
// authenticator: it must refuse them (none is a stored session) without
// panicking or logging errors.
func FuzzSessionCookie(f *testing.F) {
	h, err := password.New(password.Options{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Records: memstore.New(), Passwords: h, Secrets: nopSealer{}, Now: func() time.Time { return time.Unix(1<<31, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []string{SessionCookie + "=" + newSecret(tagSession, "salon").String(), SessionCookie + "=s1.salon.x",
		SessionCookie + "=\"s1.salon.AAAA\"", "a=b; " + SessionCookie + "=;", SessionCookie + "=s1.a\x00b." + strings.Repeat("A", 43)} {
		f.Add(c, "POST")
	}
	f.Fuzz(func(t *testing.T, cookie, method string) {
		r := httptest.NewRequest("GET", "/v1/session", nil)
		if method == "POST" || method == "DELETE" {
			r.Method = method
		}
		r.Header.Set("Cookie", cookie)
		if p, err := s.AuthenticateRequest(r); err == nil {
			t.Fatalf("cookie %q authenticated as %+v", cookie, p)
		}
		if _, ok := s.CurrentAccount(r); ok {
			t.Fatalf("cookie %q has a current account", cookie)
		}
	})
}

// FuzzRecoveryCode checks the recovery code normaliser and matcher.
func FuzzRecoveryCode(f *testing.F) {
	codes, hashes := newRecoveryCodes()
	f.Add(codes[0])
	f.Add(strings.ToUpper(codes[1]))
	f.Add("")
	f.Add("----------------")
	f.Fuzz(func(t *testing.T, code string) {
		rest, ok := useRecoveryCode(hashes, code)
		if ok && len(rest) != len(hashes)-1 {
			t.Fatalf("useRecoveryCode(%q) removed %d codes", code, len(hashes)-len(rest))
		}
		if !ok && len(rest) != len(hashes) {
			t.Fatalf("useRecoveryCode(%q) failed but changed the list", code)
		}
	})
}

// FuzzCheckTOTP feeds arbitrary codes to the TOTP check.
func FuzzCheckTOTP(f *testing.F) {
	f.Add("123456", int64(0))
	f.Add(" 12 34 56 ", int64(1<<40))
	f.Add("", int64(-1))
	f.Fuzz(func(t *testing.T, code string, last int64) {
		const secret = "JBSWY3DPEHPK3PXP"
		now := time.Unix(1<<31, 0)
		if st, ok := checkTOTP(secret, code, now, last); ok && (st <= last || st < step(now)-1 || st > step(now)+1) {
			t.Fatalf("checkTOTP(%q, last %d) accepted step %d", code, last, st)
		}
	})
}

// nopSealer is for tests that never seal.
type nopSealer struct{}

func (nopSealer) Seal(_, _ string, p []byte) ([]byte, error) { return nil, errNotForSealing }
func (nopSealer) Open(_ []byte, _, _ string) ([]byte, error) { return nil, errNotForSealing }

var errNotForSealing = errors.New("nopSealer: not for sealing")
