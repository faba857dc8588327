package accounts_test

import (
	"net/http"
	"testing"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/security/password"
)

// BenchmarkSignInFailure measures failed sign-ins with the production
// Argon2id parameters, for an unknown account and for a known one with a
// wrong password. The two should take the same time (a dummy hash stands
// in for the missing account); compare them with
//
//	go test -run '^$' -bench SignInFailure -count 10 ./accounts | benchstat -col /case -
func BenchmarkSignInFailure(b *testing.B) {
	prod, err := password.New(password.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, func(c *accounts.Config) {
		c.Passwords = prod
		c.FreeFailures = 1 << 30
		c.IPBurst = 1 << 30
	})
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	for _, bc := range []struct{ name, email string }{{"case=unknown", "nobody@example.com"}, {"case=known", "ada@example.com"}} {
		b.Run(bc.name, func(b *testing.B) {
			br := e.browser()
			for b.Loop() {
				r := br.do("POST", "/v1/tenants/salon/sign-in", map[string]string{"email": bc.email, "password": otherPassword})
				if r.Status != http.StatusUnauthorized {
					b.Fatalf("status %d", r.Status)
				}
			}
		})
	}
}
