package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/internal/demo"
	"github.com/slotd/slotd/internal/pgtest"
)

// shared is the PostgreSQL cluster of this package's tests (started on
// first use); each test makes its own databases on it.
var shared pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// testToken is the operator token of slotd instances sharing a database:
// several instances must be given the same one.
const testToken = "sk_test_operator_postgres_0123456789"

// migrate runs "slotd migrate" on db as its owner, granting pgtest's
// application role, and returns what it printed.
func migrate(tb testing.TB, db pgtest.Database) string {
	tb.Helper()
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"migrate", "-database-owner-url", db.OwnerDSN, "-app-role", pgtest.AppRole}
	if err := run(ctx, args, envOf(nil), &out, &out); err != nil {
		tb.Fatalf("slotd %s = %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// migratedDB is a fresh database on the shared cluster, migrated with
// "slotd migrate".
func migratedDB(tb testing.TB) pgtest.Database {
	tb.Helper()
	db := shared.Cluster(tb).CreateDatabase(tb)
	migrate(tb, db)
	return db
}

// startOnDB starts an in-process slotd serving from db as the application
// role, with its own data directory (nothing is stored there but a token
// would be) and the shared operator token.
func startOnDB(tb testing.TB, db pgtest.Database, extra ...string) *slotd {
	tb.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-data", tb.TempDir(), "-database-url", db.AppDSN}, extra...)
	return startSlotd(tb, args, map[string]string{"SLOTD_ADMIN_TOKEN": testToken})
}

// get fetches base+path and returns the status, Content-Type and body.
func get(tb testing.TB, url string) (int, string, []byte) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// TestPostgresServesDemo: slotd with SLOTD_DATABASE_URL (after slotd
// migrate) serves what it serves on the embedded store: the demo tenant,
// its booking page and public info; a booking made over WebSocket is still
// there after a restart on the same database, which keeps the demo's link.
func TestPostgresServesDemo(t *testing.T) {
	t.Parallel()
	db := shared.Cluster(t).CreateDatabase(t)
	out := migrate(t, db)
	if !strings.Contains(out, "database schema at version") || strings.Contains(out, "password") {
		t.Errorf("slotd migrate printed:\n%s", out)
	}
	migrate(t, db) // again: a no-op

	embedded := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, nil)
	env := map[string]string{"SLOTD_DATABASE_URL": db.AppDSN, "SLOTD_ADMIN_TOKEN": testToken}
	dataDir := t.TempDir()
	args := []string{"-addr", "127.0.0.1:0", "-data", dataDir}
	first := startSlotd(t, args, env)
	if !strings.Contains(first.stdout.String(), "(data in PostgreSQL 127.0.0.1:") {
		t.Errorf("banner does not name the database:\n%s", first.stdout)
	}
	if !strings.Contains(first.stderr.String(), "created demo tenant") || first.link == "" ||
		!strings.HasPrefix(first.book, first.base+"/book/") {
		t.Fatalf("no demo tenant and booking page; stdout:\n%s\nstderr:\n%s", first.stdout, first.stderr)
	}
	if entries, err := os.ReadDir(dataDir); err != nil || len(entries) != 0 {
		t.Errorf("data directory holds %v (%v), want nothing: the token is given and the data is in PostgreSQL", entries, err)
	}

	// The same page and the same public tenant as on the embedded store.
	for _, path := range []string{"/book/%s", "/v1/public/%s"} {
		codeE, ctypeE, bodyE := get(t, embedded.base+fmt.Sprintf(path, embedded.link))
		codeP, ctypeP, bodyP := get(t, first.base+fmt.Sprintf(path, first.link))
		bodyE = bytes.ReplaceAll(bodyE, []byte(embedded.link), []byte("LINK"))
		bodyP = bytes.ReplaceAll(bodyP, []byte(first.link), []byte("LINK"))
		if codeP != http.StatusOK || codeE != codeP || ctypeE != ctypeP || !bytes.Equal(bodyE, bodyP) {
			t.Errorf("GET %s: PostgreSQL %d %s\n%s\nembedded %d %s\n%s", path, codeP, ctypeP, bodyP, codeE, ctypeE, bodyE)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialLink(ctx, first.base, first.link)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.CloseNow()
	booked := bookFirst(t, ctx, first, c, "consultation")
	before, err := listBookings(ctx, first.base, first.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || before[0].ID != booked.ID {
		t.Fatalf("bookings %+v, want the one booked (%s)", before, booked.ID)
	}
	c.close()
	if err := first.stop(t); err != nil {
		t.Fatalf("run = %v after cancel", err)
	}

	second := startSlotd(t, args, env)
	if second.link != first.link || strings.Contains(second.stderr.String(), "created demo tenant") {
		t.Errorf("restart: link %q (first %q); stderr:\n%s", second.link, first.link, second.stderr)
	}
	after, err := listBookings(ctx, second.base, second.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBookings(before, after) {
		t.Errorf("bookings after restart:\n%+v\nwant:\n%+v", after, before)
	}
	// And the slot stays taken: booking it again is refused.
	c2, err := dialLink(ctx, second.base, second.link)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.close()
	f, err := c2.do(ctx, bookRequest("consultation", booked.ResourceID, booked.Start, "again"))
	if err != nil || f.Type != "error" || f.Code != "slot_taken" {
		t.Errorf("booking the taken slot after restart: %+v, %v; want slot_taken", f, err)
	}
}

// TestPostgresRefusesSchema: slotd does not serve from a database whose
// schema it does not know, nor as a role that bypasses row-level security,
// and says what to do.
func TestPostgresRefusesSchema(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	future := migratedDB(t)
	owner, err := pgx.Connect(context.Background(), future.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	if _, err := owner.Exec(context.Background(), "INSERT INTO schema_migrations (version, name) VALUES (99, 'from_the_future')"); err != nil {
		t.Fatal(err)
	}
	migrated := migratedDB(t)
	tests := []struct {
		name string
		dsn  string
		want []string // in the error
	}{
		{"not migrated", c.CreateDatabase(t).AppDSN, []string{"older than this slotd", "slotd migrate -database-owner-url"}},
		{"newer schema", future.AppDSN, []string{"newer than this slotd", "does not downgrade"}},
		{"owner role", migrated.OwnerDSN, []string{"bypass row-level security", "application role"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-database-url", tt.dsn}, envOf(nil), &stdout, &stderr)
			if err == nil {
				t.Fatalf("run = nil, want a refusal; stdout:\n%s", stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run = %v; want it to say %q", err, w)
				}
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("run printed %q", stdout.String())
			}
		})
	}
	t.Run("migrate refuses a newer schema", func(t *testing.T) {
		var out syncBuffer
		err := run(context.Background(), []string{"migrate", "-database-owner-url", future.OwnerDSN, "-app-role", pgtest.AppRole}, envOf(nil), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("slotd migrate on a newer schema = %v, want a refusal", err)
		}
	})
	t.Run("migrate needs an owner URL", func(t *testing.T) {
		var out syncBuffer
		err := run(context.Background(), []string{"migrate"}, envOf(nil), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "SLOTD_DATABASE_OWNER_URL") {
			t.Errorf("slotd migrate without a URL = %v, want it to ask for one", err)
		}
	})
}

// TestParseDatabaseFlags: the database settings come from flags or
// SLOTD_* variables like every other setting.
func TestParseDatabaseFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		url    string
		notify bool
		poll   time.Duration
	}{
		{"defaults: embedded store", nil, nil, "", true, 2 * time.Second},
		{"env", nil, map[string]string{"SLOTD_DATABASE_URL": "postgres://h/db", "SLOTD_DATABASE_NOTIFY": "false", "SLOTD_FOLLOW_POLL": "250ms"},
			"postgres://h/db", false, 250 * time.Millisecond},
		{"flags beat env", []string{"-database-url", "postgres://f/db", "-database-notify=true", "-follow-poll", "0"},
			map[string]string{"SLOTD_DATABASE_URL": "postgres://h/db", "SLOTD_DATABASE_NOTIFY": "false", "SLOTD_FOLLOW_POLL": "250ms"},
			"postgres://f/db", true, 0},
		{"bad duration env falls back to the default", nil, map[string]string{"SLOTD_FOLLOW_POLL": "often"}, "", true, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseFlags(%q) = %v", tt.args, err)
			}
			if o.databaseURL != tt.url || o.notify != tt.notify || o.followPoll != tt.poll {
				t.Errorf("parseFlags(%q) with env %v: url %q notify %v poll %v; want %q %v %v",
					tt.args, tt.env, o.databaseURL, o.notify, o.followPoll, tt.url, tt.notify, tt.poll)
			}
		})
	}
	if _, err := parseFlags([]string{"-follow-poll", "-1s"}, envOf(nil), io.Discard); err == nil {
		t.Errorf("parseFlags(-follow-poll -1s) = nil, want an error")
	}
}
