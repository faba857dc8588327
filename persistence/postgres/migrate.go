package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SchemaVersion is the newest schema version this code knows: the number of
// migrations embedded in the binary. Open refuses a database with any other
// version.
const SchemaVersion = 2

// ErrSchemaTooNew is returned by Open and Migrate when the database has a
// schema newer than SchemaVersion: a newer slotd migrated it, and this one
// must not write to a schema it does not know.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this slotd")

// ErrSchemaTooOld is returned by Open when the database's schema is older
// than SchemaVersion (or absent): run Migrate (slotd migrate) first.
var ErrSchemaTooOld = errors.New("postgres: database schema is older than this slotd; run slotd migrate")

// The migrations, embedded in the binary. NNNN_name.sql is portable SQL run
// on both databases; NNNN_name.postgres.sql, if present, runs after it on
// PostgreSQL only. Versions are dense from 1.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version  int
	name     string
	portable []string // statements for both databases
	postgres []string // statements for PostgreSQL only
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+?)(\.postgres)?\.sql$`)

// loadMigrations parses the embedded migration files.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]*migration{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name is not NNNN_name[.postgres].sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		mig := byVersion[version]
		if mig == nil {
			mig = &migration{version: version, name: m[2]}
			byVersion[version] = mig
		}
		if mig.name != m[2] {
			return nil, fmt.Errorf("migration %d has two names: %q and %q", version, mig.name, m[2])
		}
		if m[3] != "" {
			mig.postgres = splitStatements(string(b))
		} else {
			mig.portable = splitStatements(string(b))
		}
	}
	var out []migration
	for v := 1; v <= len(byVersion); v++ {
		mig := byVersion[v]
		if mig == nil {
			return nil, fmt.Errorf("migration versions are not dense from 1: %d missing", v)
		}
		if len(mig.portable) == 0 {
			return nil, fmt.Errorf("migration %d has no portable statements", v)
		}
		out = append(out, *mig)
	}
	return out, nil
}

// splitStatements splits a migration file into statements: each ends with a
// semicolon at the end of a line. Lines starting with -- are comments.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(sql) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// AppRole is the role slotd connects as. When set, Migrate grants it
	// exactly what the Store needs (the journal is INSERT and SELECT only)
	// on every run. It should neither own the tables nor have BYPASSRLS.
	AppRole string
	// MultiRegion, when set and the database is CockroachDB, makes the
	// database multi-region with rows placed by their tenant's home region.
	// Ignored (with a warning) on PostgreSQL, where each region has its own
	// database.
	MultiRegion *MultiRegion
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
}

const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrateLockID keys the PostgreSQL advisory lock that serializes
// concurrent Migrate calls ("slotd" in ASCII).
const migrateLockID = 0x736c6f7464

// Migrate brings the database at ownerDSN to SchemaVersion. It connects as
// the role that owns (or will own) the tables, never as slotd's application
// role. It is idempotent and safe to run from several processes at once on
// PostgreSQL (an advisory lock serializes them; all migrations and grants
// commit in one transaction). It refuses a database newer than this code.
func Migrate(ctx context.Context, ownerDSN string, opts MigrateOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	migs, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	d, err := detectDialect(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if d == cockroach {
		return migrateCockroach(ctx, conn, migs, opts, log)
	}
	if opts.MultiRegion != nil {
		log.Warn("MultiRegion is for CockroachDB; on PostgreSQL give each region its own database")
	}
	return migratePostgres(ctx, conn, migs, opts, log)
}

func migratePostgres(ctx context.Context, conn *pgx.Conn, migs []migration, opts MigrateOptions, log *slog.Logger) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockID)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, schemaMigrationsDDL); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migs) {
		return fmt.Errorf("migrate: database at version %d, this slotd knows %d: %w", current, len(migs), ErrSchemaTooNew)
	}
	for _, m := range migs[current:] {
		for _, stmt := range plan(postgres, m) {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: version %d (%s): %w\n%s", m.version, m.name, err, stmt)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", m.version, err)
		}
		log.Info("applied migration", "version", m.version, "name", m.name)
	}
	if opts.AppRole != "" {
		for _, stmt := range grants(opts.AppRole) {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: %s: %w", stmt, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// plan returns the statements migration m runs on dialect d: the portable
// ones, then on PostgreSQL its PostgreSQL-only ones. CockroachDB's
// multi-region statements are separate (MultiRegion.statements): they depend
// on configuration, not on the version.
func plan(d dialect, m migration) []string {
	out := slices.Clone(m.portable)
	if d == postgres {
		out = append(out, m.postgres...)
	}
	return out
}

// grants gives role what the Store needs and no more. UPDATE on heads,
// snapshots and bookings serves conditional appends and upserts; the
// journal is append-only; records are deleted one by one and on erasure.
func grants(role string) []string {
	r := pgx.Identifier{role}.Sanitize()
	return []string{
		"GRANT SELECT, INSERT ON TABLE journal TO " + r,
		"GRANT SELECT, INSERT, UPDATE ON TABLE heads, snapshots, bookings TO " + r,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE resources, records, directory TO " + r,
		"GRANT SELECT ON TABLE schema_migrations TO " + r,
	}
}

// querier is what schemaVersion needs from a connection or transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion returns the database's schema version, 0 when
// schema_migrations is missing or empty.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// checkSchema fails unless the database is at exactly SchemaVersion.
func checkSchema(ctx context.Context, q querier) error {
	v, err := schemaVersion(ctx, q)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("database schema version %d, this slotd knows %d: %w", v, SchemaVersion, ErrSchemaTooNew)
	case v < SchemaVersion:
		return fmt.Errorf("database schema version %d, want %d: %w", v, SchemaVersion, ErrSchemaTooOld)
	}
	return nil
}
