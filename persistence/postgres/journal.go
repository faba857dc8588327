package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/persistence"
)

// NotifyChannel is the PostgreSQL notification channel an append notifies
// (payload: the tenant id) and Follow listens on.
const NotifyChannel = "slotd_journal"

// The conditional append, one statement each: the CTE changes the head
// only if it is where the caller expects, and the journal rows are inserted
// only if it did. Under READ COMMITTED a concurrent writer of the same
// tenant waits for the head row's lock and then finds seq changed (UPDATE)
// or the row present (ON CONFLICT DO NOTHING): zero rows, a conflict.
const (
	appendFirstSQL = `
WITH head AS (
    INSERT INTO heads (tenant_id, seq, home_region) VALUES ($1, $2, $3)
    ON CONFLICT (tenant_id) DO NOTHING
    RETURNING seq
)
INSERT INTO journal (tenant_id, seq, data, home_region)
SELECT $1, u.ord, u.data, $3
FROM head, unnest($4::bytea[]) WITH ORDINALITY AS u(data, ord)`

	appendNextSQL = `
WITH head AS (
    UPDATE heads SET seq = $3
    WHERE tenant_id = $1 AND seq = $2 AND home_region = $4
    RETURNING seq
)
INSERT INTO journal (tenant_id, seq, data, home_region)
SELECT $1, $2 + u.ord, u.data, $4
FROM head, unnest($5::bytea[]) WITH ORDINALITY AS u(data, ord)`

	headSQL = "SELECT COALESCE((SELECT seq FROM heads WHERE tenant_id = $1), 0)"

	headRegionSQL = "SELECT seq, home_region FROM heads WHERE tenant_id = $1"
)

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if len(events) == 0 {
		head, err := s.head(ctx, tenant)
		if err != nil {
			return 0, fmt.Errorf("append %s: %w", tenant, err)
		}
		if head != expectedSeq {
			return 0, fmt.Errorf("append %s at %d, head is %d: %w", tenant, expectedSeq, head, persistence.ErrConflict)
		}
		return head, nil
	}
	// Heads are bigints: no head is beyond MaxInt64.
	if expectedSeq > math.MaxInt64 {
		return 0, fmt.Errorf("append %s at %d: %w", tenant, expectedSeq, persistence.ErrConflict)
	}
	n := uint64(len(events))
	if n > math.MaxInt64-expectedSeq {
		return 0, fmt.Errorf("append %s: sequence overflow: %w", tenant, persistence.ErrInvalid)
	}
	newHead := expectedSeq + n
	data := make([][]byte, len(events))
	for i, ev := range events {
		if ev == nil {
			ev = []byte{} // nil would be NULL
		}
		data[i] = ev
	}
	ops := projectEvents(events, expectedSeq)
	region := s.region(tenant)

	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		skip := s.queueTenant(b, tenant)
		if expectedSeq == 0 {
			b.Queue(appendFirstSQL, tenant, int64(newHead), region, data)
		} else {
			b.Queue(appendNextSQL, tenant, int64(expectedSeq), int64(newHead), region, data)
		}
		inserted, err := execBatch(ctx, tx, b, skip)
		if err != nil {
			return err
		}
		if inserted == 0 {
			return s.appendRefused(ctx, tx, tenant, expectedSeq, region)
		}
		if inserted != int64(n) {
			return fmt.Errorf("journal insert wrote %d rows, want %d", inserted, n)
		}
		return s.project(ctx, tx, tenant, region, ops)
	})
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", tenant, err)
	}
	if s.notifier != nil {
		s.notifier.add(tenant)
	}
	return newHead, nil
}

// execBatch sends b, skips the first skip results (set_config), and
// returns the rows affected by the next statement; any further results are
// checked for errors only.
func execBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch, skip int) (int64, error) {
	br := tx.SendBatch(ctx, b)
	var affected int64
	for i := range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, err
		}
		if i == skip {
			affected = tag.RowsAffected()
		}
	}
	return affected, br.Close()
}

// appendRefused explains why the conditional append changed nothing: the
// head moved (ErrConflict), or the head is where the caller expected but
// the tenant's home region differs (ErrInvalid: regions are immutable).
func (s *Store) appendRefused(ctx context.Context, tx pgx.Tx, tenant string, expectedSeq uint64, region string) error {
	var head int64
	var stored string
	err := tx.QueryRow(ctx, headRegionSQL, tenant).Scan(&head, &stored)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read head after conflict: %w", err)
	}
	if uint64(head) == expectedSeq && stored != region {
		return fmt.Errorf("home region %q, tenant's is %q: %w", region, stored, persistence.ErrInvalid)
	}
	return fmt.Errorf("at %d, head is %d: %w", expectedSeq, head, persistence.ErrConflict)
}

// head reads tenant's journal head (0 for an unknown tenant).
func (s *Store) head(ctx context.Context, tenant string) (uint64, error) {
	var head int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return s.query(ctx, tx, tenant, headSQL, []any{tenant}, func(rows pgx.Rows) error { return rows.Scan(&head) })
	})
	if err != nil {
		return 0, fmt.Errorf("read head: %w", err)
	}
	return uint64(head), nil
}

// loadSQL reads the snapshot and the journal after it in one statement, so
// both come from one database snapshot: a SaveSnapshot committing between
// two statements could otherwise leave a gap.
const loadSQL = `
WITH snap AS (SELECT seq, data FROM snapshots WHERE tenant_id = $1)
SELECT true AS is_snapshot, seq, data FROM snap
UNION ALL
SELECT false, j.seq, j.data FROM journal AS j
WHERE j.tenant_id = $1 AND j.seq > COALESCE((SELECT seq FROM snap), 0)
ORDER BY 1 DESC, 2`

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	var snap persistence.Snapshot
	var entries []persistence.Entry
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		snap, entries = persistence.Snapshot{}, nil
		return s.query(ctx, tx, tenant, loadSQL, []any{tenant}, func(rows pgx.Rows) error {
			var isSnap bool
			var seq int64
			var data []byte
			if err := rows.Scan(&isSnap, &seq, &data); err != nil {
				return err
			}
			if isSnap {
				snap = persistence.Snapshot{Seq: uint64(seq), Data: data}
			} else {
				entries = append(entries, persistence.Entry{Seq: uint64(seq), Data: data})
			}
			return nil
		})
	})
	if err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load %s: %w", tenant, err)
	}
	return snap, entries, nil
}

// ReadFrom implements persistence.Store.
func (s *Store) ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if after >= math.MaxInt64 {
		return nil, nil // no seq is beyond a bigint
	}
	sql := "SELECT seq, data FROM journal WHERE tenant_id = $1 AND seq > $2 ORDER BY seq"
	args := []any{tenant, int64(after)}
	if limit > 0 {
		sql += " LIMIT $3"
		args = append(args, limit)
	}
	var entries []persistence.Entry
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		entries = nil
		return s.query(ctx, tx, tenant, sql, args, func(rows pgx.Rows) error {
			var seq int64
			var data []byte
			if err := rows.Scan(&seq, &data); err != nil {
				return err
			}
			entries = append(entries, persistence.Entry{Seq: uint64(seq), Data: data})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", tenant, err)
	}
	return entries, nil
}

// query runs one query bound to tenant in tx (set_config and the query in
// one round trip) and calls scan for each row.
func (s *Store) query(ctx context.Context, tx pgx.Tx, tenant, sql string, args []any, scan func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	skip := s.queueTenant(b, tenant)
	b.Queue(sql, args...)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for range skip {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	for rows.Next() {
		if err := scan(rows); err != nil {
			rows.Close()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return br.Close()
}

// saveSnapshotSQL stores the snapshot if it is within the head and not
// older than the stored one, and returns the head it compared with: one
// statement, so the head returned is the one the condition saw. Concurrent
// savers serialize on the snapshot row; the newest wins.
const saveSnapshotSQL = `
WITH head AS (SELECT COALESCE((SELECT seq FROM heads WHERE tenant_id = $1), 0) AS seq),
saved AS (
    INSERT INTO snapshots (tenant_id, seq, data, home_region)
    SELECT $1, $2, $3, $4 FROM head WHERE $2 <= head.seq
    ON CONFLICT (tenant_id) DO UPDATE
    SET seq = excluded.seq, data = excluded.data
    WHERE snapshots.seq <= excluded.seq
    RETURNING 1
)
SELECT seq FROM head`

// SaveSnapshot implements persistence.Store.
func (s *Store) SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error {
	if err := persistence.CheckTenant(tenant); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if snap.Seq > math.MaxInt64 {
		return fmt.Errorf("save snapshot %s at %d beyond head: %w", tenant, snap.Seq, persistence.ErrInvalid)
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	var head int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return s.query(ctx, tx, tenant, saveSnapshotSQL, []any{tenant, int64(snap.Seq), data, s.region(tenant)},
			func(rows pgx.Rows) error { return rows.Scan(&head) })
	})
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", tenant, err)
	}
	if snap.Seq > uint64(head) {
		return fmt.Errorf("save snapshot %s at %d beyond head %d: %w", tenant, snap.Seq, head, persistence.ErrInvalid)
	}
	return nil
}
