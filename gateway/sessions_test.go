package gateway_test

import (
	"net/http"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// cookieAuth is a RequestAuthenticator that knows one cookie value.
type cookieAuth struct{ value string }

func (c cookieAuth) AuthenticateRequest(r *http.Request) (gateway.Principal, error) {
	ck, err := r.Cookie("test_session")
	if err != nil || ck.Value != c.value {
		return gateway.Principal{}, engine.Errorf(engine.CodeUnauthorized, "no session")
	}
	if r.Method != http.MethodGet && r.Header.Get("X-CSRF-Token") != "ok" {
		return gateway.Principal{}, engine.Errorf(engine.CodeForbidden, "csrf")
	}
	return gateway.Principal{Kind: "staff", Subject: "acc_1", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session:x"}, nil
}

// TestSessionsAuthenticateWithoutBearer checks that a route with a
// permission accepts a session when no bearer token is sent, that a bearer
// token takes precedence, and that the session's refusals (CSRF) stand.
func TestSessionsAuthenticateWithoutBearer(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.Sessions = cookieAuth{value: "good"}
	}))
	ts.createTenant(t, "salon", testConfig())
	ts.do(t, "GET", "/v1/tenants/salon", "", nil, "Cookie", "test_session=good").want(t, http.StatusOK, nil)
	ts.do(t, "GET", "/v1/tenants/salon", "", nil, "Cookie", "test_session=bad").wantError(t, http.StatusUnauthorized, engine.CodeUnauthorized)
	ts.do(t, "GET", "/v1/tenants/salon", "", nil).wantError(t, http.StatusUnauthorized, engine.CodeUnauthorized)
	// A bearer token is checked as a token even when a good cookie is sent.
	ts.do(t, "GET", "/v1/tenants/salon", "wrong", nil, "Cookie", "test_session=good").wantError(t, http.StatusUnauthorized, engine.CodeUnauthorized)
	// The session's principal is bound to its tenant.
	ts.createTenant(t, "barber", testConfig())
	ts.do(t, "GET", "/v1/tenants/barber", "", nil, "Cookie", "test_session=good").wantError(t, http.StatusForbidden, engine.CodeForbidden)
	// The session authenticator's CSRF refusal is the answer.
	ts.do(t, "POST", "/v1/tenants/salon/bookings/bk_x/cancel", "", map[string]any{}, "Cookie", "test_session=good").wantError(t, http.StatusForbidden, engine.CodeForbidden)
}
