package postgres

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// SetChooseSeat replaces the projection's seat choice, to play a buggy
// projection. Call it before using s.
func SetChooseSeat(s *Store, choose func(capacity int32, used []int32) (int32, bool)) {
	s.chooseSeat = choose
}

// MigrateTo migrates the PostgreSQL database at ownerDSN to version, an
// older schema than SchemaVersion, without grants: a database as an older
// slotd left it, for upgrade tests.
func MigrateTo(ctx context.Context, ownerDSN string, version int) error {
	migs, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migratePostgres(ctx, conn, migs[:version], MigrateOptions{}, slog.New(slog.DiscardHandler))
}
