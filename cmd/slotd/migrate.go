package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/slotd/slotd/persistence/postgres"
)

// runMigrate is "slotd migrate": it brings a PostgreSQL (or CockroachDB)
// database to the schema this slotd knows, as the role that owns the
// tables, grants slotd's application role what it needs, and exits. It is
// idempotent; slotd itself refuses to serve until the schema matches.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slotd migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ownerURL := fs.String("database-owner-url", getenv("SLOTD_DATABASE_OWNER_URL"),
		"database URL connecting as the role that owns (or will own) slotd's tables; required (env SLOTD_DATABASE_OWNER_URL)")
	appRole := fs.String("app-role", getenv("SLOTD_DATABASE_APP_ROLE"),
		"role slotd serves as (the user of -database-url): granted exactly what slotd needs; it must not own the tables nor bypass row-level security (env SLOTD_DATABASE_APP_ROLE)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: slotd migrate -database-owner-url URL -app-role ROLE

Creates or upgrades slotd's schema (to version %d) and grants ROLE what slotd
needs, then exits. Safe to run again and from several places at once.

Flags:
`, postgres.SchemaVersion)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected arguments %q", fs.Args())
	}
	if *ownerURL == "" {
		return errors.New("migrate: -database-owner-url (or SLOTD_DATABASE_OWNER_URL) is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "migrate")
	if *appRole == "" {
		log.Warn("no -app-role: nothing granted; slotd's role needs the grants before it can serve")
	}
	err := postgres.Migrate(ctx, *ownerURL, postgres.MigrateOptions{AppRole: *appRole, Logger: log})
	if errors.Is(err, postgres.ErrSchemaTooNew) {
		return fmt.Errorf("%w\na newer slotd migrated this database: run that version (or newer)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema at version %d (%s)\n", postgres.SchemaVersion, describeDatabase(*ownerURL))
	return nil
}
