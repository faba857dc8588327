package regional_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence/postgres"
)

// usCluster and euCluster are two separate PostgreSQL clusters, standing
// for two regions' databases: nothing is shared between them, so a row of
// one region can reach the other only through slotd.
var usCluster, euCluster cluster

func TestMain(m *testing.M) {
	for _, c := range []*cluster{&usCluster, &euCluster} {
		// The conformance suite's parallel subtests each open two pools.
		c.Options = []pgtest.Option{pgtest.WithSetting("max_connections", "400")}
	}
	code := m.Run()
	for _, c := range []*cluster{&usCluster, &euCluster} {
		if err := c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// cluster is a shared cluster with one migrated template database that
// newDB clones.
type cluster struct {
	pgtest.Shared
	once     sync.Once
	template string
}

// newDB returns a fresh migrated database on c (migrated by its owner, with
// grants for the application role).
func (c *cluster) newDB(tb testing.TB) pgtest.Database {
	tb.Helper()
	pc := c.Cluster(tb)
	c.once.Do(func() {
		db := pc.CreateDatabase(tb)
		if err := postgres.Migrate(context.Background(), db.OwnerDSN, postgres.MigrateOptions{AppRole: pgtest.AppRole}); err != nil {
			tb.Fatalf("Migrate(%s) = %v", db.Name, err)
		}
		c.template = db.Name
	})
	if c.template == "" {
		tb.Fatal("migrating the template database failed in another test")
	}
	return pc.CloneDatabase(tb, c.template)
}

// openPG opens slotd's store on db for one region: every row it writes
// records that region.
func openPG(tb testing.TB, db pgtest.Database, region string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), db.AppDSN, postgres.Options{HomeRegion: func(string) string { return region }})
	if err != nil {
		tb.Fatalf("Open(%s) = %v", db.Name, err)
	}
	return s
}

// superConn connects to database as the superuser, which row-level
// security does not restrict: what an auditor of the database sees.
func superConn(tb testing.TB, c *pgtest.Cluster, database string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), c.DSN(pgtest.Superuser, database))
	if err != nil {
		tb.Fatalf("connect to %s as superuser: %v", database, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
