package oauth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/oauth2"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/oauth"
)

// TestAuthorizationCodePKCEToWebSocket is the path of a real app: a
// golang.org/x/oauth2 client completes the authorization-code flow with
// PKCE (S256) against slotd as a signed-in owner consents, uses its access
// token on the WebSocket API — in the handshake's Authorization header and
// in an auth message — to subscribe and book, then revokes the token (RFC
// 7009): both open WebSockets are closed with a policy-violation status at
// once, and the token, its refresh token and a new handshake all fail.
func TestAuthorizationCodePKCEToWebSocket(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead, gateway.ScopeBookingsRead, gateway.ScopeBookingsWrite)
	conf := e.config(app, gateway.ScopeAvailabilityRead, gateway.ScopeBookingsWrite)
	tok := e.login(ownerA, conf)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" || tok.Expiry.IsZero() {
		t.Fatalf("token = %+v, want bearer access and refresh tokens", tok)
	}
	if got := tok.Extra("scope"); got != "availability:read bookings:write" {
		t.Errorf("granted scope %q, want the two requested", got)
	}

	// The handshake's Authorization header.
	c := e.dialWS("", bearer(tok.AccessToken))
	sub := c.mustCall("subscribe", subscribeFields(), gateway.TypeSubscribed)
	if !slices.ContainsFunc(sub.Slots, func(s engine.Slot) bool { return s.Start.UTC().Format(time.RFC3339) == slot0UTC() }) {
		t.Errorf("snapshot %v lacks 10:00 Rome", sub.Slots)
	}
	booked := c.mustCall("book", bookFields(0), gateway.TypeBooked)
	if booked.Booking == nil || booked.Booking.Status != engine.StatusConfirmed {
		t.Fatalf("booked %+v", booked.Booking)
	}
	if f := c.next(gateway.TypeAvailability); len(f.Removed) == 0 {
		t.Errorf("availability after booking = %+v, want the slot removed", f)
	}
	// Not granted: bookings:read.
	c.wantErr("subscribe_bookings", nil, engine.CodeForbidden)

	// An auth message, as browsers send it.
	b := e.dialWS("", nil)
	authed := b.mustCall("auth", map[string]any{"token": tok.AccessToken}, gateway.TypeAuthed)
	if authed.Principal == nil || authed.Principal.Kind != oauth.KindStaff || authed.Principal.Tenant != tenantA {
		t.Fatalf("authed principal %+v, want staff of %s", authed.Principal, tenantA)
	}
	b.mustCall("book", bookFields(1), gateway.TypeBooked)

	// Over HTTP too; then revoke (RFC 7009) as the app.
	e.do("POST", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, bookFields(2)).want(t, http.StatusCreated, nil)
	e.postForm("/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {app.ID}}, "", "").want(t, http.StatusOK, nil)

	for i, conn := range []*ws{c, b} {
		if got := conn.closedWith(); got != websocket.StatusPolicyViolation {
			t.Errorf("socket %d closed with %d, want %d (policy violation)", i, got, websocket.StatusPolicyViolation)
		}
	}
	r := e.do("POST", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, bookFields(3))
	if r.Status != http.StatusUnauthorized {
		t.Errorf("booking with a revoked token = %d %s, want 401", r.Status, r.Body)
	}
	if _, status, err := e.tryDialWS("", bearer(tok.AccessToken)); err == nil || status != http.StatusUnauthorized {
		t.Errorf("handshake with a revoked token = HTTP %d, %v; want 401", status, err)
	}
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.ID}}, "", "")
	if r.Status != http.StatusBadRequest || r.oauthError(t) != "invalid_grant" {
		t.Errorf("refresh after revocation = %d %s, want invalid_grant", r.Status, r.Body)
	}
}

// TestRefreshRotationAndReuse: a refresh gives a new access and refresh
// token and retires the old ones; presenting a retired refresh token again
// is reuse, which revokes the whole family: the newest tokens stop working
// and WebSockets on them are closed.
func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	first := e.login(ownerA, conf)

	refresh := func(rt string) result {
		return e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.ID}}, "", "")
	}
	var second struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	refresh(first.RefreshToken).want(t, http.StatusOK, &second)
	if second.AccessToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh = %+v, want a new access and refresh token", second)
	}
	// Rotation retires the old access token.
	e.do("GET", "/v1/tenants/"+tenantA+"/availability?service=cut&from=2030-01-08&to=2030-01-09&tz=Europe/Rome", first.AccessToken, nil).
		want(t, http.StatusUnauthorized, nil)
	c := e.dialWS("", bearer(second.AccessToken))
	c.mustCall("subscribe", subscribeFields(), gateway.TypeSubscribed)

	// Reuse of the first refresh token.
	r := refresh(first.RefreshToken)
	if r.Status != http.StatusBadRequest || r.oauthError(t) != "invalid_grant" {
		t.Fatalf("reused refresh token = %d %s, want invalid_grant", r.Status, r.Body)
	}
	if got := c.closedWith(); got != websocket.StatusPolicyViolation {
		t.Errorf("socket on the family's newest token closed with %d, want policy violation", got)
	}
	if _, status, err := e.tryDialWS("", bearer(second.AccessToken)); err == nil || status != http.StatusUnauthorized {
		t.Errorf("newest access token after reuse: HTTP %d, %v; want 401", status, err)
	}
	if r := refresh(second.RefreshToken); r.Status != http.StatusBadRequest || r.oauthError(t) != "invalid_grant" {
		t.Errorf("newest refresh token after reuse = %d %s, want invalid_grant", r.Status, r.Body)
	}
}

// TestConcurrentRefresh: two refreshes racing with one refresh token —
// both have read it as live before either rotates it — get at most one
// new pair, and the race counts as reuse: afterwards nothing of the
// family works.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	tok := e.login(ownerA, e.config(app, gateway.ScopeAvailabilityRead))

	// Hold each rotation's write until both requests have read the
	// refresh token twice (fosite's lookup, then the rotation's).
	const n = 2
	count, wait := barrier(t, "oauth_refresh", 2*n)
	e.records.hooks(count, func(kind, _ string, expect uint64) {
		if kind == "oauth_refresh" && expect != 0 {
			wait()
		}
	}, nil)
	results := make(chan result, n)
	for range n {
		go func() {
			results <- e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.ID}}, "", "")
		}()
	}
	var ok []string
	for range n {
		r := <-results
		if r.Status == http.StatusOK {
			ok = append(ok, string(r.Body))
		}
	}
	e.records.hooks(nil, nil, nil)
	if len(ok) > 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want at most 1", len(ok), n)
	}
	if _, status, err := e.tryDialWS("", bearer(tok.AccessToken)); err == nil || status != http.StatusUnauthorized {
		t.Errorf("original access token after the race: HTTP %d, %v; want 401", status, err)
	}
	for _, body := range ok {
		var pair struct {
			AccessToken string `json:"access_token"`
		}
		_ = jsonUnmarshal(body, &pair)
		if _, status, err := e.tryDialWS("", bearer(pair.AccessToken)); err == nil || status != http.StatusUnauthorized {
			t.Errorf("the race's winning access token: HTTP %d, %v; want 401 (reuse revokes the family)", status, err)
		}
	}
}

// TestPKCERequired: a plain challenge, no challenge, a wrong verifier and
// no verifier are all refused.
func TestPKCERequired(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	verifier := oauth2.GenerateVerifier()

	for _, tt := range []struct {
		name string
		opts []oauth2.AuthCodeOption
	}{
		{"plain", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")}},
		{"no method", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", verifier)}},
		{"no challenge", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := callbackParams(t, e.redirectOf(ownerA, conf.AuthCodeURL("state-12345678", tt.opts...)))
			if q.Get("error") != "invalid_request" || q.Get("code") != "" {
				t.Errorf("callback %v, want error=invalid_request and no code", q)
			}
		})
	}

	form := e.consent(ownerA, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")
	for _, tt := range []struct {
		name     string
		verifier string
	}{
		{"wrong verifier", oauth2.GenerateVerifier()},
		{"no verifier", ""},
		{"verifier is the challenge", oauth2.S256ChallengeFromVerifier(verifier)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {app.ID}, "redirect_uri": {callback}}
			if tt.verifier != "" {
				f.Set("code_verifier", tt.verifier)
			}
			r := e.postForm("/oauth2/token", f, "", "")
			if r.Status != http.StatusBadRequest {
				t.Errorf("token = %d %s, want 400", r.Status, r.Body)
			}
		})
	}
}

// TestRedirectURIExact: anything but a registered redirect URI, character
// for character, is refused on a page of slotd's own, never redirected
// to; the token request must repeat the URI.
func TestRedirectURIExact(t *testing.T) {
	e := newEnv(t)
	app := e.register(ownerA, oauth.ClientSpec{Name: "Native", Public: true, Scopes: []string{gateway.ScopeAvailabilityRead},
		RedirectURIs: []string{callback, "http://127.0.0.1:8080/cb"}})
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	for _, uri := range []string{
		"", callback + "/", callback + "?x=1", "https://APP.example/callback", "http://app.example/callback",
		"https://app.example.evil.example/callback", "https://app.example/callback#frag", "http://127.0.0.1:9999/cb",
		"http://localhost:8080/cb", "https://app.example/Callback",
	} {
		t.Run(uri, func(t *testing.T) {
			c := *conf
			c.RedirectURL = uri
			req, _ := http.NewRequestWithContext(e.ctx(), "GET", c.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), nil)
			req.AddCookie(&http.Cookie{Name: "test_session", Value: ownerA.ID})
			r := e.send(req)
			if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
				t.Errorf("redirect_uri %q: %d, Location %q; want 400 and no redirect", uri, r.Status, r.Header.Get("Location"))
			}
		})
	}

	verifier := oauth2.GenerateVerifier()
	form := e.consent(ownerA, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {app.ID},
		"redirect_uri": {"http://127.0.0.1:8080/cb"}, "code_verifier": {verifier}}, "", "")
	if r.Status != http.StatusBadRequest || r.oauthError(t) != "invalid_grant" {
		t.Errorf("token with another redirect_uri = %d %s, want invalid_grant", r.Status, r.Body)
	}
}

// TestNoImplicitNoPassword: the implicit and password grants do not exist.
func TestNoImplicitNoPassword(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	for _, rt := range []string{"token", "code token", "id_token"} {
		t.Run("response_type="+rt, func(t *testing.T) {
			u := conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("response_type", rt))
			q := callbackParams(t, e.redirectOf(ownerA, u))
			if q.Get("error") != "unsupported_response_type" || q.Get("access_token") != "" {
				t.Errorf("callback %v, want error=unsupported_response_type", q)
			}
		})
	}
	conf2 := e.register(ownerA, oauth.ClientSpec{Name: "Backend", GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{gateway.ScopeAvailabilityRead}})
	for _, gt := range []string{"password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code", ""} {
		t.Run("grant_type="+gt, func(t *testing.T) {
			f := url.Values{"grant_type": {gt}, "username": {"olivia"}, "password": {"hunter2hunter2"}}
			r := e.postForm("/oauth2/token", f, conf2.ID, conf2.Secret)
			if r.Status != http.StatusBadRequest || r.oauthError(t) != "unsupported_grant_type" {
				t.Errorf("grant_type %q = %d %s, want unsupported_grant_type", gt, r.Status, r.Body)
			}
		})
	}
	if r := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, conf2.ID, conf2.Secret); r.Status != http.StatusOK {
		t.Errorf("client_credentials for the same client = %d %s, want 200", r.Status, r.Body)
	}
}

// TestScopesLimitMessages: a token with only availability:read may
// subscribe but not book or read bookings, over WebSocket and HTTP; and a
// staff account cannot delegate config:write.
func TestScopesLimitMessages(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead, gateway.ScopeBookingsWrite, gateway.ScopeConfigWrite)
	tok := e.login(ownerA, e.config(app, gateway.ScopeAvailabilityRead))
	c := e.dialWS("", bearer(tok.AccessToken))
	c.mustCall("subscribe", subscribeFields(), gateway.TypeSubscribed)
	c.mustCall("tenant_info", nil, gateway.TypeTenantInfo)
	c.wantErr("book", bookFields(0), engine.CodeForbidden)
	c.wantErr("hold", map[string]any{"service": "cut", "resource": "alice", "start": slot(0)}, engine.CodeForbidden)
	c.wantErr("subscribe_bookings", nil, engine.CodeForbidden)
	e.do("POST", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, bookFields(0)).want(t, http.StatusForbidden, nil)
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", tok.AccessToken, nil).want(t, http.StatusForbidden, nil)
	e.do("GET", "/v1/tenants/"+tenantA+"/oauth/clients", tok.AccessToken, nil).want(t, http.StatusForbidden, nil)

	// Staff may grant what staff may do, not config:write.
	conf := e.config(app, gateway.ScopeBookingsWrite, gateway.ScopeConfigWrite)
	staffTok := e.login(staffA, conf)
	if got := staffTok.Extra("scope"); got != gateway.ScopeBookingsWrite {
		t.Errorf("staff granted %q, want only %s", got, gateway.ScopeBookingsWrite)
	}
	e.do("PUT", "/v1/tenants/"+tenantA+"/config", staffTok.AccessToken, tenantConfig()).want(t, http.StatusForbidden, nil)
	s := e.dialWS("", bearer(staffTok.AccessToken))
	s.mustCall("book", bookFields(0), gateway.TypeBooked)

	// An owner's config:write token configures, and nothing more.
	ownerTok := e.login(ownerA, e.config(app, gateway.ScopeConfigWrite))
	e.do("PUT", "/v1/tenants/"+tenantA+"/config", ownerTok.AccessToken, tenantConfig()).want(t, http.StatusOK, nil)
	e.do("GET", "/v1/tenants/"+tenantA, ownerTok.AccessToken, nil).want(t, http.StatusForbidden, nil)
}

// TestTenantIsolation: tenant B's app cannot get or use tokens for tenant
// A, and A's tokens do nothing at B.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	appA := e.publicApp(ownerA, gateway.ScopeAvailabilityRead, gateway.ScopeBookingsRead, gateway.ScopeBookingsWrite)
	appB := e.register(ownerB, oauth.ClientSpec{Name: "Rival app", RedirectURIs: []string{callback},
		Scopes:     []string{gateway.ScopeAvailabilityRead, gateway.ScopeBookingsRead, gateway.ScopeBookingsWrite},
		GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials}})
	confB := e.config(appB, gateway.ScopeBookingsRead)

	// A's account consenting to B's app: refused.
	q := callbackParams(t, e.redirectOf(ownerA, confB.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))))
	if q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Errorf("A's account at B's app: callback %v, want access_denied", q)
	}

	// A's code redeemed by B's client: not found under B.
	confA := e.config(appA, gateway.ScopeBookingsRead)
	verifier := oauth2.GenerateVerifier()
	form := e.consent(ownerA, confA.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
		"code_verifier": {verifier}}, appB.ID, appB.Secret)
	if r.Status != http.StatusBadRequest || r.oauthError(t) != "invalid_grant" {
		t.Errorf("A's code at B's client = %d %s, want invalid_grant", r.Status, r.Body)
	}
	// The code still works for A (B's attempt found nothing to spend).
	tokA, err := confA.Exchange(e.oauthCtx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("A's exchange after B's attempt: %v", err)
	}

	// A's token at B: refused on every route and on the socket.
	e.do("GET", "/v1/tenants/"+tenantB+"/bookings", tokA.AccessToken, nil).want(t, http.StatusForbidden, nil)
	e.do("GET", "/v1/tenants/"+tenantB+"/oauth/clients", tokA.AccessToken, nil).want(t, http.StatusForbidden, nil)
	if _, status, err := e.tryDialWS("tenant="+tenantB, bearer(tokA.AccessToken)); err == nil || status != http.StatusForbidden {
		t.Errorf("A's token, handshake for B: HTTP %d, %v; want 403", status, err)
	}
	// A's token relabelled as B's: not found under B.
	forged := strings.Replace(tokA.AccessToken, "_"+tenantA+".", "_"+tenantB+".", 1)
	if forged == tokA.AccessToken {
		t.Fatalf("token %q does not name its tenant", tokA.AccessToken)
	}
	e.do("GET", "/v1/tenants/"+tenantB+"/bookings", forged, nil).want(t, http.StatusUnauthorized, nil)

	// B's client cannot introspect or revoke A's token.
	var intro map[string]any
	e.postForm("/oauth2/introspect", url.Values{"token": {tokA.AccessToken}}, appB.ID, appB.Secret).want(t, http.StatusOK, &intro)
	if intro["active"] != false || len(intro) != 1 {
		t.Errorf("B introspecting A's token = %v, want only active:false", intro)
	}
	e.postForm("/oauth2/revoke", url.Values{"token": {tokA.AccessToken}}, appB.ID, appB.Secret).want(t, http.StatusOK, nil)
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", tokA.AccessToken, nil).want(t, http.StatusOK, nil)

	// B's client claiming to be of tenant A by id: no such client.
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}},
		tenantA+strings.TrimPrefix(appB.ID, tenantB), appB.Secret)
	if r.Status != http.StatusUnauthorized || r.oauthError(t) != "invalid_client" {
		t.Errorf("B's client relabelled as A's = %d %s, want invalid_client", r.Status, r.Body)
	}

	// B's client-credentials token acts on B only.
	var cc struct {
		AccessToken string `json:"access_token"`
	}
	e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {gateway.ScopeBookingsRead}}, appB.ID, appB.Secret).
		want(t, http.StatusOK, &cc)
	e.do("GET", "/v1/tenants/"+tenantB+"/bookings", cc.AccessToken, nil).want(t, http.StatusOK, nil)
	e.do("GET", "/v1/tenants/"+tenantA+"/bookings", cc.AccessToken, nil).want(t, http.StatusForbidden, nil)
}

func slot0UTC() string {
	t, _ := time.Parse(time.RFC3339, slot(0))
	return t.UTC().Format(time.RFC3339)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func errorAs(err error, target any) bool { return errors.As(err, target) }

// TestConcurrentCodeRedemption: two token requests racing with one code —
// both past the PKCE check before either spends the code — get at most
// one token, and the double use revokes the grant.
func TestConcurrentCodeRedemption(t *testing.T) {
	e := newEnv(t)
	app := e.publicApp(ownerA, gateway.ScopeAvailabilityRead)
	conf := e.config(app, gateway.ScopeAvailabilityRead)
	verifier := oauth2.GenerateVerifier()
	form := e.consent(ownerA, conf.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(verifier)))
	code := callbackParams(t, e.submit(ownerA, form, "allow")).Get("code")

	const n = 2
	count, wait := barrier(t, "oauth_pkce", n)
	e.records.hooks(count, nil, func(kind, _ string) {
		if kind == "oauth_pkce" {
			wait()
		}
	})
	results := make(chan result, n)
	for range n {
		go func() {
			results <- e.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"client_id": {app.ID}, "redirect_uri": {callback}, "code_verifier": {verifier}}, "", "")
		}()
	}
	var ok []string
	for range n {
		r := <-results
		if r.Status == http.StatusOK {
			ok = append(ok, string(r.Body))
		}
	}
	e.records.hooks(nil, nil, nil)
	if len(ok) > 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want at most 1", len(ok), n)
	}
	for _, body := range ok {
		var pair struct {
			AccessToken string `json:"access_token"`
		}
		_ = jsonUnmarshal(body, &pair)
		if _, status, err := e.tryDialWS("", bearer(pair.AccessToken)); err == nil || status != http.StatusUnauthorized {
			t.Errorf("the race's winning access token: HTTP %d, %v; want 401 (a code used twice revokes its grant)", status, err)
		}
	}
}
