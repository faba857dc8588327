package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

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
	crdbPrimary := fs.String("crdb-primary-region", getenv("SLOTD_CRDB_PRIMARY_REGION"),
		"CockroachDB only: the database's primary region, e.g. us-east1 (env SLOTD_CRDB_PRIMARY_REGION)")
	crdbHomes := fs.String("crdb-regions", getenv("SLOTD_CRDB_REGIONS"),
		"CockroachDB only: tenant home region = CockroachDB region pairs, e.g. us=us-east1,eu=europe-west1; tables become REGIONAL BY ROW by the tenant's home region (env SLOTD_CRDB_REGIONS)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: slotd migrate -database-owner-url URL -app-role ROLE

Creates or upgrades slotd's schema (to version %d) and grants ROLE what slotd
needs, then exits. Safe to run again and from several places at once.

Flags:
`, postgres.SchemaVersion)
		fs.PrintDefaults()
	}
	if help, err := parseSubcommand(fs, args); help || err != nil {
		return err
	}
	if *ownerURL == "" {
		return errors.New("migrate: -database-owner-url (or SLOTD_DATABASE_OWNER_URL) is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "migrate")
	if *appRole == "" {
		log.Warn("no -app-role: nothing granted; slotd's role needs the grants before it can serve")
	}
	opts := postgres.MigrateOptions{AppRole: *appRole, Logger: log}
	if *crdbPrimary != "" || *crdbHomes != "" {
		mr, err := parseCRDBRegions(*crdbPrimary, *crdbHomes)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts.MultiRegion = mr
	}
	err := postgres.Migrate(ctx, *ownerURL, opts)
	if errors.Is(err, postgres.ErrSchemaTooNew) {
		return fmt.Errorf("%w\na newer slotd migrated this database: run that version (or newer)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema at version %d (%s)\n", postgres.SchemaVersion, describeDatabase(*ownerURL))
	return nil
}

// parseCRDBRegions reads -crdb-primary-region and -crdb-regions
// ("us=us-east1,eu=europe-west1") into the multi-region settings.
func parseCRDBRegions(primary, homes string) (*postgres.MultiRegion, error) {
	if primary == "" {
		return nil, errors.New("-crdb-regions needs -crdb-primary-region")
	}
	mr := &postgres.MultiRegion{PrimaryRegion: primary, Homes: map[string]string{}}
	for _, pair := range strings.Split(homes, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		home, region, ok := strings.Cut(pair, "=")
		if !ok || home == "" || region == "" {
			return nil, fmt.Errorf("-crdb-regions: %q is not home=region", pair)
		}
		if _, dup := mr.Homes[home]; dup {
			return nil, fmt.Errorf("-crdb-regions: home region %q given twice", home)
		}
		mr.Homes[home] = region
	}
	return mr, nil
}
