package oauth

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/slotd/slotd/gateway"
)

// consentParams are the authorize parameters the consent form carries
// back, and that its MAC covers: a submitted form grants exactly what the
// account was shown.
var consentParams = []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope", "state",
	"code_challenge", "code_challenge_method"}

// scopeText describes each scope on the consent page.
func scopeText(scope string) string {
	switch scope {
	case gateway.ScopeAvailabilityRead:
		return "See the business's services and free slots"
	case gateway.ScopeBookingsRead:
		return "See bookings, including customers' names and contact details"
	case gateway.ScopeBookingsWrite:
		return "Make, cancel and move bookings"
	case gateway.ScopeConfigRead:
		return "See the business's configuration"
	case gateway.ScopeConfigWrite:
		return "Change resources, services and opening hours"
	}
	return scope
}

// authorize is the authorization endpoint (RFC 6749 section 3.1). GET shows
// the signed-in account a consent page; POST, from that page, grants or
// denies. Nothing is redirected anywhere before the redirect URI is known
// to match one of the client's exactly.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.authorizePage(w, http.StatusBadRequest, "Bad request", "The request could not be read.")
		return
	}
	clientID := r.Form.Get("client_id")
	tenant, _ := ClientTenant(clientID)
	ctx := withTenant(r.Context(), tenant)
	r = r.WithContext(ctx)

	client, _, err := s.store.getClient(ctx, clientID)
	if err != nil {
		s.authorizePage(w, http.StatusBadRequest, "Unknown app", "The app that sent you here is not registered with slotd.")
		return
	}
	redirect := r.Form.Get("redirect_uri")
	if redirect == "" || !slices.Contains(client.RedirectURIs, redirect) {
		s.authorizePage(w, http.StatusBadRequest, "Wrong return address",
			"The app asked to return to an address it did not register (redirect_uri must match a registered one exactly).")
		return
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	// fosite enforces these too when it issues the code; checking first
	// spares the account a consent that cannot succeed.
	switch {
	case ar.GetRequestForm().Get("code_challenge") == "":
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("PKCE is required: send code_challenge with code_challenge_method=S256."))
		return
	case ar.GetRequestForm().Get("code_challenge_method") != "S256":
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256, plain is not allowed."))
		return
	case !slices.Contains([]string{"", "query"}, ar.GetRequestForm().Get("response_mode")):
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("Only response_mode=query is supported."))
		return
	}

	acc, ok := s.cfg.Accounts.CurrentAccount(r)
	if !ok {
		if r.Method == http.MethodGet && s.cfg.SignInURL != "" {
			http.Redirect(w, r, s.cfg.SignInURL+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		s.authorizePage(w, http.StatusUnauthorized, "Sign in first", "Sign in to slotd, then open the app's link again.")
		return
	}
	if acc.Tenant != tenant {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The signed-in account does not belong to the business this app is registered with."))
		return
	}
	// An account delegates at most what its role allows.
	rolePerm := rolePermission(acc.Role)
	requested := []string(ar.GetRequestedScopes())
	if len(requested) == 0 {
		requested = client.Scopes
	}
	var grant []string
	for _, sc := range requested {
		if p := gateway.ScopePermission(sc); p != 0 && p <= rolePerm && !slices.Contains(grant, sc) {
			grant = append(grant, sc)
		}
	}
	if len(grant) == 0 {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The signed-in account may not grant any of the requested scopes."))
		return
	}
	mac := s.consentMAC(acc, r.Form, s.cfg.Now())

	if r.Method == http.MethodGet {
		s.consentPage(w, client, acc, grant, requested, r.Form, mac, redirect)
		return
	}
	if !s.checkConsent(acc, r) {
		s.authorizePage(w, http.StatusForbidden, "Consent expired",
			"This consent page expired or was not slotd's. Go back to the app and start again.")
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The account refused the app access."))
		return
	}
	for _, sc := range grant {
		ar.GrantScope(sc)
	}
	sess := &Session{Tenant: tenant, Subject: acc.ID, Kind: KindStaff, Role: acc.Role}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.log.Info("oauth: consent given", "tenant", tenant, "client", client.ID, "account", acc.ID, "scopes", grant)
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// consentMAC authenticates a consent form for acc and the authorize
// parameters in form, issued at t: "<unix seconds>.<base64url HMAC>".
func (s *Server) consentMAC(acc Account, form url.Values, t time.Time) string {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(t.Unix()))
	msg := []byte{}
	for _, part := range []string{acc.ID, acc.Tenant, acc.Role, string(ts[:])} {
		msg = binary.AppendUvarint(msg, uint64(len(part)))
		msg = append(msg, part...)
	}
	for _, k := range consentParams {
		v := form.Get(k)
		msg = binary.AppendUvarint(msg, uint64(len(v)))
		msg = append(msg, v...)
	}
	return base64.RawURLEncoding.EncodeToString(ts[:]) + "." + base64.RawURLEncoding.EncodeToString(hmacSHA256(s.consent, msg))
}

// checkConsent verifies a submitted consent form: its MAC, its age, and
// that the browser says it came from this origin.
func (s *Server) checkConsent(acc Account, r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	got := r.PostForm.Get("consent")
	tsPart, _, ok := strings.Cut(got, ".")
	raw, err := base64.RawURLEncoding.DecodeString(tsPart)
	if !ok || err != nil || len(raw) != 8 {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw)), 0)
	if age := s.cfg.Now().Sub(issued); age < -time.Minute || age > s.cfg.ConsentLifespan {
		return false
	}
	want := s.consentMAC(acc, r.Form, issued)
	return hmac.Equal([]byte(got), []byte(want))
}

type consentData struct {
	App, AppID, Tenant, Account, ReturnTo string
	Scopes                                []scopeLine
	Withheld                              []string
	Hidden                                []hiddenField
	Consent                               string
}

type scopeLine struct{ Name, Text string }

type hiddenField struct{ Name, Value string }

func (s *Server) consentPage(w http.ResponseWriter, c *Client, acc Account, grant, requested []string, form url.Values, mac, redirect string) {
	d := consentData{App: c.Name, AppID: c.ID, Tenant: acc.Tenant, Account: acc.Name, Consent: mac}
	if d.Account == "" {
		d.Account = acc.ID
	}
	u, _ := url.Parse(redirect) // checked at registration
	d.ReturnTo = u.Host
	if d.ReturnTo == "" {
		d.ReturnTo = u.Scheme + ":"
	}
	for _, sc := range grant {
		d.Scopes = append(d.Scopes, scopeLine{sc, scopeText(sc)})
	}
	for _, sc := range requested {
		if !slices.Contains(grant, sc) {
			d.Withheld = append(d.Withheld, sc)
		}
	}
	for _, k := range consentParams {
		if v, ok := form[k]; ok && len(v) > 0 {
			d.Hidden = append(d.Hidden, hiddenField{k, v[0]})
		}
	}
	// The form's answer redirects to the app: allow that origin as a
	// form target (Content-Security-Policy form-action covers redirects).
	target := u.Scheme + ":"
	if u.Host != "" {
		target = u.Scheme + "://" + u.Host
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self' "+target+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if err := consentTemplate.Execute(w, d); err != nil {
		s.log.Warn("oauth: consent page", "err", err)
	}
}

// authorizePage answers an authorize request that cannot go back to the
// app with a small HTML page.
func (s *Server) authorizePage(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, struct{ Title, Text string }{title, text})
}

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow {{.App}}? · slotd</title></head>
<body><main>
<h1>Allow {{.App}} to use your slotd account?</h1>
<p>Signed in as <strong>{{.Account}}</strong> of <strong>{{.Tenant}}</strong>. {{.App}} ({{.AppID}}) will be able to:</p>
<ul>{{range .Scopes}}<li>{{.Text}} <code>{{.Name}}</code></li>{{end}}</ul>
{{if .Withheld}}<p>It also asked for {{range $i, $s := .Withheld}}{{if $i}}, {{end}}<code>{{$s}}</code>{{end}}, which your role cannot grant.</p>{{end}}
<p>You will be sent back to <strong>{{.ReturnTo}}</strong>. The business's owners and admins can revoke this access at any time.</p>
<form method="post" action="/oauth2/authorize">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<input type="hidden" name="consent" value="{{.Consent}}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</main></body></html>
`))

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · slotd</title></head>
<body><main><h1>{{.Title}}</h1><p>{{.Text}}</p></main></body></html>
`))
