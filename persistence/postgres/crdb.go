package postgres

// ===========================================================================
// CockroachDB only.
//
// Everything in this file runs only when SELECT version() says CockroachDB:
// the migration path (schema changes one statement at a time, outside a
// transaction) and the multi-region set-up. CockroachDB cannot be installed
// where this package's tests run, so none of it has been run against a
// CockroachDB server here: crdb_test.go checks the rendered statements and
// that the CockroachDB code path is the one selected for a CockroachDB
// version string. The statements follow CockroachDB's multi-region
// documentation (ALTER DATABASE ... SET PRIMARY REGION / ADD REGION, ALTER
// TABLE ... SET LOCALITY REGIONAL BY ROW AS <column>, a computed
// crdb_internal_region column).
// ===========================================================================

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MultiRegion places each tenant's rows in its home region on a
// multi-region CockroachDB cluster: tenant tables become REGIONAL BY ROW,
// with crdb_region computed from the row's home_region column; the global
// lookup tables (directory, schema_migrations) become GLOBAL (fast reads
// everywhere, slower writes).
type MultiRegion struct {
	// PrimaryRegion is the database's primary region, a CockroachDB region
	// name as SHOW REGIONS FROM CLUSTER lists it ("us-east1"). Rows whose
	// home region is not in Homes (including the empty home region) live
	// there.
	PrimaryRegion string
	// Homes maps each tenant home region slotd uses ("us", "eu", "au") to
	// the CockroachDB region its tenants' rows live in ("us-east1",
	// "europe-west1", "australia-southeast1"). Changing an existing mapping
	// needs a new migration: ADD COLUMN IF NOT EXISTS keeps the old
	// expression.
	Homes map[string]string
}

var (
	crdbRegionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	homeRegionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// tenantTables are the tables whose rows belong to one tenant.
var tenantTables = []string{"heads", "journal", "snapshots", "resources", "bookings", "records"}

// statements renders the multi-region DDL for database. Every statement is
// idempotent, so Migrate runs them on every call.
func (m MultiRegion) statements(database string) ([]string, error) {
	if database == "" {
		return nil, fmt.Errorf("multi-region: empty database name")
	}
	if !crdbRegionRE.MatchString(m.PrimaryRegion) {
		return nil, fmt.Errorf("multi-region: primary region %q is not a CockroachDB region name", m.PrimaryRegion)
	}
	homes := slices.Sorted(maps.Keys(m.Homes))
	for _, home := range homes {
		if !homeRegionRE.MatchString(home) {
			return nil, fmt.Errorf("multi-region: home region %q: want 1-32 lowercase letters, digits or hyphens", home)
		}
		if !crdbRegionRE.MatchString(m.Homes[home]) {
			return nil, fmt.Errorf("multi-region: home region %q maps to %q, not a CockroachDB region name", home, m.Homes[home])
		}
	}
	db := pgx.Identifier{database}.Sanitize()
	region := func(r string) string { return pgx.Identifier{r}.Sanitize() }

	out := []string{"ALTER DATABASE " + db + " SET PRIMARY REGION " + region(m.PrimaryRegion)}
	added := map[string]bool{m.PrimaryRegion: true}
	for _, home := range homes {
		if r := m.Homes[home]; !added[r] {
			added[r] = true
			out = append(out, "ALTER DATABASE "+db+" ADD REGION IF NOT EXISTS "+region(r))
		}
	}
	for _, t := range []string{"directory", "schema_migrations"} {
		out = append(out, "ALTER TABLE "+t+" SET LOCALITY GLOBAL")
	}
	// Names and regions were validated above: plain literals are safe.
	var expr strings.Builder
	expr.WriteString("CASE home_region")
	for _, home := range homes {
		fmt.Fprintf(&expr, " WHEN '%s' THEN '%s'::crdb_internal_region", home, m.Homes[home])
	}
	fmt.Fprintf(&expr, " ELSE '%s'::crdb_internal_region END", m.PrimaryRegion)
	for _, t := range tenantTables {
		out = append(out,
			"ALTER TABLE "+t+" ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS ("+expr.String()+") STORED",
			"ALTER TABLE "+t+" SET LOCALITY REGIONAL BY ROW AS crdb_region",
		)
	}
	return out, nil
}

// migrateCockroach applies the migrations on CockroachDB. Schema changes
// run one statement at a time outside a transaction (CockroachDB's advice
// for DDL), so every portable statement is idempotent and the version is
// recorded after its statements succeed; a migration interrupted half-way
// is simply run again. There is no advisory lock: run slotd migrate from one
// place at a time.
func migrateCockroach(ctx context.Context, conn *pgx.Conn, migs []migration, opts MigrateOptions, log *slog.Logger) error {
	if _, err := conn.Exec(ctx, schemaMigrationsDDL); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migs) {
		return fmt.Errorf("migrate: database at version %d, this slotd knows %d: %w", current, len(migs), ErrSchemaTooNew)
	}
	for _, m := range migs[current:] {
		for _, stmt := range plan(cockroach, m) {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: version %d (%s): %w\n%s", m.version, m.name, err, stmt)
			}
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING", m.version, m.name); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", m.version, err)
		}
		log.Info("applied migration", "version", m.version, "name", m.name, "database", "CockroachDB")
	}
	if opts.MultiRegion != nil {
		var database string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&database); err != nil {
			return fmt.Errorf("migrate: multi-region: %w", err)
		}
		stmts, err := opts.MultiRegion.statements(database)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for _, stmt := range stmts {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: multi-region: %w\n%s", err, stmt)
			}
		}
	}
	if opts.AppRole != "" {
		for _, stmt := range grants(opts.AppRole) {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: %s: %w", stmt, err)
			}
		}
	}
	return nil
}
