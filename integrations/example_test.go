package integrations_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/security/secrets"
)

func ExampleService_Disconnect() {
	ctx := context.Background()
	ring, _ := secrets.NewKeyring(secrets.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, secrets.KeySize)}) // from SLOTD_MASTER_KEYS
	svc, _ := integrations.New(integrations.Config{Records: memstore.New(), Keys: ring})

	c, _ := svc.Connect(ctx, "acme", "account:ada", integrations.NewConnection{
		Account: "ada", Provider: integrations.ICloud, Email: "ada@icloud.example",
		Credential: integrations.Credential{Username: "ada@icloud.example", Password: "abcd-efgh-ijkl-mnop"},
	})
	fmt.Println(c.Provider, c.Server, c.KeyID)
	cred, _ := svc.Credential(ctx, "acme", c.ID)
	fmt.Printf("%v %+v\n", cred, cred)

	// Apple offers no API to revoke an app-specific password: only our copy goes.
	res, _ := svc.Disconnect(ctx, "acme", c.ID, "account:ada")
	fmt.Println(res.Revocation)
	_, err := svc.Credential(ctx, "acme", c.ID)
	fmt.Println(err)
	// Output:
	// icloud https://caldav.icloud.com k1
	// Credential{[redacted]} Credential{[redacted]}
	// not_supported
	// not_found: no such connection
}
