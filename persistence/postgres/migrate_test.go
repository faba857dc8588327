package postgres_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence/postgres"
)

// TestMigrate migrates a fresh database, twice and concurrently, and checks
// what Open thinks of databases at other versions.
func TestMigrate(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	db := c.CreateDatabase(t)
	opts := postgres.MigrateOptions{AppRole: pgtest.AppRole}

	if s, err := postgres.Open(t.Context(), db.AppDSN, postgres.Options{}); !errors.Is(err, postgres.ErrSchemaTooOld) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open(unmigrated) = %v, want ErrSchemaTooOld", err)
	}

	// Concurrent migrators (several instances starting at once) are
	// serialized: every one succeeds, the migration runs once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(t.Context(), db.OwnerDSN, opts) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate #%d = %v", i, err)
		}
	}
	if err := postgres.Migrate(t.Context(), db.OwnerDSN, opts); err != nil {
		t.Fatalf("Migrate again = %v, want nil (idempotent)", err)
	}
	owner := connect(t, db.OwnerDSN)
	if n := count(t, owner, "SELECT count(*) FROM schema_migrations"); n != postgres.SchemaVersion {
		t.Fatalf("schema_migrations has %d rows, want %d", n, postgres.SchemaVersion)
	}
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	if _, err := s.Append(t.Context(), "t", 0, [][]byte{[]byte("x")}); err != nil {
		t.Fatalf("Append after Migrate = %v", err)
	}

	// A newer slotd migrated the database: this one refuses to run on it or
	// to migrate it.
	if _, err := owner.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')", postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.Open(t.Context(), db.AppDSN, postgres.Options{}); !errors.Is(err, postgres.ErrSchemaTooNew) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open(newer schema) = %v, want ErrSchemaTooNew", err)
	}
	if err := postgres.Migrate(t.Context(), db.OwnerDSN, opts); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("Migrate(newer schema) = %v, want ErrSchemaTooNew", err)
	}
}

// TestMigrateNeedsOwner: the application role cannot run migrations.
func TestMigrateNeedsOwner(t *testing.T) {
	t.Parallel()
	db := shared.Cluster(t).CreateDatabase(t)
	err := postgres.Migrate(t.Context(), db.AppDSN, postgres.MigrateOptions{})
	wantCode(t, "Migrate as the application role", err, "42501")
}
