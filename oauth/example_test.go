package oauth_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/oauth"
	"github.com/slotd/slotd/persistence"
)

// Example_wiring shows how cmd/slotd puts the server between the accounts
// service and the gateway: consent asks accounts who is signed in, the
// gateway authenticates access tokens through the server, and a revoked
// grant closes its WebSockets.
func Example_wiring() {
	var (
		records persistence.RecordStore // the store, or regional.Store
		accs    *accounts.Service       // accounts.New(…)
		secret  []byte                  // 32 random bytes from the key file
		tenants gateway.Tenants         // the actor registry
		dir     gateway.Directory
	)
	if records == nil {
		return // the wiring below, with real values
	}
	var gw *gateway.Server // set before serving; OnRevoke runs only then
	srv, err := oauth.New(oauth.Config{
		Records: records,
		Accounts: oauth.AccountsFunc(func(r *http.Request) (oauth.Account, bool) {
			a, ok := accs.CurrentAccount(r)
			if !ok || a.Disabled {
				return oauth.Account{}, false
			}
			return oauth.Account{ID: a.ID, Tenant: a.Tenant, Role: string(a.Role), Name: a.Name}, true
		}),
		Secret:    secret,
		Issuer:    "https://slotd.example.com",
		SignInURL: "/signin",
		OnRevoke:  func(grant string) { gw.CloseGrant(grant) },
	})
	if err != nil {
		log.Fatal(err)
	}
	gw = gateway.New(gateway.Config{
		Tenants:   tenants,
		Directory: dir,
		Auth:      gateway.ChainAuth(gateway.NewOperatorToken("…"), accs.WSTokens(), srv),
		Sessions:  accs,
		Routes:    append(accs.Routes(), srv.Routes()...),
	})
	_ = http.ListenAndServe(":8080", gw)
}

// ExampleClientTenant: a client id names its tenant, which is where its
// records, codes and tokens live.
func ExampleClientTenant() {
	fmt.Println(oauth.ClientTenant("salon.app_4xq2mzt6b3uvy5kc7ha2ndw3pe"))
	fmt.Println(oauth.ClientTenant("app_4xq2mzt6b3uvy5kc7ha2ndw3pe"))
	// Output:
	// salon true
	//  false
}
