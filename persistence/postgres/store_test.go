package postgres_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
	"github.com/slotd/slotd/persistence/storetest"
)

// TestConformance runs the persistence conformance suite, durability
// included: Reopen opens a new store (a new pool) on the same database.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[persistence.Store]pgtest.Database{}
	open := func(t *testing.T, db pgtest.Database) persistence.Store {
		s, err := postgres.Open(t.Context(), db.AppDSN, postgres.Options{})
		if err != nil {
			t.Fatalf("Open(%s) = %v", db.Name, err)
		}
		mu.Lock()
		dbs[s] = db
		mu.Unlock()
		return s
	}
	storetest.RunOpener(t, storetest.Opener{
		Open: func(t *testing.T) persistence.Store { return open(t, newDB(t)) },
		Reopen: func(t *testing.T, old persistence.Store) persistence.Store {
			mu.Lock()
			db := dbs[old]
			mu.Unlock()
			return open(t, db)
		},
	})
}

// TestCommitFailureIsReported makes the COMMIT itself fail (a deferred
// constraint trigger, checked only at commit). crdbpgx.ExecuteTx ignores
// Commit's error, right for CockroachDB (RELEASE SAVEPOINT committed) but
// not for PostgreSQL: the store must still report the failure, or an
// append that is not stored would be acknowledged.
func TestCommitFailureIsReported(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	owner := connect(t, db.OwnerDSN)
	for _, stmt := range []string{
		`CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.data = 'fail-at-commit'::bytea THEN
				RAISE EXCEPTION 'commit refused by the test';
			END IF;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON journal
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()`,
	} {
		if _, err := owner.Exec(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	if _, err := s.Append(t.Context(), "acme", 0, [][]byte{[]byte("fail-at-commit")}); err == nil {
		t.Fatal("Append with a failing COMMIT = nil error, want the commit's error")
	}
	if tail, err := s.ReadFrom(t.Context(), "acme", 0, 0); err != nil || len(tail) != 0 {
		t.Fatalf("ReadFrom after the failed commit = %v, %v; want nothing", tail, err)
	}
	if head, err := s.Append(t.Context(), "acme", 0, [][]byte{[]byte("ok")}); err != nil || head != 1 {
		t.Fatalf("Append after the failed commit = %d, %v; want 1, nil", head, err)
	}
}

// TestHomeRegion: every row records the tenant's home region, and the
// region of a tenant cannot change.
func TestHomeRegion(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	eu := mustOpen(t, db.AppDSN, postgres.Options{HomeRegion: func(string) string { return "eu" }})
	seedTenants(t, eu, "berlin")
	tx := beginAs(t, connect(t, db.AppDSN), "berlin")
	for _, table := range tenantTables {
		all := count(t, tx, "SELECT count(*) FROM "+table)
		inEU := count(t, tx, "SELECT count(*) FROM "+table+" WHERE home_region = 'eu'")
		if all == 0 || inEU != all {
			t.Errorf("%s: %d of berlin's %d rows have home region eu, want all", table, inEU, all)
		}
	}
	for _, region := range []string{"us", ""} {
		s := mustOpen(t, db.AppDSN, postgres.Options{HomeRegion: func(string) string { return region }})
		if _, err := s.Append(t.Context(), "berlin", 2, [][]byte{[]byte("x")}); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("Append(berlin) with home region %q = %v, want ErrInvalid", region, err)
		}
		// A stale head is still a conflict, whatever the region.
		if _, err := s.Append(t.Context(), "berlin", 1, [][]byte{[]byte("x")}); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("Append(berlin, stale head) with home region %q = %v, want ErrConflict", region, err)
		}
	}
	if _, err := eu.Append(t.Context(), "berlin", 2, [][]byte{[]byte("x")}); err != nil {
		t.Errorf("Append(berlin) from its home region = %v", err)
	}
}
