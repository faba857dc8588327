package actors

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slotd/slotd/engine"
)

// UpdateKind says what an Update carries.
type UpdateKind int

// Update kinds.
const (
	// UpdateSnapshot is the full availability: the first update of a
	// subscription, and any resync.
	UpdateSnapshot UpdateKind = iota + 1
	// UpdateDelta changes the previous availability: slots upserted
	// (added or changed) and slots removed (by start).
	UpdateDelta
	// UpdateFeed carries committed booking, hold and erasure events, for
	// staff.
	UpdateFeed
)

// Update is one message to a subscriber. Updates are shared between the
// subscribers of the same query: treat them as read-only.
type Update struct {
	Kind     UpdateKind
	Version  uint64 // journal sequence the update reflects
	Slots    []engine.Slot
	Upserted []engine.Slot
	Removed  []time.Time
	Events   []engine.Event

	memoOnce sync.Once
	memo     []byte
}

// Memo returns encode(u), computed once however many subscribers share the
// update: a change seen by thousands of viewers is encoded once, not once
// per connection. The result must be treated as read-only.
func (u *Update) Memo(encode func(*Update) []byte) []byte {
	u.memoOnce.Do(func() { u.memo = encode(u) })
	return u.memo
}

// ErrSlowConsumer ends a subscription whose reader let its queue fill up.
// The reader should resubscribe to get a fresh snapshot.
var ErrSlowConsumer = errors.New("subscriber fell behind")

// ErrStopped ends a subscription whose tenant actor stopped (shutdown).
var ErrStopped = errors.New("tenant actor stopped")

// Subscription is a live stream of updates for one tenant. Read C until it
// is closed, then Err says why. Close it when done.
type Subscription struct {
	ID     uint64
	Tenant string
	Query  engine.AvailabilityQuery // zero for a feed
	Feed   bool
	// C delivers updates in order. It is closed when the subscription ends.
	C <-chan *Update

	c      chan *Update
	closed atomic.Bool
	once   sync.Once
	errMu  sync.Mutex // guards err
	err    error
	onEnd  func()
	notify atomic.Pointer[func()]
}

// Notify has f called after each update is queued on C, and once C is
// closed. f runs on the tenant actor's goroutine, so it must not block:
// it is meant to receive from C without waiting, so that a reader needs
// no goroutine of its own waiting on C. Updates queued before Notify are
// not announced: read C without waiting after calling it.
func (s *Subscription) Notify(f func()) { s.notify.Store(&f) }

func (s *Subscription) notified() {
	if f := s.notify.Load(); f != nil {
		(*f)()
	}
}

// Close ends the subscription from the reader's side. The actor forgets it
// at its next publish; nothing more is read from C.
func (s *Subscription) Close() {
	if s.closed.CompareAndSwap(false, true) && s.onEnd != nil {
		s.onEnd()
	}
}

// Err reports why C was closed (nil while open, or after Close).
func (s *Subscription) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// end closes C with err; only the owning actor calls it.
func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.c)
		if s.closed.CompareAndSwap(false, true) && s.onEnd != nil {
			s.onEnd()
		}
		s.notified()
	})
}

// offer hands u to the subscriber without waiting. A full queue ends the
// subscription with ErrSlowConsumer; it reports whether s is still live.
func (s *Subscription) offer(u *Update) bool {
	if s.closed.Load() {
		s.end(nil)
		return false
	}
	select {
	case s.c <- u:
		s.notified()
		return true
	default:
		s.end(ErrSlowConsumer)
		return false
	}
}

// queryGroup is the subscribers sharing one availability query: the
// availability is computed once per change for all of them.
type queryGroup struct {
	view *engine.View
	subs map[uint64]*Subscription
}
