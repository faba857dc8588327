package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
)

// tenantTables are the tables whose rows belong to a tenant.
var tenantTables = []string{"heads", "journal", "snapshots", "resources", "bookings", "records"}

// wantCode fails t unless err carries SQLSTATE code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("%s = %v, want SQLSTATE %s", what, err, code)
	}
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func count(t *testing.T, q queryRower, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// beginAs starts a transaction on conn bound to tenant, the way the store
// binds each of its transactions.
func beginAs(t *testing.T, conn *pgx.Conn, tenant string) pgx.Tx {
	t.Helper()
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), "SELECT set_config('app.tenant_id', $1, true)", tenant); err != nil {
		t.Fatal(err)
	}
	return tx
}

// seedTenants gives each tenant a row in every tenant table through the
// store: a configured resource, a booking, a snapshot, a record.
func seedTenants(t *testing.T, s *postgres.Store, tenants ...string) {
	t.Helper()
	for _, tenant := range tenants {
		evs := [][]byte{configured(t, resource("room", 1)), confirmed(t, "b1", "room", at(9), at(10))}
		if _, err := s.Append(t.Context(), tenant, 0, evs); err != nil {
			t.Fatalf("Append(%s) = %v", tenant, err)
		}
		if err := s.SaveSnapshot(t.Context(), tenant, persistence.Snapshot{Seq: 1, Data: []byte("snap")}); err != nil {
			t.Fatalf("SaveSnapshot(%s) = %v", tenant, err)
		}
		if _, err := s.PutRecord(t.Context(), tenant, "account", "owner", []byte(tenant+"/owner"), 0); err != nil {
			t.Fatalf("PutRecord(%s) = %v", tenant, err)
		}
	}
}

// TestRowLevelSecurity connects as the application role, as slotd does,
// and checks what row-level security lets it see and write.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	seedTenants(t, mustOpen(t, db.AppDSN, postgres.Options{}), "tenant-a", "tenant-b")
	app := connect(t, db.AppDSN)

	t.Run("no tenant set sees nothing", func(t *testing.T) {
		for _, table := range tenantTables {
			if n := count(t, app, "SELECT count(*) FROM "+table); n != 0 {
				t.Errorf("without app.tenant_id: SELECT count(*) FROM %s = %d, want 0", table, n)
			}
		}
		_, err := app.Exec(t.Context(), "INSERT INTO journal (tenant_id, seq, data) VALUES ('tenant-a', 99, 'x')")
		wantCode(t, "without app.tenant_id: INSERT INTO journal", err, "42501")
	})

	t.Run("tenant A sees only A", func(t *testing.T) {
		tx := beginAs(t, app, "tenant-a")
		for _, table := range tenantTables {
			all := count(t, tx, "SELECT count(*) FROM "+table)
			own := count(t, tx, "SELECT count(*) FROM "+table+" WHERE tenant_id = 'tenant-a'")
			other := count(t, tx, "SELECT count(*) FROM "+table+" WHERE tenant_id = 'tenant-b'")
			if own == 0 || all != own || other != 0 {
				t.Errorf("as tenant-a: %s has %d rows visible, %d of tenant-a, %d of tenant-b; want all of tenant-a's and none of tenant-b's", table, all, own, other)
			}
		}
		tag, err := tx.Exec(t.Context(), "UPDATE heads SET seq = 99 WHERE tenant_id = 'tenant-b'")
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("as tenant-a: UPDATE tenant-b's head = %v, %v; want 0 rows", tag, err)
		}
	})

	t.Run("tenant A cannot write for B", func(t *testing.T) {
		for _, stmt := range []string{
			"INSERT INTO journal (tenant_id, seq, data) VALUES ('tenant-b', 99, 'x')",
			"INSERT INTO heads (tenant_id, seq) VALUES ('tenant-c', 1)",
			"INSERT INTO snapshots (tenant_id, seq, data) VALUES ('tenant-b', 1, 'x') ON CONFLICT (tenant_id) DO UPDATE SET data = excluded.data",
			"INSERT INTO bookings (tenant_id, booking_id, resource_id, block_start, block_end, capacity, capacity_slot, status, seq) VALUES ('tenant-b', 'x', 'room', now(), now() + interval '1 hour', 1, 0, 'confirmed', 1)",
			"UPDATE heads SET tenant_id = 'tenant-b' WHERE tenant_id = 'tenant-a'",
			"INSERT INTO records (tenant_id, kind, key, value, version) VALUES ('tenant-b', 'account', 'x', 'x', 1)",
			"UPDATE records SET tenant_id = 'tenant-b' WHERE tenant_id = 'tenant-a'",
		} {
			tx := beginAs(t, app, "tenant-a")
			_, err := tx.Exec(t.Context(), stmt)
			wantCode(t, "as tenant-a: "+stmt, err, "42501")
			tx.Rollback(t.Context())
		}
	})

	t.Run("setting ends with the transaction", func(t *testing.T) {
		tx := beginAs(t, app, "tenant-a")
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := count(t, app, "SELECT count(*) FROM journal"); n != 0 {
			t.Errorf("after the bound transaction: SELECT count(*) FROM journal = %d, want 0", n)
		}
	})

	t.Run("journal is append-only", func(t *testing.T) {
		for _, stmt := range []string{
			"UPDATE journal SET data = 'x' WHERE tenant_id = 'tenant-a'",
			"DELETE FROM journal WHERE tenant_id = 'tenant-a'",
			"DELETE FROM heads WHERE tenant_id = 'tenant-a'",
			"DELETE FROM bookings WHERE tenant_id = 'tenant-a'",
			"INSERT INTO schema_migrations (version, name) VALUES (99, 'x')",
		} {
			tx := beginAs(t, app, "tenant-a")
			_, err := tx.Exec(t.Context(), stmt)
			wantCode(t, "as tenant-a: "+stmt, err, "42501")
			tx.Rollback(t.Context())
		}
	})

	t.Run("owner is subject too", func(t *testing.T) {
		owner := connect(t, db.OwnerDSN)
		if n := count(t, owner, "SELECT count(*) FROM journal"); n != 0 {
			t.Errorf("owner without app.tenant_id: SELECT count(*) FROM journal = %d, want 0 (FORCE ROW LEVEL SECURITY)", n)
		}
	})

	t.Run("catalog", func(t *testing.T) {
		rows, err := connect(t, db.OwnerDSN).Query(t.Context(), `
			SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
			       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
			FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for rows.Next() {
			var name string
			var enabled, forced bool
			var policies int
			if err := rows.Scan(&name, &enabled, &forced, &policies); err != nil {
				t.Fatal(err)
			}
			if name == "schema_migrations" {
				continue // no tenant rows; the application role may only read it
			}
			seen++
			if !enabled || !forced || policies != 1 {
				t.Errorf("table %s: row security enabled %v, forced %v, %d policies; want true, true, 1", name, enabled, forced, policies)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if want := len(tenantTables) + 1; seen != want {
			t.Errorf("found %d tables besides schema_migrations, want %d (tenant tables and directory)", seen, want)
		}
	})
}

// TestOpenRefusesPrivilegedRole: the store will not run as a role that
// row-level security does not bind.
func TestOpenRefusesPrivilegedRole(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	c := shared.Cluster(t)
	for _, dsn := range []string{db.OwnerDSN, c.DSN(pgtest.Superuser, db.Name)} {
		s, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		if !errors.Is(err, postgres.ErrPrivilegedRole) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%s) = %v, want ErrPrivilegedRole", dsn, err)
		}
	}
	s := mustOpen(t, db.OwnerDSN, postgres.Options{AllowPrivilegedRole: true})
	if _, err := s.Append(t.Context(), "t", 0, [][]byte{[]byte("x")}); err != nil {
		t.Errorf("owner store with AllowPrivilegedRole: Append = %v", err)
	}
}
