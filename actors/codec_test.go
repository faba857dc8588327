package actors_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence/memstore"
)

// wrapCodec stores the default JSON base64-encoded behind a "wrap:" tag,
// so a test can tell that every byte in the store went through it. It can
// be made to fail, and it counts its calls.
type wrapCodec struct {
	failEncode, failDecode atomic.Bool
	encodes, snaps         atomic.Int64
}

const wrapTag = "wrap:"

func (c *wrapCodec) wrap(b []byte) []byte {
	return []byte(wrapTag + base64.StdEncoding.EncodeToString(b))
}

func (c *wrapCodec) unwrap(b []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(b), wrapTag)
	if !ok {
		return nil, errors.New("not wrapped")
	}
	return base64.StdEncoding.DecodeString(s)
}

func (c *wrapCodec) EncodeEvents(ctx context.Context, tenant string, events []engine.Event) ([][]byte, error) {
	if c.failEncode.Load() {
		return nil, errors.New("injected encode failure")
	}
	c.encodes.Add(1)
	out, err := actors.JSONCodec{}.EncodeEvents(ctx, tenant, events)
	for i := range out {
		out[i] = c.wrap(out[i])
	}
	return out, err
}

func (c *wrapCodec) DecodeEvents(ctx context.Context, tenant string, data [][]byte) ([]engine.Event, error) {
	if c.failDecode.Load() {
		return nil, errors.New("injected decode failure")
	}
	plain := make([][]byte, len(data))
	for i, d := range data {
		p, err := c.unwrap(d)
		if err != nil {
			return nil, err
		}
		plain[i] = p
	}
	return actors.JSONCodec{}.DecodeEvents(ctx, tenant, plain)
}

func (c *wrapCodec) EncodeSnapshot(ctx context.Context, tenant string, st *engine.Snapshot, inActor bool) ([]byte, error) {
	c.snaps.Add(1)
	b, err := actors.JSONCodec{}.EncodeSnapshot(ctx, tenant, st, inActor)
	return c.wrap(b), err
}

func (c *wrapCodec) DecodeSnapshot(ctx context.Context, tenant string, data []byte) (*engine.State, error) {
	if c.failDecode.Load() {
		return nil, errors.New("injected decode failure")
	}
	p, err := c.unwrap(data)
	if err != nil {
		return nil, err
	}
	return actors.JSONCodec{}.DecodeSnapshot(ctx, tenant, p)
}

// preparingCodec also prepares commands: it gives every customer the
// pseudonym "p-" + the local part of their email, or refuses a customer
// from example.org.
type preparingCodec struct {
	wrapCodec
	prepared atomic.Int64
}

func (c *preparingCodec) Prepares(cmd engine.Command) bool {
	_, ok := cmd.(engine.Book)
	return ok
}

func (c *preparingCodec) PrepareCommand(_ context.Context, tenant string, cmd engine.Command) (engine.Command, error) {
	c.prepared.Add(1)
	b, ok := cmd.(engine.Book)
	if !ok {
		return cmd, nil
	}
	local, domain, _ := strings.Cut(b.Customer.Email, "@")
	if domain == "example.org" {
		return nil, engine.Errorf(engine.CodeForbidden, "no bookings from example.org in %s", tenant)
	}
	b.Customer.Subject = "p-" + local
	return b, nil
}

// assertAllWrapped fails unless every journal entry and the snapshot of
// tenant in st went through the codec.
func assertAllWrapped(t *testing.T, st *memstore.Store, tenant string) {
	t.Helper()
	snap, _, err := st.Load(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Data != nil && !bytes.HasPrefix(snap.Data, []byte(wrapTag)) {
		t.Errorf("snapshot at %d was not encoded by the codec: %.60s", snap.Seq, snap.Data)
	}
	entries, err := st.ReadFrom(context.Background(), tenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !bytes.HasPrefix(e.Data, []byte(wrapTag)) {
			t.Errorf("journal entry %d was not encoded by the codec: %.60s", e.Seq, e.Data)
		}
	}
}

// TestCodecAtRest: with a codec every stored byte is the codec's, and a
// tenant reloaded from snapshot and journal through it is the tenant that
// was live, byte for byte.
func TestCodecAtRest(t *testing.T) {
	st := memstore.New()
	codec := &wrapCodec{}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec, SnapshotEvery: 3})
	mustConfigure(t, r, "salon")
	for i, at := range starts(t, "alice", 5) {
		mustDo(t, r, "salon", bookCut(fmt.Sprintf("b%d", i), "alice", at))
	}
	mustDo(t, r, "salon", engine.Cancel{BookingID: "b1"})
	live, seq := snapshotOf(t, r, "salon")
	r.Close()
	if codec.encodes.Load() == 0 || codec.snaps.Load() == 0 {
		t.Fatalf("codec encoded %d batches and %d snapshots, want some of each", codec.encodes.Load(), codec.snaps.Load())
	}
	assertAllWrapped(t, st, "salon")

	r2 := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	got, seq2 := snapshotOf(t, r2, "salon")
	if !bytes.Equal(got, live) || seq2 != seq {
		t.Errorf("reloaded through the codec at %d:\n%s\nwant at %d:\n%s", seq2, got, seq, live)
	}
	// The default codec cannot read what this one wrote: proof that the
	// reload above really went through it.
	r3 := mustRegistry(t, actors.Config{Store: st})
	if _, err := r3.Do(context.Background(), "salon", bookCut("x", "bob", slotAt(t, "bob", 1, 9))); codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do on a store written by another codec = %v, want unavailable", err)
	}
}

// TestCodecFollow: an instance following another's journal decodes the
// new entries with its codec.
func TestCodecFollow(t *testing.T) {
	st := memstore.New()
	codec := &wrapCodec{}
	a := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	b := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	mustConfigure(t, a, "salon")
	confirmed(t, b, "salon")
	mustDo(t, a, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 10)))
	b.Notify("salon")
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := confirmed(t, b, "salon"); len(got) != 1 {
			return errors.New("b has not followed a's booking yet")
		}
		return nil
	})
}

// TestCodecFailures: a batch the codec cannot encode is not stored and is
// answered unavailable; a tenant it cannot decode does not load.
func TestCodecFailures(t *testing.T) {
	st := memstore.New()
	codec := &wrapCodec{}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	mustConfigure(t, r, "salon")
	at := slotAt(t, "alice", 1, 10)
	codec.failEncode.Store(true)
	if _, err := r.Do(context.Background(), "salon", bookCut("b1", "alice", at)); codeOf(err) != engine.CodeUnavailable {
		t.Fatalf("Do with a failing encoder = %v, want unavailable", err)
	}
	codec.failEncode.Store(false)
	if got := confirmed(t, r, "salon"); len(got) != 0 {
		t.Fatalf("after a failed encode the actor has bookings %+v, want none", got)
	}
	mustDo(t, r, "salon", bookCut("b1", "alice", at)) // the slot is still free

	codec.failDecode.Store(true)
	r2 := mustRegistry(t, actors.Config{Store: st, Codec: codec, Logger: quietLogger()})
	if _, err := r2.Do(context.Background(), "salon", bookCut("b2", "bob", at)); codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do on a tenant the codec cannot decode = %v, want unavailable", err)
	}
}

// TestCommandPreparer: a codec that prepares commands sees each one before
// it is applied, and what it returns is what is applied; its refusal
// reaches the caller and nothing is stored.
func TestCommandPreparer(t *testing.T) {
	st := memstore.New()
	codec := &preparingCodec{}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	mustConfigure(t, r, "salon")
	rep := mustDo(t, r, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 10)))
	if rep.Booking.Customer.Subject != "p-ada" {
		t.Errorf("booked customer %+v, want the prepared subject p-ada", rep.Booking.Customer)
	}
	if got := confirmed(t, r, "salon"); len(got) != 1 || got[0].Customer.Subject != "p-ada" {
		t.Errorf("state has %+v, want b1 with subject p-ada", got)
	}
	before, _ := st.ReadFrom(context.Background(), "salon", 0, 0)
	refused := bookCut("b2", "bob", slotAt(t, "bob", 1, 10))
	refused.Customer.Email = "eve@example.org"
	if _, err := r.Do(context.Background(), "salon", refused); codeOf(err) != engine.CodeForbidden {
		t.Errorf("Do(refused by the preparer) = %v, want forbidden", err)
	}
	if after, _ := st.ReadFrom(context.Background(), "salon", 0, 0); len(after) != len(before) {
		t.Errorf("a refused command added %d journal entries", len(after)-len(before))
	}
	if _, err := r.Do(context.Background(), "Not A Tenant", refused); codeOf(err) != engine.CodeInvalid {
		t.Errorf("Do(malformed tenant) = %v, want invalid", err)
	}
	if n := codec.prepared.Load(); n != 3 { // configure, b1, b2
		t.Errorf("PrepareCommand called %d times, want 3", n)
	}
}

// TestPreparerSkippedForRefusedBook: a Book the engine would refuse as
// things stand is refused before the preparer runs (it does I/O and makes
// customer records); one that can succeed is prepared once. Books racing
// a winner whose append is in flight are refused, after its commit,
// without being prepared.
func TestPreparerSkippedForRefusedBook(t *testing.T) {
	codec := &preparingCodec{}
	st := newGatedStore()
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	mustConfigure(t, r, "salon")
	start := slotAt(t, "alice", 1, 10)
	first := bookCut("b1", "alice", start)
	first.IdempotencyKey = "k1"
	mustDo(t, r, "salon", first)
	before := codec.prepared.Load()
	if _, err := r.Do(context.Background(), "salon", bookCut("b2", "alice", start)); codeOf(err) != engine.CodeSlotTaken {
		t.Fatalf("Do(book a taken slot) = %v, want slot_taken", err)
	}
	if _, err := r.Do(context.Background(), "salon", bookCut("b3", "alice", start.Add(time.Minute))); codeOf(err) == "" {
		t.Fatal("Do(book off the slot grid) succeeded")
	}
	if n := codec.prepared.Load() - before; n != 0 {
		t.Errorf("PrepareCommand ran %d times for refused books, want 0", n)
	}
	// The same idempotency key again is a replay, not a refusal.
	if rep, err := r.Do(context.Background(), "salon", first); err != nil || !rep.Duplicate || rep.Booking == nil || rep.Booking.ID != "b1" {
		t.Errorf("Do(same booking again) = %+v, %v; want the b1 replayed", rep, err)
	}

	// Racers that arrive while the winner's append is in flight: their
	// checks see the winner (applied, not yet durable), wait for its
	// commit, and are refused without being prepared.
	free := slotAt(t, "bob", 2, 11)
	open := st.close()
	defer open()
	winner := make(chan error, 1)
	go func() {
		_, err := r.Do(context.Background(), "salon", bookCut("winner", "bob", free))
		winner <- err
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if w := st.waiting.Load(); w != 1 {
			return fmt.Errorf("%d appends waiting, want the winner's", w)
		}
		return nil
	})
	before = codec.prepared.Load()
	const racers = 50
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			_, err := r.Do(context.Background(), "salon", bookCut(fmt.Sprintf("race-%d", i), "bob", free))
			errs <- err
		}()
	}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("salon"); q != racers {
			return fmt.Errorf("mailbox holds %d, want the %d racers' checks", q, racers)
		}
		return nil
	})
	open()
	if err := <-winner; err != nil {
		t.Fatalf("winner: %v", err)
	}
	for range racers {
		if err := <-errs; codeOf(err) != engine.CodeSlotTaken {
			t.Errorf("racer: %v, want slot_taken", err)
		}
	}
	if n := codec.prepared.Load() - before; n != 0 {
		t.Errorf("PrepareCommand ran %d times for %d racers refused while the winner committed, want 0", n, racers)
	}
}

// gatedSnapCodec is the JSON codec with snapshots held at a gate: entered is
// closed when the first EncodeSnapshot starts, which then waits for gate.
type gatedSnapCodec struct {
	actors.JSONCodec
	entered, gate chan struct{}
	once          atomic.Bool
}

func (c *gatedSnapCodec) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	if c.once.CompareAndSwap(false, true) {
		close(c.entered)
		<-c.gate
	}
	return c.JSONCodec.EncodeSnapshot(ctx, tenant, snap, inActor)
}

// TestSnapshotBesideTheActor: while a snapshot is being encoded (for a big
// tenant, sealing every customer), the tenant's commands go on; the
// snapshot is stored when it is done, at the seq it was taken at, and the
// state it holds is the state at that seq.
func TestSnapshotBesideTheActor(t *testing.T) {
	st := memstore.New()
	codec := &gatedSnapCodec{entered: make(chan struct{}), gate: make(chan struct{})}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec, SnapshotEvery: 3})
	// Opened before the registry closes (cleanups run last first), so a
	// failing test ends instead of waiting at the gate for ever.
	openGate := sync.OnceFunc(func() { close(codec.gate) })
	t.Cleanup(openGate)
	mustConfigure(t, r, "salon")
	at := starts(t, "bob", 8)
	do := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Do(ctx, "salon", bookCut(fmt.Sprintf("b%d", i), "bob", at[i])); err != nil {
			t.Fatalf("Do(book %d) while a snapshot is being encoded = %v", i, err)
		}
	}
	for i := range 2 { // seq 3: a snapshot is due
		do(i)
	}
	select {
	case <-codec.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot started after 3 events")
	}
	for i := 2; i < 8; i++ { // the snapshot is held at the gate meanwhile
		do(i)
	}
	if snap, _, err := st.Load(context.Background(), "salon"); err != nil || snap.Seq != 0 {
		t.Fatalf("stored snapshot at seq %d, %v before the gate opened; want none", snap.Seq, err)
	}
	openGate()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		snap, _, err := st.Load(context.Background(), "salon")
		if err != nil || snap.Seq < 3 {
			return fmt.Errorf("stored snapshot at seq %d, %v; want one", snap.Seq, err)
		}
		return nil
	})
	snap, _, _ := st.Load(context.Background(), "salon")
	state, err := engine.RestoreState("salon", snap.Data)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(state.Bookings(time.Time{}, time.Time{})); uint64(n) != snap.Seq-1 {
		t.Errorf("snapshot at seq %d holds %d bookings, want %d (the state when it was taken)", snap.Seq, n, snap.Seq-1)
	}
}

// inActorOnlyCodec is the JSON codec refusing to encode snapshots beside
// the actor, as the privacy codec does for a customer without a key.
type inActorOnlyCodec struct {
	actors.JSONCodec
	beside, inActor atomic.Int32
}

func (c *inActorOnlyCodec) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	if !inActor {
		c.beside.Add(1)
		return nil, fmt.Errorf("customer without a key: %w", actors.ErrSnapshotInActor)
	}
	c.inActor.Add(1)
	return c.JSONCodec.EncodeSnapshot(ctx, tenant, snap, true)
}

// TestSnapshotFallsBackToTheActor: a snapshot the codec cannot encode
// beside the actor is taken by the actor itself, of its current state.
func TestSnapshotFallsBackToTheActor(t *testing.T) {
	st := memstore.New()
	codec := &inActorOnlyCodec{}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec, SnapshotEvery: 3})
	mustConfigure(t, r, "salon")
	for i, s := range starts(t, "bob", 2) { // seq 3: a snapshot is due
		mustDo(t, r, "salon", bookCut(fmt.Sprintf("b%d", i), "bob", s))
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		snap, _, err := st.Load(context.Background(), "salon")
		if err != nil || snap.Seq < 3 {
			return fmt.Errorf("stored snapshot at seq %d, %v; want one at seq 3", snap.Seq, err)
		}
		return nil
	})
	if codec.beside.Load() == 0 || codec.inActor.Load() == 0 {
		t.Errorf("EncodeSnapshot beside the actor %d times, in it %d times; want the refusal, then the actor's", codec.beside.Load(), codec.inActor.Load())
	}
}
