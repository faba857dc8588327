package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
	"github.com/slotd/slotd/persistence/storetest"
)

// TestRecords runs the records conformance suite, durability included:
// Reopen opens a new store (a new pool) on the same database.
func TestRecords(t *testing.T) {
	var mu sync.Mutex
	dbs := map[persistence.RecordStore]pgtest.Database{}
	open := func(t *testing.T, db pgtest.Database) persistence.RecordStore {
		s, err := postgres.Open(t.Context(), db.AppDSN, postgres.Options{})
		if err != nil {
			t.Fatalf("Open(%s) = %v", db.Name, err)
		}
		mu.Lock()
		dbs[s] = db
		mu.Unlock()
		return s
	}
	storetest.RunRecordsOpener(t, storetest.RecordOpener{
		Open: func(t *testing.T) persistence.RecordStore { return open(t, newDB(t)) },
		Reopen: func(t *testing.T, old persistence.RecordStore) persistence.RecordStore {
			mu.Lock()
			db := dbs[old]
			mu.Unlock()
			return open(t, db)
		},
	})
}

// recordsOf returns tenant's records of kind through the store, as
// "key=value@version" strings.
func recordsOf(t *testing.T, s *postgres.Store, tenant, kind string) []string {
	t.Helper()
	recs, err := s.ListRecords(t.Context(), tenant, kind, "", "", 0)
	if err != nil {
		t.Fatalf("ListRecords(%s, %s) = %v", tenant, kind, err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Version)
	}
	return out
}

// TestRecordsRowLevelSecurity connects as the application role and checks
// that row-level security alone, whatever the statement's own WHERE clause
// says, keeps a transaction to the records of the tenant it is bound to.
func TestRecordsRowLevelSecurity(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		for _, key := range []string{"alice", "bob"} {
			if _, err := s.PutRecord(t.Context(), tenant, "account", key, []byte(tenant+"/"+key), 0); err != nil {
				t.Fatalf("PutRecord(%s, account, %s) = %v", tenant, key, err)
			}
		}
		if _, err := s.PutRecord(t.Context(), tenant, "session", "s1", []byte("s"), 0); err != nil {
			t.Fatalf("PutRecord(%s, session, s1) = %v", tenant, err)
		}
	}
	wantB := recordsOf(t, s, "tenant-b", "account")
	app := connect(t, db.AppDSN)

	t.Run("no tenant set sees and changes nothing", func(t *testing.T) {
		if n := count(t, app, "SELECT count(*) FROM records"); n != 0 {
			t.Errorf("without app.tenant_id: SELECT count(*) FROM records = %d, want 0", n)
		}
		for _, stmt := range []string{
			"UPDATE records SET value = 'x'",
			"DELETE FROM records",
			"DELETE FROM records WHERE tenant_id = 'tenant-b'",
		} {
			tag, err := app.Exec(t.Context(), stmt)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("without app.tenant_id: %s = %v, %v; want 0 rows", stmt, tag, err)
			}
		}
		_, err := app.Exec(t.Context(), "INSERT INTO records (tenant_id, kind, key, value, version) VALUES ('tenant-a', 'account', 'eve', 'x', 1)")
		wantCode(t, "without app.tenant_id: INSERT INTO records", err, "42501")
	})

	t.Run("tenant A sees only A", func(t *testing.T) {
		tx := beginAs(t, app, "tenant-a")
		all := count(t, tx, "SELECT count(*) FROM records")
		own := count(t, tx, "SELECT count(*) FROM records WHERE tenant_id = 'tenant-a'")
		other := count(t, tx, "SELECT count(*) FROM records WHERE tenant_id = 'tenant-b'")
		if own != 3 || all != own || other != 0 {
			t.Errorf("as tenant-a: %d records visible, %d of tenant-a, %d of tenant-b; want 3, 3, 0", all, own, other)
		}
		for _, stmt := range []string{
			"UPDATE records SET value = 'x' WHERE tenant_id = 'tenant-b'",
			"UPDATE records SET version = version + 1 WHERE tenant_id = 'tenant-b' AND kind = 'account' AND key = 'alice' AND version = 1",
			"DELETE FROM records WHERE tenant_id = 'tenant-b'",
		} {
			tag, err := tx.Exec(t.Context(), stmt)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("as tenant-a: %s = %v, %v; want 0 rows", stmt, tag, err)
			}
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("tenant A cannot write for B", func(t *testing.T) {
		for _, stmt := range []string{
			"INSERT INTO records (tenant_id, kind, key, value, version) VALUES ('tenant-b', 'account', 'eve', 'x', 1)",
			"INSERT INTO records (tenant_id, kind, key, value, version) VALUES ('tenant-b', 'account', 'alice', 'x', 1) ON CONFLICT (tenant_id, kind, key) DO UPDATE SET value = excluded.value",
			"UPDATE records SET tenant_id = 'tenant-b' WHERE tenant_id = 'tenant-a' AND key = 's1'",
		} {
			tx := beginAs(t, app, "tenant-a")
			_, err := tx.Exec(t.Context(), stmt)
			wantCode(t, "as tenant-a: "+stmt, err, "42501")
			tx.Rollback(t.Context())
		}
	})

	t.Run("B is untouched", func(t *testing.T) {
		if got := recordsOf(t, s, "tenant-b", "account"); !equal(got, wantB) {
			t.Errorf("tenant-b's accounts = %q, want %q", got, wantB)
		}
		if got := recordsOf(t, s, "tenant-a", "session"); len(got) != 1 {
			t.Errorf("tenant-a's sessions = %q, want the one", got)
		}
	})

	t.Run("grants", func(t *testing.T) {
		for _, tt := range []struct {
			privilege string
			want      bool
		}{
			{"SELECT", true}, {"INSERT", true}, {"UPDATE", true}, {"DELETE", true},
			{"TRUNCATE", false}, {"REFERENCES", false}, {"TRIGGER", false},
		} {
			var got bool
			err := app.QueryRow(t.Context(), "SELECT has_table_privilege(current_user, 'records', $1)", tt.privilege).Scan(&got)
			if err != nil || got != tt.want {
				t.Errorf("application role has %s on records = %v, %v; want %v", tt.privilege, got, err, tt.want)
			}
		}
	})
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestRecordsHomeRegion: a record carries its tenant's home region from
// creation, and a replacement from a store configured otherwise keeps it.
func TestRecordsHomeRegion(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	eu := mustOpen(t, db.AppDSN, postgres.Options{HomeRegion: func(string) string { return "eu" }})
	us := mustOpen(t, db.AppDSN, postgres.Options{HomeRegion: func(string) string { return "us" }})
	for _, put := range []struct {
		s      *postgres.Store
		expect uint64
	}{{eu, 0}, {us, 1}, {us, persistence.AnyVersion}} {
		if _, err := put.s.PutRecord(t.Context(), "berlin", "account", "owner", []byte("x"), put.expect); err != nil {
			t.Fatalf("PutRecord(berlin, expect %d) = %v", put.expect, err)
		}
	}
	tx := beginAs(t, connect(t, db.AppDSN), "berlin")
	var region string
	var version int64
	if err := tx.QueryRow(t.Context(), "SELECT home_region, version FROM records WHERE tenant_id = 'berlin'").Scan(&region, &version); err != nil {
		t.Fatal(err)
	}
	if region != "eu" || version != 3 {
		t.Errorf("berlin's record: home region %q, version %d; want eu, 3", region, version)
	}
}

// TestMigrateFromVersion1 upgrades a database an older slotd (schema 1)
// left, with data in it: Open refuses it until Migrate has run, and then
// the old data and the new records table are both there.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	db := shared.Cluster(t).CreateDatabase(t)
	if err := postgres.MigrateTo(t.Context(), db.OwnerDSN, 1); err != nil {
		t.Fatalf("MigrateTo(1) = %v", err)
	}
	owner := connect(t, db.OwnerDSN)
	app := pgx.Identifier{pgtest.AppRole}.Sanitize()
	// What schema 1's Migrate granted, and a tenant's first event.
	for _, stmt := range []string{
		"GRANT SELECT, INSERT ON TABLE journal TO " + app,
		"GRANT SELECT, INSERT, UPDATE ON TABLE heads, snapshots, bookings TO " + app,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE resources, directory TO " + app,
		"GRANT SELECT ON TABLE schema_migrations TO " + app,
	} {
		if _, err := owner.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	tx := beginAs(t, owner, "acme")
	for _, stmt := range []string{
		"INSERT INTO heads (tenant_id, seq) VALUES ('acme', 1)",
		"INSERT INTO journal (tenant_id, seq, data) VALUES ('acme', 1, 'from schema 1')",
	} {
		if _, err := tx.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, owner, "SELECT count(*) FROM pg_class WHERE relname = 'records'"); n != 0 {
		t.Fatalf("schema 1 has a records table")
	}

	if s, err := postgres.Open(t.Context(), db.AppDSN, postgres.Options{}); !errors.Is(err, postgres.ErrSchemaTooOld) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open(schema 1) = %v, want ErrSchemaTooOld", err)
	}
	if err := postgres.Migrate(t.Context(), db.OwnerDSN, postgres.MigrateOptions{AppRole: pgtest.AppRole}); err != nil {
		t.Fatalf("Migrate(schema 1) = %v", err)
	}
	if n := count(t, owner, "SELECT max(version) FROM schema_migrations"); n != postgres.SchemaVersion {
		t.Fatalf("after Migrate: schema version %d, want %d", n, postgres.SchemaVersion)
	}
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	entries, err := s.ReadFrom(t.Context(), "acme", 0, 0)
	if err != nil || len(entries) != 1 || string(entries[0].Data) != "from schema 1" {
		t.Fatalf("ReadFrom(acme) after upgrade = %v, %v; want the event from schema 1", entries, err)
	}
	if v, err := s.PutRecord(t.Context(), "acme", "account", "owner", []byte("x"), 0); err != nil || v != 1 {
		t.Fatalf("PutRecord(acme) after upgrade = %d, %v; want 1, nil", v, err)
	}
	if head, err := s.Append(t.Context(), "acme", 1, [][]byte{[]byte("after upgrade")}); err != nil || head != 2 {
		t.Fatalf("Append(acme, 1) after upgrade = %d, %v; want 2, nil", head, err)
	}
}
