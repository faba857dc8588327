package postgres

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifier sends the PostgreSQL notifications (NotifyChannel, payload the
// tenant id) for appends that have committed, from a goroutine and a
// connection of its own.
//
// Why not pg_notify inside the append transaction: PostgreSQL serializes
// the commits of notifying transactions on one cluster-wide lock, held
// through the commit's WAL flush. Appends that notify cannot share a WAL
// flush, so the whole cluster commits them one fsync at a time
// (BenchmarkAppendParallelTenants measured exactly 1 fsync per append and
// flat throughput with in-transaction NOTIFY, against about 0.3 and several
// times the throughput without). Here the notification is a separate
// statement on a connection with synchronous_commit off, so its commit
// holds that lock only briefly, and tenants appended while one is in
// flight are coalesced into the next.
//
// The price: a notification can be lost if slotd dies between an append's
// commit and its notification, or while the connection is down. A
// notification is only a wake-up (followers read the journal with
// ReadFrom, and Follow tells them to re-read everything after each
// reconnect), so that delays an update on another instance; it never loses
// one, provided followers also re-read now and then.
type notifier struct {
	cfg *pgx.ConnConfig
	log *slog.Logger

	mu      sync.Mutex // guards pending
	pending map[string]struct{}

	wake chan struct{} // capacity 1: "pending is not empty"
	stop context.CancelFunc
	done chan struct{} // closed when run returns
}

// notifyManySQL notifies every tenant in $1: one statement, one commit.
const notifyManySQL = "SELECT pg_notify('" + NotifyChannel + "', t) FROM unnest($1::text[]) AS t"

// startNotifier starts the notifier's goroutine; stopNotifier ends it.
func startNotifier(cfg *pgx.ConnConfig, log *slog.Logger) *notifier {
	cfg = cfg.Copy()
	cfg.RuntimeParams["synchronous_commit"] = "off"
	cfg.RuntimeParams["application_name"] = "slotd notifier"
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{
		cfg:     cfg,
		log:     log,
		pending: make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		stop:    cancel,
		done:    make(chan struct{}),
	}
	go n.run(ctx)
	return n
}

// add queues a notification for tenant, whose append has committed.
func (n *notifier) add(tenant string) {
	n.mu.Lock()
	n.pending[tenant] = struct{}{}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take empties pending and returns its tenants.
func (n *notifier) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	tenants := slices.Collect(maps.Keys(n.pending))
	clear(n.pending)
	return tenants
}

// close stops the goroutine after a last attempt to send what is pending.
func (n *notifier) close() {
	n.stop()
	<-n.done
}

func (n *notifier) run(ctx context.Context) {
	defer close(n.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		stopping := false
		select {
		case <-n.wake:
		case <-ctx.Done():
			stopping = true
		}
		tenants := n.take()
		if len(tenants) == 0 {
			if stopping {
				return
			}
			continue
		}
		if stopping {
			// One last try, briefly, for appends committed before Close.
			lastCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := n.send(lastCtx, &conn, tenants); err != nil {
				n.log.Warn("notify: last notifications before close lost", "err", err, "tenants", len(tenants))
			}
			cancel()
			return
		}
		if err := n.send(ctx, &conn, tenants); err == nil {
			backoff = minBackoff
			continue
		} else {
			n.log.Warn("notify: sending failed; retrying", "err", err, "tenants", len(tenants), "after", backoff)
		}
		n.mu.Lock()
		for _, t := range tenants {
			n.pending[t] = struct{}{}
		}
		n.mu.Unlock()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, maxBackoff)
		select { // pending is not empty: go round again
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// send notifies tenants on *conn, connecting first if needed; on failure
// it closes *conn so the next send reconnects.
func (n *notifier) send(ctx context.Context, conn **pgx.Conn, tenants []string) error {
	if *conn == nil {
		c, err := pgx.ConnectConfig(ctx, n.cfg)
		if err != nil {
			return err
		}
		*conn = c
	}
	if _, err := (*conn).Exec(ctx, notifyManySQL, tenants); err != nil {
		_ = (*conn).Close(context.Background())
		*conn = nil
		return err
	}
	return nil
}
