package oauth_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/oauth"
)

// TestIntrospection (RFC 7662): only an authenticated confidential client
// may ask, and it learns only about its own live tokens.
func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	app := e.register(ownerA, oauth.ClientSpec{Name: "Server app", RedirectURIs: []string{callback},
		Scopes: []string{gateway.ScopeBookingsRead}})
	other := e.register(ownerA, oauth.ClientSpec{Name: "Other", GrantTypes: []string{oauth.GrantClientCredentials},
		Scopes: []string{gateway.ScopeBookingsRead}})
	public := e.publicApp(ownerA, gateway.ScopeBookingsRead)
	conf := e.config(app, gateway.ScopeBookingsRead)
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	tok := e.login(ownerA, conf)
	form := url.Values{"token": {tok.AccessToken}}

	for _, tt := range []struct {
		name string
		req  func() result
	}{
		{"no authentication", func() result { return e.postForm("/oauth2/introspect", form, "", "") }},
		{"wrong secret", func() result { return e.postForm("/oauth2/introspect", form, app.ID, other.Secret) }},
		{"public client", func() result { return e.postForm("/oauth2/introspect", form, public.ID, "x") }},
		{"secret in the form", func() result {
			f := url.Values{"token": {tok.AccessToken}, "client_id": {app.ID}, "client_secret": {app.Secret}}
			return e.postForm("/oauth2/introspect", f, "", "")
		}},
		{"bearer token", func() result {
			req, _ := http.NewRequestWithContext(e.ctx(), "POST", e.URL+"/oauth2/introspect", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			return e.send(req)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			if r.Status != http.StatusUnauthorized || bytes.Contains(r.Body, []byte(`"active":true`)) {
				t.Errorf("introspection = %d %s, want 401", r.Status, r.Body)
			}
		})
	}

	var got map[string]any
	e.postForm("/oauth2/introspect", form, app.ID, app.Secret).want(t, http.StatusOK, &got)
	if got["active"] != true || got["client_id"] != app.ID || got["sub"] != ownerA.ID || got["scope"] != gateway.ScopeBookingsRead ||
		got["tenant"] != tenantA || got["token_type"] != nil && got["token_type"] != "Bearer" {
		t.Errorf("introspection = %v", got)
	}
	// Another client of the same tenant learns nothing.
	got = nil
	e.postForm("/oauth2/introspect", form, other.ID, other.Secret).want(t, http.StatusOK, &got)
	if got["active"] != false || len(got) != 1 {
		t.Errorf("other client's introspection = %v, want only active:false", got)
	}
	// Revoked: inactive.
	e.postForm("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, app.ID, app.Secret).want(t, http.StatusOK, nil)
	got = nil
	e.postForm("/oauth2/introspect", form, app.ID, app.Secret).want(t, http.StatusOK, &got)
	if got["active"] != false {
		t.Errorf("introspection after revoking the refresh token = %v, want inactive (the grant is revoked)", got)
	}
}

// TestNoRawSecretsStored: everything the OAuth server ever wrote to the
// record store (deleted records included) holds no code, access token,
// refresh token, their random parts, PKCE verifier or client secret.
func TestNoRawSecretsStored(t *testing.T) {
	e := newEnv(t)
	app := e.register(ownerA, oauth.ClientSpec{Name: "Server app", RedirectURIs: []string{callback},
		Scopes:     []string{gateway.ScopeBookingsRead},
		GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials}})
	conf := e.config(app, gateway.ScopeBookingsRead)

	verifier := oauth2.GenerateVerifier()
	form := e.consent(ownerA, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")
	tok, err := conf.Exchange(e.oauthCtx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	refreshed, err := conf.TokenSource(e.oauthCtx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := (&clientcredentials.Config{ClientID: app.ID, ClientSecret: app.Secret, TokenURL: e.URL + "/oauth2/token"}).Token(e.oauthCtx())
	if err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", refreshed.AccessToken, nil).want(t, http.StatusOK, nil)

	// The client secret is kept as a bcrypt hash.
	rec, err := e.store.GetRecord(e.ctx(), tenantA, "oauth_client", app.ID)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SecretHash []byte `json:"secret_hash"`
	}
	if err := json.Unmarshal(rec.Value, &c); err != nil || !bytes.HasPrefix(c.SecretHash, []byte("$2")) ||
		bcrypt.CompareHashAndPassword(c.SecretHash, []byte(app.Secret)) != nil {
		t.Errorf("stored client secret %q is not a bcrypt hash of the secret (%v)", c.SecretHash, err)
	}

	stored := e.records.written()
	if len(stored) == 0 {
		t.Fatal("nothing was stored")
	}
	secrets := map[string]string{"client secret": app.Secret, "PKCE verifier": verifier}
	for name, tokn := range map[string]string{"code": code, "access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"rotated access token": refreshed.AccessToken, "rotated refresh token": refreshed.RefreshToken, "client credentials token": cc.AccessToken} {
		secrets[name] = tokn
		// fosite's token is "<random key>.<HMAC of key>"; the store may
		// keep the HMAC, never the key.
		_, rest, _ := strings.Cut(tokn, ".")
		key, _, ok := strings.Cut(rest, ".")
		if !ok || len(key) < 40 {
			t.Fatalf("%s %q is not <prefix><tenant>.<key>.<signature>", name, tokn)
		}
		secrets[name+" key"] = key
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty", name)
		}
		if bytes.Contains(stored, []byte(s)) {
			t.Errorf("the record store holds the raw %s", name)
		}
	}
}

// TestClientCredentialsAndAppRevocation: a confidential app gets a token
// as itself (golang.org/x/oauth2/clientcredentials), limited to its scopes;
// the owner revoking the app's access closes its WebSocket and kills its
// tokens, and deleting the app does the same for new ones.
func TestClientCredentialsAndAppRevocation(t *testing.T) {
	e := newEnv(t)
	app := e.register(ownerA, oauth.ClientSpec{Name: "Reporting", GrantTypes: []string{oauth.GrantClientCredentials},
		Scopes: []string{gateway.ScopeAvailabilityRead, gateway.ScopeBookingsRead}})
	if app.Secret == "" || !strings.HasPrefix(app.ID, tenantA+".") {
		t.Fatalf("registered %+v, want a secret and an id of tenant %s", app, tenantA)
	}
	cc := &clientcredentials.Config{ClientID: app.ID, ClientSecret: app.Secret, TokenURL: e.URL + "/oauth2/token"}
	tok, err := cc.Token(e.oauthCtx())
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, nil).want(t, http.StatusOK, nil)
	e.do("POST", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, bookFields(0)).want(t, http.StatusForbidden, nil)
	c := e.dialWS("", bearer(tok.AccessToken))
	welcome := c.mustCall("subscribe_bookings", nil, gateway.TypeBookingsSubscribed)
	_ = welcome

	// More than registered: refused.
	bad := *cc
	bad.Scopes = []string{gateway.ScopeBookingsWrite}
	if _, err := bad.Token(e.oauthCtx()); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Errorf("client credentials beyond the registered scopes: %v, want invalid_scope", err)
	}
	// A wrong secret: refused.
	wrong := *cc
	wrong.ClientSecret = "slotd_cs_wrong"
	if _, err := wrong.Token(e.oauthCtx()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("wrong secret: %v, want invalid_client", err)
	}

	var grants struct{ Grants []oauth.Grant }
	e.asAccount(ownerA, "GET", "/v1/tenants/"+tenantA+"/oauth/grants", nil).want(t, http.StatusOK, &grants)
	if len(grants.Grants) != 1 || grants.Grants[0].ClientID != app.ID || grants.Grants[0].Kind != oauth.KindApp {
		t.Fatalf("grants = %+v, want the app's one", grants.Grants)
	}

	var n struct{ Revoked int }
	e.asAccount(ownerA, "DELETE", "/v1/tenants/"+tenantA+"/oauth/clients/"+app.ID+"/grants", nil).want(t, http.StatusOK, &n)
	if n.Revoked != 1 {
		t.Errorf("revoked %d grants, want 1", n.Revoked)
	}
	if got := c.closedWith(); got != websocket.StatusPolicyViolation {
		t.Errorf("app's socket closed with %d, want policy violation", got)
	}
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, nil).want(t, http.StatusUnauthorized, nil)

	// A new token, then the app is deleted: the token dies with it, and
	// no more are issued.
	tok2, err := cc.Token(e.oauthCtx())
	if err != nil {
		t.Fatal(err)
	}
	e.asAccount(ownerA, "DELETE", "/v1/tenants/"+tenantA+"/oauth/clients/"+app.ID, nil).want(t, http.StatusNoContent, nil)
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", tok2.AccessToken, nil).want(t, http.StatusUnauthorized, nil)
	if _, err := cc.Token(e.oauthCtx()); err == nil {
		t.Error("deleted client still gets tokens")
	}
}

// TestRevokeOneGrantAndSubject: an owner revokes one staff member's grant
// by id, and account deletion revokes everything an account granted.
func TestRevokeOneGrantAndSubject(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	staffTok := e.login(staffA, conf)
	ownerTok := e.login(ownerA, conf)
	staffWS := e.dialWS("", bearer(staffTok.AccessToken))
	ownerWS := e.dialWS("", bearer(ownerTok.AccessToken))

	var grants struct{ Grants []oauth.Grant }
	e.asAccount(ownerA, "GET", "/v1/tenants/"+tenantA+"/oauth/grants", nil).want(t, http.StatusOK, &grants)
	var staffGrant string
	for _, g := range grants.Grants {
		if g.Subject == staffA.ID {
			staffGrant = g.ID
		}
	}
	if len(grants.Grants) != 2 || staffGrant == "" {
		t.Fatalf("grants = %+v, want one each for %s and %s", grants.Grants, staffA.ID, ownerA.ID)
	}
	// Staff may not administer grants; another tenant's owner neither.
	e.asAccount(staffA, "DELETE", "/v1/tenants/"+tenantA+"/oauth/grants/"+staffGrant, nil).want(t, http.StatusForbidden, nil)
	e.asAccount(ownerB, "DELETE", "/v1/tenants/"+tenantA+"/oauth/grants/"+staffGrant, nil).want(t, http.StatusForbidden, nil)
	e.asAccount(ownerB, "DELETE", "/v1/tenants/"+tenantB+"/oauth/grants/"+staffGrant, nil).want(t, http.StatusNotFound, nil)

	e.asAccount(ownerA, "DELETE", "/v1/tenants/"+tenantA+"/oauth/grants/"+staffGrant, nil).want(t, http.StatusNoContent, nil)
	if got := staffWS.closedWith(); got != websocket.StatusPolicyViolation {
		t.Errorf("staff socket closed with %d, want policy violation", got)
	}
	ownerWS.mustCall("ping", nil, gateway.TypePong) // untouched

	n, err := e.oauth.RevokeSubject(e.ctx(), tenantA, ownerA.ID)
	if err != nil || n != 1 {
		t.Fatalf("RevokeSubject = %d, %v; want 1", n, err)
	}
	if got := ownerWS.closedWith(); got != websocket.StatusPolicyViolation {
		t.Errorf("owner socket closed with %d, want policy violation", got)
	}
	e.do("GET", "/v1/tenants/"+tenantA+"/availability?service=cut&from=2030-01-08&to=2030-01-09&tz=Europe/Rome", ownerTok.AccessToken, nil).
		want(t, http.StatusUnauthorized, nil)
}

// TestCodeReplay: a code redeemed twice revokes what it gave (RFC 6749
// section 4.1.2).
func TestCodeReplay(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	verifier := oauth2.GenerateVerifier()
	form := e.consent(ownerA, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")
	tok, err := conf.Exchange(e.oauthCtx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	c := e.dialWS("", bearer(tok.AccessToken))
	if _, err := conf.Exchange(e.oauthCtx(), code, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("second exchange: %v, want invalid_grant", err)
	}
	if got := c.closedWith(); got != websocket.StatusPolicyViolation {
		t.Errorf("socket closed with %d, want policy violation", got)
	}
	if _, status, err := e.tryDialWS("", bearer(tok.AccessToken)); err == nil || status != http.StatusUnauthorized {
		t.Errorf("token of a replayed code: HTTP %d, %v; want 401", status, err)
	}
}

// TestConsent: no sign-in, a denied consent, a tampered or foreign consent
// form, and a stranger's account are all refused; no code is issued.
func TestConsent(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead, gateway.ScopeBookingsWrite)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	authURL := conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	req, _ := http.NewRequestWithContext(e.ctx(), "GET", authURL, nil)
	if r := e.send(req); r.Status != http.StatusUnauthorized {
		t.Errorf("authorize without sign-in = %d, want 401", r.Status)
	}

	form := e.consent(ownerA, authURL)
	if q := callbackParams(t, e.submit(ownerA, form, "deny")); q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Errorf("denied: callback %v, want access_denied", q)
	}
	for _, tt := range []struct {
		name   string
		as     oauth.Account
		tamper func(url.Values)
	}{
		{"wider scope", ownerA, func(f url.Values) { f.Set("scope", "availability:read bookings:write") }},
		{"other challenge", ownerA, func(f url.Values) {
			f.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
		}},
		{"no consent token", ownerA, func(f url.Values) { f.Del("consent") }},
		{"bad consent token", ownerA, func(f url.Values) { f.Set("consent", "AAAAAAAAAAA.AAAA") }},
		{"another account's form", staffA, func(url.Values) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			tt.tamper(f)
			r := e.submitRaw(tt.as, f, "allow")
			if r.Status != http.StatusForbidden || r.Header.Get("Location") != "" {
				t.Errorf("tampered consent = %d, Location %q; want 403", r.Status, r.Header.Get("Location"))
			}
		})
	}
	// A form posted from another site.
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("decision", "allow")
	req, _ = http.NewRequestWithContext(e.ctx(), "POST", e.URL+"/oauth2/authorize", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: "test_session", Value: ownerA.ID})
	if r := e.send(req); r.Status != http.StatusForbidden {
		t.Errorf("cross-site consent = %d, want 403", r.Status)
	}
	// The genuine form still works.
	if q := callbackParams(t, e.submit(ownerA, form, "allow")); q.Get("code") == "" {
		t.Errorf("genuine consent: callback %v, want a code", q)
	}
}

// TestClientRegistration: owners and admins register apps for their own
// tenant; malformed registrations, staff, other tenants and delegated
// tokens are refused; the secret is shown once and never listed.
func TestClientRegistration(t *testing.T) {
	e := newEnv(t)
	path := "/v1/tenants/" + tenantA + "/oauth/clients"
	good := oauth.ClientSpec{Name: "App", RedirectURIs: []string{callback}, Scopes: []string{gateway.ScopeAvailabilityRead}}
	for _, tt := range []struct {
		name string
		spec oauth.ClientSpec
	}{
		{"no name", oauth.ClientSpec{RedirectURIs: []string{callback}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"no scopes", oauth.ClientSpec{Name: "A", RedirectURIs: []string{callback}}},
		{"unknown scope", oauth.ClientSpec{Name: "A", RedirectURIs: []string{callback}, Scopes: []string{"admin"}}},
		{"implicit", oauth.ClientSpec{Name: "A", RedirectURIs: []string{callback}, Scopes: []string{gateway.ScopeAvailabilityRead}, GrantTypes: []string{"implicit"}}},
		{"password", oauth.ClientSpec{Name: "A", RedirectURIs: []string{callback}, Scopes: []string{gateway.ScopeAvailabilityRead}, GrantTypes: []string{"password"}}},
		{"no redirect", oauth.ClientSpec{Name: "A", Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"http redirect", oauth.ClientSpec{Name: "A", RedirectURIs: []string{"http://app.example/cb"}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"fragment", oauth.ClientSpec{Name: "A", RedirectURIs: []string{callback + "#x"}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"relative", oauth.ClientSpec{Name: "A", RedirectURIs: []string{"/cb"}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"javascript", oauth.ClientSpec{Name: "A", RedirectURIs: []string{"javascript:alert(1)"}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
		{"public client credentials", oauth.ClientSpec{Name: "A", Public: true, GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{gateway.ScopeAvailabilityRead}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.asAccount(ownerA, "POST", path, tt.spec).want(t, http.StatusBadRequest, nil)
		})
	}
	e.asAccount(staffA, "POST", path, good).want(t, http.StatusForbidden, nil)
	e.asAccount(ownerB, "POST", path, good).want(t, http.StatusForbidden, nil)
	e.do("POST", path, "", good).want(t, http.StatusUnauthorized, nil)

	// A delegated token, even one with config:write, cannot register apps.
	app := e.register(ownerA, oauth.ClientSpec{Name: "Admin tool", RedirectURIs: []string{callback, "com.example.tool:/cb", "http://127.0.0.1:7000/cb"},
		Scopes: []string{gateway.ScopeConfigWrite}})
	tok := e.login(ownerA, e.config(app, gateway.ScopeConfigWrite))
	e.do("POST", path, tok.AccessToken, good).want(t, http.StatusForbidden, nil)
	e.do("GET", path, tok.AccessToken, nil).want(t, http.StatusForbidden, nil)

	var list struct{ Clients []oauth.ClientView }
	r := e.asAccount(ownerA, "GET", path, nil).want(t, http.StatusOK, &list)
	if len(list.Clients) != 1 || list.Clients[0].ID != app.ID || bytes.Contains(r.Body, []byte("secret")) {
		t.Errorf("clients = %s, want the one app and no secret", r.Body)
	}
	e.asAccount(ownerA, "GET", path+"/"+app.ID, nil).want(t, http.StatusOK, nil)
	e.asAccount(ownerB, "GET", "/v1/tenants/"+tenantB+"/oauth/clients/"+app.ID, nil).want(t, http.StatusNotFound, nil)
	e.do("GET", path, operatorToken, nil).want(t, http.StatusOK, nil)
}

// TestMetadata (RFC 8414) describes what is served and nothing else.
func TestMetadata(t *testing.T) {
	e := newEnv(t)
	var m map[string]any
	e.do("GET", "/.well-known/oauth-authorization-server", "", nil).want(t, http.StatusOK, &m)
	if m["issuer"] != e.URL || m["token_endpoint"] != e.URL+"/oauth2/token" {
		t.Errorf("metadata = %v", m)
	}
	for k, want := range map[string]string{
		"code_challenge_methods_supported": "[S256]", "response_types_supported": "[code]",
		"grant_types_supported": "[authorization_code refresh_token client_credentials]",
	} {
		if got := strings.Trim(strings.ReplaceAll(strings.TrimSpace(toString(m[k])), ",", " "), " "); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
}

func toString(v any) string {
	l, _ := v.([]any)
	var parts []string
	for _, x := range l {
		s, _ := x.(string)
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
