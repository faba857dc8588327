package integrations_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/secrets"
)

const (
	googleToken   = "1//0gGoogleRefreshTokenForAda-abc123"
	icloudAppPass = "abcd-efgh-ijkl-mnop"
)

// TestCredentialsSealedAtRest: what is stored holds no credential in the clear, names its
// key, opens for its own tenant and connection only, and a sealed credential moved onto
// another connection or into another tenant does not open.
func TestCredentialsSealedAtRest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	g := mustConnect(t, e.svc, "t1", googleConn("acc1", googleToken))
	ic := mustConnect(t, e.svc, "t1", icloudConn("acc1", icloudAppPass))
	other := mustConnect(t, e.svc, "t2", googleConn("acc9", "1//other-tenant-token"))
	wantNoSecret(t, e.rs, "t1", "", googleToken, icloudAppPass)

	for _, c := range []integrations.Connection{g, ic} {
		if c.KeyID != "k1" || c.Tenant != "t1" || !strings.HasPrefix(c.ID, "conn_") {
			t.Fatalf("Connect = %+v, want key k1, tenant t1, a conn_ id", c)
		}
	}
	if ic.Server != integrations.ICloudCalDAVURL {
		t.Fatalf("iCloud server = %q, want %q", ic.Server, integrations.ICloudCalDAVURL)
	}
	cred, err := e.svc.Credential(ctx, "t1", g.ID)
	if err != nil || cred.RefreshToken != googleToken {
		t.Fatalf("Credential(google) = %v; want the refresh token back", err)
	}
	cred, err = e.svc.Credential(ctx, "t1", ic.ID)
	if err != nil || cred.Password != icloudAppPass || cred.Username != "acc1@icloud.example" {
		t.Fatalf("Credential(icloud) = %v; want the app-specific password back", err)
	}
	// Tenant isolation: t2's connection is not t1's.
	if _, err := e.svc.Credential(ctx, "t1", other.ID); !isCode(err, engine.CodeNotFound) {
		t.Fatalf("Credential(t1, t2's connection) = %v, want not_found", err)
	}

	// An attacker with write access moves sealed blobs around.
	sealedOf := func(tenant, id string) []byte {
		r, err := e.rs.GetRecord(ctx, tenant, integrations.KindConnection, id)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Sealed []byte }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		return v.Sealed
	}
	transplant := func(tenant, id string, sealed []byte) {
		r, _ := e.rs.GetRecord(ctx, tenant, integrations.KindConnection, id)
		var v map[string]any
		_ = json.Unmarshal(r.Value, &v)
		v["sealed"] = sealed
		b, _ := json.Marshal(v)
		if _, err := e.rs.PutRecord(ctx, tenant, integrations.KindConnection, id, b, persistence.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	transplant("t1", ic.ID, sealedOf("t1", g.ID))
	if _, err := e.svc.Credential(ctx, "t1", ic.ID); !errors.Is(err, secrets.ErrAuthentication) {
		t.Fatalf("Credential with another connection's sealed credential = %v, want ErrAuthentication", err)
	}
	transplant("t1", g.ID, sealedOf("t2", other.ID))
	if _, err := e.svc.Credential(ctx, "t1", g.ID); !errors.Is(err, secrets.ErrAuthentication) {
		t.Fatalf("Credential with another tenant's sealed credential = %v, want ErrAuthentication", err)
	}
	// Another keyring (a database restored elsewhere without the master key) opens nothing.
	stranger, _ := MustKeyring(t, "k1")
	if _, err := e.service(t, stranger).Credential(ctx, "t2", other.ID); !errors.Is(err, secrets.ErrAuthentication) {
		t.Fatalf("Credential under another master key = %v, want ErrAuthentication", err)
	}
}

func isCode(err error, code engine.Code) bool {
	var ee *engine.Error
	return errors.As(err, &ee) && ee.Code == code
}

// TestCredentialNeverPrinted: a credential formats as redacted under every verb, alone and
// inside the structs that carry it.
func TestCredentialNeverPrinted(t *testing.T) {
	nc := googleConn("acc1", googleToken)
	nc.Credential.Password = icloudAppPass
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%T %v"} {
		for _, v := range []any{nc.Credential, &nc.Credential, nc, &nc, []integrations.Credential{nc.Credential}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, googleToken) || strings.Contains(out, icloudAppPass) ||
				strings.Contains(out, fmt.Sprintf("%x", googleToken)) || strings.Contains(out, fmt.Sprintf("%X", googleToken)) {
				t.Fatalf("Sprintf(%q, %T) = %s: shows the secret", verb, v, out)
			}
		}
	}
}

func TestConnectValidates(t *testing.T) {
	e := newEnv(t)
	good := googleConn("acc1", googleToken)
	tests := []struct {
		name string
		edit func(nc *integrations.NewConnection)
	}{
		{"unknown provider", func(nc *integrations.NewConnection) { nc.Provider = "myspace" }},
		{"no account", func(nc *integrations.NewConnection) { nc.Account = "" }},
		{"no email", func(nc *integrations.NewConnection) { nc.Email = "" }},
		{"newline in email", func(nc *integrations.NewConnection) { nc.Email = "a@b\nadmin granted" }},
		{"bidi control in resource", func(nc *integrations.NewConnection) { nc.Resource = "al\u202eice" }},
		{"google without token", func(nc *integrations.NewConnection) { nc.Credential = integrations.Credential{} }},
		{"google with a password", func(nc *integrations.NewConnection) { nc.Credential.Password = "x" }},
		{"google with a server", func(nc *integrations.NewConnection) { nc.Server = "https://caldav.example" }},
		{"icloud without password", func(nc *integrations.NewConnection) {
			*nc = icloudConn("acc1", "")
		}},
		{"caldav over http", func(nc *integrations.NewConnection) {
			*nc = icloudConn("acc1", icloudAppPass)
			nc.Provider, nc.Server = integrations.CalDAV, "http://caldav.example"
		}},
		{"caldav with credentials in the URL", func(nc *integrations.NewConnection) {
			*nc = icloudConn("acc1", icloudAppPass)
			nc.Provider, nc.Server = integrations.CalDAV, "https://u:p@caldav.example"
		}},
		{"huge token", func(nc *integrations.NewConnection) { nc.Credential.RefreshToken = strings.Repeat("x", 9000) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := good
			nc.Scopes = slices.Clone(good.Scopes)
			tt.edit(&nc)
			if _, err := e.svc.Connect(context.Background(), "t1", "account:owner", nc); !isCode(err, engine.CodeInvalid) {
				t.Fatalf("Connect = %v, want invalid", err)
			}
		})
	}
	if cs, _ := e.svc.List(context.Background(), "t1"); len(cs) != 0 {
		t.Fatalf("List after refused connects = %v, want none", cs)
	}
}

// TestDisconnectRevokes covers each provider's revocation and the failure modes: the stored
// credential is deleted in every case, and the outcome says what the provider did.
func TestDisconnectRevokes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		nc    integrations.NewConnection
		setup func(e *env)
		want  integrations.Revocation
		calls int // requests to the fake Google
	}{
		{"google revoked", googleConn("acc1", googleToken), nil, integrations.Revoked, 1},
		{"google already revoked", googleConn("acc1", "1//unknown-to-google"), nil, integrations.AlreadyInvalid, 1},
		{"google down, then up", googleConn("acc1", googleToken), func(e *env) { e.google.FailNext(2) }, integrations.Revoked, 3},
		{"google down", googleConn("acc1", googleToken), func(e *env) { e.google.FailNext(10) }, integrations.RevokeFailed, 3},
		{"microsoft", integrations.NewConnection{Account: "acc1", Provider: integrations.Microsoft, Email: "ada@contoso.example",
			Credential: integrations.Credential{RefreshToken: "0.AAAA-microsoft-refresh"}}, nil, integrations.NotSupported, 0},
		{"icloud", icloudConn("acc1", icloudAppPass), nil, integrations.NotSupported, 0},
		{"key gone from the keyring", googleConn("acc1", googleToken), func(e *env) {
			ring, _ := MustKeyring(t, "k2")
			e.svc = e.service(t, ring)
		}, integrations.Unreadable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, googleToken)
			c := mustConnect(t, e.svc, "t1", tt.nc)
			if tt.setup != nil {
				tt.setup(e)
			}
			res, err := e.svc.Disconnect(ctx, "t1", c.ID, "account:owner")
			if err != nil {
				t.Fatalf("Disconnect = %v", err)
			}
			if res.Revocation != tt.want || (res.RevokeErr != nil) != (tt.want == integrations.RevokeFailed || tt.want == integrations.Unreadable) {
				t.Fatalf("Disconnect = %s (%v), want %s", res.Revocation, res.RevokeErr, tt.want)
			}
			if got := e.google.Calls(); got != tt.calls {
				t.Fatalf("requests to Google = %d, want %d", got, tt.calls)
			}
			if _, err := e.svc.Get(ctx, "t1", c.ID); !isCode(err, engine.CodeNotFound) {
				t.Fatalf("Get after Disconnect = %v, want not_found", err)
			}
			if _, err := e.svc.Disconnect(ctx, "t1", c.ID, "account:owner"); !isCode(err, engine.CodeNotFound) {
				t.Fatalf("second Disconnect = %v, want not_found", err)
			}
			errText := ""
			if res.RevokeErr != nil {
				errText = res.RevokeErr.Error()
			}
			wantNoSecret(t, e.rs, "t1", e.logs.String()+errText, googleToken, icloudAppPass, "0.AAAA-microsoft-refresh")
			acts := auditActions(t, e.audit, "t1")
			if len(acts) != 2 || !strings.HasPrefix(acts[1], "integration_disconnected integration:"+c.ID) ||
				!strings.Contains(acts[1], `"revocation":"`+string(tt.want)+`"`) {
				t.Fatalf("audit trail = %q, want a connect and a disconnect with revocation %s", acts, tt.want)
			}
		})
	}
}

// TestPlanDowngrade: a downgrade to a plan without integrations disconnects every connection
// of the tenant and refuses new ones; other tenants keep theirs.
func TestPlanDowngrade(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, googleToken, "1//t2-token")
	mustConnect(t, e.svc, "t1", googleConn("acc1", googleToken))
	mustConnect(t, e.svc, "t1", icloudConn("acc2", icloudAppPass))
	kept := mustConnect(t, e.svc, "t2", googleConn("acc1", "1//t2-token"))
	lc := &integrations.AccountLifecycle{Integrations: e.svc}
	rep, err := lc.PlanDowngraded(ctx, "t1", "system:billing")
	if err != nil || len(rep.Disconnected) != 2 {
		t.Fatalf("PlanDowngraded = %+v, %v; want 2 disconnected", rep, err)
	}
	if cs, _ := e.svc.List(ctx, "t1"); len(cs) != 0 {
		t.Fatalf("t1 connections after downgrade = %v", cs)
	}
	if got := e.google.Revoked(); !slices.Equal(got, []string{googleToken}) {
		t.Fatalf("Google revoked %d tokens, want t1's only", len(got))
	}
	if _, err := e.svc.Connect(ctx, "t1", "account:owner", googleConn("acc1", "1//new")); !isCode(err, engine.CodeForbidden) {
		t.Fatalf("Connect after downgrade = %v, want forbidden", err)
	}
	if cs, _ := e.svc.List(ctx, "t2"); len(cs) != 1 || cs[0].ID != kept.ID {
		t.Fatalf("t2 connections = %v, want its one", cs)
	}
	if err := e.svc.SetEnabled(ctx, "t1", true); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, e.svc, "t1", googleConn("acc1", "1//after-upgrade"))
}

// TestUpdateCredential replaces a credential in place, sealed under the active key.
func TestUpdateCredential(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := mustConnect(t, e.svc, "t1", integrations.NewConnection{Account: "acc1", Provider: integrations.Microsoft,
		Email: "ada@contoso.example", Credential: integrations.Credential{RefreshToken: "0.old"}})
	if err := e.svc.UpdateCredential(ctx, "t1", c.ID, integrations.Credential{RefreshToken: "0.new"}); err != nil {
		t.Fatal(err)
	}
	if cred, err := e.svc.Credential(ctx, "t1", c.ID); err != nil || cred.RefreshToken != "0.new" {
		t.Fatalf("Credential after update = %v, want the new token", err)
	}
	if err := e.svc.UpdateCredential(ctx, "t1", c.ID, integrations.Credential{Password: "x"}); !isCode(err, engine.CodeInvalid) {
		t.Fatalf("UpdateCredential with a password for Microsoft = %v, want invalid", err)
	}
}
