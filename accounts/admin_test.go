package accounts_test

import (
	"net/http"
	"testing"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/gateway"
)

// TestAccountManagementPermissions walks the who-may-do-what rules: the
// operator creates the first owner; owners manage everyone; admins manage
// staff only and cannot promote; staff manage nobody; a tenant keeps an
// enabled owner; another tenant's accounts are out of reach.
func TestAccountManagementPermissions(t *testing.T) {
	e := newEnv(t)
	op := e.browser()
	op.bearer = operatorToken
	var owner accounts.Account
	op.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "owner@example.com", "role": "owner", "password": goodPassword}).
		want(http.StatusCreated, &owner)
	if !e.audit.has(accounts.ActionAccountCreated) {
		t.Errorf("audit %v, want account_created", e.audit.actions())
	}
	ob := e.browser()
	ob.signIn("owner@example.com", goodPassword)
	var admin, staff accounts.Account
	ob.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "admin@example.com", "role": "admin", "password": goodPassword}).want(http.StatusCreated, &admin)
	ob.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "staff@example.com", "password": goodPassword}).want(http.StatusCreated, &staff)
	if staff.Role != accounts.RoleStaff {
		t.Errorf("default role %q, want staff", staff.Role)
	}
	// Emails are unique per tenant, whatever their case.
	ob.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "STAFF@example.com", "role": "staff"}).wantError(http.StatusConflict, "conflict")

	ab := e.browser()
	ab.signIn("admin@example.com", goodPassword)
	ab.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "x@example.com", "role": "admin"}).wantError(http.StatusForbidden, "forbidden")
	ab.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "x@example.com", "role": "staff"}).want(http.StatusCreated, nil)
	ab.do("PATCH", "/v1/tenants/salon/accounts/"+staff.ID, map[string]any{"role": "admin"}).wantError(http.StatusForbidden, "forbidden")
	ab.do("PATCH", "/v1/tenants/salon/accounts/"+owner.ID, map[string]any{"disabled": true}).wantError(http.StatusForbidden, "forbidden")
	ab.do("PATCH", "/v1/tenants/salon/accounts/"+staff.ID, map[string]any{"name": "Stef"}).want(http.StatusOK, nil)
	var list accounts.AccountList
	ab.do("GET", "/v1/tenants/salon/accounts", nil).want(http.StatusOK, &list)
	if len(list.Accounts) != 4 {
		t.Errorf("%d accounts listed, want 4", len(list.Accounts))
	}

	sb := e.browser()
	sb.signIn("staff@example.com", goodPassword)
	sb.do("GET", "/v1/tenants/salon/accounts", nil).wantError(http.StatusForbidden, "forbidden")
	sb.do("POST", "/v1/tenants/salon/accounts", map[string]any{"email": "y@example.com"}).wantError(http.StatusForbidden, "forbidden")
	sb.do("PUT", "/v1/tenants/salon/account-policy", map[string]any{"require_mfa": false}).wantError(http.StatusForbidden, "forbidden")

	// The last enabled owner cannot be removed, demoted or disabled.
	ob.do("PATCH", "/v1/tenants/salon/accounts/"+owner.ID, map[string]any{"role": "admin"}).wantError(http.StatusConflict, "conflict")
	ob.do("PATCH", "/v1/tenants/salon/accounts/"+owner.ID, map[string]any{"disabled": true}).wantError(http.StatusConflict, "conflict")
	ob.do("DELETE", "/v1/tenants/salon/accounts/"+owner.ID, nil).wantError(http.StatusConflict, "conflict")
	ob.do("PATCH", "/v1/tenants/salon/accounts/"+admin.ID, map[string]any{"role": "owner"}).want(http.StatusOK, nil)
	ob.do("PATCH", "/v1/tenants/salon/accounts/"+owner.ID, map[string]any{"role": "admin"}).want(http.StatusOK, nil)
	// Own role change ended the owner's session too.
	ob.do("GET", "/v1/session", nil).wantError(http.StatusUnauthorized, "unauthorized")

	// Another tenant: the gateway refuses before any lookup.
	op.do("POST", "/v1/tenants", gateway.CreateTenantRequest{ID: "barber"}).want(http.StatusCreated, nil)
	var barberStaff accounts.Account
	op.do("POST", "/v1/tenants/barber/accounts", map[string]any{"email": "staff@example.com", "password": goodPassword}).want(http.StatusCreated, &barberStaff)
	nb := e.browser()
	nb.signIn("admin@example.com", goodPassword) // now an owner of salon
	nb.do("GET", "/v1/tenants/barber/accounts", nil).wantError(http.StatusForbidden, "forbidden")
	nb.do("DELETE", "/v1/tenants/barber/accounts/"+barberStaff.ID, nil).wantError(http.StatusForbidden, "forbidden")
	// Its id under our tenant is simply not found.
	nb.do("GET", "/v1/tenants/salon/accounts/"+barberStaff.ID, nil).wantError(http.StatusNotFound, "not_found")
	nb.do("DELETE", "/v1/tenants/salon/accounts/"+barberStaff.ID, nil).wantError(http.StatusNotFound, "not_found")
}

// TestRoutesDeclarePermissions checks the route table: sign-in routes are
// public, everything else needs at least staff, and account management
// needs admin.
func TestRoutesDeclarePermissions(t *testing.T) {
	e := newEnv(t)
	public := map[string]bool{
		"POST /v1/tenants/{tenant}/sign-in":                true,
		"GET /v1/sign-in/challenge":                        true,
		"POST /v1/sign-in/totp":                            true,
		"GET /v1/tenants/{tenant}/sign-in/oidc/{provider}": true,
		"GET /v1/oidc/{provider}/callback":                 true,
	}
	for _, r := range e.svc.Routes() {
		switch {
		case public[r.Pattern]:
			if r.Perm != 0 {
				t.Errorf("%s: perm %d, want public", r.Pattern, r.Perm)
			}
		case r.Perm < gateway.PermStaff:
			t.Errorf("%s: perm %d, want at least staff", r.Pattern, r.Perm)
		}
	}
	found := false
	for _, r := range e.gw.Routes() {
		if r.Pattern == "POST /v1/ws-token" {
			found = true
		}
	}
	if !found {
		t.Error("the gateway's route table does not list POST /v1/ws-token")
	}
}
