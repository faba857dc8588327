package privacy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/secrets"
)

// TestDeferToJournalOnlyForOneLog: writes are deferred only when the
// records store is the journal store itself, and it can defer.
func TestDeferToJournalOnlyForOneLog(t *testing.T) {
	a, b := mustPebble(t, t.TempDir()), mustPebble(t, t.TempDir())
	mem := memstore.New()
	if !privacy.NewCodec(mustKeyring(t), a).DeferToJournal(a) {
		t.Error("DeferToJournal(the records' own Pebble store) = false")
	}
	if privacy.NewCodec(mustKeyring(t), a).DeferToJournal(b) {
		t.Error("DeferToJournal(another Pebble store) = true")
	}
	if privacy.NewCodec(mustKeyring(t), mem).DeferToJournal(mem) {
		t.Error("DeferToJournal(memstore, which cannot defer) = true")
	}
}

// TestDeferredCustomersSurvivePowerLoss books new customers through a
// deferring codec on a Pebble store whose file system loses what was not
// synced, cuts the power, and reopens: every acknowledged booking's
// customer opens in the clear (their key survived with the booking) and a
// new booking by the same email gets the same pseudonym (the index entry
// survived too).
func TestDeferredCustomersSurvivePowerLoss(t *testing.T) {
	for _, unsynced := range []int{0, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			st, err := pebble.Open("/db", pebble.Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			ring := mustKeyring(t)
			codec := privacy.NewCodec(ring, st)
			if !codec.DeferToJournal(st) {
				t.Fatal("DeferToJournal = false")
			}
			r := mustRegistry(t, st, codec)
			mustDo(t, r, "acme", engine.Configure{Config: salon()})
			const n = 12
			customer := func(i int) engine.Customer {
				return engine.Customer{Name: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("c%d@example.com", i)}
			}
			subjects := map[string]string{}
			for i := range n {
				rep := mustDo(t, r, "acme", engine.Book{BookingID: fmt.Sprintf("b%d", i), ServiceID: "cut", ResourceID: "anna",
					Start: at(1+i/8, 9+i%8), Customer: customer(i)})
				subjects[rep.Booking.ID] = rep.Booking.Customer.Subject
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(uint64(unsynced), 7))})
			r.Close()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			st2, err := pebble.Open("/db", pebble.Options{FS: crashed})
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			codec2 := privacy.NewCodec(ring, st2)
			codec2.DeferToJournal(st2)
			r2 := mustRegistry(t, st2, codec2)
			defer r2.Close() // before st2
			got := bookings(t, r2, "acme")
			if len(got) != n {
				t.Fatalf("%d bookings after power loss, want the %d acknowledged", len(got), n)
			}
			for _, b := range got {
				var i int
				fmt.Sscanf(b.ID, "b%d", &i)
				if b.Customer.Email != customer(i).Email || b.Customer.Erased || b.Customer.Subject != subjects[b.ID] {
					t.Errorf("booking %s after power loss has customer %+v, want %s in the clear with subject %s",
						b.ID, b.Customer, customer(i).Email, subjects[b.ID])
				}
			}
			rep := mustDo(t, r2, "acme", engine.Book{BookingID: "again", ServiceID: "cut", ResourceID: "ben", Start: at(1, 9), Customer: customer(3)})
			if rep.Booking.Customer.Subject != subjects["b3"] {
				t.Errorf("a returning customer got pseudonym %s after power loss, want %s", rep.Booking.Customer.Subject, subjects["b3"])
			}
		})
	}
}

// TestDeferredFirstBookingsAgree: many first bookings of one customer at
// once, through the one-write path, all get the same pseudonym, and it
// has one key.
func TestDeferredFirstBookingsAgree(t *testing.T) {
	st := mustPebble(t, t.TempDir())
	codec := privacy.NewCodec(mustKeyring(t), st)
	if !codec.DeferToJournal(st) {
		t.Fatal("DeferToJournal = false")
	}
	const n = 24
	subjects := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cmd, err := codec.PrepareCommand(t.Context(), "acme", engine.Book{BookingID: fmt.Sprintf("b%d", i), Customer: alice})
			if err != nil {
				t.Errorf("PrepareCommand %d: %v", i, err)
				return
			}
			subjects[i] = cmd.(engine.Book).Customer.Subject
		})
	}
	wg.Wait()
	for i, s := range subjects {
		if s == "" || s != subjects[0] {
			t.Fatalf("subjects %v: booking %d got %q, want one pseudonym for all", subjects, i, s)
		}
	}
	keys, err := st.ListRecords(t.Context(), "acme", privacy.KindSubjectKey, "", "", 0)
	if err != nil || len(keys) != 1 || keys[0].Key != subjects[0] {
		t.Fatalf("subject keys %v, %v; want exactly one, for %s", keys, err, subjects[0])
	}
}

// keyCountingStore counts the subject key reads that reach the store.
type keyCountingStore struct {
	*pebble.Store
	keyGets atomic.Int64
}

func (s *keyCountingStore) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	if kind == privacy.KindSubjectKey {
		s.keyGets.Add(1)
	}
	return s.Store.GetRecord(ctx, tenant, kind, key)
}

// TestMintedKeySealedWithoutARead: a new customer's key, made while
// preparing their booking, is handed to the seal of that booking, which
// then reads no key from the store; a returning customer's key is read.
// Forgetting the subject in between drops the handed-over key.
func TestMintedKeySealedWithoutARead(t *testing.T) {
	ctx := t.Context()
	st := &keyCountingStore{Store: mustPebble(t, t.TempDir())}
	codec := privacy.NewCodec(mustKeyring(t), st)
	if !codec.DeferToJournal(st) {
		t.Fatal("DeferToJournal = false")
	}
	prepare := func(id string, c engine.Customer) engine.Customer {
		t.Helper()
		cmd, err := codec.PrepareCommand(ctx, "acme", engine.Book{BookingID: id, Customer: c})
		if err != nil {
			t.Fatalf("PrepareCommand(%s) = %v", id, err)
		}
		return cmd.(engine.Book).Customer
	}
	roundTrip := func(id string, c engine.Customer) engine.Customer {
		t.Helper()
		enc, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent(id, c)})
		if err != nil {
			t.Fatalf("EncodeEvents(%s) = %v", id, err)
		}
		dec, err := codec.DecodeEvents(ctx, "acme", enc)
		if err != nil {
			t.Fatalf("DecodeEvents(%s) = %v", id, err)
		}
		return dec[0].Booking.Customer
	}

	first := prepare("b1", alice)
	if _, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b1", first)}); err != nil {
		t.Fatal(err)
	}
	if n := st.keyGets.Load(); n != 0 {
		t.Errorf("sealing a new customer's booking read %d subject keys from the store, want 0", n)
	}
	if got := roundTrip("b1", first); got.Name != alice.Name || got.Email != alice.Email || got.Erased {
		t.Errorf("new customer opened as %+v, want %s", got, alice.Name)
	}

	st.keyGets.Store(0)
	again := prepare("b2", alice)
	if again.Subject != first.Subject {
		t.Fatalf("returning customer got pseudonym %s, want %s", again.Subject, first.Subject)
	}
	if _, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b2", again)}); err != nil {
		t.Fatal(err)
	}
	if n := st.keyGets.Load(); n != 1 {
		t.Errorf("sealing a returning customer's booking read %d subject keys, want 1", n)
	}

	bob := engine.Customer{Name: "Bob", Email: "bob@example.com"}
	b := prepare("b3", bob)
	if err := codec.Forget(ctx, "acme", b.Subject); err != nil {
		t.Fatal(err)
	}
	st.keyGets.Store(0)
	if _, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b3", b)}); !errors.Is(err, secrets.ErrShredded) || !errors.Is(err, actors.ErrBehindJournal) {
		t.Fatalf("sealing for a subject forgotten after preparing = %v, want secrets.ErrShredded and actors.ErrBehindJournal", err)
	}
	if n := st.keyGets.Load(); n != 1 {
		t.Errorf("sealing for a subject forgotten after preparing read %d subject keys, want 1 (the handed-over key dropped)", n)
	}
}

// TestLeftoverMintedKeyNotReused: a key made while preparing a booking
// that was then refused is left in the codec. It must not seal the same
// customer's next booking, which finds their pseudonym in the index: if
// the customer was forgotten meanwhile through another codec on the store
// (which cannot drop this codec's leftover), the seal must meet the
// tombstone, not seal their details under the forgotten key.
func TestLeftoverMintedKeyNotReused(t *testing.T) {
	ctx := t.Context()
	ring := mustKeyring(t)
	st := mustPebble(t, t.TempDir())
	codec := privacy.NewCodec(ring, st)
	if !codec.DeferToJournal(st) {
		t.Fatal("DeferToJournal = false")
	}
	prepare := func(id string) engine.Customer {
		t.Helper()
		cmd, err := codec.PrepareCommand(ctx, "acme", engine.Book{BookingID: id, Customer: alice})
		if err != nil {
			t.Fatalf("PrepareCommand(%s) = %v", id, err)
		}
		return cmd.(engine.Book).Customer
	}
	first := prepare("b1") // refused after preparing: never sealed
	if err := privacy.NewCodec(ring, st).Forget(ctx, "acme", first.Subject); err != nil {
		t.Fatal(err)
	}
	again := prepare("b2")
	if again.Subject != first.Subject {
		t.Fatalf("the returning customer got pseudonym %s, want %s (the index still names it)", again.Subject, first.Subject)
	}
	if _, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b2", again)}); !errors.Is(err, secrets.ErrShredded) {
		t.Fatalf("sealing for the forgotten customer with a key left over = %v, want secrets.ErrShredded", err)
	}
}
