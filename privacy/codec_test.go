package privacy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/secrets"
)

func TestKeyStore(t *testing.T) {
	ctx := context.Background()
	ks := privacy.NewKeyStore(memstore.New())
	if _, ok, err := ks.Get(ctx, "acme", "s1"); ok || err != nil {
		t.Fatalf("Get(missing) = %v, %v; want not found", ok, err)
	}
	if got, err := ks.Put(ctx, "acme", "s1", []byte("first")); err != nil || string(got) != "first" {
		t.Fatalf("Put(new) = %q, %v", got, err)
	}
	if got, err := ks.Put(ctx, "acme", "s1", []byte("second")); err != nil || string(got) != "first" {
		t.Errorf("Put(existing) = %q, %v; want the stored key, unchanged", got, err)
	}
	if ok, err := ks.Replace(ctx, "acme", "s1", []byte("stale"), []byte("x")); ok || err != nil {
		t.Errorf("Replace(stale old) = %v, %v; want false", ok, err)
	}
	if ok, err := ks.Replace(ctx, "acme", "s1", []byte("first"), []byte("third")); !ok || err != nil {
		t.Errorf("Replace(current old) = %v, %v; want true", ok, err)
	}
	if w, ok, _ := ks.Get(ctx, "acme", "s1"); !ok || string(w) != "third" {
		t.Errorf("Get after Replace = %q, %v", w, ok)
	}
	if _, ok, _ := ks.Get(ctx, "other", "s1"); ok {
		t.Errorf("another tenant sees acme's key")
	}
	if err := secrets.NewSubjectKeys(mustKeyring(t), ks).Forget(ctx, "acme", "s1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := ks.Replace(ctx, "acme", "s1", []byte("third"), []byte("back")); ok || err != nil {
		t.Errorf("Replace(forgotten) = %v, %v; want false: a forgotten key stays forgotten", ok, err)
	}
	if w, ok, err := ks.Get(ctx, "acme", "s1"); !ok || err != nil || !secrets.IsTombstone(w) {
		t.Errorf("Get(forgotten) = %q, %v, %v; want the tombstone", w, ok, err)
	}
	if got, err := ks.Put(ctx, "acme", "s1", []byte("fresh")); err != nil || !secrets.IsTombstone(got) {
		t.Errorf("Put(forgotten) = %q, %v; want the tombstone, unchanged", got, err)
	}
}

// TestConcurrentFirstSeals: subjects' first seals race for the key; all
// of them must end up with one key, or some ciphertexts would not open.
func TestConcurrentFirstSeals(t *testing.T) {
	ctx := context.Background()
	sk := secrets.NewSubjectKeys(mustKeyring(t), privacy.NewKeyStore(memstore.New()))
	var wg sync.WaitGroup
	blobs := make([][]byte, 16)
	for i := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := sk.SealFor(ctx, "acme", "s1", "r", []byte("x"))
			if err != nil {
				t.Error(err)
			}
			blobs[i] = b
		}()
	}
	wg.Wait()
	for i, b := range blobs {
		if _, err := sk.OpenFor(ctx, "acme", "s1", "r", b); err != nil {
			t.Errorf("seal %d does not open: %v", i, err)
		}
	}
}

func TestPrepareCommand(t *testing.T) {
	ctx := context.Background()
	codec := privacy.NewCodec(mustKeyring(t), memstore.New())
	subject := func(tenant, email, claimed string) string {
		t.Helper()
		c := alice
		c.Email, c.Subject = email, claimed
		got, err := codec.PrepareCommand(ctx, tenant, engine.Book{BookingID: "b", Customer: c})
		if err != nil {
			t.Fatalf("PrepareCommand(%s, %s) = %v", tenant, email, err)
		}
		return got.(engine.Book).Customer.Subject
	}
	a := subject("acme", "alice.liddell@example.com", "")
	if !engine.ValidID(a) || !strings.HasPrefix(a, "s-") {
		t.Errorf("pseudonym %q is not an engine id", a)
	}
	if b := subject("acme", "  Alice.Liddell@EXAMPLE.com", "s-victim"); b != a {
		t.Errorf("same customer, other spelling, claimed subject: pseudonym %q, want %q", b, a)
	}
	if b := subject("globex", "alice.liddell@example.com", ""); b == a {
		t.Errorf("the same email has the same pseudonym in two tenants")
	}
	if b := subject("acme", bob.Email, ""); b == a {
		t.Errorf("two customers share a pseudonym")
	}
	if got, ok, err := codec.Subject(ctx, "acme", "ALICE.liddell@example.com"); got != a || !ok || err != nil {
		t.Errorf("Subject(alice) = %q, %v, %v; want %q", got, ok, err, a)
	}
	if _, ok, _ := codec.Subject(ctx, "acme", carol.Email); ok {
		t.Errorf("Subject(someone who never booked) found one")
	}
	// Other commands, and a Book without email, pass unchanged.
	for _, cmd := range []engine.Command{engine.Cancel{BookingID: "b"}, engine.Book{BookingID: "b"}} {
		if got, err := codec.PrepareCommand(ctx, "acme", cmd); err != nil || got != cmd {
			t.Errorf("PrepareCommand(%+v) = %+v, %v; want it unchanged", cmd, got, err)
		}
	}
	// Concurrent first bookings of one new customer agree.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := carol
			r, err := codec.PrepareCommand(ctx, "acme", engine.Book{Customer: c})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = r.(engine.Book).Customer.Subject
		}()
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] || s == "" {
			t.Fatalf("concurrent first bookings got pseudonyms %v, want one", got)
		}
	}
}

// bookingEvent is a booking_confirmed event for c.
func bookingEvent(id string, c engine.Customer) engine.Event {
	return engine.Event{Type: engine.EvBookingConfirmed, At: t0, Booking: &engine.Booking{ID: id, ServiceID: "cut", ResourceID: "anna",
		Start: at(1, 10), End: at(1, 11), BlockStart: at(1, 10), BlockEnd: at(1, 11), Customer: c, Status: engine.StatusConfirmed}}
}

func TestCodecRoundTripAndFailures(t *testing.T) {
	ctx := context.Background()
	records := memstore.New()
	codec := privacy.NewCodec(mustKeyring(t), records)
	a := alice
	a.Subject = "s-alice"
	events := []engine.Event{bookingEvent("b1", a), {Type: engine.EvBookingCancelled, At: t0, BookingID: "b1", Reason: "ill"}}
	enc, err := codec.EncodeEvents(ctx, "acme", events)
	if err != nil {
		t.Fatal(err)
	}
	if events[0].Booking.Customer != a {
		t.Errorf("EncodeEvents changed its input: %+v", events[0].Booking.Customer)
	}
	for _, s := range secretsOf(alice) {
		if bytes.Contains(enc[0], []byte(s)) {
			t.Errorf("encoded event holds %q in the clear: %s", s, enc[0])
		}
	}
	// What is stored is still an engine event (the PostgreSQL projection
	// reads it), with the customer sealed.
	stored, err := engine.DecodeEvent(enc[0])
	if err != nil || stored.Booking.Customer.Sealed == "" || stored.Booking.Customer.Subject != "s-alice" {
		t.Fatalf("stored event = %+v, %v", stored.Booking, err)
	}
	dec, err := codec.DecodeEvents(ctx, "acme", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(dec, events) {
		t.Errorf("DecodeEvents(EncodeEvents) =\n%+v\nwant\n%+v", dec, events)
	}

	// Fail closed: a customer without a pseudonym is never written.
	if _, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b2", alice)}); err == nil {
		t.Errorf("EncodeEvents(customer without pseudonym) succeeded")
	}
	// A ciphertext moved to another booking or altered does not open, and
	// that is an error, not an erasure. In another tenant, which holds no
	// key for the pseudonym, it reads as erased: never in the clear.
	moved := bytes.Replace(enc[0], []byte(`"id":"b1"`), []byte(`"id":"b9"`), 1)
	var ev map[string]any
	_ = json.Unmarshal(enc[0], &ev)
	cust := ev["booking"].(map[string]any)["customer"].(map[string]any)
	s := []byte(cust["sealed"].(string))
	s[40] ^= 1
	cust["sealed"] = string(s)
	altered, _ := json.Marshal(ev)
	for name, tc := range map[string]struct {
		tenant string
		data   []byte
	}{"moved": {"acme", moved}, "altered": {"acme", altered}} {
		if got, err := codec.DecodeEvents(ctx, tc.tenant, [][]byte{tc.data}); err == nil {
			t.Errorf("%s: DecodeEvents = %+v, want an error", name, got[0].Booking.Customer)
		}
	}
	if got, err := codec.DecodeEvents(ctx, "globex", enc[:1]); err == nil && got[0].Booking.Customer != (engine.Customer{Subject: "s-alice", Erased: true}) {
		t.Errorf("in another tenant the customer decodes as %+v", got[0].Booking.Customer)
	}

	// After Forget, the customer decodes as erased, the rest unchanged.
	if err := codec.Forget(ctx, "acme", "s-alice"); err != nil {
		t.Fatal(err)
	}
	dec, err = codec.DecodeEvents(ctx, "acme", enc)
	if err != nil {
		t.Fatal(err)
	}
	if c := dec[0].Booking.Customer; c != (engine.Customer{Subject: "s-alice", Erased: true}) {
		t.Errorf("after Forget the customer decodes as %+v, want erased", c)
	}
	if !sameJSON(dec[1], events[1]) {
		t.Errorf("after Forget the cancellation decodes as %+v", dec[1])
	}
	if rec, err := persistence.RecordStore(records).GetRecord(ctx, "acme", privacy.KindSubjectKey, "s-alice"); err != nil || !secrets.IsTombstone(rec.Value) {
		t.Errorf("subject key record after Forget: %q, %v, want the tombstone", rec.Value, err)
	}
}

// TestRotateKeys: after a new master key goes first in the keyring,
// RotateKeys re-wraps every subject key and the index salt, and then the
// old master key can be dropped with everything still readable.
func TestRotateKeys(t *testing.T) {
	ctx := context.Background()
	records := memstore.New()
	old := secrets.Key{ID: "old", Secret: bytes.Repeat([]byte{1}, 32)}
	nw := secrets.Key{ID: "new", Secret: bytes.Repeat([]byte{2}, 32)}
	ring1, _ := secrets.NewKeyring(old)
	codec := privacy.NewCodec(ring1, records)
	var enc [][]byte
	for _, c := range []engine.Customer{alice, bob} {
		cmd, err := codec.PrepareCommand(ctx, "acme", engine.Book{BookingID: "b", Customer: c})
		if err != nil {
			t.Fatal(err)
		}
		e, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b-"+c.Phone[1:3], cmd.(engine.Book).Customer)})
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, e...)
	}
	ring2, _ := secrets.NewKeyring(nw, old)
	n, err := privacy.NewCodec(ring2, records).RotateKeys(ctx, "acme")
	if err != nil || n != 3 {
		t.Fatalf("RotateKeys = %d, %v; want 2 keys and the salt", n, err)
	}
	if n, err := privacy.NewCodec(ring2, records).RotateKeys(ctx, "acme"); err != nil || n != 0 {
		t.Errorf("second RotateKeys = %d, %v; want nothing left to do", n, err)
	}
	ring3, _ := secrets.NewKeyring(nw)
	codec3 := privacy.NewCodec(ring3, records)
	dec, err := codec3.DecodeEvents(ctx, "acme", enc)
	if err != nil || dec[0].Booking.Customer.Email != alice.Email || dec[1].Booking.Customer.Email != bob.Email {
		t.Fatalf("after rotation, with the new key only: %+v, %v", dec, err)
	}
	if _, ok, err := codec3.Subject(ctx, "acme", alice.Email); !ok || err != nil {
		t.Errorf("after rotation the index salt does not open: %v, %v", ok, err)
	}
}

// countingRecords counts the reads of a RecordStore.
type countingRecords struct {
	persistence.RecordStore
	gets, lists atomic.Int64
}

func (c *countingRecords) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	c.gets.Add(1)
	return c.RecordStore.GetRecord(ctx, tenant, kind, key)
}

func (c *countingRecords) ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]persistence.Record, error) {
	c.lists.Add(1)
	return c.RecordStore.ListRecords(ctx, tenant, kind, prefix, after, limit)
}

// TestManyCustomers: with many customers the codec reads the tenant's keys
// in pages rather than one by one, and every customer, erased or not,
// comes back right after a restart.
func TestManyCustomers(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	records := &countingRecords{RecordStore: memstore.New()}
	codec := privacy.NewCodec(mustKeyring(t), records)
	r := mustRegistry(t, st, codec)
	mustDo(t, r, "acme", engine.Configure{Config: salon()})
	const n = 40
	for i := range n {
		c := engine.Customer{Name: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("c%d@example.com", i)}
		mustDo(t, r, "acme", engine.Book{BookingID: fmt.Sprintf("b%02d", i), ServiceID: "cut", ResourceID: "anna", Start: at(1+i/8, 9+i%8), Customer: c})
	}
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	if _, err := svc.Erase(ctx, "acme", "c7@example.com", "account:owner"); err != nil {
		t.Fatal(err)
	}
	live := snapshotOf(t, r, "acme")
	r.Close() // snapshot of 40 customers

	entries, err := st.ReadFrom(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([][]byte, len(entries))
	for i, e := range entries {
		raw[i] = e.Data
	}
	gets, lists := records.gets.Load(), records.lists.Load()
	evs, err := codec.DecodeEvents(ctx, "acme", raw)
	if err != nil {
		t.Fatal(err)
	}
	if g, l := records.gets.Load()-gets, records.lists.Load()-lists; g > 2 || l != 1 {
		t.Errorf("decoding %d customers made %d reads and %d listings, want a listing", n, g, l)
	}
	erased := 0
	for _, e := range evs {
		if e.Booking != nil && e.Booking.Customer.Erased {
			erased++
		} else if e.Booking != nil && !strings.HasPrefix(e.Booking.Customer.Name, "Customer ") {
			t.Errorf("booking %s decodes as %+v", e.Booking.ID, e.Booking.Customer)
		}
	}
	if erased != 1 {
		t.Errorf("%d erased customers in the journal, want 1", erased)
	}
	r = mustRegistry(t, st, codec)
	if got := snapshotOf(t, r, "acme"); !bytes.Equal(got, live) {
		t.Errorf("restart with %d customers differs:\n%s\nwant\n%s", n, got, live)
	}
}

// erasedAfterIndex is a record store on which a customer's erasure lands
// between the index entry of their first booking and its key: the
// pseudonym's key is forgotten (its tombstone written) as soon as the
// index entry is stored.
type erasedAfterIndex struct {
	persistence.RecordStore
	ring *secrets.Keyring
}

func (s erasedAfterIndex) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error) {
	v, err := s.RecordStore.PutRecord(ctx, tenant, kind, key, value, expectVersion)
	if err == nil && kind == privacy.KindSubjectIndex {
		if ferr := secrets.NewSubjectKeys(s.ring, privacy.NewKeyStore(s.RecordStore)).Forget(ctx, tenant, string(value)); ferr != nil {
			return 0, ferr
		}
	}
	return v, err
}

// TestFirstBookingRacingAnErasureIsRetryable: on a store without deferred
// writes (PostgreSQL), a first booking writes its pseudonym's index entry,
// then its key. An erasure of the customer landing in between leaves the
// key's tombstone: the booking is refused with the engine's retryable
// conflict, not an internal error, and makes no key.
func TestFirstBookingRacingAnErasureIsRetryable(t *testing.T) {
	ring := mustKeyring(t)
	st := memstore.New()
	codec := privacy.NewCodec(ring, erasedAfterIndex{RecordStore: st, ring: ring})
	book := engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice}
	_, err := codec.PrepareCommand(t.Context(), "acme", book)
	if codeOf(err) != engine.CodeConflict || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("PrepareCommand racing an erasure = %v, want the engine's retryable conflict", err)
	}
	keys, err := st.ListRecords(t.Context(), "acme", privacy.KindSubjectKey, "", "", 0)
	if err != nil || slices.ContainsFunc(keys, isKey) {
		t.Errorf("subject keys after the refused booking = %v, %v; want only tombstones", keys, err)
	}
}
