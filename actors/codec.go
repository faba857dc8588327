package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/slotd/slotd/engine"
)

// Codec turns a tenant's events and state into the bytes its store keeps,
// and back. It is the seam where data is transformed at rest: the default,
// JSONCodec, stores engine.EncodeEvent and MarshalSnapshot as they are;
// package privacy seals customers' personal data per data subject, so that
// erasing a subject makes every stored copy unreadable.
//
// The actor calls it on its own goroutine with a context bounded by
// Config.StoreTimeout: a codec may read the records it needs (keys), but
// every call delays the tenant. Events and entries come in batches (a group
// commit, a journal tail) so that a codec can share work across them. A
// codec is used by every actor at once and must be safe for concurrent use.
//
// Decoding must give back what was encoded: the state rebuilt from stored
// bytes is the state that was live, or the actor's replay guarantees fail.
// A codec that changes what it yields (personal data erased since) must do
// so the same way on every later decode.
type Codec interface {
	// EncodeEvents encodes events for one journal append, in order. An
	// error wrapping ErrBehindJournal makes the actor read the journal and
	// decide the batch's commands again, as after a lost append race.
	EncodeEvents(ctx context.Context, tenant string, events []engine.Event) ([][]byte, error)
	// DecodeEvents decodes journal entries' data, in order.
	DecodeEvents(ctx context.Context, tenant string, data [][]byte) ([]engine.Event, error)
	// EncodeSnapshot serializes snap, a copy of the tenant's state, which
	// the codec must not change. Unless inActor, it runs on a goroutine of
	// its own while the tenant's actor goes on (at most one per tenant at
	// a time), and must then not make a change that the actor has to
	// order against its commands, such as creating a customer's key:
	// where it would need one it fails with ErrSnapshotInActor, and the
	// actor takes the snapshot again itself, with inActor.
	EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error)
	// DecodeSnapshot rebuilds a state from EncodeSnapshot's bytes.
	DecodeSnapshot(ctx context.Context, tenant string, data []byte) (*engine.State, error)
}

// ErrSnapshotInActor is returned, wrapped, by a Codec's EncodeSnapshot
// beside the actor when the copy can be encoded only with a change the
// actor must order, such as a customer's key created: the actor then takes
// the snapshot itself.
var ErrSnapshotInActor = errors.New("snapshot must be taken in the actor")

// ErrBehindJournal is returned, wrapped, by a Codec's EncodeEvents when
// the events cannot be encoded because the state they were decided on is
// behind the journal: another writer changed something they depend on,
// such as a customer it erased, whose key it forgot. The actor reads the
// journal to its end and decides the pending commands again, as when
// another writer appended first. If that does not help and the error is
// an EventError, the command of that event alone is refused (conflict).
var ErrBehindJournal = errors.New("the state is behind the journal")

// An EventError is a Codec's EncodeEvents failing on one event: Index is
// its position in the events it was given.
type EventError struct {
	Index int
	Err   error
}

func (e *EventError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }
func (e *EventError) Unwrap() error { return e.Err }

// A CommandPreparer is a Codec that must see every command before it is
// applied: Registry.Do hands it the command on the caller's goroutine
// (never the actor's, so it may do I/O freely) and applies what it
// returns. Package privacy uses it to give each customer their pseudonym
// (engine.Customer.Subject). Refusals should be *engine.Error; other
// errors reach the caller as they are.
//
// Prepares reports whether PrepareCommand does work (I/O) for cmd. For
// such a command Do first asks the actor whether the engine would accept
// it as things stand, and refuses it without preparing it if not: when
// thousands race for one slot, only those with a chance pay for it.
type CommandPreparer interface {
	PrepareCommand(ctx context.Context, tenant string, cmd engine.Command) (engine.Command, error)
	Prepares(cmd engine.Command) bool
}

// JSONCodec is the default Codec: the engine's own JSON, unchanged.
type JSONCodec struct{}

// EncodeEvents implements Codec with engine.EncodeEvent.
func (JSONCodec) EncodeEvents(_ context.Context, _ string, events []engine.Event) ([][]byte, error) {
	out := make([][]byte, len(events))
	for i, e := range events {
		b, err := engine.EncodeEvent(e)
		if err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.Type, err)
		}
		out[i] = b
	}
	return out, nil
}

// DecodeEvents implements Codec with engine.DecodeEvent.
func (JSONCodec) DecodeEvents(_ context.Context, _ string, data [][]byte) ([]engine.Event, error) {
	out := make([]engine.Event, len(data))
	for i, d := range data {
		e, err := engine.DecodeEvent(d)
		if err != nil {
			return nil, fmt.Errorf("entry %d of %d: %w", i+1, len(data), err)
		}
		out[i] = e
	}
	return out, nil
}

// EncodeSnapshot implements Codec with Snapshot.Marshal.
func (JSONCodec) EncodeSnapshot(_ context.Context, _ string, snap *engine.Snapshot, _ bool) ([]byte, error) {
	return snap.Marshal(nil)
}

// DecodeSnapshot implements Codec with engine.RestoreState.
func (JSONCodec) DecodeSnapshot(_ context.Context, tenant string, data []byte) (*engine.State, error) {
	return engine.RestoreState(tenant, data)
}
