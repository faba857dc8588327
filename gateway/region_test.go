package gateway_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/regional"
)

// withActorsConfig adjusts the registry configuration.
func withActorsConfig(f func(*actors.Config)) option { return func(o *serverOptions) { o.actors = f } }

// regionalServer is a test server whose tenants live in two in-memory
// regions, us (the default, holding the directory) and eu.
type regionalServer struct {
	*testServer
	regions *regional.Store
	us, eu  *memstore.Store
}

func newRegionalServer(t *testing.T) regionalServer {
	t.Helper()
	rs := regionalServer{us: memstore.New(), eu: memstore.New()}
	var err error
	rs.regions, err = regional.New(regional.Config{
		Regions:   map[string]persistence.Store{"us": rs.us, "eu": rs.eu},
		Default:   "us",
		Directory: rs.us,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.regions.Close() })
	rs.testServer = newTestServer(t, withMemstore(),
		withActorsConfig(func(c *actors.Config) { c.Store = rs.regions }),
		withGateway(func(c *gateway.Config) { c.Directory, c.Regions = rs.regions, rs.regions }))
	return rs
}

// entries is the number of journal entries of tenant in st.
func entries(t *testing.T, st persistence.Store, tenant string) int {
	t.Helper()
	got, err := st.ReadFrom(t.Context(), tenant, 0, 0)
	if err != nil {
		t.Fatalf("ReadFrom(%s) = %v", tenant, err)
	}
	return len(got)
}

// TestCreateTenantInRegion: POST /v1/tenants places the tenant in the
// region it names (the default one when it names none), GET returns the
// region, and the tenant's journal is in that region's store only.
func TestCreateTenantInRegion(t *testing.T) {
	ts := newRegionalServer(t)
	for _, tt := range []struct {
		id, region, want string
		home, other      *memstore.Store
	}{
		{"berlin", "eu", "eu", ts.eu, ts.us},
		{"boston", "us", "us", ts.us, ts.eu},
		{"plain", "", "us", ts.us, ts.eu},
	} {
		t.Run(tt.id, func(t *testing.T) {
			var view gateway.TenantView
			ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: tt.id, Region: tt.region, Config: testConfig()}).
				want(t, http.StatusCreated, &view)
			if view.Region != tt.want {
				t.Errorf("created %s in region %q, want %q", tt.id, view.Region, tt.want)
			}
			var got gateway.TenantView
			ts.do(t, "GET", "/v1/tenants/"+tt.id, operatorToken, nil).want(t, http.StatusOK, &got)
			if got.Region != tt.want || got.Version != 1 {
				t.Errorf("GET %s: region %q at version %d, want %q at version 1", tt.id, got.Region, got.Version, tt.want)
			}
			body := gateway.BookRequest{Service: "cut", Resource: "alice", Start: rfc3339(at(t, "Europe/Rome", 1, 9)),
				Customer: engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com"}}
			ts.do(t, "POST", "/v1/tenants/"+tt.id+"/bookings", operatorToken, body).want(t, http.StatusCreated, nil)
			if n := entries(t, tt.home, tt.id); n != 2 {
				t.Errorf("home region holds %d journal entries of %s, want 2 (configured, booked)", n, tt.id)
			}
			if n := entries(t, tt.other, tt.id); n != 0 {
				t.Errorf("other region holds %d journal entries of %s, want none", n, tt.id)
			}
			if home, err := ts.regions.Home(t.Context(), tt.id); err != nil || home != tt.want {
				t.Errorf("Home(%s) = %q, %v; want %q", tt.id, home, err, tt.want)
			}
		})
	}
}

// TestCreateTenantUnknownRegion: a region not configured is an invalid
// request, and nothing is stored anywhere.
func TestCreateTenantUnknownRegion(t *testing.T) {
	ts := newRegionalServer(t)
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "sydney", Region: "au", Config: testConfig()}).
		wantError(t, http.StatusBadRequest, engine.CodeInvalid)
	ts.do(t, "GET", "/v1/tenants/sydney", operatorToken, nil).wantError(t, http.StatusNotFound, engine.CodeNotFound)
	if _, err := ts.regions.Home(t.Context(), "sydney"); !errors.Is(err, regional.ErrNoHome) {
		t.Errorf("Home(sydney) = %v, want ErrNoHome", err)
	}
	for _, st := range []*memstore.Store{ts.us, ts.eu} {
		if n := entries(t, st, "sydney"); n != 0 {
			t.Errorf("a region holds %d journal entries of sydney, want none", n)
		}
	}
}

// TestCreateTenantRegionIsImmutable: a create that stopped after placing
// the tenant can be retried in the same region, not moved to another.
func TestCreateTenantRegionIsImmutable(t *testing.T) {
	ts := newRegionalServer(t)
	if err := ts.regions.Place(t.Context(), "berlin", "eu"); err != nil { // a create that got no further
		t.Fatal(err)
	}
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "berlin", Region: "us", Config: testConfig()}).
		wantError(t, http.StatusConflict, engine.CodeConflict)
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "berlin", Config: testConfig()}).
		wantError(t, http.StatusConflict, engine.CodeConflict) // the default region is us
	var view gateway.TenantView
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "berlin", Region: "eu", Config: testConfig()}).
		want(t, http.StatusCreated, &view)
	if view.Region != "eu" {
		t.Errorf("created berlin in %q, want eu", view.Region)
	}
	if n := entries(t, ts.us, "berlin"); n != 0 {
		t.Errorf("us holds %d journal entries of berlin, want none", n)
	}
	// Once created, the tenant exists: another create is a conflict
	// whatever its region.
	for _, region := range []string{"eu", "us"} {
		ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "berlin", Region: region, Config: testConfig()}).
			wantError(t, http.StatusConflict, engine.CodeConflict)
	}
}

// TestCreateTenantWithoutRegions: a server with no regions configured
// refuses a create that names one, and its records carry no region.
func TestCreateTenantWithoutRegions(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "salon", Region: "eu", Config: testConfig()}).
		wantError(t, http.StatusBadRequest, engine.CodeInvalid)
	r := ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "salon", Config: testConfig()}).want(t, http.StatusCreated, nil)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["region"]; ok {
		t.Errorf("created tenant without regions: body %s has a region", r.Body)
	}
	rec, err := ts.store.GetDirectory(t.Context(), gateway.KindTenant, "salon")
	if err != nil || bytes.Contains(rec, []byte("region")) {
		t.Errorf("directory record %s, %v; want one without a region", rec, err)
	}
}
