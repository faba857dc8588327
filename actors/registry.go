// Package actors runs one goroutine per live tenant. The goroutine owns the
// tenant's engine.State; commands reach it through a bounded mailbox, are
// applied one at a time, committed to the journal together (group commit)
// and only then acknowledged. After each commit the actor pushes
// availability changes to its subscribers, each through a bounded queue it
// never waits on. A registry bounded by an LRU passivates idle tenants and
// reactivates them from snapshot + journal on demand.
//
// Several registries (several slotd instances) may serve one tenant from
// one store. The store's conditional append keeps them from both
// committing: the loser catches up with the journal and decides again. To
// keep subscribers on every instance current, a live actor also follows
// the journal: Notify (driven by the store's notifications, such as
// PostgreSQL LISTEN) and Poll (a periodic fallback for a lost or absent
// notification) wake it to read and publish what others appended.
package actors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence"
)

// Store is what the actors need from persistence (see persistence.Store for
// the contract every backend fulfils).
type Store interface {
	Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error)
	Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error)
	SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error
	// ReadFrom is read to follow entries other writers appended.
	ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]persistence.Entry, error)
}

// Config holds a registry's dependencies and limits. Zero limits take the
// defaults shown.
type Config struct {
	Store Store
	// Codec encodes events and snapshots for the store and decodes them
	// (default JSONCodec{}). If it is a CommandPreparer, Do passes every
	// command through it first.
	Codec   Codec
	Clock   clock.Clock  // default clock.Real{}
	Logger  *slog.Logger // default slog.Default()
	Metrics *Metrics     // default NewMetrics(nil)

	MaxLive       int // live actors before idle ones are passivated; 10000
	MailboxSize   int // per tenant; a full mailbox answers overloaded; 1024
	BatchMax      int // commands per group commit; 256
	SnapshotEvery int // events between snapshots (or half the state's size if more), less the spread below; 1000
	// SnapshotSpread, in [0, 0.9], shortens each tenant's interval between
	// snapshots by a fraction of itself fixed per tenant (from a hash of
	// its id, up to SnapshotSpread), so that tenants that grow alike —
	// started together, or reloaded together — do not all seal and store
	// a snapshot at the same moment. The intervals are shorter by the
	// spread: at 0.5, 0.75 of the unspread interval on average, so
	// snapshots a third more often. 0 (the default): every tenant at the
	// same count.
	SnapshotSpread  float64
	SubscriberQueue int           // updates queued per subscriber before it is dropped; 64
	MaxRestarts     int           // panics tolerated per RestartWindow; 5
	RestartWindow   time.Duration // 1 minute
	RefreshEvery    time.Duration // availability refresh while subscribed, as time passes; 1 minute
	StoreTimeout    time.Duration // per store call; 30 s
	// SubscribeWait is how long a subscribe waits for room in a full
	// mailbox before it is answered overloaded; 2 s. Commands and reads
	// are refused at once (load shedding), but a subscribe is a page
	// being opened: when thousands open at once, a short wait serves them
	// in turn, where a refusal would have them all retry together.
	SubscribeWait time.Duration
}

func (c *Config) defaults() {
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxLive, 10000)
	def(&c.MailboxSize, 1024)
	def(&c.BatchMax, 256)
	def(&c.SnapshotEvery, 1000)
	if !(c.SnapshotSpread > 0) { // also NaN
		c.SnapshotSpread = 0
	}
	c.SnapshotSpread = min(c.SnapshotSpread, 0.9)
	def(&c.SubscriberQueue, 64)
	def(&c.MaxRestarts, 5)
	if c.RestartWindow <= 0 {
		c.RestartWindow = time.Minute
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = time.Minute
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 30 * time.Second
	}
	if c.SubscribeWait <= 0 {
		c.SubscribeWait = 2 * time.Second
	}
}

// Registry finds or activates the actor of a tenant.
type Registry struct {
	cfg    Config
	nextID atomic.Uint64

	mu       sync.Mutex // guards the fields below
	live     *simplelru.LRU[string, *actor]
	stopping map[string]*actor // passivated actors still finishing their mailbox
	closed   bool
	wg       sync.WaitGroup
}

// NewRegistry returns a registry; call Close (or run Run) to stop it.
func NewRegistry(cfg Config) *Registry {
	cfg.defaults()
	live, _ := simplelru.NewLRU[string, *actor](1<<31-1, nil) // size checked by trimLocked
	return &Registry{cfg: cfg, live: live, stopping: map[string]*actor{}}
}

// Run blocks until ctx is done, then stops every actor (each finishes its
// mailbox, snapshots and ends its subscriptions) and returns.
func (r *Registry) Run(ctx context.Context) error {
	<-ctx.Done()
	r.Close()
	return nil
}

// Close stops every actor and waits for them. Later calls fail with
// unavailable.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	actors := r.live.Values()
	r.mu.Unlock()
	for _, a := range actors {
		a.stop()
	}
	r.wg.Wait()
}

// Live is the number of tenant actors in memory.
func (r *Registry) Live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live.Len()
}

var errClosed = engine.Errorf(engine.CodeUnavailable, "slotd is shutting down")

func (r *Registry) actor(tenant string) (*actor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed
	}
	if a, ok := r.live.Get(tenant); ok {
		return a, nil
	}
	a := newActor(r, tenant)
	// A passivated predecessor may still be committing its last batch; the
	// new actor loads only after it has finished.
	a.prev = r.stopping[tenant]
	r.live.Add(tenant, a)
	r.cfg.Metrics.LiveActors.Inc()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		a.run()
	}()
	r.trimLocked(tenant)
	return a, nil
}

// trimLocked passivates the least recently used idle actors while more
// than MaxLive are in memory. Actors with subscribers or queued messages
// are not idle, nor is keep, the actor just activated for a message not yet
// enqueued: they move to the front and the search goes on, a bounded
// number of steps per call.
func (r *Registry) trimLocked(keep string) {
	for steps := 0; r.live.Len() > r.cfg.MaxLive && steps < 32; steps++ {
		key, a, ok := r.live.GetOldest()
		if !ok {
			return
		}
		if key == keep || a.subs.Load() > 0 || a.mailbox.len() > 0 {
			r.live.Get(key) // recently used now
			continue
		}
		r.live.Remove(key)
		r.stopping[key] = a
		r.cfg.Metrics.LiveActors.Dec()
		r.cfg.Metrics.Passivations.Inc()
		a.stop()
	}
}

// Notify tells the registry that another writer may have appended to
// tenant's journal; "" means any tenant (after a notification connection
// was re-established, or on a poll). A live actor of the tenant then reads
// the new entries, applies them and publishes them to its subscribers; a
// tenant without a live actor loads them when it is next activated.
//
// Notify never waits for an actor: the wake-up is a flag the actor checks
// between batches, and wake-ups arriving while one is pending coalesce
// into it. It is safe to call from any goroutine, such as a store's
// notification listener.
func (r *Registry) Notify(tenant string) {
	r.mu.Lock()
	var targets []*actor
	if tenant == "" {
		targets = r.live.Values()
	} else if a, ok := r.live.Peek(tenant); ok { // Peek: a notification is not a use
		targets = []*actor{a}
	}
	r.mu.Unlock()
	for _, a := range targets {
		a.notify()
	}
}

// Poll calls Notify("") every interval, on the registry's clock, until ctx
// is done: the fallback that bounds how long a lost notification delays an
// update, and the only way updates cross instances when the store sends no
// notifications (CockroachDB, PostgreSQL with notifications off). Each
// poll costs one journal read per live tenant. An interval <= 0 disables
// polling: Poll only waits for ctx, so that it can stay one run group.
func (r *Registry) Poll(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	for {
		c, stop := r.cfg.Clock.NewTimer(interval)
		select {
		case <-c:
			r.Notify("")
		case <-ctx.Done():
			stop()
			return nil
		}
	}
}

// forget moves a stopping actor out of the live index; exited reports that
// its goroutine has ended, so it is dropped altogether.
func (r *Registry) forget(a *actor, exited bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.live.Peek(a.tenant); ok && cur == a {
		r.live.Remove(a.tenant)
		r.cfg.Metrics.LiveActors.Dec()
		if !exited {
			r.stopping[a.tenant] = a
		}
	}
	if exited && r.stopping[a.tenant] == a {
		delete(r.stopping, a.tenant)
	}
}

// send delivers m to the tenant's actor, activating it if needed.
func (r *Registry) send(tenant string, m *message) error {
	if err := persistence.CheckTenant(tenant); err != nil {
		return engine.Errorf(engine.CodeInvalid, "tenant id %q is malformed", tenant)
	}
	for attempt := 0; attempt < 5; attempt++ {
		a, err := r.actor(tenant)
		if err != nil {
			return err
		}
		accepted, full := a.enqueue(m)
		if accepted {
			return nil
		}
		if full {
			return engine.Errorf(engine.CodeOverloaded, "tenant %s is busy; retry shortly", tenant)
		}
		// The actor was stopping; a fresh one takes its place.
		r.forget(a, false)
	}
	return engine.Errorf(engine.CodeUnavailable, "tenant %s is restarting; retry shortly", tenant)
}

// check asks the tenant's actor whether it would accept cmd now, without
// applying it. A refusal is answered after the commit in flight, like a
// refused command, so it never rests on a change that is not durable.
func (r *Registry) check(ctx context.Context, tenant string, cmd engine.Command) (uint64, error) {
	rep, err := r.ask(ctx, tenant, &message{kind: kindCmd, cmd: cmd, check: true, reply: make(chan reply, 1)})
	if err != nil {
		return 0, err
	}
	return rep.seq, rep.err
}

// ask sends m to the tenant's actor and waits for its reply. The error is
// send's or ctx's; the actor's answer, refusals included, is in the reply.
func (r *Registry) ask(ctx context.Context, tenant string, m *message) (reply, error) {
	if err := r.send(tenant, m); err != nil {
		return reply{}, err
	}
	return await(ctx, m)
}

// await waits for m's reply, or returns ctx.Err() first.
func await(ctx context.Context, m *message) (reply, error) {
	select {
	case rep := <-m.reply:
		return rep, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// sendWait is send, waiting up to wait (and no longer than ctx) for room
// in a full mailbox: it retries after 1 ms, doubling to at most 16 ms, and
// once more at the end of the wait.
func (r *Registry) sendWait(ctx context.Context, tenant string, m *message, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		err := r.send(tenant, m)
		left := time.Until(deadline)
		if err == nil || !ErrOverloaded(err) || left <= 0 {
			return err
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		pause = min(2*pause, 16*time.Millisecond)
	}
}

// Reply is a command's answer.
type Reply struct {
	engine.Result
	// Seq is the journal sequence after the command's batch was committed.
	Seq uint64
}

// Do applies cmd to the tenant and waits for its answer. A nil error means
// the command's events are durable. Domain refusals are *engine.Error. If
// ctx ends first Do returns ctx.Err() and the command may still complete.
func (r *Registry) Do(ctx context.Context, tenant string, cmd engine.Command) (Reply, error) {
	if p, ok := r.cfg.Codec.(CommandPreparer); ok {
		if err := persistence.CheckTenant(tenant); err != nil {
			return Reply{}, engine.Errorf(engine.CodeInvalid, "tenant id %q is malformed", tenant)
		}
		// A command the engine would refuse as things stand (the slot is
		// taken, the service unknown) is refused before the preparer does
		// its I/O: no customer record is made for a booking that never
		// was.
		if p.Prepares(cmd) {
			if seq, err := r.check(ctx, tenant, cmd); err != nil {
				return Reply{Seq: seq}, err
			}
		}
		var err error
		if cmd, err = p.PrepareCommand(ctx, tenant, cmd); err != nil {
			return Reply{}, err
		}
	}
	rep, err := r.ask(ctx, tenant, &message{kind: kindCmd, cmd: cmd, reply: make(chan reply, 1)})
	if err != nil {
		return Reply{}, err
	}
	if rep.err == nil && rep.res.Duplicate && rep.res.Booking != nil {
		// A repeated request stores nothing, so nothing checked that
		// this instance's copy of the booking is current: another may
		// have erased its customer since. Answer with the latest.
		id := rep.res.Booking.ID
		err := r.ReadLatest(ctx, tenant, func(st *engine.State, seq uint64) error {
			if b, ok := st.Booking(id); ok {
				rep.res.Booking, rep.seq = &b, seq
			}
			return nil
		})
		if err != nil {
			return Reply{}, err
		}
	}
	return Reply{Result: rep.res, Seq: rep.seq}, rep.err
}

// Read runs fn on the tenant's committed state inside its actor and returns
// fn's error. fn must not keep references into the state.
func (r *Registry) Read(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error {
	return r.read(ctx, tenant, fn, false)
}

// ReadLatest is Read on a state that includes everything committed to the
// tenant's journal before the call, by any writer: the actor follows the
// journal to its end first (one read of the store, which finds nothing new
// when this is the only instance). For reads that return customers'
// personal data, so that an erasure made through another instance is
// honoured at once rather than when this one next follows the journal. If
// the journal cannot be read, the read is refused (unavailable) rather
// than answered from a state that may be behind.
func (r *Registry) ReadLatest(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error {
	return r.read(ctx, tenant, fn, true)
}

func (r *Registry) read(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error, latest bool) error {
	rep, err := r.ask(ctx, tenant, &message{kind: kindRead, read: fn, latest: latest, reply: make(chan reply, 1)})
	if err != nil {
		return err
	}
	return rep.err
}

// SubscribeAvailability streams the availability for q: first a snapshot,
// then a delta after every change, in order. queue bounds the updates
// waiting for the reader (0: the registry default).
func (r *Registry) SubscribeAvailability(ctx context.Context, tenant string, q engine.AvailabilityQuery, queue int) (*Subscription, error) {
	return r.subscribe(ctx, tenant, &Subscription{Query: q}, queue)
}

// SubscribeFeed streams committed booking, hold and erasure events of the
// tenant.
func (r *Registry) SubscribeFeed(ctx context.Context, tenant string, queue int) (*Subscription, error) {
	return r.subscribe(ctx, tenant, &Subscription{Feed: true}, queue)
}

func (r *Registry) subscribe(ctx context.Context, tenant string, sub *Subscription, queue int) (*Subscription, error) {
	if queue <= 0 {
		queue = r.cfg.SubscriberQueue
	}
	sub.ID = r.nextID.Add(1)
	sub.Tenant = tenant
	sub.c = make(chan *Update, queue)
	sub.C = sub.c
	m := &message{kind: kindSubscribe, sub: sub, reply: make(chan reply, 1)}
	if err := r.sendWait(ctx, tenant, m, r.cfg.SubscribeWait); err != nil {
		return nil, err
	}
	rep, err := await(ctx, m)
	if err != nil {
		sub.Close()
		return nil, err
	}
	if rep.err != nil {
		return nil, rep.err
	}
	return sub, nil
}

// ErrOverloaded reports whether err is the overloaded refusal.
func ErrOverloaded(err error) bool {
	var ee *engine.Error
	return errors.As(err, &ee) && ee.Code == engine.CodeOverloaded
}
