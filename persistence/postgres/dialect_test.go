package postgres

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// These tests need no database: they check the code-path selection between
// PostgreSQL and CockroachDB and the CockroachDB statements, which cannot be
// run here (no CockroachDB server in the test environment).

func TestDialectOf(t *testing.T) {
	tests := []struct {
		version string
		want    dialect
		wantErr bool
	}{
		{"PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit", postgres, false},
		{"PostgreSQL 17.2 on aarch64-unknown-linux-gnu", postgres, false},
		{"CockroachDB CCL v24.3.1 (x86_64-pc-linux-gnu, built 2024/12/12 00:00:00, go1.22.8 X:nocoverageredesign)", cockroach, false},
		{"CockroachDB OSS v23.1.0", cockroach, false},
		{"MySQL 8.0", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := dialectOf(tt.version)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("dialectOf(%.30q) = %v, %v; want %v, error %v", tt.version, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	migs, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations() = %v", err)
	}
	if len(migs) != SchemaVersion {
		t.Fatalf("%d migrations embedded, SchemaVersion is %d: bump SchemaVersion with every migration", len(migs), SchemaVersion)
	}
	for i, m := range migs {
		if m.version != i+1 || len(m.portable) == 0 {
			t.Errorf("migration %d: version %d with %d portable statements", i, m.version, len(m.portable))
		}
	}
}

func TestSplitStatements(t *testing.T) {
	in := `-- comment; not a statement
CREATE TABLE a (
    x int -- trailing comment
);

-- another
SELECT 1;
SELECT 2`
	want := []string{"CREATE TABLE a (\n    x int -- trailing comment\n)", "SELECT 1", "SELECT 2"}
	if got := splitStatements(in); !slices.Equal(got, want) {
		t.Fatalf("splitStatements = %q, want %q", got, want)
	}
}

// postgresOnly are the constructs CockroachDB lacks (or that are
// PostgreSQL-only defence in depth): none may reach CockroachDB.
var postgresOnly = []string{"EXCLUDE", "tstzrange", "gist", "EXTENSION", "ROW LEVEL SECURITY", "POLICY",
	"current_setting", "set_config", "pg_notify", "LISTEN", "GENERATED", "pg_advisory"}

// TestPlanSelectsDialect: the CockroachDB migration plan is the portable
// SQL only; the PostgreSQL plan adds the defence in depth.
func TestPlanSelectsDialect(t *testing.T) {
	migs, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var pg, crdb []string
	for _, m := range migs {
		pg = append(pg, plan(postgres, m)...)
		crdb = append(crdb, plan(cockroach, m)...)
	}
	for _, stmt := range crdb {
		for _, bad := range postgresOnly {
			if strings.Contains(stmt, bad) {
				t.Errorf("CockroachDB plan contains PostgreSQL-only %q:\n%s", bad, stmt)
			}
		}
	}
	pgAll := strings.Join(pg, "\n")
	for _, want := range []string{"EXCLUDE USING gist", "FORCE ROW LEVEL SECURITY", "CREATE POLICY", "btree_gist"} {
		if !strings.Contains(pgAll, want) {
			t.Errorf("PostgreSQL plan lacks %q", want)
		}
	}
	if len(pg) <= len(crdb) {
		t.Errorf("PostgreSQL plan has %d statements, CockroachDB %d: want more on PostgreSQL", len(pg), len(crdb))
	}
	// The statements the store runs on both databases are portable too.
	for name, sql := range map[string]string{
		"appendFirstSQL": appendFirstSQL, "appendNextSQL": appendNextSQL, "headSQL": headSQL,
		"headRegionSQL": headRegionSQL, "loadSQL": loadSQL, "saveSnapshotSQL": saveSnapshotSQL,
		"deleteResourcesSQL": deleteResourcesSQL, "upsertResourcesSQL": upsertResourcesSQL, "seatsSQL": seatsSQL,
		"upsertBookingSQL": upsertBookingSQL, "cancelBookingSQL": cancelBookingSQL,
		"resourceBookingsSQL": resourceBookingsSQL, "reseatSQL": reseatSQL, "schemaMigrationsDDL": schemaMigrationsDDL,
		"getRecordSQL": getRecordSQL, "createRecordSQL": createRecordSQL, "replaceRecordSQL": replaceRecordSQL,
		"upsertRecordSQL": upsertRecordSQL, "deleteRecordSQL": deleteRecordSQL, "deleteRecordVersionSQL": deleteRecordVersionSQL,
		"recordExistsSQL": recordExistsSQL, "deleteTenantRecordsSQL": deleteTenantRecordsSQL,
		"deleteKindRecordsSQL": deleteKindRecordsSQL, "listRecordsSQL": listRecordsSQL,
	} {
		for _, bad := range postgresOnly {
			if strings.Contains(sql, bad) {
				t.Errorf("%s (run on both databases) contains PostgreSQL-only %q", name, bad)
			}
		}
	}
}

// TestTenantBindingIsPostgresOnly: on CockroachDB the store queues no
// set_config (there is no row-level security to bind).
func TestTenantBindingIsPostgresOnly(t *testing.T) {
	for _, tt := range []struct {
		d    dialect
		want int
	}{{postgres, 1}, {cockroach, 0}} {
		s := &Store{dialect: tt.d}
		b := &pgx.Batch{}
		if got := s.queueTenant(b, "acme"); got != tt.want || b.Len() != tt.want {
			t.Errorf("%v: queueTenant queued %d statements (returned %d), want %d", tt.d, b.Len(), got, tt.want)
		}
	}
}

func TestMultiRegionStatements(t *testing.T) {
	m := MultiRegion{
		PrimaryRegion: "us-east1",
		Homes:         map[string]string{"us": "us-east1", "eu": "europe-west1", "au": "australia-southeast1"},
	}
	got, err := m.statements("slotd")
	if err != nil {
		t.Fatalf("statements() = %v", err)
	}
	region := `CASE home_region WHEN 'au' THEN 'australia-southeast1'::crdb_internal_region WHEN 'eu' THEN 'europe-west1'::crdb_internal_region WHEN 'us' THEN 'us-east1'::crdb_internal_region ELSE 'us-east1'::crdb_internal_region END`
	want := []string{
		`ALTER DATABASE "slotd" SET PRIMARY REGION "us-east1"`,
		`ALTER DATABASE "slotd" ADD REGION IF NOT EXISTS "australia-southeast1"`,
		`ALTER DATABASE "slotd" ADD REGION IF NOT EXISTS "europe-west1"`,
		`ALTER TABLE directory SET LOCALITY GLOBAL`,
		`ALTER TABLE schema_migrations SET LOCALITY GLOBAL`,
	}
	for _, table := range []string{"heads", "journal", "snapshots", "resources", "bookings", "records"} {
		want = append(want,
			`ALTER TABLE `+table+` ADD COLUMN IF NOT EXISTS crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (`+region+`) STORED`,
			`ALTER TABLE `+table+` SET LOCALITY REGIONAL BY ROW AS crdb_region`,
		)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("statements() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Every tenant table of the schema is placed by row; nothing is missed.
	migs, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		for _, stmt := range m.portable {
			name, ok := createdTable(stmt)
			if !ok || name == "directory" {
				continue
			}
			if !slices.Contains(tenantTables, name) {
				t.Errorf("table %s is neither a tenant table (REGIONAL BY ROW) nor global", name)
			}
		}
	}

	bad := []MultiRegion{
		{PrimaryRegion: ""},
		{PrimaryRegion: `us-east1"; DROP TABLE journal; --`},
		{PrimaryRegion: "us-east1", Homes: map[string]string{"eu": "europe west"}},
		{PrimaryRegion: "us-east1", Homes: map[string]string{"EU'": "europe-west1"}},
	}
	for _, m := range bad {
		if got, err := m.statements("slotd"); err == nil {
			t.Errorf("statements(%+v) = %q, want an error", m, got)
		}
	}
	if _, err := m.statements(""); err == nil {
		t.Error(`statements("") = nil error, want an error`)
	}
}

// createdTable returns the table a CREATE TABLE statement creates.
func createdTable(stmt string) (string, bool) {
	rest, ok := strings.CutPrefix(stmt, "CREATE TABLE IF NOT EXISTS ")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, " ")
	return name, true
}
