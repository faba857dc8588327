package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// Grant types a client may be registered for. There is no implicit and no
// password grant.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Client is an app registered with one tenant. Its secret is kept only as
// a bcrypt hash; public clients (native and browser apps) have none.
type Client struct {
	ID           string    `json:"id"` // "<tenant>.app_<random>"
	Tenant       string    `json:"tenant"`
	Name         string    `json:"name"`
	SecretHash   []byte    `json:"secret_hash,omitempty"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types"`
	Scopes       []string  `json:"scopes"`
	Public       bool      `json:"public"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
}

var _ fosite.Client = (*Client)(nil)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client: "code" for clients of the
// authorization-code grant, nothing else ever.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		return fosite.Arguments{"code"}
	}
	return fosite.Arguments{}
}

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience implements fosite.Client; slotd uses no audiences.
func (c *Client) GetAudience() fosite.Arguments { return nil }

// ClientView is a client as the administration routes show it: no secret
// hash.
type ClientView struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types"`
	Scopes       []string  `json:"scopes"`
	Public       bool      `json:"public"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
	// Secret is set once, in the answer to the registration.
	Secret string `json:"client_secret,omitempty"`
}

func (c *Client) view() ClientView {
	return ClientView{ID: c.ID, Name: c.Name, RedirectURIs: nonNil(c.RedirectURIs), GrantTypes: nonNil(c.GrantTypes),
		Scopes: nonNil(c.Scopes), Public: c.Public, CreatedAt: c.CreatedAt, CreatedBy: c.CreatedBy}
}

// ClientSpec is a registration request.
type ClientSpec struct {
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirect_uris"`
	// GrantTypes: default authorization_code and refresh_token.
	GrantTypes []string `json:"grant_types"`
	Scopes     []string `json:"scopes"`
	// Public clients (native and single-page apps) cannot keep a secret:
	// they get none, authenticate with PKCE alone, and may not use client
	// credentials.
	Public bool `json:"public"`
}

// Limits on registrations.
const (
	maxClientName   = 100
	maxRedirectURIs = 10
	maxRedirectURI  = 2000
)

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.CodeInvalid, format, args...)
}

// validate normalises spec and refuses what slotd will not register.
func (spec *ClientSpec) validate() error {
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" || utf8.RuneCountInString(spec.Name) > maxClientName || !utf8.ValidString(spec.Name) ||
		strings.IndexFunc(spec.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return invalid("name: 1 to %d printable characters", maxClientName)
	}
	if len(spec.GrantTypes) == 0 {
		spec.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	seen := map[string]bool{}
	for _, g := range spec.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
		default:
			return invalid("grant type %q: slotd supports authorization_code, refresh_token and client_credentials", g)
		}
		if seen[g] {
			return invalid("grant type %q given twice", g)
		}
		seen[g] = true
	}
	if seen[GrantRefreshToken] && !seen[GrantAuthorizationCode] {
		return invalid("refresh_token needs authorization_code")
	}
	if spec.Public && seen[GrantClientCredentials] {
		return invalid("a public client cannot use client_credentials")
	}
	if len(spec.Scopes) == 0 {
		return invalid("scopes: name at least one of %v", gateway.Scopes())
	}
	for i, s := range spec.Scopes {
		if !knownScope(s) {
			return invalid("scope %q: known scopes are %v", s, gateway.Scopes())
		}
		if slices.Contains(spec.Scopes[:i], s) {
			return invalid("scope %q given twice", s)
		}
	}
	if seen[GrantAuthorizationCode] && len(spec.RedirectURIs) == 0 {
		return invalid("redirect_uris: authorization_code needs at least one")
	}
	if !seen[GrantAuthorizationCode] && len(spec.RedirectURIs) > 0 {
		return invalid("redirect_uris are only for authorization_code")
	}
	if len(spec.RedirectURIs) > maxRedirectURIs {
		return invalid("at most %d redirect_uris", maxRedirectURIs)
	}
	for i, u := range spec.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return err
		}
		if slices.Contains(spec.RedirectURIs[:i], u) {
			return invalid("redirect_uri %q given twice", u)
		}
	}
	return nil
}

// checkRedirectURI accepts an absolute https URL, http on a loopback
// address (RFC 8252 section 7.3) or a private-use scheme with a dot
// (RFC 8252 section 7.1, "com.example.app:/cb"); never a fragment. Matching
// is exact, so there is nothing else to normalise.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > maxRedirectURI || u.Fragment != "" || strings.Contains(raw, "#") || u.Scheme == "" {
		return invalid("redirect_uri %q: an absolute URL without a fragment, at most %d bytes", raw, maxRedirectURI)
	}
	switch {
	case u.Scheme == "https":
		if u.Host == "" {
			return invalid("redirect_uri %q has no host", raw)
		}
	case u.Scheme == "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			return invalid("redirect_uri %q: http only on a loopback address; use https", raw)
		}
	case strings.Contains(u.Scheme, "."):
	default:
		return invalid("redirect_uri %q: use https, http on loopback, or a private-use scheme such as com.example.app:", raw)
	}
	if !fosite.IsValidRedirectURI(u) {
		return invalid("redirect_uri %q is not acceptable", raw)
	}
	return nil
}

// RegisterClient registers an app with tenant and returns it with its
// secret (empty for a public client), which is shown only this once.
func (s *Server) RegisterClient(ctx context.Context, tenant, createdBy string, spec ClientSpec) (ClientView, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return ClientView{}, invalid("tenant id %q is malformed", tenant)
	}
	if err := spec.validate(); err != nil {
		return ClientView{}, err
	}
	c := &Client{ID: tenant + "." + gateway.NewID("app_"), Tenant: tenant, Name: spec.Name, RedirectURIs: spec.RedirectURIs,
		GrantTypes: spec.GrantTypes, Scopes: spec.Scopes, Public: spec.Public, CreatedAt: s.cfg.Now().UTC(), CreatedBy: createdBy}
	var secret string
	if !spec.Public {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return ClientView{}, fmt.Errorf("client secret: %w", err)
		}
		secret = "slotd_cs_" + base64.RawURLEncoding.EncodeToString(b[:])
		hash, err := s.hasher.Hash(ctx, []byte(secret))
		if err != nil {
			return ClientView{}, fmt.Errorf("hash client secret: %w", err)
		}
		c.SecretHash = hash
	}
	b, err := json.Marshal(c)
	if err != nil {
		return ClientView{}, err
	}
	if _, err := s.cfg.Records.PutRecord(ctx, tenant, kindClient, c.ID, b, 0); err != nil {
		return ClientView{}, fmt.Errorf("put client: %w", err)
	}
	v := c.view()
	v.Secret = secret
	return v, nil
}

// Clients lists tenant's clients.
func (s *Server) Clients(ctx context.Context, tenant string) ([]ClientView, error) {
	recs, err := s.cfg.Records.ListRecords(ctx, tenant, kindClient, "", "", 0)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := []ClientView{}
	for _, rec := range recs {
		var c Client
		if err := json.Unmarshal(rec.Value, &c); err != nil {
			return nil, fmt.Errorf("decode client record: %w", err)
		}
		out = append(out, c.view())
	}
	return out, nil
}

// lookupClient returns tenant's client id, or a not_found error.
func (s *Server) lookupClient(ctx context.Context, tenant, id string) (*Client, uint64, error) {
	if t, ok := ClientTenant(id); !ok || t != tenant {
		return nil, 0, engine.Errorf(engine.CodeNotFound, "no such client")
	}
	c, ver, err := s.store.getClient(withTenant(ctx, tenant), id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, 0, engine.Errorf(engine.CodeNotFound, "no such client")
	}
	return c, ver, err
}

// DeleteClient revokes every grant of the client and deletes it.
func (s *Server) DeleteClient(ctx context.Context, tenant, id string) error {
	_, ver, err := s.lookupClient(ctx, tenant, id)
	if err != nil {
		return err
	}
	if _, err := s.RevokeClientGrants(ctx, tenant, id); err != nil {
		return err
	}
	if err := s.cfg.Records.DeleteRecord(ctx, tenant, kindClient, id, ver); err != nil {
		if errors.Is(err, persistence.ErrConflict) {
			return engine.Errorf(engine.CodeConflict, "the client changed meanwhile; try again")
		}
		return fmt.Errorf("delete client: %w", err)
	}
	// A grant made between the first revocation and the delete is dead
	// already (its client is gone, so no lookup accepts its tokens);
	// revoking it too closes any WebSocket opened in that moment.
	_, err = s.RevokeClientGrants(ctx, tenant, id)
	return err
}
