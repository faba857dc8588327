package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence/postgres"
)

// shared is the one PostgreSQL cluster of this package's test run; each
// test gets fresh databases on it (newDB).
var shared pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// migrated is a database migrated once and cloned by newDB.
var migrated struct {
	once sync.Once
	name string
}

// newDB returns a fresh database on the shared cluster, migrated (by its
// owner, with grants for the application role): a clone of one migrated
// template, quicker than migrating each.
func newDB(tb testing.TB) pgtest.Database {
	tb.Helper()
	c := shared.Cluster(tb)
	migrated.once.Do(func() {
		db := migratedDB(tb, c)
		migrated.name = db.Name
	})
	if migrated.name == "" {
		tb.Fatal("migrating the template database failed in another test")
	}
	return c.CloneDatabase(tb, migrated.name)
}

// migratedDB creates a database and migrates it.
func migratedDB(tb testing.TB, c *pgtest.Cluster) pgtest.Database {
	tb.Helper()
	db := c.CreateDatabase(tb)
	if err := postgres.Migrate(context.Background(), db.OwnerDSN, postgres.MigrateOptions{AppRole: pgtest.AppRole}); err != nil {
		tb.Fatalf("Migrate(%s) = %v", db.Name, err)
	}
	return db
}

// mustOpen opens a store on dsn, closed when tb ends.
func mustOpen(tb testing.TB, dsn string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dsn, opts)
	if err != nil {
		tb.Fatalf("Open(%s) = %v", dsn, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// connect opens a plain connection (no store) on dsn, closed when tb ends.
func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("connect %s: %v", dsn, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// checkFor polls fn until it returns nil, failing t after timeout.
func checkFor(t *testing.T, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
