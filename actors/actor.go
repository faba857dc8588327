package actors

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
)

type msgKind int

const (
	kindCmd msgKind = iota
	kindRead
	kindSubscribe
)

// message is one entry of a tenant mailbox.
type message struct {
	kind  msgKind
	cmd   engine.Command
	read  func(*engine.State, uint64) error
	sub   *Subscription
	reply chan reply // buffered (1): the actor never waits on a caller
	// check: decide cmd without applying it (Registry.Do's pre-check). A
	// command that would be accepted is answered at once with an empty
	// reply; a refusal is answered like a refused command, after the
	// batch's commit, since it may rest on commands not yet durable.
	check bool
	// latest: a read that follows the journal to its end first
	// (Registry.ReadLatest).
	latest bool

	// set while the command is pending in a batch
	res      engine.Result
	err      error
	answered bool // the reply was sent; only the actor goroutine touches it
}

type reply struct {
	res engine.Result
	seq uint64
	err error
}

// answer sends the reply once: after a panic every message of the batch is
// answered, and some may have been already.
func (m *message) answer(r reply) {
	if m.reply != nil && !m.answered {
		m.answered = true
		m.reply <- r
	}
}

// actor owns one tenant's state. Only its goroutine touches the fields
// below the mailbox; the registry only enqueues and stops.
type actor struct {
	reg     *Registry
	tenant  string
	mailbox *mailbox
	subs    atomic.Int64 // live subscriptions, read by the registry's trim

	mu      sync.Mutex // guards stopped; enqueue and stop hold it
	stopped bool
	quit    chan struct{}
	done    chan struct{}
	prev    *actor // set before run: a predecessor to wait for
	// wake (capacity 1) holds a pending "another writer appended" from
	// Registry.Notify; notifications arriving while one is pending
	// coalesce into it, so a notification never blocks or fails.
	wake chan struct{}

	state    *engine.State
	seq      uint64
	snapSeq  uint64
	snapping bool // a snapshot is being stored in the background
	// undecodable counts follow's decode failures in a row (followDecodeTries).
	undecodable int
	snapC       chan snapDone // its outcome; made on first use
	snapShare   float64       // the tenant's share of Config.SnapshotSpread
	// erasures counts the erasures (and reloads) the actor has applied,
	// before it answers them; a snapshot in the background, copied
	// before one, is not stored (see snapshotAsync).
	erasures    atomic.Uint64
	pending     []*message
	inflight    []*message // the batch being handled, answered or not
	uncommitted []engine.Event
	groups      map[string]*queryGroup
	feeds       map[uint64]*Subscription
	timerC      <-chan time.Time
	timerStop   func() bool
	timerAt     time.Time
	nextRefresh time.Time
	expireRetry time.Time // after a failed hold expiry: not before then
}

func newActor(reg *Registry, tenant string) *actor {
	return &actor{reg: reg, tenant: tenant, snapShare: snapshotShare(tenant), mailbox: newMailbox(reg.cfg.MailboxSize),
		quit: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
		groups: map[string]*queryGroup{}, feeds: map[uint64]*Subscription{}}
}

// enqueue offers m to the mailbox without waiting. It reports false,false
// if the actor has stopped (the caller retries on a fresh actor) and
// true,false if the mailbox is full.
func (a *actor) enqueue(m *message) (accepted, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return false, false
	}
	if a.mailbox.put(m) {
		return true, false
	}
	return false, true
}

// notify asks the actor to read what other writers appended, without
// waiting: if a wake-up is already pending, this one joins it.
func (a *actor) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// stop asks the actor to finish what its mailbox holds and exit.
func (a *actor) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped {
		a.stopped = true
		close(a.quit)
	}
}

func (a *actor) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.reg.cfg.StoreTimeout)
}

// run is the actor's goroutine: a supervisor around the message loop. A
// panic is recovered and logged; the actor reloads from the store and goes
// on, at most MaxRestarts times per RestartWindow, then gives up and stops
// (the next request activates a fresh actor).
func (a *actor) run() {
	defer close(a.done)
	defer a.reg.forget(a, true)
	defer a.awaitSnapshot(false) // an actor that stops owns its snapshot in flight
	if a.prev != nil {
		<-a.prev.done
		a.prev = nil
	}
	log := a.reg.cfg.Logger.With("tenant", a.tenant)
	var restarts []time.Time
	for {
		panicked := a.supervise(log)
		if !panicked {
			return
		}
		a.reg.cfg.Metrics.Restarts.Inc()
		now := time.Now()
		recent := restarts[:0]
		for _, t := range restarts {
			if now.Sub(t) < a.reg.cfg.RestartWindow {
				recent = append(recent, t)
			}
		}
		restarts = append(recent, now)
		if len(restarts) > a.reg.cfg.MaxRestarts {
			log.Error("actor keeps crashing; stopping it", "restarts", len(restarts), "window", a.reg.cfg.RestartWindow)
			a.shutdown(engine.Errorf(engine.CodeUnavailable, "tenant %s is unavailable (repeated internal errors)", a.tenant))
			return
		}
		a.state = nil // reload from the store
	}
}

// supervise runs the loop once, turning a panic into a logged restart.
func (a *actor) supervise(log interface {
	Error(string, ...any)
}) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			log.Error("actor panic; restarting from stored state", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err := engine.Errorf(engine.CodeInternal, "internal error; the command was not applied")
			for _, m := range a.pending {
				m.answer(reply{err: err})
			}
			for _, m := range a.inflight {
				m.answer(reply{err: err})
			}
			a.pending, a.inflight, a.uncommitted = nil, nil, nil
		}
	}()
	if err := a.loop(); err != nil {
		log.Error("actor failed", "err", err)
		a.shutdown(engine.Errorf(engine.CodeUnavailable, "tenant %s is unavailable: storage error", a.tenant))
	}
	return false
}

// shutdown stops the actor for good, answering everything queued with err
// and ending subscriptions.
func (a *actor) shutdown(err error) {
	a.stop()
	for _, m := range a.pending {
		m.answer(reply{err: err})
	}
	for _, m := range a.inflight {
		m.answer(reply{err: err})
	}
	a.pending, a.inflight = nil, nil
	for {
		m, ok := a.mailbox.get()
		if !ok {
			a.endSubs(ErrStopped)
			return
		}
		if m.kind == kindSubscribe {
			m.sub.end(err)
		}
		m.answer(reply{err: err})
	}
}

func (a *actor) loop() error {
	if a.state == nil {
		if err := a.load(); err != nil {
			return err
		}
		a.timerAt = time.Time{}
		a.armTimer()
	}
	// After a restart the token of messages already waiting may have been
	// taken by the run that failed.
	if a.mailbox.len() > 0 {
		a.mailbox.signal()
	}
	for {
		select {
		case <-a.mailbox.ready:
			// One batch per turn, so timers and wake-ups are not starved
			// under load; what is left gets a token of its own.
			if m, ok := a.mailbox.get(); ok {
				if err := a.batch(m); err != nil {
					return err
				}
				if a.mailbox.len() > 0 {
					a.mailbox.signal()
				}
			}
		case <-a.timerC:
			a.timerC, a.timerAt = nil, time.Time{}
			if err := a.tick(); err != nil {
				return err
			}
		case <-a.wake:
			if err := a.catchUp(); err != nil {
				return err
			}
			a.armTimer()
		case d := <-a.snapC: // nil until the first snapshot in the background
			a.finishSnapshot(d, true)
			if d.err == nil {
				// What came in meanwhile may make the next one due (or,
				// skipped after an erasure, this one again). A failed one
				// waits for the next commit rather than spin.
				a.maybeSnapshot()
			}
		case <-a.quit:
			for m, ok := a.mailbox.get(); ok; m, ok = a.mailbox.get() {
				if err := a.batch(m); err != nil {
					return err
				}
			}
			a.lastSnapshot()
			a.endSubs(ErrStopped)
			if a.timerStop != nil {
				a.timerStop()
			}
			return nil
		}
	}
}

// load rebuilds the state from the newest snapshot and the journal tail.
func (a *actor) load() error {
	_, err := a.reload(a.seq, false)
	return err
}

// reload rebuilds the state from the newest snapshot and the journal tail,
// dropping anything uncommitted, and returns the events other writers
// committed after seq from, the actor's head before the reload, so that
// they can be published. A snapshot beyond from hides some of them; when a
// feed needs them they are read from the journal. withNewer false skips
// collecting them (the first load: nothing was published yet).
func (a *actor) reload(from uint64, withNewer bool) (newer []engine.Event, err error) {
	ctx, cancel := a.ctx()
	defer cancel()
	snap, tail, err := a.reg.cfg.Store.Load(ctx, a.tenant)
	if err != nil {
		return nil, fmt.Errorf("load tenant %s: %w", a.tenant, err)
	}
	st := engine.NewState(a.tenant)
	if snap.Data != nil {
		if st, err = a.reg.cfg.Codec.DecodeSnapshot(ctx, a.tenant, snap.Data); err != nil {
			return nil, fmt.Errorf("load tenant %s: %w", a.tenant, err)
		}
	}
	if withNewer && snap.Seq > from && len(a.feeds) > 0 {
		hidden, err := a.reg.cfg.Store.ReadFrom(ctx, a.tenant, from, int(snap.Seq-from))
		if err != nil {
			return nil, fmt.Errorf("load tenant %s: read journal after %d: %w", a.tenant, from, err)
		}
		evs, err := a.decode(ctx, hidden)
		if err != nil {
			return nil, fmt.Errorf("load tenant %s: %w", a.tenant, err)
		}
		newer = append(newer, evs...)
	}
	seq := snap.Seq
	evs, err := a.decode(ctx, tail)
	if err != nil {
		return nil, fmt.Errorf("load tenant %s: %w", a.tenant, err)
	}
	for i, e := range tail {
		ev := evs[i]
		if err := st.Evolve(ev); err != nil {
			return nil, fmt.Errorf("load tenant %s seq %d: %w", a.tenant, e.Seq, err)
		}
		seq = e.Seq
		if withNewer && e.Seq > from {
			newer = append(newer, ev)
		}
	}
	a.state, a.seq, a.snapSeq = st, seq, snap.Seq
	// Another writer's erasures may be in what was loaded (and a snapshot
	// in flight was copied from the state replaced).
	a.erasures.Add(1)
	if withNewer {
		a.reg.cfg.Metrics.FollowedEvents.Add(float64(len(newer)))
	}
	return newer, nil
}

// decode decodes journal entries with the registry's codec.
func (a *actor) decode(ctx context.Context, entries []persistence.Entry) ([]engine.Event, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	data := make([][]byte, len(entries))
	for i, e := range entries {
		data[i] = e.Data
	}
	evs, err := a.reg.cfg.Codec.DecodeEvents(ctx, a.tenant, data)
	if err != nil {
		return nil, fmt.Errorf("decode journal seq %d–%d: %w", entries[0].Seq, entries[len(entries)-1].Seq, err)
	}
	if len(evs) != len(entries) {
		return nil, fmt.Errorf("decode journal seq %d–%d: codec returned %d events for %d entries", entries[0].Seq, entries[len(entries)-1].Seq, len(evs), len(entries))
	}
	return evs, nil
}

// followPage bounds the journal entries read at once while catching up.
const followPage = 512

// catchUp applies the journal entries other writers (another slotd
// instance on the same database) appended after a.seq, then publishes
// them, a page at a time. It runs on the actor's goroutine between
// batches, when nothing is pending or uncommitted, so the state plus these
// entries is exactly the journal. A failed read only delays the update: it
// is logged and the next wake-up (a notification or the poll) tries again.
// An entry the state cannot take is returned as an error, as load would.
func (a *actor) catchUp() error {
	err := a.follow()
	if re := (*journalReadError)(nil); errors.As(err, &re) {
		a.reg.cfg.Logger.Warn("reading the journal tail failed; retrying at the next wake-up", "tenant", a.tenant, "after", a.seq, "err", re.err)
		return nil
	}
	return err
}

// followDecodeTries is how many times in a row follow may fail to decode
// the journal's next entries before the actor fails (and its supervisor
// reloads the tenant, or gives up on it with an error, rather than serve a
// state that can never catch up).
const followDecodeTries = 5

// journalReadError is follow failing to read or decode the journal before
// applying any of it: worth a retry, not a restart.
type journalReadError struct{ err error }

func (e *journalReadError) Error() string { return "read the journal tail: " + e.err.Error() }

// follow applies and publishes what other writers appended after the
// actor's head, up to the journal's end.
func (a *actor) follow() error {
	for {
		ctx, cancel := a.ctx()
		entries, err := a.reg.cfg.Store.ReadFrom(ctx, a.tenant, a.seq, followPage)
		if err != nil {
			cancel()
			return &journalReadError{err}
		}
		if len(entries) == 0 {
			cancel()
			return nil
		}
		decoded, err := a.decode(ctx, entries)
		cancel()
		if err != nil {
			// Nothing of the page is applied yet: the state is still
			// the journal up to a.seq. A codec's decoding reads keys,
			// so this is often a store hiccup, worth a retry; but an
			// entry that will never decode (a newer event type, a key
			// this instance lacks) must not leave it stale for good.
			if a.undecodable++; a.undecodable >= followDecodeTries {
				a.undecodable = 0
				return fmt.Errorf("follow tenant %s: the journal after seq %d failed to decode %d times in a row: %w", a.tenant, a.seq, followDecodeTries, err)
			}
			return &journalReadError{err}
		}
		a.undecodable = 0
		events := make([]engine.Event, 0, len(entries))
		for i, e := range entries {
			if e.Seq != a.seq+1 {
				return fmt.Errorf("follow tenant %s: journal entry %d after %d", a.tenant, e.Seq, a.seq)
			}
			ev := decoded[i]
			if err := a.state.Evolve(ev); err != nil {
				return fmt.Errorf("follow tenant %s seq %d: %w", a.tenant, e.Seq, err)
			}
			a.noteErasures(ev)
			a.seq = e.Seq
			events = append(events, ev)
		}
		a.reg.cfg.Metrics.FollowedEvents.Add(float64(len(events)))
		a.publish(events)
		a.maybeSnapshot()
		if len(entries) < followPage {
			return nil
		}
	}
}

// batch handles first and whatever else waits in the mailbox, up to
// BatchMax: commands are applied in order and committed together in one
// journal append (group commit); reads and subscriptions see only
// committed state, so pending commands are committed before them.
func (a *actor) batch(first *message) error {
	m := a.reg.cfg.Metrics
	m.MailboxDepth.Observe(float64(a.mailbox.len() + 1))
	msgs := []*message{first}
	for len(msgs) < a.reg.cfg.BatchMax {
		x, ok := a.mailbox.get()
		if !ok {
			break
		}
		msgs = append(msgs, x)
	}
	a.inflight = msgs
	followed := false // every message here was sent before the batch began: one follow serves them all
	for _, x := range msgs {
		if x.kind == kindCmd {
			a.apply(x)
			continue
		}
		if err := a.commit(); err != nil {
			return err
		}
		if err := a.other(x, &followed); err != nil {
			return err
		}
	}
	if err := a.commit(); err != nil {
		return err
	}
	a.inflight = nil
	a.armTimer()
	return nil
}

func (a *actor) apply(x *message) {
	if x.check {
		// A reused idempotency key is not judged here: the command it
		// was first used for was stored as prepared (with the customer's
		// pseudonym), so only the prepared retry can be compared with it.
		_, err := engine.Decide(a.state, x.cmd, a.reg.cfg.Clock.Now())
		if ee := (*engine.Error)(nil); errors.As(err, &ee) && ee.Code == engine.CodeIdemReused {
			err = nil
		}
		if err != nil {
			x.err = err
			a.pending = append(a.pending, x)
		} else {
			x.answer(reply{seq: a.seq})
		}
		return
	}
	x.res, x.err = engine.Apply(a.state, x.cmd, a.reg.cfg.Clock.Now())
	if x.err == nil {
		a.uncommitted = append(a.uncommitted, x.res.Events...)
		a.noteErasures(x.res.Events...)
	}
	a.pending = append(a.pending, x)
}

// commit appends the pending commands' events in one durable write, then
// answers each command and publishes.
//
// On a sequence conflict another writer (another slotd instance) appended
// first. The in-memory state holds the pending commands' uncommitted
// events, so the actor rebuilds it from the store, which now includes the
// other writer's entries; it publishes those entries to its subscribers
// (their availability loses what the winner booked) and decides the
// pending commands again against the new state: a booking of a slot the
// winner took is answered slot_taken, never committed.
func (a *actor) commit() error {
	if len(a.pending) == 0 {
		return nil
	}
	var (
		refused map[*message]bool // commands whose events cannot be stored
		blamed  *message          // the command the codec found behind the journal last
	)
	for attempt := 0; ; attempt++ {
		err := a.append()
		if err == nil {
			break
		}
		behind := errors.Is(err, ErrBehindJournal)
		conflict := errors.Is(err, persistence.ErrConflict) || behind
		switch {
		case behind:
			a.reg.cfg.Metrics.Conflicts.Inc()
			a.reg.cfg.Logger.Info("an event cannot be encoded on this state (another writer changed what it depends on); reading the journal", "tenant", a.tenant, "seq", a.seq, "attempt", attempt, "err", err)
		case conflict:
			a.reg.cfg.Metrics.Conflicts.Inc()
			a.reg.cfg.Logger.Info("journal append conflict: another writer appended first; catching up", "tenant", a.tenant, "seq", a.seq, "attempt", attempt)
		default:
			a.reg.cfg.Logger.Warn("journal append failed", "tenant", a.tenant, "err", err, "attempt", attempt)
		}
		if behind {
			// The same command twice in a row, with the journal read in
			// between: its events cannot be stored. It alone is refused;
			// the rest go on.
			x := a.commandOfEvent(err)
			if x != nil && x == blamed {
				if refused == nil {
					refused = map[*message]bool{}
				}
				refused[x] = true
				x = nil
			}
			blamed = x
		} else {
			blamed = nil
		}
		cmds := a.pending
		a.pending, a.uncommitted = nil, nil
		newer, lerr := a.reload(a.seq, true)
		if lerr != nil {
			a.pending = cmds
			return lerr
		}
		if len(newer) > 0 {
			// What others committed comes before anything this actor
			// commits from now on, for subscribers too.
			a.publish(newer)
		}
		// Rounds that find or refuse an unstorable command do not count
		// against the limit: each removes one, so they end.
		if !conflict || attempt >= 3+2*len(refused) {
			uerr := engine.Errorf(engine.CodeUnavailable, "could not confirm that the change was stored; retry with the same idempotency key to learn the outcome without booking twice")
			for _, x := range cmds {
				a.count(x.cmd, uerr)
				x.answer(reply{err: uerr, seq: a.seq})
			}
			return nil
		}
		for _, x := range cmds {
			if refused[x] {
				x.res, x.err = engine.Result{}, errUnstorable
				a.pending = append(a.pending, x)
				continue
			}
			a.apply(x)
		}
	}
	events := a.uncommitted
	for _, x := range a.pending {
		a.count(x.cmd, x.err)
		if x.err != nil {
			x.answer(reply{err: x.err, seq: a.seq})
		} else {
			x.answer(reply{res: x.res, seq: a.seq})
		}
	}
	a.pending, a.uncommitted = nil, nil
	if len(events) > 0 {
		a.publish(events)
		a.maybeSnapshot()
	}
	return nil
}

// noteErasures counts the erasures among events the actor applied, for a
// snapshot copied before them (snapshotAsync).
func (a *actor) noteErasures(events ...engine.Event) {
	for _, e := range events {
		if e.Type == engine.EvSubjectErased {
			a.erasures.Add(1)
		}
	}
}

// errUnstorable answers a command whose events the codec refused twice as
// behind the journal (ErrBehindJournal), with the journal read in between:
// with the privacy codec, a change carrying the personal data of a
// customer whose key was forgotten while the journal shows no erasure
// (after a journal restored from before the erasure, say).
var errUnstorable = engine.Errorf(engine.CodeConflict, "this change cannot be stored: it carries the personal data of a customer whose records were erased, which the tenant's journal does not show; erase the customer again, then retry")

// commandOfEvent returns the pending command whose event err (an
// EventError) is about, or nil.
func (a *actor) commandOfEvent(err error) *message {
	var ee *EventError
	if !errors.As(err, &ee) {
		return nil
	}
	i := ee.Index
	for _, x := range a.pending {
		if x.err != nil {
			continue
		}
		if i < len(x.res.Events) {
			return x
		}
		i -= len(x.res.Events)
	}
	return nil
}

// maybeSnapshot starts storing a snapshot once enough events have passed
// since the last one stored, unless one is being stored. A snapshot costs
// time proportional to the state; taking one only after at least half as
// many events as the state holds (less the tenant's share of
// Config.SnapshotSpread: a quarter at slotd's 0.5) keeps the cost per
// event constant, while replay after a restart stays bounded by about half
// the state's size in events (plus what comes in while a snapshot is being
// stored). The copy is taken in the actor, the sealing and marshalling
// happen beside it.
func (a *actor) maybeSnapshot() {
	if a.seq-a.snapSeq >= snapshotDue(a.reg.cfg.SnapshotEvery, a.state.Size(), a.reg.cfg.SnapshotSpread, a.snapShare) {
		a.snapshotAsync()
	}
}

// snapshotDue is how many events after the last snapshot the next is due
// for a tenant whose state holds size items: at least every, and at least
// half the state, less share (the tenant's, in [0, 1)) of spread
// (Config.SnapshotSpread).
func snapshotDue(every, size int, spread, share float64) uint64 {
	due := uint64(max(every, size/2))
	due -= uint64(float64(due) * spread * share)
	return max(due, 1)
}

// snapshotShare is tenant's own fraction in [0, 1) of Config.SnapshotSpread,
// the same in every process.
func snapshotShare(tenant string) float64 {
	sum := sha256.Sum256([]byte(tenant))
	return float64(binary.BigEndian.Uint64(sum[:])>>11) / (1 << 53)
}

func (a *actor) append() error {
	mt := a.reg.cfg.Metrics
	mt.BatchSize.Observe(float64(len(a.pending)))
	if len(a.uncommitted) == 0 {
		return nil
	}
	ctx, cancel := a.ctx()
	defer cancel()
	enc, err := a.reg.cfg.Codec.EncodeEvents(ctx, a.tenant, a.uncommitted)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	if len(enc) != len(a.uncommitted) {
		return fmt.Errorf("encode events: codec returned %d entries for %d events", len(enc), len(a.uncommitted))
	}
	start := time.Now()
	seq, err := a.reg.cfg.Store.Append(ctx, a.tenant, a.seq, enc)
	mt.CommitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("append journal: %w", err)
	}
	a.seq = seq
	for _, e := range a.uncommitted {
		if e.Type == engine.EvBookingConfirmed {
			mt.Bookings.Inc()
		}
	}
	return nil
}

func (a *actor) count(cmd engine.Command, err error) {
	result := "ok"
	if err != nil {
		result = string(engine.CodeInternal)
		var ee *engine.Error
		if errors.As(err, &ee) {
			result = string(ee.Code)
		}
	}
	a.reg.cfg.Metrics.Commands.WithLabelValues(engine.CommandName(cmd), result).Inc()
}

// other handles a read or a subscription against committed state. A
// latest read follows the journal first, unless this batch has (followed).
// An error is the actor's, as from catchUp.
func (a *actor) other(x *message, followed *bool) error {
	switch x.kind {
	case kindRead:
		if x.latest && !*followed {
			err := a.follow()
			*followed = err == nil
			if re := (*journalReadError)(nil); errors.As(err, &re) {
				a.reg.cfg.Logger.Warn("reading the journal tail before a read failed", "tenant", a.tenant, "after", a.seq, "err", re.err)
				x.answer(reply{err: engine.Errorf(engine.CodeUnavailable, "tenant %s: could not read its latest changes; retry", a.tenant), seq: a.seq})
				return nil
			}
			if err != nil {
				return err
			}
		}
		x.answer(reply{err: x.read(a.state, a.seq), seq: a.seq})
	case kindSubscribe:
		a.subscribe(x)
	}
	return nil
}

func (a *actor) subscribe(x *message) {
	sub := x.sub
	if sub.Feed {
		a.feeds[sub.ID] = sub
		a.subs.Add(1)
		a.reg.cfg.Metrics.Subscribers.Inc()
		x.answer(reply{seq: a.seq})
		if a.nextRefresh.IsZero() { // so that a closed feed is noticed
			a.nextRefresh = a.reg.cfg.Clock.Now().Add(a.reg.cfg.RefreshEvery)
		}
		return
	}
	key := sub.Query.Key()
	g := a.groups[key]
	if g == nil {
		view, err := engine.NewView(a.state, sub.Query, a.reg.cfg.Clock.Now())
		if err != nil {
			x.answer(reply{err: err, seq: a.seq})
			return
		}
		g = &queryGroup{view: view, subs: map[uint64]*Subscription{}}
		a.groups[key] = g
	}
	slots := g.view.Slots()
	sub.offer(&Update{Kind: UpdateSnapshot, Version: a.seq, Slots: slots})
	g.subs[sub.ID] = sub
	a.subs.Add(1)
	a.reg.cfg.Metrics.Subscribers.Inc()
	x.answer(reply{seq: a.seq})
	if a.nextRefresh.IsZero() {
		a.nextRefresh = a.reg.cfg.Clock.Now().Add(a.reg.cfg.RefreshEvery)
	}
}

// publish pushes committed events to feeds and availability changes to
// every query group; subscribers that cannot keep up are dropped, never
// waited for.
func (a *actor) publish(events []engine.Event) {
	var feed []engine.Event
	for _, e := range events {
		switch e.Type {
		case engine.EvBookingConfirmed, engine.EvBookingCancelled, engine.EvBookingRescheduled,
			engine.EvHoldPlaced, engine.EvHoldReleased, engine.EvHoldExpired, engine.EvSubjectErased:
			feed = append(feed, e)
		}
	}
	if len(feed) > 0 && len(a.feeds) > 0 {
		u := &Update{Kind: UpdateFeed, Version: a.seq, Events: feed}
		for id, s := range a.feeds {
			slow := !s.closed.Load()
			if !s.offer(u) {
				a.dropSub(id, slow)
			}
		}
	}
	a.refresh(false)
}

// refresh forgets subscriptions their readers closed, recomputes each
// query group and sends the differences. After a commit (full unset) only
// the slots the state's changes can touch are recomputed; the periodic
// refresh (full) recomputes everything, for what time changes.
func (a *actor) refresh(full bool) {
	now := a.reg.cfg.Clock.Now()
	changes := a.state.TakeChanges()
	for id, s := range a.feeds {
		if s.closed.Load() {
			s.end(nil)
			a.dropSub(id, false)
		}
	}
	for key, g := range a.groups {
		for id, s := range g.subs {
			if s.closed.Load() {
				s.end(nil)
				delete(g.subs, id)
				a.subGone()
			}
		}
		if len(g.subs) == 0 {
			delete(a.groups, key)
			continue
		}
		up, removed, err := g.view.Update(a.state, now, changes, full)
		if err != nil { // e.g. the service was removed
			for id, s := range g.subs {
				s.end(err)
				delete(g.subs, id)
				a.subGone()
			}
			delete(a.groups, key)
			continue
		}
		if len(up) == 0 && len(removed) == 0 {
			continue
		}
		u := &Update{Kind: UpdateDelta, Version: a.seq, Upserted: up, Removed: removed}
		for id, s := range g.subs {
			if !s.offer(u) {
				delete(g.subs, id)
				a.subGone()
				a.reg.cfg.Metrics.Dropped.Inc()
			}
		}
	}
}

func (a *actor) dropSub(id uint64, slow bool) {
	delete(a.feeds, id)
	a.subGone()
	if slow {
		a.reg.cfg.Metrics.Dropped.Inc()
	}
}

func (a *actor) subGone() {
	a.subs.Add(-1)
	a.reg.cfg.Metrics.Subscribers.Dec()
}

func (a *actor) endSubs(err error) {
	for key, g := range a.groups {
		for id, s := range g.subs {
			s.end(err)
			delete(g.subs, id)
			a.subGone()
		}
		delete(a.groups, key)
	}
	for id, s := range a.feeds {
		s.end(err)
		a.dropSub(id, false)
	}
}

// tick runs on the actor's timer: it expires due holds (durably, like any
// command) and refreshes availability as time moves on.
func (a *actor) tick() error {
	now := a.reg.cfg.Clock.Now()
	if next, ok := a.state.NextHoldExpiry(); ok && !next.After(now) {
		a.apply(&message{kind: kindCmd, cmd: engine.ExpireHolds{}})
		if err := a.commit(); err != nil {
			return err
		}
		if next, ok := a.state.NextHoldExpiry(); ok && !next.After(now) {
			// The store refused the expiry: retry later, not in a hot loop.
			a.expireRetry = now.Add(expireRetryDelay)
		}
	}
	if !a.nextRefresh.IsZero() && !a.nextRefresh.After(now) {
		a.refresh(true)
		a.nextRefresh = time.Time{}
		if len(a.groups) > 0 || len(a.feeds) > 0 {
			a.nextRefresh = now.Add(a.reg.cfg.RefreshEvery)
		}
	}
	a.armTimer()
	return nil
}

// expireRetryDelay spaces out attempts to store hold expiries while the
// store fails. An expired hold already frees its slot in the engine; only
// its hold_expired event and the subscribers' delta wait.
const expireRetryDelay = time.Second

// armTimer sets the timer for the next hold expiry or refresh.
func (a *actor) armTimer() {
	var at time.Time
	if next, ok := a.state.NextHoldExpiry(); ok {
		at = next
		if at.Before(a.expireRetry) {
			at = a.expireRetry
		}
	}
	if !a.nextRefresh.IsZero() && (at.IsZero() || a.nextRefresh.Before(at)) {
		at = a.nextRefresh
	}
	if at.Equal(a.timerAt) {
		return
	}
	if a.timerStop != nil {
		a.timerStop()
		a.timerC, a.timerStop = nil, nil
	}
	a.timerAt = at
	if at.IsZero() {
		return
	}
	a.timerC, a.timerStop = a.reg.cfg.Clock.NewTimer(at.Sub(a.reg.cfg.Clock.Now()))
}

// snapshot stores the state if events arrived since the last snapshot, and
// returns once it is stored, after any snapshot in flight: what a stopping
// actor does, and what it falls back to when a snapshot cannot be encoded
// beside it. Failure is logged only: the journal already holds everything.
func (a *actor) snapshot() {
	a.awaitSnapshot(true)
	if a.state == nil || a.seq == a.snapSeq {
		return
	}
	a.finishSnapshot(a.saveSnapshot(a.state.Snapshot(), a.seq, a.erasures.Load(), true), false)
}

// lastSnapshot is a stopping actor's snapshot, once its commands are
// committed: another writer may have erased a customer this state still
// holds in the clear, so it follows the journal first (snapshotFollowed).
func (a *actor) lastSnapshot() {
	a.awaitSnapshot(true)
	if a.state != nil {
		a.snapshotFollowed()
	}
}

// snapshotFollowed follows the journal to its end, then snapshots in the
// actor, sealing with keys created: another writer's erasure is durable in
// the journal before its key is forgotten, so following first keeps a
// stale copy of an erased customer from being sealed under a new key. No
// snapshot is in flight when it is called; follow's maybeSnapshot is kept
// from starting one, also if follow panics. If the journal cannot be
// followed, no snapshot: the journal holds everything, and the next commit
// makes one due again.
func (a *actor) snapshotFollowed() {
	err := func() error {
		a.snapping = true
		defer func() { a.snapping = false }()
		return a.follow()
	}()
	if err != nil {
		a.reg.cfg.Logger.Warn("snapshot not taken: could not follow the journal first", "tenant", a.tenant, "err", err)
		return
	}
	a.snapshot()
}

// snapDone is how a snapshot ended.
type snapDone struct {
	seq     uint64
	err     error
	skipped bool // an erasure came after the copy: not stored
}

// snapshotAsync starts storing the state on a goroutine of its own, unless
// one is in flight: the actor copies the state (cheap) and goes on, and the
// codec seals and marshals the copy (for a tenant with many bookings, the
// expensive part) meanwhile. The loop hears how it ended on snapC.
//
// Erasure orders against it as follows. The copy may hold a customer in
// the clear whom the actor erases before the copy is sealed; the erasure
// then forgets the subject's key. Sealing the copy under a key made for
// the subject after that would bring the erased customer back, readable.
// (Nothing makes one on a single instance today: the engine refuses
// bookings under an erased pseudonym. A lagging instance sealing with keys
// created could, and the rules below do not rely on the engine.) So the
// codec seals beside the actor only under keys that exist, never creating
// one (ErrSnapshotInActor otherwise: the actor then snapshots itself,
// ordered with its commands), and the copy is stored only if no erasure
// was applied since it was taken, checked after the sealing: an erasure applied after the check is answered after it,
// so its key is forgotten only after every key the sealing used was read.
// Erasures followed from another writer's journal count the same; and
// before the actor seals with keys created, it follows the journal to its
// end, since another writer's erasure is durable there before its key is
// forgotten. A stopping actor only waits for the snapshot in flight: its
// state may hold what it could not commit.
func (a *actor) snapshotAsync() {
	if a.snapping || a.state == nil || a.seq == a.snapSeq {
		return
	}
	if a.snapC == nil {
		a.snapC = make(chan snapDone, 1)
	}
	snap, seq, epoch := a.state.Snapshot(), a.seq, a.erasures.Load()
	a.snapping = true
	go func() { a.snapC <- a.saveSnapshot(snap, seq, epoch, false) }()
}

// saveSnapshot encodes snap, the state at seq, and stores it unless an
// erasure came after the copy (epoch is the actor's erasure count then).
// Beside the actor (not inActor) it runs on a goroutine of its own; in the
// actor nothing can come between, and the codec may create keys.
func (a *actor) saveSnapshot(snap *engine.Snapshot, seq, epoch uint64, inActor bool) snapDone {
	ctx, cancel := a.ctx()
	defer cancel()
	data, err := a.reg.cfg.Codec.EncodeSnapshot(ctx, a.tenant, snap, inActor)
	if a.erasures.Load() != epoch {
		// Also when it failed: a key missing because of that erasure
		// needs no snapshot in the actor, only a fresh copy.
		return snapDone{seq: seq, skipped: true}
	}
	if err != nil {
		return snapDone{seq: seq, err: err}
	}
	return snapDone{seq: seq, err: a.reg.cfg.Store.SaveSnapshot(ctx, a.tenant, persistence.Snapshot{Seq: seq, Data: data})}
}

// awaitSnapshot waits for the snapshot in flight, if there is one, and
// takes note of how it ended (finishSnapshot). A stopping actor passes
// fallback false: after an error or a panic its state may hold what was
// never committed, so it must not snapshot it in its stead.
func (a *actor) awaitSnapshot(fallback bool) {
	if a.snapping {
		a.finishSnapshot(<-a.snapC, fallback)
	}
}

// finishSnapshot takes note of how a snapshot ended. One the codec sent
// back to the actor (ErrSnapshotInActor) is taken in the actor if fallback.
func (a *actor) finishSnapshot(d snapDone, fallback bool) {
	a.snapping = false
	switch {
	case d.skipped:
		a.reg.cfg.Logger.Debug("snapshot not stored: an erasure came after the copy", "tenant", a.tenant, "seq", d.seq)
	case errors.Is(d.err, ErrSnapshotInActor):
		// A key missing may be another writer's erasure.
		if fallback {
			a.snapshotFollowed()
		}
	case d.err != nil:
		a.reg.cfg.Logger.Warn("snapshot failed", "tenant", a.tenant, "seq", d.seq, "err", d.err)
	case d.seq > a.snapSeq: // a reload meanwhile may have found a newer stored snapshot
		a.snapSeq = d.seq
	}
}
