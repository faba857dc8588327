package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/demo"
	"github.com/slotd/slotd/internal/pgtest"
)

// TestResidencyRegions runs slotd with SLOTD_REGIONS over two PostgreSQL
// clusters (us, the default, and eu), each migrated with "slotd migrate":
// a tenant created with "region": "eu" through the HTTP API gets its
// journal, snapshots and projections in the eu cluster only, the demo tenant
// (default region) in the us cluster only, as both clusters' superuser
// sees; after a restart the eu tenant is served from eu again.
func TestResidencyRegions(t *testing.T) {
	t.Parallel()
	us, eu := pgtest.Start(t), pgtest.Start(t)
	for _, c := range []*pgtest.Cluster{us, eu} {
		resMigrate(t, c.OwnerDSN())
	}
	const token = "sk_test_operator_regions_0123456789"
	env := map[string]string{
		"SLOTD_REGIONS":        "us=" + us.AppDSN() + ",eu=" + eu.AppDSN(),
		"SLOTD_DEFAULT_REGION": "us",
		"SLOTD_ADMIN_TOKEN":    token,
	}
	args := []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}
	s := startSlotd(t, args, env)
	if out := s.stdout.String(); !strings.Contains(out, "us=PostgreSQL") || !strings.Contains(out, "(directory)") || !strings.Contains(out, "eu=PostgreSQL") {
		t.Errorf("banner does not name both regions and the directory:\n%s", out)
	}
	if s.link == "" {
		t.Fatalf("no demo booking page in the banner:\n%s", s.stdout)
	}

	const tenant = "lyon"
	var view gateway.TenantView
	resCall(t, "POST", s.base+"/v1/tenants", token, gateway.CreateTenantRequest{ID: tenant, Region: "eu", Config: demo.Config()}, http.StatusCreated, &view)
	if view.Region != "eu" {
		t.Fatalf("created %s in region %q, want eu", tenant, view.Region)
	}
	resCall(t, "POST", s.base+"/v1/tenants", token, gateway.CreateTenantRequest{ID: "mars-base", Region: "mars", Config: demo.Config()}, http.StatusBadRequest, nil)
	var demoView gateway.TenantView
	resCall(t, "GET", s.base+"/v1/tenants/"+demo.Tenant, token, nil, http.StatusOK, &demoView)
	if demoView.Region != "us" {
		t.Errorf("demo tenant in region %q, want the default us", demoView.Region)
	}
	// Book the first free slot of the eu tenant.
	var public struct {
		Services []struct {
			ID string `json:"id"`
		} `json:"services"`
	}
	resCall(t, "GET", s.base+"/v1/public/"+view.Link, "", nil, http.StatusOK, &public)
	if len(public.Services) == 0 {
		t.Fatal("the eu tenant has no services")
	}
	slots, err := availability(t.Context(), s.base, view.Link, public.Services[0].ID, 7)
	if err != nil || len(slots) == 0 {
		t.Fatalf("availability of %s = %d slots, %v", tenant, len(slots), err)
	}
	var booked struct {
		Booking engine.Booking `json:"booking"`
	}
	resCall(t, "POST", s.base+"/v1/tenants/"+tenant+"/bookings", token, gateway.BookRequest{Service: public.Services[0].ID,
		Resource: slots[0].Resources[0], Start: slots[0].Start.Format(time.RFC3339),
		Customer: engine.Customer{Name: "Client", Email: "client@example.fr"}}, http.StatusCreated, &booked)
	if err := s.stop(t); err != nil {
		t.Fatalf("slotd stopped with %v", err)
	}

	for _, tt := range []struct {
		tenant   string
		home     *pgtest.Cluster
		away     *pgtest.Cluster
		homeName string
	}{
		{tenant, eu, us, "eu"},
		{demo.Tenant, us, eu, "us"},
	} {
		if rows := resTenantRows(t, tt.home, tt.tenant); rows["journal"] == 0 || rows["heads"] == 0 || rows["snapshots"] == 0 || rows["resources"] == 0 {
			t.Errorf("%s: rows in its home cluster (%s) %v; want journal, heads, snapshots and resources", tt.tenant, tt.homeName, rows)
		}
		if rows := resTenantRows(t, tt.away, tt.tenant); len(rows) > 0 {
			t.Errorf("%s (home %s): rows in the other cluster: %v", tt.tenant, tt.homeName, rows)
		}
	}
	if rows := resTenantRows(t, eu, tenant); rows["bookings"] != 1 {
		t.Errorf("%s: %d bookings rows in eu, want 1", tenant, rows["bookings"])
	}

	// After a restart the home regions come back from the directory: the
	// booking is served from eu.
	s = startSlotd(t, args, env)
	var again struct {
		Booking engine.Booking `json:"booking"`
	}
	resCall(t, "GET", s.base+"/v1/tenants/"+tenant+"/bookings/"+booked.Booking.ID, token, nil, http.StatusOK, &again)
	if again.Booking.ID != booked.Booking.ID || !again.Booking.Start.Equal(booked.Booking.Start) {
		t.Errorf("after restart: booking %+v, want %+v", again.Booking, booked.Booking)
	}
	resCall(t, "GET", s.base+"/v1/tenants/"+tenant, token, nil, http.StatusOK, &view)
	if view.Region != "eu" {
		t.Errorf("after restart: %s in region %q, want eu", tenant, view.Region)
	}
}

// TestRegionFlags: -regions excludes -database-url, and a default region
// must be one of the regions.
func TestRegionFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"with database url", []string{"-regions", "us=postgres://h/db", "-database-url", "postgres://h/db"}, "exclude each other"},
		{"default without regions", []string{"-default-region", "us"}, "needs -regions"},
		{"bad list", []string{"-regions", "postgres://h/db"}, "name=DSN"},
		{"unknown default", []string{"-regions", "us=postgres://127.0.0.1:1/db?connect_timeout=1", "-default-region", "eu"}, "not one of the regions"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, tt.args...), envOf(nil), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

// resMigrate runs "slotd migrate" as the owner, granting pgtest's
// application role.
func resMigrate(tb testing.TB, ownerDSN string) {
	tb.Helper()
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"migrate", "-database-owner-url", ownerDSN, "-app-role", pgtest.AppRole}
	if err := run(ctx, args, envOf(nil), &out, &out); err != nil {
		tb.Fatalf("slotd %s = %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// resCall sends a JSON request (with a bearer token unless empty), checks
// the status and decodes the body into out unless nil.
func resCall(tb testing.TB, method, url, token string, body any, status int, out any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != status {
		tb.Fatalf("%s %s: status %d, want %d; body %s", method, url, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
}

// resTenantRows counts tenant's rows, as the superuser (no row-level
// security), in every table with a tenant_id column of every database of
// cluster c: table → rows (tables without rows left out).
func resTenantRows(tb testing.TB, c *pgtest.Cluster, tenant string) map[string]int {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.SuperuserDSN())
	if err != nil {
		tb.Fatal(err)
	}
	rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Close(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, db := range dbs {
		conn, err := pgx.Connect(ctx, c.DSN(pgtest.Superuser, db))
		if err != nil {
			tb.Fatal(err)
		}
		rows, _ := conn.Query(ctx, "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'")
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			conn.Close(ctx)
			tb.Fatal(err)
		}
		for _, table := range tables {
			var n int
			q := fmt.Sprintf("SELECT count(*) FROM %s WHERE tenant_id = $1", pgx.Identifier{table}.Sanitize())
			if err := conn.QueryRow(ctx, q, tenant).Scan(&n); err != nil {
				conn.Close(ctx)
				tb.Fatalf("%s: %s: %v", db, q, err)
			}
			if n > 0 {
				out[table] += n
			}
		}
		conn.Close(ctx)
	}
	return out
}
