package gateway_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// scopedAuth authenticates fixed tokens as scoped principals of one tenant,
// as an OAuth 2 access token would.
type scopedAuth map[string]gateway.Principal

func (a scopedAuth) AuthenticateToken(_ context.Context, token string) (gateway.Principal, error) {
	if p, ok := a[token]; ok {
		return p, nil
	}
	return gateway.Principal{}, engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
}

// TestRoutesDeclareScopes: every tenant route names a known scope, so a new
// route cannot be reached by a delegated token without someone deciding
// which scope covers it; public and operator routes name none.
func TestRoutesDeclareScopes(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	known := gateway.Scopes()
	for _, r := range ts.gw.Routes() {
		switch {
		case r.Perm == 0 || r.Perm == gateway.PermOperator:
			if r.Scope != "" {
				t.Errorf("%s (perm %d) names scope %q; public and operator routes need none", r.Pattern, r.Perm, r.Scope)
			}
		case !slices.Contains(known, r.Scope):
			t.Errorf("%s names scope %q, want one of %v", r.Pattern, r.Scope, known)
		}
	}
	for _, s := range known {
		if gateway.ScopePermission(s) == 0 {
			t.Errorf("ScopePermission(%q) = 0", s)
		}
	}
}

// TestScopedPrincipal: a token that carries only availability:read reads
// availability over HTTP and WebSocket, and is refused everything else its
// permission would allow; an unscoped principal of the same permission is
// not limited.
func TestScopedPrincipal(t *testing.T) {
	auth := scopedAuth{
		"avail": {Kind: "app", Subject: "app", Tenant: "salon", Perm: gateway.PermAdmin, Scopes: []string{gateway.ScopeAvailabilityRead}, Grant: "g1"},
		"none":  {Kind: "app", Subject: "app", Tenant: "salon", Perm: gateway.PermAdmin, Scopes: []string{}, Grant: "g2"},
		"staff": {Kind: "staff", Subject: "acc", Tenant: "salon", Perm: gateway.PermStaff},
	}
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.Auth = gateway.ChainAuth(c.Auth, auth) }))
	ts.createTenant(t, "salon", testConfig())
	slot := at(t, "Europe/Rome", 1, 10)
	avail := "/v1/tenants/salon/availability?service=cut&from=" + day1 + "&to=2030-01-09&tz=Europe/Rome"

	ts.do(t, "GET", avail, "avail", nil).want(t, http.StatusOK, nil)
	ts.do(t, "GET", "/v1/tenants/salon/bookings", "avail", nil).wantError(t, http.StatusForbidden, engine.CodeForbidden)
	ts.do(t, "GET", "/v1/tenants/salon", "avail", nil).wantError(t, http.StatusForbidden, engine.CodeForbidden)
	ts.do(t, "POST", "/v1/tenants/salon/bookings", "avail", bookFields("cut", "alice", slot, ada)).wantError(t, http.StatusForbidden, engine.CodeForbidden)
	ts.do(t, "PUT", "/v1/tenants/salon/config", "avail", testConfig()).wantError(t, http.StatusForbidden, engine.CodeForbidden)
	ts.do(t, "GET", avail, "none", nil).wantError(t, http.StatusForbidden, engine.CodeForbidden)
	ts.do(t, "GET", "/v1/tenants/salon/bookings", "staff", nil).want(t, http.StatusOK, nil)

	c := ts.dial(t, "", http.Header{"Authorization": {"Bearer avail"}})
	c.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
	c.mustCall("tenant_info", nil, gateway.TypeTenantInfo)
	c.wantErr("book", bookFields("cut", "alice", slot, ada), engine.CodeForbidden)
	c.wantErr("hold", bookFields("cut", "alice", slot, nil), engine.CodeForbidden)
	c.wantErr("subscribe_bookings", nil, engine.CodeForbidden)

	n := ts.dial(t, "", http.Header{"Authorization": {"Bearer none"}})
	n.wantErr("subscribe", aliceDay1(), engine.CodeForbidden)

	s := ts.dial(t, "", http.Header{"Authorization": {"Bearer staff"}})
	s.mustCall("book", bookFields("cut", "alice", slot, ada), gateway.TypeBooked)
	s.mustCall("subscribe_bookings", nil, gateway.TypeBookingsSubscribed)
}
