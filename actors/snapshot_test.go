package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
)

// gatedInActorCodec refuses every snapshot beside the actor with
// ErrSnapshotInActor (as the privacy codec does for a legacy customer or a
// forgotten key), the first one only once gate is closed.
type gatedInActorCodec struct {
	actors.JSONCodec
	entered, gate chan struct{}
	once          atomic.Bool
}

func (c *gatedInActorCodec) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	if !inActor {
		if c.once.CompareAndSwap(false, true) {
			close(c.entered)
			<-c.gate
		}
		return nil, fmt.Errorf("no key: %w", actors.ErrSnapshotInActor)
	}
	return c.JSONCodec.EncodeSnapshot(ctx, tenant, snap, true)
}

// TestStoppedActorNeverSnapshotsUncommittedState: an actor that stops on a storage
// error still holds, in a.state, the batch it could neither commit nor
// reload. When the snapshot in flight then ends with ErrSnapshotInActor, the
// stopping actor must not fall back to a snapshot of that state.
func TestStoppedActorNeverSnapshotsUncommittedState(t *testing.T) {
	st, failing := breakableStore()
	codec := &gatedInActorCodec{entered: make(chan struct{}), gate: make(chan struct{})}
	openGate := sync.OnceFunc(func() { close(codec.gate) })
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec, SnapshotEvery: 3})
	t.Cleanup(openGate)
	mustConfigure(t, r, "salon")
	at := starts(t, "bob", 3)
	mustDo(t, r, "salon", bookCut("b0", "bob", at[0]))
	mustDo(t, r, "salon", bookCut("b1", "bob", at[1])) // seq 3: snapshot due, held at the gate
	select {
	case <-codec.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot beside the actor")
	}
	failing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := r.Do(ctx, "salon", bookCut("phantom", "bob", at[2]))
	cancel()
	if codeOf(err) != engine.CodeUnavailable {
		t.Fatalf("Do(book phantom) with append and load failing = %v, want unavailable", err)
	}
	failing.Store(false) // the store is back
	openGate()           // the held snapshot ends with ErrSnapshotInActor
	time.Sleep(300 * time.Millisecond)
	snap, tail, _ := st.Load(context.Background(), "salon")
	if snap.Data == nil {
		return
	}
	state, err := engine.RestoreState("salon", snap.Data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := state.Booking("phantom"); ok {
		t.Errorf("snapshot at seq %d (journal tail %d) holds booking \"phantom\", which was answered unavailable and is not in the journal (%d events)",
			snap.Seq, len(tail), len(journal(t, st, "salon")))
	}
}

// failingSnapCodec fails every snapshot beside the actor at once.
type failingSnapCodec struct {
	actors.JSONCodec
	beside atomic.Int64
}

func (c *failingSnapCodec) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	if !inActor {
		c.beside.Add(1)
		return nil, errors.New("key store unreachable")
	}
	return c.JSONCodec.EncodeSnapshot(ctx, tenant, snap, true)
}

// TestFailedSnapshotNotRetriedWhileIdle: a snapshot that fails is retried
// after the next commit, not at once: an idle actor would spin copying its
// state.
func TestFailedSnapshotNotRetriedWhileIdle(t *testing.T) {
	codec := &failingSnapCodec{}
	r := mustRegistry(t, actors.Config{Codec: codec, SnapshotEvery: 3})
	mustConfigure(t, r, "salon")
	for i, s := range starts(t, "bob", 2) {
		mustDo(t, r, "salon", bookCut(fmt.Sprintf("b%d", i), "bob", s))
	}
	time.Sleep(200 * time.Millisecond) // idle: no command
	if n := codec.beside.Load(); n > 5 {
		t.Errorf("an idle actor attempted %d snapshots in 200 ms after 3 events; a failed one is retried in a hot loop", n)
	}
}
