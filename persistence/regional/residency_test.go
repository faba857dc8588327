package regional_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/regional"
	"github.com/slotd/slotd/persistence/storetest"
)

// t0 is the tests' fixed "now": Monday 2030-01-07 06:00 UTC.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// shopConfig is a tenant with one desk open round the clock and a
// half-hour visit.
func shopConfig() engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "00:00", End: "24:00"}}
	}
	return engine.TenantConfig{Name: "Shop", TimeZone: "UTC",
		Resources: []engine.Resource{{ID: "desk", Name: "Desk", Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: week}},
		Services:  []engine.Service{{ID: "visit", Name: "Visit", DurationMin: 30, StepMin: 30, Resources: []string{"desk"}}},
	}
}

// visit is the i-th half-hour slot from 08:00 on t0's day.
func visit(i int) time.Time { return t0.Add(2*time.Hour + time.Duration(i)*30*time.Minute) }

// customerEmail is a string that appears only in tenant's customer data:
// the needle the residency checks look for in each cluster.
func customerEmail(tenant string) string { return "customer-of-" + tenant + "@example.test" }

// twoRegions is a fresh database in each of the two clusters.
type twoRegions struct {
	usC, euC *pgtest.Cluster
	us, eu   pgtest.Database
}

func newTwoRegions(t *testing.T) twoRegions {
	t.Helper()
	return twoRegions{usC: usCluster.Cluster(t), euC: euCluster.Cluster(t), us: usCluster.newDB(t), eu: euCluster.newDB(t)}
}

// open opens slotd's regional store over the two databases, as slotd does
// with SLOTD_REGIONS="us=…,eu=…": the default region us holds the
// directory. It is closed when t ends (closing twice is harmless).
func (f twoRegions) open(t *testing.T) *regional.Store {
	t.Helper()
	us, eu := openPG(t, f.us, "us"), openPG(t, f.eu, "eu")
	s, err := regional.New(regional.Config{
		Regions:   map[string]persistence.Store{"us": us, "eu": eu},
		Default:   "us",
		Directory: us,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// cluster returns the cluster of region.
func (f twoRegions) cluster(region string) *pgtest.Cluster {
	if region == "eu" {
		return f.euC
	}
	return f.usC
}

// pgRegions opens regional stores over a database in each cluster,
// tenants spread over both by a hash of their id, and reopens them on the
// same databases. (The records suite runs over memstore regions only:
// routing is the same, and persistence/postgres runs it on PostgreSQL.)
type pgRegions struct {
	mu     sync.Mutex // guards opened
	opened map[any]pgPair
}

type pgPair struct{ us, eu pgtest.Database }

func (p *pgRegions) open(t *testing.T, d pgPair) *regional.Store {
	us, eu := openPG(t, d.us, "us"), openPG(t, d.eu, "eu")
	s, err := regional.New(regional.Config{
		Regions:   map[string]persistence.Store{"us": us, "eu": eu},
		Default:   "us",
		Directory: us,
		Lookup:    hashHome("us", "eu"),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opened == nil {
		p.opened = map[any]pgPair{}
	}
	p.opened[s] = d
	return s
}

func (p *pgRegions) fresh(t *testing.T) *regional.Store {
	return p.open(t, pgPair{usCluster.newDB(t), euCluster.newDB(t)})
}

func (p *pgRegions) reopen(t *testing.T, old any) *regional.Store {
	p.mu.Lock()
	d := p.opened[old]
	p.mu.Unlock()
	return p.open(t, d)
}

// TestConformancePostgres runs the conformance suite, durability included,
// over a database in each cluster.
func TestConformancePostgres(t *testing.T) {
	var p pgRegions
	storetest.RunOpener(t, storetest.Opener{
		Open:   func(t *testing.T) persistence.Store { return p.fresh(t) },
		Reopen: func(t *testing.T, old persistence.Store) persistence.Store { return p.reopen(t, old) },
	})
}

// row counts one tenant's rows in one table of one database.
type row struct {
	db, table, tenant, region string
	n                         int
}

// databases lists the databases of c that accept connections, templates
// excepted.
func databases(t *testing.T, c *pgtest.Cluster) []string {
	t.Helper()
	conn := superConn(t, c, "postgres")
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(),
		"SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// tenantRows reads, as the superuser (no row-level security), every
// database of cluster c: for each table with a tenant_id column, how many
// rows each of tenants has there, by home region. Tables are found in the
// catalogue, so a tenant table added later is checked too.
func tenantRows(t *testing.T, c *pgtest.Cluster, tenants []string) []row {
	t.Helper()
	var out []row
	for _, db := range databases(t, c) {
		conn := superConn(t, c, db)
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), `
			SELECT table_name, bool_or(column_name = 'home_region')
			FROM information_schema.columns
			WHERE table_schema = 'public' AND column_name IN ('tenant_id', 'home_region')
			GROUP BY table_name HAVING bool_or(column_name = 'tenant_id')
			ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		type table struct {
			name   string
			region bool
		}
		tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
			var tb table
			return tb, r.Scan(&tb.name, &tb.region)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			region := "''"
			if tb.region {
				region = "home_region"
			}
			q := fmt.Sprintf("SELECT tenant_id, %s, count(*) FROM %s WHERE tenant_id = ANY($1) GROUP BY 1, 2",
				region, pgx.Identifier{tb.name}.Sanitize())
			rows, err := conn.Query(t.Context(), q, tenants)
			if err != nil {
				t.Fatalf("%s: %s: %v", db, q, err)
			}
			got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				x := row{db: db, table: tb.name}
				return x, r.Scan(&x.tenant, &x.region, &x.n)
			})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got...)
		}
	}
	return out
}

// occurrences searches every text, bytea and json column of every table
// of every database of c for each of needles, and lists, by needle, where
// it occurs ("db.table.column (n rows)").
func occurrences(t *testing.T, c *pgtest.Cluster, needles []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, db := range databases(t, c) {
		conn := superConn(t, c, db)
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), `
			SELECT table_name, column_name, data_type
			FROM information_schema.columns
			WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', 'json', 'jsonb', 'character varying')
			ORDER BY 1, 2`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([3]string, error) {
			var c [3]string
			return c, r.Scan(&c[0], &c[1], &c[2])
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, col := range cols {
			needle, hay := "n", pgx.Identifier{col[1]}.Sanitize()+"::text"
			if col[2] == "bytea" {
				needle, hay = "convert_to(n, 'UTF8')", pgx.Identifier{col[1]}.Sanitize()
			}
			q := fmt.Sprintf("SELECT n, count(*) FROM %s, unnest($1::text[]) AS n WHERE position(%s IN %s) > 0 GROUP BY n",
				pgx.Identifier{col[0]}.Sanitize(), needle, hay)
			rows, err := conn.Query(t.Context(), q, needles)
			if err != nil {
				t.Fatalf("%s: %s: %v", db, q, err)
			}
			for rows.Next() {
				var n string
				var count int
				if err := rows.Scan(&n, &count); err != nil {
					t.Fatal(err)
				}
				out[n] = append(out[n], fmt.Sprintf("%s.%s.%s (%d rows)", db, col[0], col[1], count))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// checkResidency inspects both clusters directly. Each tenant of homes
// (tenant → region) must have rows in its home cluster's journal, heads,
// snapshots, resources and bookings tables (and records if records), all recording its home region,
// its customer's e-mail address must be stored there (so the search below
// can see it), and no database of the other cluster may hold a row of the
// tenant or its customer's address anywhere. The directory, in the us
// database, holds no customer's address.
func checkResidency(t *testing.T, f twoRegions, homes map[string]string, bookings int, records bool) {
	t.Helper()
	var tenants []string
	for tenant := range homes {
		tenants = append(tenants, tenant)
	}
	slices.Sort(tenants)
	var needles []string
	for _, tenant := range tenants {
		needles = append(needles, customerEmail(tenant))
	}
	for _, region := range []string{"us", "eu"} {
		rows := tenantRows(t, f.cluster(region), tenants)
		found := occurrences(t, f.cluster(region), needles)
		for _, tenant := range tenants {
			home := homes[tenant]
			tables := map[string]int{}
			for _, r := range rows {
				if r.tenant != tenant {
					continue
				}
				if home != region {
					t.Errorf("%s (home %s): %d rows in %s.%s of the %s cluster", tenant, home, r.n, r.db, r.table, region)
					continue
				}
				if r.region != home {
					t.Errorf("%s: %d rows in %s.%s record home region %q, want %q", tenant, r.n, r.db, r.table, r.region, home)
				}
				tables[r.table] += r.n
			}
			if home != region {
				if where := found[customerEmail(tenant)]; len(where) > 0 {
					t.Errorf("%s (home %s): its customer's address is in the %s cluster: %s", tenant, home, region, strings.Join(where, ", "))
				}
				continue
			}
			want := []string{"heads", "journal", "snapshots", "resources"}
			if records {
				want = append(want, "records")
			}
			for _, table := range want {
				if tables[table] == 0 {
					t.Errorf("%s: no rows in %s of its home cluster %s", tenant, table, home)
				}
			}
			if tables["bookings"] != bookings {
				t.Errorf("%s: %d rows in bookings of its home cluster %s, want %d", tenant, tables["bookings"], home, bookings)
			}
			where := found[customerEmail(tenant)]
			if !slices.ContainsFunc(where, func(s string) bool { return strings.Contains(s, ".journal.data") }) {
				t.Errorf("%s: its customer's address is not found in its home cluster's journal (found in %q): the search is blind", tenant, where)
			}
			for _, s := range where {
				if strings.Contains(s, ".directory.") {
					t.Errorf("%s: customer's address in the directory: %s", tenant, s)
				}
			}
		}
	}
}

// TestResidency books into an EU and a US tenant through the actors, and
// writes an audit record for each, and checks, in both clusters as the
// superuser, that each tenant's journal, snapshots, projections and
// records are in its home region's cluster only. After a
// restart (new stores, home regions preloaded from the directory) each
// tenant's state comes back from its own region.
func TestResidency(t *testing.T) {
	t.Parallel()
	f := newTwoRegions(t)
	homes := map[string]string{"res-berlin": "eu", "res-boston": "us"}
	const bookings = 12
	clk := clock.NewManual(t0)
	rs := f.open(t)
	reg := actors.NewRegistry(actors.Config{Store: rs, Clock: clk, Logger: quietLogger(), SnapshotEvery: 4})
	ctx := t.Context()
	for tenant, region := range homes {
		if err := rs.Place(ctx, tenant, region); err != nil {
			t.Fatalf("Place(%s, %s) = %v", tenant, region, err)
		}
		if _, err := reg.Do(ctx, tenant, engine.Configure{Config: shopConfig()}); err != nil {
			t.Fatalf("Do(%s, Configure) = %v", tenant, err)
		}
		// A tenant record, such as an audit entry, naming the customer.
		if _, err := rs.PutRecord(ctx, tenant, "audit", "1", []byte(customerEmail(tenant)+" booked"), 0); err != nil {
			t.Fatalf("PutRecord(%s) = %v", tenant, err)
		}
		for i := range bookings {
			cmd := engine.Book{BookingID: fmt.Sprintf("b%d", i), ServiceID: "visit", ResourceID: "desk", Start: visit(i),
				Customer: engine.Customer{Name: "Customer", Email: customerEmail(tenant)}}
			if _, err := reg.Do(ctx, tenant, cmd); err != nil {
				t.Fatalf("Do(%s, Book %d) = %v", tenant, i, err)
			}
		}
	}
	// Fails closed: a tenant never placed, and one whose home region has no
	// database here, are refused and leave no row anywhere.
	if err := rs.PutDirectory(ctx, regional.KindHome, "res-sydney", []byte("au")); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"res-nowhere", "res-sydney"} {
		if _, err := reg.Do(ctx, tenant, engine.Configure{Config: shopConfig()}); err == nil {
			t.Errorf("Do(%s, Configure) = nil error, want a refusal: it has no home region here", tenant)
		}
	}
	reg.Close() // each actor snapshots as it stops
	rs.Close()

	checkResidency(t, f, homes, bookings, true)
	for _, region := range []string{"us", "eu"} {
		if rows := tenantRows(t, f.cluster(region), []string{"res-nowhere", "res-sydney"}); len(rows) > 0 {
			t.Errorf("%s cluster holds rows of tenants without a home region here: %+v", region, rows)
		}
	}

	// Restart: the home regions come back from the directory.
	rs = f.open(t)
	if n, err := rs.Preload(ctx); err != nil || n != 3 {
		t.Fatalf("Preload() = %d, %v; want 3 (berlin, boston, sydney), nil", n, err)
	}
	reg = actors.NewRegistry(actors.Config{Store: rs, Clock: clk, Logger: quietLogger()})
	t.Cleanup(reg.Close)
	for tenant := range homes {
		err := reg.Read(ctx, tenant, func(st *engine.State, _ uint64) error {
			if n := len(st.Bookings(time.Time{}, time.Time{})); n != bookings {
				return fmt.Errorf("%d bookings, want %d", n, bookings)
			}
			return nil
		})
		if err != nil {
			t.Errorf("after restart: Read(%s) = %v", tenant, err)
		}
	}
}

// TestResidencyHTTP creates tenants through the gateway's HTTP API, with
// and without a region, books through it, and inspects both clusters.
func TestResidencyHTTP(t *testing.T) {
	t.Parallel()
	f := newTwoRegions(t)
	clk := clock.NewManual(t0)
	rs := f.open(t)
	reg := actors.NewRegistry(actors.Config{Store: rs, Clock: clk, Logger: quietLogger(), SnapshotEvery: 4})
	const token = "sk_test_residency"
	gw := gateway.New(gateway.Config{Tenants: reg, Directory: rs, Regions: rs, Auth: gateway.NewOperatorToken(token),
		Logger: quietLogger(), Now: clk.Now})
	srv := httptest.NewServer(gw)
	defer srv.Close()

	call := func(method, path string, body any, wantStatus int, out any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, wantStatus, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
			}
		}
	}

	homes := map[string]string{"web-paris": "eu", "web-denver": "us", "web-plain": "us"}
	asked := map[string]string{"web-paris": "eu", "web-denver": "us", "web-plain": ""} // "" takes the default
	const bookings = 6
	for tenant, region := range asked {
		var view gateway.TenantView
		call("POST", "/v1/tenants", gateway.CreateTenantRequest{ID: tenant, Region: region, Config: shopConfig()}, http.StatusCreated, &view)
		if view.Region != homes[tenant] {
			t.Errorf("POST /v1/tenants %s (region %q): created in %q, want %q", tenant, region, view.Region, homes[tenant])
		}
		for i := range bookings {
			call("POST", "/v1/tenants/"+tenant+"/bookings", gateway.BookRequest{Service: "visit", Resource: "desk",
				Start: visit(i).Format(time.RFC3339), Customer: engine.Customer{Name: "Customer", Email: customerEmail(tenant)}},
				http.StatusCreated, nil)
		}
		var got gateway.TenantView
		call("GET", "/v1/tenants/"+tenant, nil, http.StatusOK, &got)
		if got.Region != homes[tenant] || got.Version != bookings+1 {
			t.Errorf("GET /v1/tenants/%s: region %q, version %d; want %q, %d", tenant, got.Region, got.Version, homes[tenant], bookings+1)
		}
	}
	// An unknown region is refused before anything is stored.
	call("POST", "/v1/tenants", gateway.CreateTenantRequest{ID: "web-sydney", Region: "au", Config: shopConfig()}, http.StatusBadRequest, nil)
	call("GET", "/v1/tenants/web-sydney", nil, http.StatusNotFound, nil)

	gw.Shutdown(t.Context())
	reg.Close()
	rs.Close()
	checkResidency(t, f, homes, bookings, false)
	for _, region := range []string{"us", "eu"} {
		if rows := tenantRows(t, f.cluster(region), []string{"web-sydney"}); len(rows) > 0 {
			t.Errorf("%s cluster holds rows of the refused tenant: %+v", region, rows)
		}
	}
	// The directory (in us) holds each tenant's id, link, home region and
	// creation time, and nothing else.
	conn := superConn(t, f.usC, f.us.Name)
	var kinds []string
	rows, err := conn.Query(t.Context(), "SELECT DISTINCT kind FROM directory ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	if kinds, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if want := []string{"home", "link", "tenant"}; !slices.Equal(kinds, want) {
		t.Errorf("directory kinds %q, want %q", kinds, want)
	}
	var rec []byte
	if err := conn.QueryRow(t.Context(), "SELECT value FROM directory WHERE kind = 'tenant' AND key = 'web-paris'::bytea").Scan(&rec); err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(rec, &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"created_at", "id", "link", "region"}; !slices.Equal(keys, want) || fields["region"] != "eu" {
		t.Errorf("directory record of web-paris %s: fields %q, want %q with region eu", rec, keys, want)
	}
	if where := occurrences(t, f.euC, []string{"web-paris"}); len(where["web-paris"]) == 0 {
		t.Errorf("web-paris has no rows in the eu cluster")
	}
}

// TestFollowAcrossRegions: one instance follows every region's database:
// appends made by another instance, to tenants of either region, wake it.
func TestFollowAcrossRegions(t *testing.T) {
	t.Parallel()
	f := newTwoRegions(t)
	a, b := f.open(t), f.open(t) // two slotd instances
	ctx, cancel := context.WithCancel(t.Context())
	heard := make(chan string, 64)
	done := make(chan error, 1)
	go func() {
		done <- b.Follow(ctx, func(tenant string) {
			if tenant != "" {
				heard <- tenant
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow after cancel = %v, want context.Canceled", err)
		}
	}()
	want := map[string]bool{"fol-berlin": true, "fol-boston": true}
	for tenant, region := range map[string]string{"fol-berlin": "eu", "fol-boston": "us"} {
		if err := a.Place(t.Context(), tenant, region); err != nil {
			t.Fatal(err)
		}
	}
	// Follow's LISTENs may not be in place yet: append until both are
	// heard (a notification sent before LISTEN is lost by design).
	var heads = map[string]uint64{}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		for tenant := range want {
			head, err := a.Append(t.Context(), tenant, heads[tenant], [][]byte{[]byte("x")})
			if err != nil {
				t.Fatalf("Append(%s) = %v", tenant, err)
			}
			heads[tenant] = head
		}
		select {
		case tenant := <-heard:
			delete(want, tenant)
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after 30s the follower has not heard of %v", want)
		}
	}
}
