package accounts_test

import (
	"log/slog"
	"time"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/security/password"
	"github.com/slotd/slotd/security/secrets"
)

// Example shows the wiring cmd/slotd needs: the service's routes, its
// session authenticator and its WebSocket tokens go to the gateway, and the
// gateway goes back to the service, which closes the WebSockets of ended
// sessions through it.
func Example() {
	store := memstore.New() // in slotd: the Pebble or PostgreSQL store (regional.Store)
	hasher, _ := password.New(password.Options{})
	ring, _ := secrets.ParseKeyring("k1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") // in slotd: secrets.LoadKeyring(os.Getenv)
	svc, err := accounts.New(accounts.Config{
		Records: store, Passwords: hasher, Secrets: ring,
		Audit:  nil, // in slotd: accounts.AuditLog(auditLog)
		Logger: slog.Default(), Now: time.Now,
		OIDC: []accounts.OIDCProvider{
			accounts.Google("client-id", "client-secret", "https://slotd.example.com/v1/oidc/google/callback"),
		},
	})
	if err != nil {
		panic(err)
	}
	gw := gateway.New(gateway.Config{
		Directory: store,
		Auth:      gateway.ChainAuth(gateway.NewOperatorToken("operator-token"), svc.WSTokens()),
		Sessions:  svc,
		Routes:    svc.Routes(),
	})
	svc.SetGrantCloser(gw)
	_ = gw // serve it
}
