package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/oauth"
)

// manualNow is a settable clock for the OAuth server's own timestamps.
type manualNow struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (m *manualNow) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

func (m *manualNow) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t = m.t.Add(d)
}

// TestSweep: revoked grants and grants whose every token has expired are
// deleted with their records; live ones stay and keep working.
func TestSweep(t *testing.T) {
	clk := &manualNow{t: time.Now()}
	e := newEnv(t, func(c *oauth.Config) { c.Now = clk.Now })
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	revoked := e.login(ownerA, conf)
	live := e.login(staffA, conf)
	e.postForm("/oauth2/revoke", url.Values{"token": {revoked.AccessToken}, "client_id": {app.ID}}, "", "").want(t, http.StatusOK, nil)

	n, err := e.oauth.Sweep(e.ctx(), tenantA)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the revoked grant", n, err)
	}
	avail := "/v1/tenants/" + tenantA + "/availability?service=cut&from=2030-01-08&to=2030-01-09&tz=Europe/Rome"
	e.do("GET", avail, live.AccessToken, nil).want(t, http.StatusOK, nil)
	e.do("GET", avail, revoked.AccessToken, nil).want(t, http.StatusUnauthorized, nil)
	if gs, err := e.oauth.Grants(e.ctx(), tenantA); err != nil || len(gs) != 1 {
		t.Fatalf("Grants = %v, %v; want the live one", gs, err)
	}

	clk.advance(31 * 24 * time.Hour) // past the refresh token's 30 days
	if n, err := e.oauth.Sweep(e.ctx(), tenantA); err != nil || n != 1 {
		t.Fatalf("Sweep after expiry = %d, %v; want 1", n, err)
	}
	for _, kind := range []string{"oauth_grant", "oauth_code", "oauth_pkce", "oauth_access", "oauth_refresh"} {
		recs, err := e.store.ListRecords(e.ctx(), tenantA, kind, "", "", 0)
		if err != nil || len(recs) != 0 {
			t.Errorf("%s records after Sweep: %d, %v; want none", kind, len(recs), err)
		}
	}
	if recs, _ := e.store.ListRecords(e.ctx(), tenantA, "oauth_client", "", "", 0); len(recs) != 1 {
		t.Errorf("client records after Sweep: %d, want 1", len(recs))
	}
}

// TestSignInRedirect: with a sign-in page configured, a visitor who is not
// signed in is sent there, with the way back.
func TestSignInRedirect(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.SignInURL = "/signin" })
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	authURL := e.config(app, gateway.ScopeAvailabilityRead).AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	req, _ := http.NewRequestWithContext(e.ctx(), "GET", authURL, nil)
	r := e.send(req)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusSeeOther || loc == nil || loc.Path != "/signin" || !strings.HasPrefix(loc.Query().Get("next"), "/oauth2/authorize?") {
		t.Fatalf("authorize without sign-in = %d, Location %q; want /signin?next=/oauth2/authorize?…", r.Status, r.Header.Get("Location"))
	}
	// Signed in, the way back shows the consent page.
	e.consent(ownerA, e.URL+loc.Query().Get("next"))
}

// FuzzAuthenticateToken: no string authenticates without being issued,
// and none makes the authenticator fail otherwise than unauthorized.
func FuzzAuthenticateToken(f *testing.F) {
	e := newEnv(f)
	app := e.register(ownerA, oauth.ClientSpec{Name: "Fuzz", GrantTypes: []string{oauth.GrantClientCredentials},
		Scopes: []string{gateway.ScopeAvailabilityRead}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, app.ID, app.Secret).want(f, http.StatusOK, &tok)
	real := tok.AccessToken
	for _, s := range []string{"", "slotd_at_", "slotd_at_salon.", "slotd_at_salon.a.b", "slotd_rt_salon.x.y", "slotd_at_SALON.x.y",
		"slotd_at_" + strings.Repeat("a", 70) + ".x.y", real[:len(real)-1], real + "x", strings.Replace(real, "salon", "rival", 1),
		strings.Replace(real, "slotd_at_", "slotd_rt_", 1), "slotd_at_salon.\x00.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := e.oauth.AuthenticateToken(ctx, token)
		if token == real {
			if err != nil || p.Tenant != tenantA || p.Kind != oauth.KindApp {
				t.Fatalf("the issued token: %+v, %v", p, err)
			}
			return
		}
		var ee *engine.Error
		if err == nil || !errorAs(err, &ee) || ee.Code != engine.CodeUnauthorized {
			t.Fatalf("AuthenticateToken(%q) = %+v, %v; want unauthorized", token, p, err)
		}
	})
}
