package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
)

// OIDCProvider is an OpenID Connect provider offered for sign-in. slotd
// is its client ("relying party"): it asks for an ID token with the
// authorization code flow and PKCE, and uses the verified email in it to
// find the account. It never keeps the provider's access token.
type OIDCProvider struct {
	// Name is the provider's path segment: /v1/tenants/{tenant}/sign-in/oidc/{Name}.
	Name string
	// Issuer is the provider's issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration", and ID tokens must name it.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is https://<host>/v1/oidc/<Name>/callback, registered with
	// the provider.
	RedirectURL string
	// Scopes asked for; "openid", "email" and "profile" by default.
	Scopes []string
	// VerifiedEmailClaim names a boolean claim the provider sets when the
	// email is verified, for providers that do not send email_verified
	// (Microsoft Entra: "xms_edov", an optional claim the app registration
	// must request). An email that is not verified never signs in.
	VerifiedEmailClaim string
}

// Google is the provider for Google accounts.
func Google(clientID, clientSecret, redirectURL string) OIDCProvider {
	return OIDCProvider{Name: "google", Issuer: "https://accounts.google.com", ClientID: clientID,
		ClientSecret: clientSecret, RedirectURL: redirectURL}
}

// Microsoft is the provider for the work accounts of one Microsoft Entra
// tenant (directory id). Entra does not send email_verified: the app
// registration must add the optional claim xms_edov, which says the
// email's domain is verified by the directory.
func Microsoft(directoryID, clientID, clientSecret, redirectURL string) OIDCProvider {
	return OIDCProvider{Name: "microsoft", Issuer: "https://login.microsoftonline.com/" + directoryID + "/v2.0",
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL, VerifiedEmailClaim: "xms_edov"}
}

var providerNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func (p OIDCProvider) check() error {
	if !providerNameRE.MatchString(p.Name) {
		return fmt.Errorf("accounts: OIDC provider name %q: use lowercase letters, digits and '-'", p.Name)
	}
	if p.Issuer == "" || p.ClientID == "" || p.RedirectURL == "" {
		return fmt.Errorf("accounts: OIDC provider %s needs Issuer, ClientID and RedirectURL", p.Name)
	}
	return nil
}

// oidcClient discovers its provider on first use (and again after a
// failure), so that slotd starts while a provider is unreachable.
type oidcClient struct {
	p OIDCProvider

	mu       sync.Mutex // guards the fields below
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func (c *oidcClient) get(s *Service) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.oauth != nil {
		return c.oauth, c.verifier, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(context.Background(), s.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(ctx, c.p.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("discover OIDC provider %s: %w", c.p.Name, err)
	}
	scopes := c.p.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	c.oauth = &oauth2.Config{ClientID: c.p.ClientID, ClientSecret: c.p.ClientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: c.p.RedirectURL, Scopes: scopes}
	c.verifier = prov.Verifier(&oidc.Config{ClientID: c.p.ClientID, Now: s.now})
	return c.oauth, c.verifier, nil
}

// oidcStateRecord is a sign-in sent to a provider, stored under the hash
// of its state. The PKCE verifier and the nonce are derived from the
// state's secret, so nothing secret is stored.
type oidcStateRecord struct {
	Provider string    `json:"provider"`
	Expires  time.Time `json:"expires"`
}

const oidcStateTTL = 10 * time.Minute

func derive(sec bearerSecret, label string) string {
	m := hmac.New(sha256.New, sec.secret)
	m.Write([]byte("slotd/accounts/oidc/" + label))
	return b64.EncodeToString(m.Sum(nil))
}

func (s *Service) handleOIDCStart(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	c, ok := s.oidc[r.PathValue("provider")]
	if !ok || !persistence.ValidTenant(tenant) {
		s.writeError(w, engine.Errorf(engine.CodeNotFound, "no such sign-in provider"))
		return
	}
	conf, _, err := c.get(s)
	if err != nil {
		s.log.Warn("OIDC provider unavailable", "provider", c.p.Name, "err", err)
		s.writeError(w, engine.Errorf(engine.CodeUnavailable, "the sign-in provider cannot be reached; try again later"))
		return
	}
	sec := newSecret(tagOIDCState, tenant)
	rec := oidcStateRecord{Provider: c.p.Name, Expires: s.now().UTC().Add(oidcStateTTL)}
	if _, err := s.putJSON(r.Context(), tenant, kindOIDCState, sec.hash(), &rec, 0); err != nil {
		s.writeError(w, fmt.Errorf("store oidc state: %w", err))
		return
	}
	// Lax, not Strict: the provider sends the browser back with a
	// cross-site top-level GET, which must carry this cookie.
	http.SetCookie(w, &http.Cookie{Name: OIDCCookie, Value: sec.String(), Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcStateTTL / time.Second)})
	url := conf.AuthCodeURL(sec.String(), oauth2.S256ChallengeOption(derive(sec, "pkce")), oidc.Nonce(derive(sec, "nonce")))
	http.Redirect(w, r, url, http.StatusFound)
}

// oidcFailure is why an OIDC sign-in failed, for the log and audit; the
// browser only learns that it failed.
type oidcFailure string

func (e oidcFailure) Error() string { return string(e) }

func (s *Service) handleOIDCCallback(w http.ResponseWriter, r *http.Request) {
	c, ok := s.oidc[r.PathValue("provider")]
	if !ok {
		s.writeError(w, engine.Errorf(engine.CodeNotFound, "no such sign-in provider"))
		return
	}
	clearCookie(w, OIDCCookie)
	ip := s.clientIP(r)
	if d := s.ipWait(ip); d > 0 {
		s.writeError(w, &rateLimited{d})
		return
	}
	tenant, next, err := s.oidcCallback(w, r, c, ip)
	if err != nil {
		s.ipFailed(ip)
		var f oidcFailure
		if !errors.As(err, &f) {
			s.log.Warn("OIDC sign-in", "provider", c.p.Name, "err", err)
			f = "internal"
		}
		s.log.Info("OIDC sign-in failed", "provider", c.p.Name, "reason", string(f))
		if tenant != "" {
			s.audit(r.Context(), tenant, AuditEvent{Action: ActionSignInFailed,
				Detail: map[string]string{"ip": ip, "method": "oidc:" + c.p.Name, "reason": string(f)}})
		}
		http.Redirect(w, r, s.cfg.SignInFailedPage, http.StatusSeeOther)
		return
	}
	if next != "" {
		http.Redirect(w, r, s.cfg.SecondFactorPage, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.cfg.AfterSignIn, http.StatusSeeOther)
}

// oidcCallback completes an OIDC sign-in. It returns the tenant (once
// known) and the next sign-in step ("" when the session has started).
func (s *Service) oidcCallback(w http.ResponseWriter, r *http.Request, c *oidcClient, ip string) (string, string, error) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	// The state must be the one this browser was sent off with: that is
	// what stops an attacker from completing their own sign-in in a
	// victim's browser.
	ck, err := r.Cookie(OIDCCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		return "", "", oidcFailure("state")
	}
	sec, ok := parseSecret(tagOIDCState, state)
	if !ok {
		return "", "", oidcFailure("state")
	}
	tenant := sec.tenant
	var st oidcStateRecord
	ver, err := s.getJSON(ctx, tenant, kindOIDCState, sec.hash(), &st)
	if errors.Is(err, persistence.ErrNotFound) {
		return tenant, "", oidcFailure("state")
	}
	if err != nil {
		return tenant, "", err
	}
	if err := s.records.DeleteRecord(ctx, tenant, kindOIDCState, sec.hash(), ver); err != nil {
		return tenant, "", oidcFailure("state")
	}
	if !s.now().Before(st.Expires) || st.Provider != c.p.Name {
		return tenant, "", oidcFailure("state")
	}
	if q.Get("error") != "" {
		return tenant, "", oidcFailure("provider_error")
	}
	conf, verifier, err := c.get(s)
	if err != nil {
		return tenant, "", err
	}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := conf.Exchange(hctx, q.Get("code"), oauth2.VerifierOption(derive(sec, "pkce")))
	if err != nil {
		return tenant, "", oidcFailure("code_exchange")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return tenant, "", oidcFailure("no_id_token")
	}
	idt, err := verifier.Verify(oidc.ClientContext(ctx, s.cfg.HTTPClient), raw)
	if err != nil {
		return tenant, "", oidcFailure("id_token")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(derive(sec, "nonce"))) != 1 {
		return tenant, "", oidcFailure("nonce")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return tenant, "", oidcFailure("id_token")
	}
	email, _ := claims["email"].(string)
	email = NormalizeEmail(email)
	verified := claims["email_verified"] == true ||
		(c.p.VerifiedEmailClaim != "" && claims[c.p.VerifiedEmailClaim] == true)
	if email == "" || !verified {
		return tenant, "", oidcFailure("email_not_verified")
	}
	a, found, err := s.accountByEmail(ctx, tenant, email)
	if err != nil {
		return tenant, "", err
	}
	if !found {
		if a, err = s.oidcProvision(ctx, tenant, email, claims, c.p.Name); err != nil {
			return tenant, "", err
		}
	}
	if a.Disabled {
		return tenant, "", oidcFailure("account_disabled")
	}
	// The first sign-in through an issuer pins the account to the
	// provider's subject; later ones must be the same subject, even if the
	// provider's email for someone else changes to this one.
	if pinned := a.OIDC[idt.Issuer]; pinned != "" && pinned != idt.Subject {
		return tenant, "", oidcFailure("subject_mismatch")
	}
	if a.OIDC[idt.Issuer] == "" {
		a, err = update(ctx, s, tenant, kindAccount, a.ID, func(rec *accountRecord) error {
			if rec.OIDC == nil {
				rec.OIDC = map[string]string{}
			}
			if p := rec.OIDC[idt.Issuer]; p != "" && p != idt.Subject {
				return oidcFailure("subject_mismatch")
			}
			rec.OIDC[idt.Issuer] = idt.Subject
			return nil
		})
		if err != nil {
			return tenant, "", err
		}
	}
	resp, err := s.afterFirstFactor(ctx, w, r, tenant, &a, "oidc:"+c.p.Name, ip)
	if err != nil {
		return tenant, "", err
	}
	return tenant, resp.Next, nil
}

// oidcProvision creates a staff account for a verified email of one of the
// tenant's OIDC domains, if the owners allowed that.
func (s *Service) oidcProvision(ctx context.Context, tenant, email string, claims map[string]any, provider string) (accountRecord, error) {
	pol, err := s.policy(ctx, tenant)
	if err != nil {
		return accountRecord{}, err
	}
	domain := email[strings.LastIndexByte(email, '@')+1:]
	if !slices.Contains(pol.OIDCDomains, domain) {
		return accountRecord{}, oidcFailure("no_account")
	}
	name, _ := claims["name"].(string)
	if checkName(name) != nil {
		name = ""
	}
	acc, err := s.CreateAccount(ctx, tenant, NewAccount{Email: email, Name: name, Role: RoleStaff})
	if err != nil {
		return accountRecord{}, err
	}
	s.audit(ctx, tenant, AuditEvent{Actor: "oidc:" + provider, Action: ActionAccountCreated, Target: "account:" + acc.ID,
		Detail: map[string]string{"role": string(RoleStaff), "reason": "oidc_domain"}})
	return s.account(ctx, tenant, acc.ID)
}
