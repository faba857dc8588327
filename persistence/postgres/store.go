// Package postgres is slotd's production persistence.Store and
// persistence.RecordStore on PostgreSQL or CockroachDB, through pgx
// (pgxpool) with cockroach-go's transaction retries (crdbpgx.ExecuteTx).
//
// The schema is versioned by migrations embedded in the binary (Migrate,
// run as the role that owns the tables); Open connects as slotd's
// application role and refuses a schema it does not know. Every tenant
// table has tenant_id leading its primary key and indexes and every
// statement filters by tenant. The one global table, directory, holds
// lookup data read before a tenant is known (see migrations/0001_init.sql).
// The records table backs persistence.RecordStore: small tenant documents
// changed by compare-and-swap on a version column (records.go).
//
// Append is one transaction: a conditional update of the tenant's head row
// (UPDATE heads ... WHERE seq = expected, or an insert for the first
// append; no row changed is ErrConflict), the journal rows in the same
// statement, then the bookings projection. The head row's lock serializes
// writers of one tenant across every slotd instance on the database: that is
// the fence. Commits of different tenants proceed in parallel and share WAL
// flushes (group commit).
//
// On PostgreSQL three more things happen, none of them needed for
// correctness and none present on CockroachDB:
//
//   - Row-level security: each transaction first runs
//     set_config('app.tenant_id', tenant, true), and every tenant table's
//     policy hides and refuses rows of other tenants. Open refuses to run as
//     a role that could bypass it (superuser, BYPASSRLS, table owner).
//   - The bookings projection has an exclusion constraint, so not even an
//     engine bug can store overlapping confirmed bookings on one seat of a
//     resource (projection.go explains seats).
//   - After an append commits, the store sends
//     pg_notify('slotd_journal', tenant) (notify.go explains why not inside
//     the transaction), and Follow turns those notifications into wake-ups
//     for other instances.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slotd/slotd/persistence"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("postgres store: closed")

// ErrPrivilegedRole is returned by Open on PostgreSQL when the role it
// connects as could bypass row-level security.
var ErrPrivilegedRole = errors.New("postgres store: role can bypass row-level security (superuser, BYPASSRLS or table owner)")

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the store's warnings (Follow reconnecting). Nil
	// discards them.
	Logger *slog.Logger
	// MaxConns caps the connection pool; 0 keeps pgxpool's default (or
	// pool_max_conns from the DSN).
	MaxConns int32
	// HomeRegion returns the tenant's home region, recorded on every row
	// the store writes for it. It decides where rows live on CockroachDB
	// multi-region (MultiRegion), and it is immutable: an append that
	// claims another region than the one the tenant's head row was created
	// with fails with ErrInvalid. Nil records the empty region (one
	// database serves one region).
	HomeRegion func(tenant string) string
	// NoNotify sends no notification after appends (PostgreSQL). Follow
	// on other stores then hears nothing of this one's appends; they must
	// poll.
	NoNotify bool
	// AllowPrivilegedRole lets Open connect as a role that bypasses
	// row-level security. For maintenance tools only, never for slotd.
	AllowPrivilegedRole bool
}

// Store is a persistence.Store and persistence.RecordStore on PostgreSQL or
// CockroachDB. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	dialect dialect
	opts    Options
	log     *slog.Logger

	// chooseSeat picks a booking's seat in the projection; nil means
	// lowestFreeSeat. Tests replace it to play a buggy projection.
	chooseSeat func(capacity int32, used []int32) (int32, bool)

	notifier *notifier // nil on CockroachDB or with NoNotify

	closeOnce sync.Once
	// done is canceled by Close; Follow's connection watches it.
	done   context.Context
	cancel context.CancelFunc
}

var (
	_ persistence.Store       = (*Store)(nil)
	_ persistence.RecordStore = (*Store)(nil)
)

// Open connects to the database at dsn (as slotd's application role) and
// checks that its schema is exactly SchemaVersion: ErrSchemaTooOld means run
// Migrate first, ErrSchemaTooNew means a newer slotd owns this database.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := &Store{pool: pool, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.done, s.cancel = context.WithCancel(context.Background())
	if err := s.check(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if s.dialect == postgres && !opts.NoNotify {
		s.notifier = startNotifier(pool.Config().ConnConfig, s.log)
	}
	return s, nil
}

// check detects the database, checks the schema version and, on
// PostgreSQL, that row-level security applies to the connected role.
func (s *Store) check(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if s.dialect, err = detectDialect(ctx, conn); err != nil {
		return err
	}
	if err := checkSchema(ctx, conn); err != nil {
		return err
	}
	if s.dialect != postgres || s.opts.AllowPrivilegedRole {
		return nil
	}
	var role string
	var super, bypass, owner bool
	err = conn.QueryRow(ctx, `
		SELECT current_user, r.rolsuper, r.rolbypassrls,
		       EXISTS (SELECT 1 FROM unnest($1::text[]) AS t(name)
		               JOIN pg_class c ON c.oid = to_regclass(t.name)
		               WHERE pg_has_role(current_user, c.relowner, 'MEMBER'))
		FROM pg_roles r WHERE r.rolname = current_user`,
		append(tenantTables, "directory"),
	).Scan(&role, &super, &bypass, &owner)
	if err != nil {
		return fmt.Errorf("check role: %w", err)
	}
	if super || bypass || owner {
		return fmt.Errorf("role %q (superuser %v, bypassrls %v, owns tables %v): %w", role, super, bypass, owner, ErrPrivilegedRole)
	}
	return nil
}

// Close closes the pool, waiting for operations in flight, and stops
// Follow. Later calls return ErrClosed; closing twice is not an error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.pool.Close()
		if s.notifier != nil {
			s.notifier.close()
		}
	})
	return nil
}

// begin checks ctx and that the store is open.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.done.Err() != nil {
		return ErrClosed
	}
	return nil
}

// region returns the home region recorded on tenant's rows.
func (s *Store) region(tenant string) string {
	if s.opts.HomeRegion == nil {
		return ""
	}
	return s.opts.HomeRegion(tenant)
}

// setTenantSQL binds a transaction to a tenant for row-level security; the
// setting ends with the transaction (is_local true).
const setTenantSQL = "SELECT set_config('app.tenant_id', $1, true)"

// queueTenant queues setTenantSQL as the first statement of b on
// PostgreSQL. It returns the number of results it queued (0 or 1), which
// the caller skips.
func (s *Store) queueTenant(b *pgx.Batch, tenant string) int {
	if s.dialect != postgres {
		return 0
	}
	b.Queue(setTenantSQL, tenant)
	return 1
}

// inTx runs fn in a transaction with crdbpgx.ExecuteTx, which retries fn
// on serialization failures (SQLSTATE 40001: CockroachDB's retry errors;
// on PostgreSQL a rare READ COMMITTED outcome). fn may run several times:
// database work only.
//
// ExecuteTx ends with RELEASE SAVEPOINT, which commits on CockroachDB, and
// then calls Commit ignoring its error. On PostgreSQL the COMMIT is the
// real commit and it can fail (the connection drops, a deferred check
// fails): ignoring that would acknowledge an append that is not durable.
// committer records the COMMIT's error so that inTx returns it.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	c := &committer{pool: s.pool}
	if err := crdbpgx.ExecuteTx(ctx, c, pgx.TxOptions{}, fn); err != nil {
		return err
	}
	if c.commitErr != nil {
		return fmt.Errorf("commit: %w", c.commitErr)
	}
	return nil
}

// committer is the crdbpgx.Conn given to ExecuteTx: it begins transactions
// on the pool and records the error of their Commit.
type committer struct {
	pool      *pgxpool.Pool
	commitErr error
}

func (c *committer) Begin(ctx context.Context) (pgx.Tx, error) {
	return c.BeginTx(ctx, pgx.TxOptions{})
}

func (c *committer) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	tx, err := c.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return recordingTx{Tx: tx, c: c}, nil
}

type recordingTx struct {
	pgx.Tx
	c *committer
}

func (t recordingTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.c.commitErr = err
	return err
}
