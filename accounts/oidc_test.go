package accounts_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/slotd/slotd/accounts"
)

// idp is a local OpenID Connect provider that follows the wire protocol:
// discovery, JWKS, an authorization endpoint that requires PKCE S256 and
// redirects with a code, and a token endpoint that checks the client, the
// redirect URI and the code verifier, and issues an RS256-signed ID token.
// Knobs make it misbehave the ways a hostile or broken provider would.
type idp struct {
	tb       testing.TB
	srv      *httptest.Server
	key      *rsa.PrivateKey
	now      func() time.Time
	clientID string
	secret   string
	redirect string

	mu    sync.Mutex // guards the fields below
	codes map[string]idpGrant
	user  idpUser
	// tamper edits the ID token claims before signing.
	tamper func(claims map[string]any)
	// badSignature flips a bit of the ID token's signature.
	badSignature bool
	// signWith signs with another key than the published one.
	signWith *rsa.PrivateKey
}

type idpUser struct {
	sub, email, name string
	verified         any // email_verified claim; nil: absent
}

type idpGrant struct {
	challenge, nonce, redirect string
	user                       idpUser
}

const (
	idpClientID    = "slotd-test-client"
	idpSecret      = "idp-client-secret-for-tests"
	idpRedirectURL = "https://slotd.example/v1/oidc/test/callback"
)

func newIDP(tb testing.TB, now func() time.Time) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	p := &idp{tb: tb, key: key, now: now, clientID: idpClientID, secret: idpSecret, redirect: idpRedirectURL,
		codes: map[string]idpGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(p.srv.Close)
	return p
}

func (p *idp) setUser(u idpUser) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = u
}

func (p *idp) discovery(w http.ResponseWriter, _ *http.Request) {
	u := p.srv.URL
	writeJSONTest(w, http.StatusOK, map[string]any{
		"issuer":                                u,
		"authorization_endpoint":                u + "/authorize",
		"token_endpoint":                        u + "/token",
		"jwks_uri":                              u + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
	})
}

func (p *idp) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSONTest(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: string(jose.RS256), Use: "sig"},
	}})
}

func (p *idp) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	scopes := strings.Fields(q.Get("scope"))
	switch {
	case q.Get("response_type") != "code":
		http.Error(w, "unsupported_response_type", http.StatusBadRequest)
		return
	case q.Get("client_id") != p.clientID:
		http.Error(w, "unauthorized_client", http.StatusBadRequest)
		return
	case q.Get("redirect_uri") != p.redirect:
		http.Error(w, "redirect_uri mismatch", http.StatusBadRequest)
		return
	case len(scopes) == 0 || scopes[0] != "openid" && !strings.Contains(q.Get("scope"), "openid"):
		http.Error(w, "invalid_scope", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	case q.Get("state") == "" || q.Get("nonce") == "":
		http.Error(w, "state and nonce required", http.StatusBadRequest)
		return
	}
	code := randomString(p.tb)
	p.mu.Lock()
	p.codes[code] = idpGrant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri"), user: p.user}
	p.mu.Unlock()
	http.Redirect(w, r, p.redirect+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.clientID || secret != p.secret {
		writeJSONTest(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g, found := p.codes[code]
	delete(p.codes, code) // single use
	tamper, badSig, signWith := p.tamper, p.badSignature, p.signWith
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code" || !found || r.PostForm.Get("redirect_uri") != g.redirect:
		writeJSONTest(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		writeJSONTest(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
		return
	}
	now := p.now()
	claims := map[string]any{"iss": p.srv.URL, "sub": g.user.sub, "aud": p.clientID, "iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "nonce": g.nonce, "email": g.user.email, "name": g.user.name}
	if g.user.verified != nil {
		claims["email_verified"] = g.user.verified
	}
	if tamper != nil {
		tamper(claims)
	}
	key := p.key
	if signWith != nil {
		key = signWith
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		p.tb.Error(err)
		return
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		p.tb.Error(err)
		return
	}
	idToken, err := jws.CompactSerialize()
	if err != nil {
		p.tb.Error(err)
		return
	}
	if badSig {
		parts := strings.Split(idToken, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[len(sig)/2] ^= 0x01
		idToken = parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	writeJSONTest(w, http.StatusOK, map[string]any{"access_token": randomString(p.tb), "token_type": "Bearer",
		"expires_in": 300, "id_token": idToken})
}

func writeJSONTest(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomString(tb testing.TB) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newOIDCEnv starts slotd with the local provider "test".
func newOIDCEnv(t *testing.T) (*env, *idp) {
	t.Helper()
	var p *idp
	var e *env
	now := func() time.Time { return e.clock.Now() }
	p = newIDP(t, now)
	e = newEnv(t, func(c *accounts.Config) {
		c.OIDC = []accounts.OIDCProvider{{Name: "test", Issuer: p.srv.URL, ClientID: idpClientID, ClientSecret: idpSecret,
			RedirectURL: idpRedirectURL}}
		c.HTTPClient = p.srv.Client()
	})
	p.setUser(idpUser{sub: "idp-user-1", email: "Ada@Example.com", name: "Ada", verified: true})
	return e, p
}

// oidcFlow is one sign-in's steps, so that tests can interfere between
// them.
type oidcFlow struct {
	authorizeURL string // where slotd sent the browser
	callbackURL  string // where the provider sent it back (on slotd's test server)
}

// oidcStart starts a sign-in in b and takes it to the provider, which
// answers with a redirect to the callback.
func (b *browser) oidcStart(p *idp) oidcFlow {
	tb := b.e.tb
	tb.Helper()
	r := b.do("GET", "/v1/tenants/salon/sign-in/oidc/test", nil)
	if r.Status != http.StatusFound {
		tb.Fatalf("start: status %d, body %s", r.Status, r.Body)
	}
	f := oidcFlow{authorizeURL: r.Header.Get("Location")}
	if !strings.HasPrefix(f.authorizeURL, p.srv.URL+"/authorize?") {
		tb.Fatalf("start redirected to %q, want the provider's authorization endpoint", f.authorizeURL)
	}
	client := *p.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(f.authorizeURL)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("authorize: status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	f.callbackURL = loc.Path + "?" + loc.RawQuery // the registered host stands for the test server
	return f
}

// oidcFinish follows the callback and returns where slotd sent the browser.
func (b *browser) oidcFinish(callback string) string {
	tb := b.e.tb
	tb.Helper()
	r := b.do("GET", callback, nil)
	if r.Status != http.StatusSeeOther {
		tb.Fatalf("callback: status %d, body %s", r.Status, r.Body)
	}
	return r.Header.Get("Location")
}

// TestOIDCSignIn is the happy path: an existing account signs in with the
// provider, gets a session, and is pinned to the provider's subject.
func TestOIDCSignIn(t *testing.T) {
	e, p := newOIDCEnv(t)
	a := e.account("ada@example.com", accounts.RoleStaff, "")
	b := e.browser()
	f := b.oidcStart(p)
	au, _ := url.Parse(f.authorizeURL)
	if q := au.Query(); q.Get("code_challenge_method") != "S256" || !strings.Contains(q.Get("scope"), "email") {
		t.Errorf("authorization request %v", q)
	}
	if got := b.oidcFinish(f.callbackURL); got != "/" {
		t.Fatalf("after sign-in sent to %q, want /", got)
	}
	var who accounts.SignInResponse
	b.do("GET", "/v1/session", nil).want(http.StatusOK, &who)
	if who.Account == nil || who.Account.ID != a.ID {
		t.Fatalf("session = %+v, want account %s", who, a.ID)
	}
	if b.cookie(accounts.OIDCCookie) != "" {
		t.Error("state cookie left behind")
	}
	// The callback is used once.
	c := e.browser()
	c.setCookie(accounts.OIDCCookie, mustQuery(t, f.callbackURL, "state"))
	if got := c.oidcFinish(f.callbackURL); got != "/?sign_in=failed" {
		t.Errorf("replayed callback sent to %q, want failure", got)
	}
	// Someone else at the provider, whose email became Ada's, is not Ada.
	p.setUser(idpUser{sub: "idp-user-2", email: "ada@example.com", verified: true})
	d := e.browser()
	if got := d.oidcFinish(d.oidcStart(p).callbackURL); got != "/?sign_in=failed" {
		t.Errorf("another subject with the same email sent to %q, want failure", got)
	}
	if d.cookie(accounts.SessionCookie) != "" {
		t.Error("another subject got a session")
	}
}

func mustQuery(t testing.TB, u, key string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Query().Get(key)
}

// TestOIDCRefuses tries what an attacker or a broken provider would, and
// checks that each ends on the failure page without a session.
func TestOIDCRefuses(t *testing.T) {
	cases := []struct {
		name string
		// run does the sign-in, interfering as it likes, and returns
		// where the browser ended up.
		run func(e *env, p *idp, b *browser) string
	}{
		{"bad state", func(e *env, p *idp, b *browser) string {
			f := b.oidcStart(p)
			return b.oidcFinish(strings.Replace(f.callbackURL, "state=o1.salon.", "state=o1.salon.A", 1))
		}},
		{"state of another browser (login CSRF)", func(e *env, p *idp, b *browser) string {
			attacker := e.browser()
			f := attacker.oidcStart(p)
			return b.oidcFinish(f.callbackURL) // the victim has no state cookie
		}},
		{"bad nonce", func(e *env, p *idp, b *browser) string {
			p.tamper = func(c map[string]any) { c["nonce"] = "replayed-nonce" }
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"no nonce", func(e *env, p *idp, b *browser) string {
			p.tamper = func(c map[string]any) { delete(c, "nonce") }
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"wrong audience", func(e *env, p *idp, b *browser) string {
			p.tamper = func(c map[string]any) { c["aud"] = "another-client" }
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"wrong issuer", func(e *env, p *idp, b *browser) string {
			p.tamper = func(c map[string]any) { c["iss"] = "https://evil.example" }
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"expired", func(e *env, p *idp, b *browser) string {
			p.tamper = func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() }
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"tampered signature", func(e *env, p *idp, b *browser) string {
			p.badSignature = true
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"signed with an unpublished key", func(e *env, p *idp, b *browser) string {
			k, _ := rsa.GenerateKey(rand.Reader, 2048)
			p.signWith = k
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"PKCE verifier mismatch (injected code)", func(e *env, p *idp, b *browser) string {
			// A code issued for one sign-in is injected into another: slotd
			// redeems it with the other sign-in's verifier, and the
			// provider refuses.
			stolen := b.oidcStart(p)
			mine := b.oidcStart(p)
			cb := strings.Replace(mine.callbackURL, "code="+url.QueryEscape(mustQuery(e.tb, mine.callbackURL, "code")),
				"code="+url.QueryEscape(mustQuery(e.tb, stolen.callbackURL, "code")), 1)
			return b.oidcFinish(cb)
		}},
		{"email not verified", func(e *env, p *idp, b *browser) string {
			p.setUser(idpUser{sub: "idp-user-1", email: "ada@example.com", verified: false})
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"email_verified absent", func(e *env, p *idp, b *browser) string {
			p.setUser(idpUser{sub: "idp-user-1", email: "ada@example.com"})
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"unknown email", func(e *env, p *idp, b *browser) string {
			p.setUser(idpUser{sub: "idp-user-9", email: "stranger@example.com", verified: true})
			return b.oidcFinish(b.oidcStart(p).callbackURL)
		}},
		{"provider error", func(e *env, p *idp, b *browser) string {
			f := b.oidcStart(p)
			return b.oidcFinish(strings.Replace(f.callbackURL, "code=", "error=access_denied&code=", 1))
		}},
		{"state expired", func(e *env, p *idp, b *browser) string {
			f := b.oidcStart(p)
			e.clock.Advance(11 * time.Minute)
			return b.oidcFinish(f.callbackURL)
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			e, p := newOIDCEnv(t)
			e.account("ada@example.com", accounts.RoleStaff, "")
			b := e.browser()
			got := tt.run(e, p, b)
			if got != "/?sign_in=failed" {
				t.Errorf("sent to %q, want /?sign_in=failed", got)
			}
			if b.cookie(accounts.SessionCookie) != "" {
				t.Error("a refused OIDC sign-in set a session cookie")
			}
			// Failures before the state names a tenant have no log to go to.
			if !strings.Contains(tt.name, "state") && !e.audit.has(accounts.ActionSignInFailed) {
				t.Errorf("audit %v, want sign_in_failed", e.audit.actions())
			}
		})
	}
}

// TestOIDCWithSecondFactorAndProvisioning checks that an OIDC sign-in
// still asks for the account's TOTP code, and that a tenant can let a
// verified domain create staff accounts.
func TestOIDCWithSecondFactorAndProvisioning(t *testing.T) {
	e, p := newOIDCEnv(t)
	e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	pw := e.browser()
	pw.signIn("ada@example.com", goodPassword)
	secret, _ := pw.enrolTOTP()

	b := e.browser()
	if got := b.oidcFinish(b.oidcStart(p).callbackURL); got != "/?sign_in=second_factor" {
		t.Fatalf("sent to %q, want the second-factor page", got)
	}
	if b.cookie(accounts.SessionCookie) != "" {
		t.Fatal("session before the second factor")
	}
	var ch accounts.SignInResponse
	b.do("GET", "/v1/sign-in/challenge", nil).want(http.StatusOK, &ch)
	if ch.Next != accounts.NextTOTP {
		t.Fatalf("challenge %+v", ch)
	}
	b.do("POST", "/v1/sign-in/totp", map[string]string{"code": e.code(secret)}).want(http.StatusOK, nil)
	b.do("GET", "/v1/session", nil).want(http.StatusOK, nil)

	// Auto-provisioning: off by default, on for the tenant's domain.
	p.setUser(idpUser{sub: "idp-new", email: "new@salon.example", name: "New Person", verified: true})
	c := e.browser()
	if got := c.oidcFinish(c.oidcStart(p).callbackURL); got != "/?sign_in=failed" {
		t.Fatalf("unknown account sent to %q, want failure", got)
	}
	e.owner().do("PUT", "/v1/tenants/salon/account-policy", map[string]any{"oidc_domains": []string{"salon.example"}}).want(http.StatusOK, nil)
	if got := c.oidcFinish(c.oidcStart(p).callbackURL); got != "/" {
		t.Fatalf("provisioned account sent to %q, want /", got)
	}
	var who accounts.SignInResponse
	c.do("GET", "/v1/session", nil).want(http.StatusOK, &who)
	if who.Account.Role != accounts.RoleStaff || who.Account.Email != "new@salon.example" || who.Account.HasPassword {
		t.Fatalf("provisioned %+v, want a staff account without password", who.Account)
	}
}
