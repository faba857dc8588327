package privacy_test

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// The tests in this file are about one class of bug: a slotd instance
// acting on a state that another instance's erasure has made stale.
// Several instances serve one tenant over one store; each has its own
// registry, codec and privacy service, as separate processes would, and
// they share the store (journal, snapshots, subject keys, email index) and
// the tenant's audit log.

// instance is one slotd instance over a shared store.
type instance struct {
	r     *actors.Registry
	codec *privacy.Codec
	svc   *privacy.Service
}

// newInstance starts an instance on st, with its own codec over st's
// records; closed at the end of the test unless closed before.
func newInstance(t *testing.T, st *snapshotLog, ring *secrets.Keyring, log *audit.Log) *instance {
	t.Helper()
	codec := privacy.NewCodec(ring, st.Store)
	r := mustRegistry(t, st, codec)
	return &instance{r: r, codec: codec, svc: mustService(t, r, codec, log)}
}

// head returns the journal position of the tenant's state on r.
func head(t *testing.T, r *actors.Registry) uint64 {
	t.Helper()
	var seq uint64
	if err := r.Read(t.Context(), "acme", func(_ *engine.State, s uint64) error { seq = s; return nil }); err != nil {
		t.Fatal(err)
	}
	return seq
}

// caughtUp wakes r's actor as the store's notification (or the poll) would
// and waits until it has followed the journal to seq.
func caughtUp(t *testing.T, r *actors.Registry, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		r.Notify("acme")
		got := head(t, r)
		if got >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance is at seq %d a second after it was notified, want %d", got, seq)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// erasedTenant is the tenant on a shared store: Alice (b1, rescheduled;
// b3, cancelled) and Bob (b2) booked through instance A; instance B has
// loaded the tenant and holds Alice in the clear in memory.
type erasedTenant struct {
	st      *snapshotLog
	ring    *secrets.Keyring
	log     *audit.Log
	a, b    *instance
	subject string           // Alice's pseudonym
	before  []engine.Booking // the history before her erasure
}

func newErasedTenant(t *testing.T) *erasedTenant {
	t.Helper()
	e := &erasedTenant{st: &snapshotLog{Store: mustPebble(t, t.TempDir())}, ring: mustKeyring(t)}
	e.log, _ = mustAudit(t)
	e.a = newInstance(t, e.st, e.ring, e.log)
	e.b = newInstance(t, e.st, e.ring, e.log)
	mustDo(t, e.a.r, "acme", engine.Configure{Config: salon()})
	first := mustDo(t, e.a.r, "acme", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice})
	e.subject = first.Booking.Customer.Subject
	mustDo(t, e.a.r, "acme", engine.Book{BookingID: "b2", ServiceID: "cut", ResourceID: "ben", Start: at(1, 10), Customer: bob})
	mustDo(t, e.a.r, "acme", engine.Book{BookingID: "b3", ServiceID: "class", ResourceID: "room", Start: at(2, 9), Customer: alice})
	mustDo(t, e.a.r, "acme", engine.Reschedule{BookingID: "b1", Start: at(1, 12)})
	mustDo(t, e.a.r, "acme", engine.Cancel{BookingID: "b3", Reason: "ill"})
	e.before = bookings(t, e.a.r, "acme")
	if got := bookings(t, e.b.r, "acme"); !sameJSON(got, e.before) || !slices.ContainsFunc(got, func(b engine.Booking) bool { return b.Customer.Email == alice.Email }) {
		t.Fatalf("instance B loaded %+v, want %+v with Alice in the clear", got, e.before)
	}
	return e
}

// erase erases Alice through instance A and returns the journal head
// after it.
func (e *erasedTenant) erase(t *testing.T) uint64 {
	t.Helper()
	rec, err := e.a.svc.Erase(t.Context(), "acme", alice.Email, "account:owner")
	if err != nil {
		t.Fatalf("Erase on A = %v", err)
	}
	if !slices.Equal(rec.Subjects, []string{e.subject}) || !slices.Equal(rec.Bookings, []string{"b1", "b3"}) {
		t.Fatalf("Erase on A = %+v, want subject %s and bookings b1 b3", rec, e.subject)
	}
	return head(t, e.a.r)
}

// assertErased checks what an instance serves after Alice's erasure: her
// bookings with {Subject, Erased} only, every booking's times, resources
// and statuses as before, Bob intact; her export empty; the tenant's
// export without her. extra are bookings made since, left unchecked.
func (e *erasedTenant) assertErased(t *testing.T, name string, in *instance, extra ...string) {
	t.Helper()
	ctx := t.Context()
	var got []engine.Booking
	for _, b := range bookings(t, in.r, "acme") {
		if !slices.Contains(extra, b.ID) {
			got = append(got, b)
		}
	}
	if len(got) != len(e.before) {
		t.Fatalf("%s: %d bookings, want %d", name, len(got), len(e.before))
	}
	for _, b := range got {
		i := slices.IndexFunc(e.before, func(w engine.Booking) bool { return w.ID == b.ID })
		if i < 0 {
			t.Errorf("%s: booking %s was not there before the erasure", name, b.ID)
			continue
		}
		want := e.before[i]
		if want.Customer.Subject == e.subject {
			want.Customer = engine.Customer{Subject: e.subject, Erased: true}
		}
		if !sameJSON(b, want) {
			t.Errorf("%s: booking %s =\n%+v\nwant\n%+v", name, b.ID, b, want)
		}
	}
	for _, w := range e.before {
		if w.Customer.Subject != e.subject {
			continue
		}
		id := w.ID
		var b engine.Booking
		_ = in.r.Read(ctx, "acme", func(st *engine.State, _ uint64) error { b, _ = st.Booking(id); return nil })
		if c := b.Customer; !c.Erased || c.Name != "" || c.Email != "" || c.Phone != "" {
			t.Errorf("%s: booking %s has customer %+v, want erased", name, id, c)
		}
	}
	exp, err := in.svc.ExportCustomer(ctx, "acme", alice.Email, "account:owner")
	if err != nil {
		t.Fatalf("%s: ExportCustomer = %v", name, err)
	}
	for _, b := range exp.Bookings {
		if !slices.Contains(extra, b.ID) {
			t.Errorf("%s: Alice's export holds booking %s: %+v", name, b.ID, b)
		}
	}
	if len(extra) == 0 { // the export names the email asked for, and nothing else of hers
		if len(exp.Subjects) != 0 || len(exp.Bookings) != 0 {
			t.Errorf("%s: Alice's export = %s, want no pseudonym and no booking", name, mustJSON(t, exp))
		}
		exp.Email = ""
		assertAbsent(t, name+": Alice's export", mustJSON(t, exp), secretsOf(alice)...)
	}
	tenant, err := in.svc.ExportTenant(ctx, "acme", "account:owner")
	if err != nil {
		t.Fatalf("%s: ExportTenant = %v", name, err)
	}
	js := mustJSON(t, tenant)
	if len(extra) == 0 {
		assertAbsent(t, name+": the tenant's export", js, secretsOf(alice)...)
	}
	if !strings.Contains(js, bob.Email) {
		t.Errorf("%s: the tenant's export lost Bob", name)
	}
}

// assertNoKey fails if the erased pseudonym has a key in the store.
func (e *erasedTenant) assertNoKey(t *testing.T) {
	t.Helper()
	keys, err := e.st.ListRecords(t.Context(), "acme", privacy.KindSubjectKey, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(keys, func(r persistence.Record) bool { return r.Key == e.subject && isKey(r) }) {
		t.Errorf("erased subject %s has a key again", e.subject)
	}
}

// TestInstanceFollowingAnErasureServesNoneOfIt: Alice is erased through
// instance A while instance B holds her in the clear in memory. Once B has
// followed the journal (woken as the store's notification or the poll
// wakes it; the test never reloads B), nothing B serves names her: not a
// booking read, not her export, not the tenant's export. Her bookings'
// history stays as it was. (Before B has followed, plain reads still see
// her; what serves personal data reads the latest state:
// TestLaggingInstanceServesNoErasedCustomer.)
func TestInstanceFollowingAnErasureServesNoneOfIt(t *testing.T) {
	e := newErasedTenant(t)
	seq := e.erase(t)
	caughtUp(t, e.b.r, seq)
	e.assertErased(t, "instance B", e.b)
	e.assertErased(t, "instance A", e.a)
}

// TestLaggingInstanceServesNoErasedCustomer: after Alice's erasure through
// instance A, instance B has not followed the journal (no notification, no
// poll yet) and still holds her in the clear. What B serves of customers'
// personal data must not name her all the same: her export, the tenant's
// export, and the latest reads the gateway's booking reads use
// (Registry.ReadLatest) follow the journal first.
func TestLaggingInstanceServesNoErasedCustomer(t *testing.T) {
	ctx := t.Context()
	e := newErasedTenant(t)
	seq := e.erase(t)
	if head(t, e.b.r) >= seq {
		t.Fatal("B followed the erasure unasked")
	}
	exp, err := e.b.svc.ExportCustomer(ctx, "acme", alice.Email, "account:owner")
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Bookings) != 0 {
		t.Errorf("B: Alice's export = %s, want no booking", mustJSON(t, exp))
	}
	tenant, err := e.b.svc.ExportTenant(ctx, "acme", "account:owner")
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, "B: the tenant's export", mustJSON(t, tenant), secretsOf(alice)...)
	var list []engine.Booking
	var readAt uint64
	if err := e.b.r.ReadLatest(ctx, "acme", func(st *engine.State, s uint64) error {
		list, readAt = st.Bookings(time.Time{}, time.Time{}), s
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if readAt != seq {
		t.Errorf("B's latest read is at seq %d, want %d", readAt, seq)
	}
	assertAbsent(t, "B: a latest read of the bookings", mustJSON(t, list), secretsOf(alice)...)
	e.assertErased(t, "instance B", e.b)
}

// TestInstanceStoppingBehindAnErasureStoresNoReadableSnapshot: instance B,
// behind Alice's erasure through A, stops. Its last snapshot is sealed in
// its actor, where keys may be created: it must follow the journal first
// (and her key's tombstone refuses a new key in any case). No snapshot
// stored shows her readable, her pseudonym has no key, and the last one
// includes the erasure.
func TestInstanceStoppingBehindAnErasureStoresNoReadableSnapshot(t *testing.T) {
	e := newErasedTenant(t)
	seq := e.erase(t)
	if head(t, e.b.r) >= seq {
		t.Fatal("B followed the erasure unasked")
	}
	e.b.r.Close()
	(&heldSnapshot{st: e.st, codec: e.a.codec}).assertB1NeverReadable(t)
	e.assertNoKey(t)
	e.st.mu.Lock()
	var last uint64
	if n := len(e.st.saved); n > 0 {
		last = e.st.saved[n-1].Seq
	}
	e.st.mu.Unlock()
	if last != seq {
		t.Errorf("B's last snapshot is at seq %d, want %d (after following the erasure)", last, seq)
	}
}

// TestLaggingWriteDoesNotRekeyAnErasedCustomer: instance B, behind Alice's
// erasure through A, reschedules her booking. Sealing it would need a key
// for her erased pseudonym: the tombstone refuses one, B reads the journal
// and decides again, and the reschedule is stored with her erased. Her
// pseudonym never gets a key back.
func TestLaggingWriteDoesNotRekeyAnErasedCustomer(t *testing.T) {
	e := newErasedTenant(t)
	if seq := e.erase(t); head(t, e.b.r) >= seq {
		t.Fatal("B followed the erasure unasked")
	}
	rep := mustDo(t, e.b.r, "acme", engine.Reschedule{BookingID: "b1", Start: at(1, 14)})
	if c := rep.Booking.Customer; !c.Erased || c.Name != "" || !rep.Booking.Start.Equal(at(1, 14)) {
		t.Errorf("B's reschedule = %+v, want b1 at 14:00 with its customer erased", rep.Booking)
	}
	e.assertNoKey(t)
	caughtUp(t, e.a.r, rep.Seq)
	e.before[slices.IndexFunc(e.before, func(b engine.Booking) bool { return b.ID == "b1" })] = *rep.Booking
	e.assertErased(t, "instance A", e.a)
	e.assertErased(t, "instance B", e.b)
}

// TestLaggingInstanceBooksTheErasedEmailAfresh: after Alice's erasure
// through A, instance B, which has not followed it, books her email again.
// Its append loses to A's erasure; it catches up and decides again. The
// booking gets a new pseudonym, her old bookings stay erased, and her
// export on either instance holds the new booking only.
func TestLaggingInstanceBooksTheErasedEmailAfresh(t *testing.T) {
	ctx := t.Context()
	e := newErasedTenant(t)
	if seq := e.erase(t); head(t, e.b.r) >= seq {
		t.Fatal("B followed the erasure unasked")
	}
	rep := mustDo(t, e.b.r, "acme", engine.Book{BookingID: "b4", ServiceID: "cut", ResourceID: "anna", Start: at(3, 10), Customer: alice})
	fresh := rep.Booking.Customer.Subject
	if fresh == "" || fresh == e.subject || rep.Booking.Customer.Email != alice.Email {
		t.Fatalf("the new booking's customer = %+v, want Alice under a new pseudonym (the erased one is %s)", rep.Booking.Customer, e.subject)
	}
	caughtUp(t, e.a.r, rep.Seq)
	for name, in := range map[string]*instance{"instance A": e.a, "instance B": e.b} {
		e.assertErased(t, name, in, "b4")
		exp, err := in.svc.ExportCustomer(ctx, "acme", alice.Email, "account:owner")
		if err != nil {
			t.Fatal(err)
		}
		if len(exp.Bookings) != 1 || exp.Bookings[0].ID != "b4" || exp.Bookings[0].Customer.Name != alice.Name ||
			!slices.Equal(exp.Subjects, []string{fresh}) {
			t.Errorf("%s: Alice's export = %s, want booking b4 under %s only", name, mustJSON(t, exp), fresh)
		}
	}
	e.assertNoKey(t)
}

// TestBookingRacingAnotherInstancesErasureIsRetryable: B looks up Alice's
// pseudonym while instance A's erasure of it is durable but has not yet
// unlinked her email (Service.Erase between its steps 2 and 4). B's
// booking under the erased pseudonym is refused with the documented
// retryable conflict, stores nothing, and the retry, once the erasure is
// complete, books her under a new pseudonym.
func TestBookingRacingAnotherInstancesErasureIsRetryable(t *testing.T) {
	ctx := t.Context()
	e := newErasedTenant(t)
	mustDo(t, e.a.r, "acme", engine.EraseSubject{Subject: e.subject}) // step 2 of Erase, on A
	erasedAt := head(t, e.a.r)
	book := engine.Book{BookingID: "b4", ServiceID: "cut", ResourceID: "anna", Start: at(3, 10), Customer: alice}
	_, err := e.b.r.Do(ctx, "acme", book)
	if codeOf(err) != engine.CodeConflict || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("B's booking under the erased pseudonym = %v, want a retryable conflict", err)
	}
	if got := head(t, e.b.r); got != erasedAt {
		t.Errorf("after the refused booking B is at seq %d, want %d (the erasure, nothing more)", got, erasedAt)
	}
	// A's erasure completes: a retry of Erase finishes what was started.
	if _, err := e.a.svc.Erase(ctx, "acme", alice.Email, "account:owner"); err != nil {
		t.Fatalf("Erase = %v", err)
	}
	e.assertErased(t, "instance B", e.b)
	rep, err := e.b.r.Do(ctx, "acme", book)
	if err != nil {
		t.Fatalf("the retried booking = %v", err)
	}
	if c := rep.Booking.Customer; c.Subject == e.subject || c.Name != alice.Name {
		t.Errorf("the retried booking's customer = %+v, want Alice under a new pseudonym", c)
	}
	e.assertNoKey(t)
}

// TestSnapshotAfterAnotherInstancesErasureKeepsItErased: B follows A's
// erasure of Alice, then stops, storing a snapshot of its state. A fresh
// instance C loads the tenant from that snapshot: Alice is not readable on
// C, and her bookings' history, and Bob's booking, are all there. No
// snapshot stored shows her, and her pseudonym has no key.
func TestSnapshotAfterAnotherInstancesErasureKeepsItErased(t *testing.T) {
	e := newErasedTenant(t)
	seq := e.erase(t)
	caughtUp(t, e.b.r, seq)
	e.b.r.Close() // a stopping actor snapshots its state
	snap, tail, err := e.st.Load(t.Context(), "acme")
	if err != nil || snap.Seq != seq || len(tail) != 0 {
		t.Fatalf("Load = snapshot at %d, %d entries after it, %v; want B's snapshot at %d", snap.Seq, len(tail), err, seq)
	}
	(&heldSnapshot{st: e.st, codec: e.a.codec}).assertB1NeverReadable(t) // every snapshot st saved
	e.assertNoKey(t)
	c := newInstance(t, e.st, e.ring, e.log)
	e.assertErased(t, "instance C", c)
	if got, want := snapshotOf(t, c.r, "acme"), snapshotOf(t, e.a.r, "acme"); !bytes.Equal(got, want) {
		t.Errorf("C loaded\n%s\nA holds\n%s", got, want)
	}
}

// TestLaggingInstancesSnapshotCopyIsDroppedAfterAnotherInstancesErasure:
// instance B copies its state for a snapshot (Alice in the clear); before
// the copy is sealed, instance A erases her. B has not followed: it
// reschedules her booking; sealing it meets her key's tombstone, so B
// reads the journal and decides again (the reschedule answers her erased).
// Her pseudonym then gets a key by some other path (rekey: nothing in
// slotd can make one since the tombstone), so the copy could be sealed
// under it, readable: B must drop it, since the reload counts as an
// erasure since the copy. Then a fresh instance C loads the tenant: Alice
// is not readable, the history stays.
func TestLaggingInstancesSnapshotCopyIsDroppedAfterAnotherInstancesErasure(t *testing.T) {
	h := holdSnapshot(t) // instance B is h.r
	log, _ := mustAudit(t)
	a := newInstance(t, h.st, h.ring, log)
	before := bookings(t, a.r, "acme")
	rec, err := a.svc.Erase(t.Context(), "acme", alice.Email, "account:owner")
	if err != nil || !slices.Equal(rec.Subjects, []string{h.subject}) {
		t.Fatalf("Erase on A = %+v, %v; want subject %s", rec, err, h.subject)
	}
	if got := head(t, h.r); got != 3 {
		t.Fatalf("B is at seq %d, want 3 (behind A's erasure)", got)
	}
	rep := mustDo(t, h.r, "acme", engine.Reschedule{BookingID: "b1", Start: at(1, 12)})
	if c := rep.Booking.Customer; !c.Erased || c.Name != "" {
		t.Errorf("B's reschedule answered customer %+v, want erased", c)
	}
	h.rekey(t)
	h.release(t)
	h.assertB1NeverReadable(t)
	e := &erasedTenant{st: h.st, subject: h.subject, before: before}
	e.before[slices.IndexFunc(before, func(b engine.Booking) bool { return b.ID == "b1" })] = *rep.Booking // rescheduled
	e.assertErased(t, "instance C", newInstance(t, h.st, h.ring, log))
}

// TestConcurrentErasuresOnTwoInstances: A and B erase Alice at once. Both
// succeed, as a repeated erasure does (TestEraseIsIdempotent): between
// them her bookings are reported erased once, and the other finds nothing
// more to erase. Afterwards neither instance serves her, her email leads
// nowhere, both erasures are in the audit log, and a restart replays to
// the same state.
func TestConcurrentErasuresOnTwoInstances(t *testing.T) {
	ctx := t.Context()
	e := newErasedTenant(t)
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		receipts [2]privacy.Receipt
		errs     [2]error
	)
	for i, in := range []*instance{e.a, e.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			receipts[i], errs[i] = in.svc.Erase(ctx, "acme", alice.Email, "account:owner")
		}()
	}
	close(start)
	wg.Wait()
	var erased []string
	for i, rec := range receipts {
		if errs[i] != nil {
			t.Fatalf("Erase on instance %d = %v", i, errs[i])
		}
		if len(rec.Subjects) > 1 || (len(rec.Subjects) == 1 && rec.Subjects[0] != e.subject) || (len(rec.Subjects) == 0 && len(rec.Bookings) > 0) {
			t.Errorf("Erase on instance %d = %+v, want subject %s or nothing", i, rec, e.subject)
		}
		erased = append(erased, rec.Bookings...)
	}
	slices.Sort(erased)
	if !slices.Equal(erased, []string{"b1", "b3"}) {
		t.Errorf("the receipts erased %v between them, want b1 and b3 once", erased)
	}
	seq := max(head(t, e.a.r), head(t, e.b.r))
	caughtUp(t, e.a.r, seq)
	caughtUp(t, e.b.r, seq)
	e.assertErased(t, "instance A", e.a)
	e.assertErased(t, "instance B", e.b)
	e.assertNoKey(t)
	if s, ok, err := e.a.codec.Subject(ctx, "acme", alice.Email); err != nil || ok {
		t.Errorf("Alice's email still leads to %q (%v)", s, err)
	}
	entries, err := e.log.Entries(ctx, "acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Action == audit.ActionErasure {
			n++
		}
		assertAbsent(t, "audit entry", en.String(), secretsOf(alice)...)
	}
	if n != 2 {
		t.Errorf("%d erasures in the audit log, want 2", n)
	}
	if _, err := e.log.Verify(ctx, "acme", nil); err != nil {
		t.Errorf("audit log does not verify: %v", err)
	}
	live := snapshotOf(t, e.a.r, "acme")
	if got := snapshotOf(t, e.b.r, "acme"); !bytes.Equal(got, live) {
		t.Errorf("B holds\n%s\nA holds\n%s", got, live)
	}
	e.a.r.Close()
	e.b.r.Close()
	c := newInstance(t, e.st, e.ring, e.log)
	if got := snapshotOf(t, c.r, "acme"); !bytes.Equal(got, live) {
		t.Errorf("the restart loaded\n%s\nwant\n%s", got, live)
	}
	e.assertErased(t, "instance C", c)
	(&heldSnapshot{st: e.st, codec: c.codec}).assertB1NeverReadable(t)
}

// TestLaggingInstanceAnswersARepeatedRequestWithTheErasure: a request
// repeated with its idempotency key stores nothing, so nothing makes the
// instance answering it check that its copy of the booking is current.
// Instance B knows a reschedule made through A; A then erases Alice; the
// same reschedule sent to B, which has not followed the erasure, is
// answered as a duplicate with her booking erased, not from B's memory.
func TestLaggingInstanceAnswersARepeatedRequestWithTheErasure(t *testing.T) {
	e := newErasedTenant(t)
	move := engine.Reschedule{BookingID: "b1", Start: at(1, 15), IdempotencyKey: "k-move"}
	first := mustDo(t, e.a.r, "acme", move)
	caughtUp(t, e.b.r, first.Seq)
	seq := e.erase(t)
	if head(t, e.b.r) >= seq {
		t.Fatal("B followed the erasure unasked")
	}
	rep := mustDo(t, e.b.r, "acme", move)
	if !rep.Duplicate || rep.Booking == nil {
		t.Fatalf("the repeated reschedule on B = %+v, want a duplicate with the booking", rep)
	}
	if c := rep.Booking.Customer; !c.Erased || c.Name != "" || c.Email != "" || c.Phone != "" {
		t.Errorf("the repeated reschedule on B answered customer %+v, want erased", c)
	}
	if !rep.Booking.Start.Equal(at(1, 15)) {
		t.Errorf("the repeated reschedule on B answered start %s, want %s", rep.Booking.Start, at(1, 15))
	}
}

// TestKeyForgottenWithoutErasureRefusesOnlyThatChange: Alice's key is
// forgotten but the journal shows no erasure and her email still leads to
// her pseudonym (as after restoring a tenant's journal and index from
// before her erasure). A new booking for her under that pseudonym can
// never be stored, and reading the journal does not help: that one command
// is refused with a conflict that says what to do, while the commands
// committed with it in the same batches are stored (a change to her
// existing booking among them: read back, it shows her erased). Erasing
// her again brings the journal into line, and she can book again, under a
// new pseudonym.
func TestKeyForgottenWithoutErasureRefusesOnlyThatChange(t *testing.T) {
	ctx := t.Context()
	e := newErasedTenant(t)
	if err := e.a.codec.Forget(ctx, "acme", e.subject); err != nil {
		t.Fatal(err)
	}
	carol := engine.Customer{Name: "Carol Vine", Email: "carol.vine@example.org"}
	cmds := []engine.Command{
		engine.Book{BookingID: "b6", ServiceID: "cut", ResourceID: "anna", Start: at(3, 10), Customer: alice},
		engine.Reschedule{BookingID: "b1", Start: at(1, 16)}, // Alice's
		engine.Reschedule{BookingID: "b2", Start: at(1, 16)}, // Bob's
		engine.Book{BookingID: "b4", ServiceID: "cut", ResourceID: "ben", Start: at(2, 10), Customer: carol},
		engine.Book{BookingID: "b5", ServiceID: "cut", ResourceID: "anna", Start: at(2, 10), Customer: bob},
	}
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.a.r.Do(ctx, "acme", cmd)
		}()
	}
	wg.Wait()
	if codeOf(errs[0]) != engine.CodeConflict || !strings.Contains(errs[0].Error(), "erase the customer again") {
		t.Errorf("booking for Alice = %v, want a conflict saying to erase her again", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("command %d (%T) = %v, want it stored", i+1, cmds[i+1], err)
		}
	}
	e.assertNoKey(t)
	if _, err := e.a.svc.Erase(ctx, "acme", alice.Email, "account:owner"); err != nil {
		t.Fatalf("erasing Alice again = %v", err)
	}
	rep := mustDo(t, e.a.r, "acme", cmds[0])
	if c := rep.Booking.Customer; c.Name != alice.Name || c.Subject == e.subject || c.Subject == "" {
		t.Errorf("booking for Alice after erasing her again = %+v, want her under a new pseudonym", c)
	}
	var b1 engine.Booking
	if err := e.a.r.ReadLatest(ctx, "acme", func(st *engine.State, _ uint64) error { b1, _ = st.Booking("b1"); return nil }); err != nil {
		t.Fatal(err)
	}
	if c := b1.Customer; !c.Erased || c.Name != "" || !b1.Start.Equal(at(1, 16)) {
		t.Errorf("b1 = %+v, want moved to 16:00 with Alice erased", b1)
	}
	e.assertNoKey(t)
}
