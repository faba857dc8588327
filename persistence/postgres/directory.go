package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/persistence"
)

// The directory is global lookup data with no tenant (its row-level
// security policy allows every row; see migrations/0001_init.postgres.sql).
// Each operation is one autocommitted statement: durable on return, and
// retried by CockroachDB itself when it must be. Keys are bytea because the
// contract allows any bytes but NUL, not only UTF-8; bytea orders bytewise,
// as ListDirectory promises.

// PutDirectory implements persistence.Store.
func (s *Store) PutDirectory(ctx context.Context, kind, key string, value []byte) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO directory (kind, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`,
		kind, []byte(key), value)
	if err != nil {
		return fmt.Errorf("put directory %s/%q: %w", kind, key, err)
	}
	return nil
}

// GetDirectory implements persistence.Store.
func (s *Store) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	var value []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM directory WHERE kind = $1 AND key = $2", kind, []byte(key)).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, persistence.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, err)
	}
	return value, nil
}

// DeleteDirectory implements persistence.Store.
func (s *Store) DeleteDirectory(ctx context.Context, kind, key string) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM directory WHERE kind = $1 AND key = $2", kind, []byte(key)); err != nil {
		return fmt.Errorf("delete directory %s/%q: %w", kind, key, err)
	}
	return nil
}

// ListDirectory implements persistence.Store.
func (s *Store) ListDirectory(ctx context.Context, kind string) ([]string, error) {
	if err := persistence.CheckKind(kind); err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	rows, err := s.pool.Query(ctx, "SELECT key FROM directory WHERE kind = $1 ORDER BY key", kind)
	if err != nil {
		return nil, fmt.Errorf("list directory %s: %w", kind, err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var key []byte
		err := row.Scan(&key)
		return string(key), err
	})
	if err != nil {
		return nil, fmt.Errorf("list directory %s: %w", kind, err)
	}
	return keys, nil
}
