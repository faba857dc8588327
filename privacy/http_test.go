package privacy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
)

// tokens authenticates the test's bearer tokens.
type tokens map[string]gateway.Principal

func (t tokens) AuthenticateToken(_ context.Context, tok string) (gateway.Principal, error) {
	if p, ok := t[tok]; ok {
		return p, nil
	}
	return gateway.Principal{}, engine.Errorf(engine.CodeUnauthorized, "invalid or missing token")
}

var testTokens = tokens{
	"acme-owner":  {Kind: "admin", Subject: "account:acme-owner", Tenant: "acme", Perm: gateway.PermAdmin},
	"acme-staff":  {Kind: "staff", Subject: "account:acme-staff", Tenant: "acme", Perm: gateway.PermStaff},
	"globex-boss": {Kind: "admin", Subject: "account:globex-boss", Tenant: "globex", Perm: gateway.PermAdmin},
	"acme-app":    {Kind: "admin", Subject: "client:app", Tenant: "acme", Perm: gateway.PermAdmin, Scopes: gateway.Scopes(), Grant: "g1"},
	"operator":    {Kind: "operator", Subject: "operator", Perm: gateway.PermOperator},
}

func mustServer(t *testing.T) *httptest.Server {
	t.Helper()
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	gw := gateway.New(gateway.Config{Tenants: r, Directory: memstore.New(), Auth: testTokens, Logger: quietLogger(), Routes: svc.Routes()})
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)
	return ts
}

func call(t *testing.T, ts *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	ts := mustServer(t)
	aliceBody := `{"email":"alice.liddell@example.com"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		contains                        []string
		absent                          []string
	}{
		{"owner exports a customer", "POST", "/v1/tenants/acme/privacy/export-customer", "acme-owner", aliceBody, 200,
			[]string{`"format":"slotd.customer-export"`, alice.Name, alice.Phone, `"a1"`}, []string{`"g1"`, bob.Email}},
		{"owner exports the tenant", "GET", "/v1/tenants/acme/privacy/export", "acme-owner", "", 200,
			[]string{`"format":"slotd.tenant-export"`, alice.Email, bob.Email}, []string{carol.Email, `"g1"`}},
		{"operator exports any tenant", "GET", "/v1/tenants/globex/privacy/export", "operator", "", 200,
			[]string{carol.Email}, []string{bob.Email}},
		{"staff may not export", "GET", "/v1/tenants/acme/privacy/export", "acme-staff", "", 403, nil, []string{alice.Email}},
		{"staff may not erase", "POST", "/v1/tenants/acme/privacy/erase", "acme-staff", aliceBody, 403, nil, nil},
		{"another tenant's admin may not export", "GET", "/v1/tenants/acme/privacy/export", "globex-boss", "", 403, nil, []string{alice.Email}},
		{"another tenant's admin may not export a customer", "POST", "/v1/tenants/acme/privacy/export-customer", "globex-boss", aliceBody, 403, nil, []string{alice.Phone}},
		{"another tenant's admin may not erase", "POST", "/v1/tenants/acme/privacy/erase", "globex-boss", aliceBody, 403, nil, nil},
		{"delegated tokens may not export", "GET", "/v1/tenants/acme/privacy/export", "acme-app", "", 403, nil, []string{alice.Email}},
		{"delegated tokens may not erase", "POST", "/v1/tenants/acme/privacy/erase", "acme-app", aliceBody, 403, nil, nil},
		{"no token", "GET", "/v1/tenants/acme/privacy/export", "", "", 401, nil, []string{alice.Email}},
		{"unknown field", "POST", "/v1/tenants/acme/privacy/export-customer", "acme-owner", `{"email":"a@b.c","tenant":"globex"}`, 400, nil, nil},
		{"not json", "POST", "/v1/tenants/acme/privacy/erase", "acme-owner", `email=alice`, 400, nil, nil},
		{"trailing data", "POST", "/v1/tenants/acme/privacy/erase", "acme-owner", aliceBody + `{}`, 400, nil, nil},
		{"no email", "POST", "/v1/tenants/acme/privacy/erase", "acme-owner", `{"email":""}`, 400, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, ts, tt.method, tt.path, tt.token, tt.body)
			if status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, status, body, tt.status)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("response lacks %q: %s", s, body)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(body, s) {
					t.Errorf("response contains %q: %s", s, body)
				}
			}
		})
	}

	// Erasure through the API, then nothing of Alice in acme's export;
	// globex's Alice is another tenant's business and stays.
	status, body := call(t, ts, "POST", "/v1/tenants/acme/privacy/erase", "acme-owner", aliceBody)
	if status != 200 {
		t.Fatalf("erase = %d %s", status, body)
	}
	var rec privacy.Receipt
	if err := json.Unmarshal([]byte(body), &rec); err != nil || rec.Format != "slotd.erasure-receipt" || len(rec.Bookings) != 2 {
		t.Errorf("erase receipt = %s (%v)", body, err)
	}
	if strings.Contains(strings.ToLower(body), "alice") {
		t.Errorf("the receipt names the customer: %s", body)
	}
	_, body = call(t, ts, "GET", "/v1/tenants/acme/privacy/export", "acme-owner", "")
	assertAbsent(t, "acme's export after erasure", body, secretsOf(alice)...)
	_, body = call(t, ts, "GET", "/v1/tenants/globex/privacy/export", "globex-boss", "")
	if !strings.Contains(body, alice.Email) {
		t.Errorf("erasure in acme removed Alice from globex")
	}
}

// TestRoutesListed: the routes are in the gateway's router table, each
// needing admin rights on the tenant in its path and no OAuth scope, so
// the isolation suite that enumerates the router covers them.
func TestRoutesListed(t *testing.T) {
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	gw := gateway.New(gateway.Config{Tenants: r, Auth: testTokens, Routes: svc.Routes()})
	n := 0
	for _, rt := range gw.Routes() {
		if !strings.Contains(rt.Pattern, "/privacy/") {
			continue
		}
		n++
		if rt.Perm != gateway.PermAdmin || rt.Scope != "" || !strings.Contains(rt.Pattern, "/v1/tenants/{tenant}/") {
			t.Errorf("route %+v: want PermAdmin, no scope, tenant in the path", rt)
		}
	}
	if n != 3 {
		t.Errorf("%d privacy routes listed, want 3", n)
	}
}
