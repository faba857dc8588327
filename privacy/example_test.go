package privacy_test

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// The wiring: the codec goes into the registry (which then seals every
// customer at rest and gives each a pseudonym), the service on top answers
// erasure and export requests.
func Example() {
	ctx := context.Background()
	ring, _ := secrets.NewKeyring(secrets.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, secrets.KeySize)}) // from SLOTD_MASTER_KEYS
	journal, keys := memstore.New(), memstore.New()                                                        // keys: a store of their own
	codec := privacy.NewCodec(ring, keys)
	reg := actors.NewRegistry(actors.Config{Store: journal, Codec: codec})
	defer reg.Close()
	skey, vkey, _ := audit.GenerateKey("example")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	auditLog, _ := audit.New(audit.NewMemoryStore(), audit.Options{Signer: signer, Verifier: verifier})
	svc, _ := privacy.NewService(privacy.Config{Tenants: reg, Codec: codec, Audit: auditLog})

	cfg := salon()
	_, _ = reg.Do(ctx, "acme", engine.Configure{Config: cfg})
	tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 10*time.Hour)
	_, err := reg.Do(ctx, "acme", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: tomorrow,
		Customer: engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com"}})
	fmt.Println("booked:", err == nil)

	rec, err := svc.Erase(ctx, "acme", "Ada@Example.com", "account:owner")
	fmt.Println("erased bookings:", rec.Bookings, err)
	_ = reg.Read(ctx, "acme", func(st *engine.State, _ uint64) error {
		b, _ := st.Booking("b1")
		fmt.Printf("b1: %s at %s, erased %v, name %q\n", b.Status, b.ResourceID, b.Customer.Erased, b.Customer.Name)
		return nil
	})
	// Output:
	// booked: true
	// erased bookings: [b1] <nil>
	// b1: confirmed at anna, erased true, name ""
}
