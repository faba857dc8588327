package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrFollowUnsupported is returned by Follow on CockroachDB, which has no
// LISTEN/NOTIFY: poll ReadFrom there (or use a changefeed).
var ErrFollowUnsupported = errors.New("postgres store: Follow needs PostgreSQL LISTEN/NOTIFY")

// Follow wakes fn for appends committed by any Store on this database,
// other slotd instances included: it LISTENs on NotifyChannel on a
// connection of its own and calls fn with each notification's tenant. It
// reconnects (with backoff) when the connection fails, and returns when ctx
// is done or the store is closed.
//
// A notification is a wake-up, not the data: the follower reads the
// journal tail with ReadFrom. Notifications sent while Follow is not
// listening are lost, so after every successful LISTEN (the first one
// included) Follow calls fn(""), meaning "anything may have changed: re-read
// every tenant you follow". A lost notification therefore only delays an
// update. fn runs on Follow's goroutine and should not block for long.
func (s *Store) Follow(ctx context.Context, fn func(tenant string)) error {
	if s.dialect != postgres {
		return ErrFollowUnsupported
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.done, cancel)
	defer stop()

	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		listened, err := s.listen(ctx, fn)
		if ctx.Err() != nil {
			if s.done.Err() != nil {
				return ErrClosed
			}
			return ctx.Err()
		}
		if listened {
			backoff = minBackoff
		}
		s.log.Warn("follow: connection lost; reconnecting", "err", err, "after", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one LISTEN session until its connection fails. It reports
// whether LISTEN succeeded.
func (s *Store) listen(ctx context.Context, fn func(tenant string)) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		fn(n.Payload)
	}
}
