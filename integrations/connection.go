package integrations

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/slotd/slotd/engine"
)

// A Provider is the kind of calendar a connection reaches. Providers are only ever added.
type Provider string

// The providers.
const (
	Google    Provider = "google"    // Google Calendar, OAuth 2 refresh token
	Microsoft Provider = "microsoft" // Microsoft 365 / Outlook.com through Microsoft Graph, OAuth 2 refresh token
	ICloud    Provider = "icloud"    // iCloud Calendar over CalDAV, Apple ID and app-specific password
	CalDAV    Provider = "caldav"    // another CalDAV server, user name and password
)

// Valid reports whether p is one of the providers.
func (p Provider) Valid() bool {
	switch p {
	case Google, Microsoft, ICloud, CalDAV:
		return true
	}
	return false
}

// usesOAuth reports whether the provider's credential is an OAuth refresh token (else a user
// name and password).
func (p Provider) usesOAuth() bool { return p == Google || p == Microsoft }

// ICloudCalDAVURL is the CalDAV server of iCloud connections.
const ICloudCalDAVURL = "https://caldav.icloud.com"

// A Credential is what slotd holds to reach a calendar: an OAuth refresh token (Google,
// Microsoft), or a user name and an app-specific password (iCloud, CalDAV). It is stored only
// sealed, and it prints as "[redacted]" under every fmt verb so that it cannot reach a log.
type Credential struct {
	RefreshToken string `json:"refresh_token,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
}

// Format redacts the credential under every verb (%v, %+v, %#v, %s, %q, %x, …).
func (Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("Credential{[redacted]}")) }

// String redacts the credential.
func (Credential) String() string { return "Credential{[redacted]}" }

// GoString redacts the credential.
func (Credential) GoString() string { return "Credential{[redacted]}" }

// A Connection is one calendar connected to a tenant by one of its accounts: what slotd may
// show about it. The credential is not part of it (see Service.Credential).
type Connection struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	Account  string    `json:"account"`            // the tenant account that connected it
	Resource string    `json:"resource,omitempty"` // the resource whose busy times it feeds, if any
	Provider Provider  `json:"provider"`
	Email    string    `json:"email"`            // the account at the provider
	Scopes   []string  `json:"scopes,omitempty"` // as granted by the provider (OAuth)
	Server   string    `json:"server,omitempty"` // CalDAV server URL (iCloud, CalDAV)
	KeyID    string    `json:"key_id"`           // master key the credential is sealed under
	Created  time.Time `json:"created"`          // when it was connected
	Updated  time.Time `json:"updated,omitzero"` // when its credential was last replaced
}

// NewConnection is what Connect needs to store a connection.
type NewConnection struct {
	Account    string
	Resource   string
	Provider   Provider
	Email      string
	Scopes     []string
	Server     string // CalDAV only; iCloud's is ICloudCalDAVURL
	Credential Credential
}

// Limits on a connection's fields.
const (
	maxIDLen     = 128
	maxEmailLen  = 254
	maxScopes    = 32
	maxScopeLen  = 256
	maxSecretLen = 8 << 10
)

func invalidf(format string, args ...any) error {
	return engine.Errorf(engine.CodeInvalid, format, args...)
}

// check validates nc and fills in provider defaults.
func (nc *NewConnection) check() error {
	if !nc.Provider.Valid() {
		return invalidf("unknown calendar provider %q", printable(string(nc.Provider)))
	}
	if err := checkText("account", nc.Account, maxIDLen, true); err != nil {
		return err
	}
	if err := checkText("resource", nc.Resource, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("email", nc.Email, maxEmailLen, true); err != nil {
		return err
	}
	if len(nc.Scopes) > maxScopes {
		return invalidf("at most %d scopes", maxScopes)
	}
	for _, s := range nc.Scopes {
		if err := checkText("scope", s, maxScopeLen, true); err != nil {
			return err
		}
	}
	c := nc.Credential
	if nc.Provider.usesOAuth() {
		if c.RefreshToken == "" || c.Username != "" || c.Password != "" {
			return invalidf("a %s connection needs a refresh token (and no password)", nc.Provider)
		}
		if nc.Server != "" {
			return invalidf("a %s connection has no CalDAV server", nc.Provider)
		}
	} else {
		if c.RefreshToken != "" || c.Username == "" || c.Password == "" {
			return invalidf("a %s connection needs a user name and an app-specific password", nc.Provider)
		}
		if nc.Provider == ICloud && nc.Server == "" {
			nc.Server = ICloudCalDAVURL
		}
		u, err := url.Parse(nc.Server)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return invalidf("a %s connection needs an https:// server URL without credentials in it", nc.Provider)
		}
	}
	if len(c.RefreshToken)+len(c.Username)+len(c.Password) > maxSecretLen {
		return invalidf("credential too long")
	}
	return nil
}

// checkText refuses empty (if required), over-long and control-character-bearing values:
// they end up in listings and logs.
func checkText(field, s string, maxLen int, required bool) error {
	if s == "" {
		if required {
			return invalidf("%s is required", field)
		}
		return nil
	}
	if len(s) > maxLen {
		return invalidf("%s longer than %d bytes", field, maxLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.Is(unicode.Cf, r) {
			return invalidf("%s contains a control or format character", field)
		}
	}
	return nil
}

// printable quotes s for an error message, cut short.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.Trim(fmt.Sprintf("%q", s), `"`)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns "conn_" and 26 random base32 characters (128 bits).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "conn_" + idEncoding.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 5+26 || !strings.HasPrefix(id, "conn_") {
		return false
	}
	_, err := idEncoding.DecodeString(id[5:])
	return err == nil
}
