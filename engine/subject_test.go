package engine_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
)

// customerOf is a customer with a pseudonym, as the actors' privacy hook
// gives it.
func customerOf(name, subject string) engine.Customer {
	return engine.Customer{Name: name, Email: strings.ToLower(name) + "@example.com", Phone: "+44 20 7946 0001", Subject: subject}
}

// withoutCustomer is b with its customer cleared, to compare the rest.
func withoutCustomer(b engine.Booking) engine.Booking {
	b.Customer = engine.Customer{}
	return b
}

func TestEraseSubject(t *testing.T) {
	f := newFixture(t)
	alice, bob := customerOf("Alice", "s-alice"), customerOf("Bob", "s-bob")
	f.apply(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: alice, IdempotencyKey: "k1"}, now0)
	f.apply(engine.Book{BookingID: "b2", ServiceID: "cut", ResourceID: "bob", Start: tue(10, 0), Customer: bob}, now0)
	f.apply(engine.Book{BookingID: "b3", ServiceID: "class", ResourceID: "room", Start: tue(11, 0), Customer: alice}, now0)
	f.apply(engine.Book{BookingID: "b4", ServiceID: "massage", ResourceID: "alice", Start: tue(14, 0), Customer: alice}, now0)
	f.apply(engine.Cancel{BookingID: "b3", Reason: "ill"}, now0)
	f.apply(engine.Reschedule{BookingID: "b4", Start: tue(15, 0)}, now0)
	legacy := ada // booked before pseudonyms existed: no subject
	legacy.Email = "alice@example.com"
	f.apply(engine.Book{BookingID: "b5", ServiceID: "class", ResourceID: "room", Start: tue(12, 0), Customer: legacy}, now0)
	f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(16, 0)}, now0)

	before := f.s.Bookings(tue(0, 0), tue(23, 59))
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}
	slotsBefore := MustAvailability(t, f.s, q, now0)

	res := f.apply(engine.EraseSubject{Subject: "s-alice"}, now0)
	if len(res.Events) != 1 || res.Events[0].Type != engine.EvSubjectErased || res.Events[0].Subject != "s-alice" ||
		!slices.Equal(res.Events[0].BookingIDs, []string{"b1", "b3", "b4"}) {
		t.Fatalf("EraseSubject(s-alice) = %+v, want one subject_erased of b1, b3, b4", res.Events)
	}
	after := f.s.Bookings(tue(0, 0), tue(23, 59))
	if len(after) != len(before) {
		t.Fatalf("%d bookings after erasure, want %d", len(after), len(before))
	}
	erased := engine.Customer{Subject: "s-alice", Erased: true}
	for i, b := range after {
		// Times, resource, service, status, reason: all as before.
		if !sameJSON(withoutCustomer(b), withoutCustomer(before[i])) {
			t.Errorf("booking %s changed beyond its customer:\nbefore %+v\nafter  %+v", b.ID, before[i], b)
		}
		want := before[i].Customer
		if want.Subject == "s-alice" {
			want = erased
		}
		if b.Customer != want {
			t.Errorf("booking %s customer = %+v, want %+v", b.ID, b.Customer, want)
		}
	}
	if slotsAfter := MustAvailability(t, f.s, q, now0); !sameJSON(slotsAfter, slotsBefore) {
		t.Errorf("erasure changed availability:\nbefore %s\nafter  %s", describeSlots(slotsBefore), describeSlots(slotsAfter))
	}
	if !f.s.SubjectErased("s-alice") || f.s.SubjectErased("s-bob") {
		t.Errorf("SubjectErased(s-alice, s-bob) = %v, %v; want true, false", f.s.SubjectErased("s-alice"), f.s.SubjectErased("s-bob"))
	}

	// Idempotent: nothing left to erase, no event.
	snap := MustSnapshot(t, f.s)
	if res := f.apply(engine.EraseSubject{Subject: "s-alice"}, now0); len(res.Events) != 0 {
		t.Errorf("second EraseSubject = %+v, want no events", res.Events)
	}
	if !bytes.Equal(snap, MustSnapshot(t, f.s)) {
		t.Errorf("second EraseSubject changed the state")
	}
	// The retried keyed booking still answers with its (erased) booking.
	retry := engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: alice, IdempotencyKey: "k1"}
	if r := f.apply(retry, now0); !r.Duplicate || r.Booking.Customer != erased {
		t.Errorf("retry of b1 = %+v, want a duplicate with the erased customer", r)
	}
	// The erased pseudonym is never reused; a new one is fine.
	f.fail(engine.Book{BookingID: "b6", ServiceID: "cut", ResourceID: "alice", Start: tue(9, 0), Customer: alice}, now0, engine.CodeConflict)
	f.apply(engine.Book{BookingID: "b6", ServiceID: "cut", ResourceID: "alice", Start: tue(9, 0), Customer: customerOf("Alice", "s-alice-2")}, now0)
	// An erased booking can still be moved and cancelled; it stays erased.
	if r := f.apply(engine.Reschedule{BookingID: "b1", Start: tue(16, 30)}, now0); r.Booking.Customer != erased {
		t.Errorf("rescheduled erased booking has customer %+v", r.Booking.Customer)
	}
	f.apply(engine.Cancel{BookingID: "b1"}, now0)
	// A subject without bookings is recorded as erased all the same.
	if res := f.apply(engine.EraseSubject{Subject: "s-nobody"}, now0); len(res.Events) != 1 || len(res.Events[0].BookingIDs) != 0 {
		t.Errorf("EraseSubject(s-nobody) = %+v, want one event without bookings", res.Events)
	}
	f.fail(engine.Book{BookingID: "b7", ServiceID: "cut", ResourceID: "bob", Start: tue(9, 0), Customer: customerOf("Nobody", "s-nobody")}, now0, engine.CodeConflict)
	f.fail(engine.EraseSubject{}, now0, engine.CodeInvalid)
	f.fail(engine.EraseSubject{Subject: "no spaces"}, now0, engine.CodeInvalid)

	live := MustSnapshot(t, f.s)
	if replayed := MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(live, replayed) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", live, replayed)
	}
	restored := MustRestore(t, f.s)
	if got := MustSnapshot(t, restored); !bytes.Equal(live, got) {
		t.Errorf("restore differs:\nlive     %s\nrestored %s", live, got)
	}
	if !restored.SubjectErased("s-nobody") {
		t.Errorf("restored state forgot that s-nobody was erased")
	}
	if !bytes.Contains(live, []byte("alice@example.com")) {
		t.Errorf("the legacy booking b5 (no subject) should keep its customer")
	}
}

// A journal codec may give an old booking another pseudonym when it reads
// it back; the event's booking list still anonymises it.
func TestSubjectErasedMatchesListedBookings(t *testing.T) {
	f := newFixture(t)
	f.apply(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: customerOf("Alice", "s-a")}, now0)
	e := f.apply(engine.EraseSubject{Subject: "s-a"}, now0).Events[0]

	s := engine.NewState("acme")
	for _, ev := range f.events[:len(f.events)-1] {
		if ev.Booking != nil {
			b := *ev.Booking
			b.Customer.Subject = "s-other"
			ev.Booking = &b
		}
		if err := s.Evolve(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Evolve(e); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Booking("b1"); b.Customer != (engine.Customer{Subject: "s-a", Erased: true}) {
		t.Errorf("b1 customer = %+v, want erased as s-a", b.Customer)
	}
}

func TestBookChecksSubject(t *testing.T) {
	f := newFixture(t)
	for _, c := range []engine.Customer{
		customerOf("Alice", "has space"),
		customerOf("Alice", strings.Repeat("s", 65)),
		{Name: "Alice", Email: "alice@example.com", Subject: "s1", Erased: true},
		{Name: "Alice", Email: "alice@example.com", Subject: "s1", Sealed: "c2VhbGVk"},
	} {
		f.fail(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: c}, now0, engine.CodeInvalid)
	}
	// Engine-level bookings need no subject at all.
	f.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
}

// With a pseudonym, the idempotency fingerprint is of the pseudonym, not of
// the customer's details: a fingerprint in the journal must not let anyone
// confirm a guess of an erased customer's name or email.
func TestFingerprintUsesTheSubject(t *testing.T) {
	fp := func(c engine.Customer) string {
		f := newFixture(t)
		res := f.apply(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: c, IdempotencyKey: "k"}, now0)
		return res.Events[0].Idem.Fingerprint
	}
	a, b := customerOf("Alice", "s1"), customerOf("Alicia", "s1")
	b.Phone = ""
	if fp(a) != fp(b) {
		t.Errorf("fingerprints differ for one subject with other details")
	}
	a.Subject, b.Subject = "", ""
	if fp(a) == fp(b) {
		t.Errorf("fingerprints without a subject ignore the customer's details")
	}
	// A retry under the same key and pseudonym is the same request.
	f := newFixture(t)
	first := engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: customerOf("Alice", "s1"), IdempotencyKey: "k"}
	f.apply(first, now0)
	again := first
	again.Customer.Name = "Alice L."
	if r := f.apply(again, now0); !r.Duplicate {
		t.Errorf("retry with the same subject = %+v, want a duplicate", r)
	}
	again.Customer.Subject = "s2"
	f.fail(again, now0, engine.CodeIdemReused)
}

func TestSnapshotWithCustomerFunc(t *testing.T) {
	f := newFixture(t)
	f.apply(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: customerOf("Alice", "s1")}, now0)
	f.apply(engine.Book{BookingID: "b2", ServiceID: "cut", ResourceID: "bob", Start: tue(10, 0), Customer: customerOf("Bob", "s2")}, now0)
	f.apply(engine.ImportBusy{ResourceID: "bob", Source: "gcal", Blocks: []engine.Interval{{Start: tue(15, 0), End: tue(16, 0)}}}, now0)
	f.apply(engine.EraseSubject{Subject: "s2"}, now0)
	plain := MustSnapshot(t, f.s)

	// A toy "sealing": the details move into Sealed, reversed.
	rev := func(s string) string { r := []rune(s); slices.Reverse(r); return string(r) }
	seal := func(b engine.Booking) (engine.Customer, error) {
		c := b.Customer
		if c.Erased {
			return c, nil
		}
		return engine.Customer{Subject: c.Subject, Sealed: rev(c.Name + "|" + c.Email + "|" + c.Phone)}, nil
	}
	open := func(b engine.Booking) (engine.Customer, error) {
		c := b.Customer
		if c.Sealed == "" {
			return c, nil
		}
		parts := strings.Split(rev(c.Sealed), "|")
		return engine.Customer{Name: parts[0], Email: parts[1], Phone: parts[2], Subject: c.Subject}, nil
	}
	sealed, err := f.s.MarshalSnapshotWith(seal)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("alice@example.com")) || !bytes.Contains(plain, []byte("alice@example.com")) {
		t.Errorf("MarshalSnapshotWith(seal) left the email in the bytes, or MarshalSnapshot lost it")
	}
	if !bytes.Equal(plain, MustSnapshot(t, f.s)) {
		t.Errorf("MarshalSnapshotWith changed the state")
	}
	r, err := engine.RestoreStateWith("acme", sealed, open)
	if err != nil {
		t.Fatal(err)
	}
	if got := MustSnapshot(t, r); !bytes.Equal(got, plain) {
		t.Errorf("RestoreStateWith(MarshalSnapshotWith) differs:\nwant %s\ngot  %s", plain, got)
	}
	if busy := r.Busy(); len(busy) != 1 || busy[0].ResourceID != "bob" || busy[0].Source != "gcal" || len(busy[0].Blocks) != 1 {
		t.Errorf("Busy() = %+v, want bob's gcal block", busy)
	}
	boom := errors.New("boom")
	if _, err := f.s.MarshalSnapshotWith(func(engine.Booking) (engine.Customer, error) { return engine.Customer{}, boom }); !errors.Is(err, boom) {
		t.Errorf("MarshalSnapshotWith(failing) = %v, want boom", err)
	}
	if _, err := engine.RestoreStateWith("acme", sealed, func(engine.Booking) (engine.Customer, error) { return engine.Customer{}, boom }); !errors.Is(err, boom) {
		t.Errorf("RestoreStateWith(failing) = %v, want boom", err)
	}
	// A state that never erased anyone snapshots exactly as before subjects
	// existed.
	if s := MustSnapshot(t, newFixture(t).s); bytes.Contains(s, []byte(`"erased"`)) {
		t.Errorf("snapshot without erasures mentions them: %s", s)
	}
}
