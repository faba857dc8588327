package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/oauth"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/password"
	"github.com/slotd/slotd/security/secrets"
)

// security is what stands in front of the gateway besides the operator
// token: tenant accounts (sign-in, sessions, second factor) and the OAuth 2
// authorization server for apps.
type security struct {
	keyring      *secrets.Keyring
	accounts     *accounts.Service
	oauth        *oauth.Server
	integrations *integrations.Service
	audit        *audit.Log
	codec        *privacy.Codec
}

// buildSecurity builds the accounts service and the OAuth server over the
// store's tenant records. gw is filled in once the gateway exists: revoking
// a credential closes its WebSockets there.
func buildSecurity(o options, store persistence.Store, getenv func(string) string, log *slog.Logger, gw **gateway.Server) (*security, error) {
	records, ok := store.(persistence.RecordStore)
	if !ok {
		return nil, errors.New("the store keeps no tenant records")
	}
	ring, err := loadKeyring(o, getenv, log)
	if err != nil {
		return nil, err
	}
	hasher, err := password.New(password.Options{})
	if err != nil {
		return nil, err
	}
	alog, err := serveAuditLog(o, getenv, records, store, log)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	integ, err := integrations.New(integrations.Config{Records: records, Keys: ring, Audit: integrations.AuditLog(alog),
		Logger: log.With("component", "integrations")})
	if err != nil {
		return nil, fmt.Errorf("integrations: %w", err)
	}
	var srv *oauth.Server
	lifecycle := &integrations.AccountLifecycle{Integrations: integ, Logger: log.With("component", "lifecycle"),
		Sessions: []integrations.SessionEnder{oauthEnder{&srv}}}
	oidc, err := oidcProviders(o, getenv)
	if err != nil {
		return nil, err
	}
	accs, err := accounts.New(accounts.Config{Records: records, Passwords: hasher, Secrets: ring, OIDC: oidc,
		Audit: accounts.AuditLog(alog), Logger: log.With("component", "accounts"), Now: time.Now, Issuer: "slotd",
		// Sign-in throttling per address sees the client behind a trusted
		// proxy, like the gateway's rate limits.
		ClientIP: func(r *http.Request) string { return gateway.ClientIP(r, o.edge.trustProxy) },
		OnDeleted: func(ctx context.Context, tenant, account, actor string) error {
			lifecycle.Sockets = *gw
			_, err := lifecycle.AccountDeleted(ctx, tenant, account, actor)
			return err
		}})
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	secret, err := oauthSecret(o, getenv, log)
	if err != nil {
		return nil, err
	}
	srv, err = oauth.New(oauth.Config{
		Records: records,
		Accounts: oauth.AccountsFunc(func(r *http.Request) (oauth.Account, bool) {
			a, ok := accs.CurrentAccount(r)
			if !ok || a.Disabled {
				return oauth.Account{}, false
			}
			return oauth.Account{ID: a.ID, Tenant: a.Tenant, Role: string(a.Role), Name: a.Name}, true
		}),
		Secret:   secret,
		Issuer:   o.publicURL,
		Logger:   log.With("component", "oauth"),
		OnRevoke: func(grant string) { (*gw).CloseGrant(grant) },
	})
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	codec := privacy.NewCodec(ring, records)
	if codec.DeferToJournal(store) {
		log.Debug("new customers' index entries and keys are made durable with their booking's journal append")
	}
	return &security{keyring: ring, accounts: accs, oauth: srv, integrations: integ, audit: alog, codec: codec}, nil
}

// oauthEnder ends a deleted account's OAuth grants; revoking them closes
// their WebSockets through the OAuth server's OnRevoke.
type oauthEnder struct{ srv **oauth.Server }

func (e oauthEnder) EndAccount(ctx context.Context, tenant, account string) ([]string, error) {
	_, err := (*e.srv).RevokeSubject(ctx, tenant, account)
	return nil, err
}

// serveAuditLog opens the security audit log slotd writes while serving:
// signing key from SLOTD_AUDIT_SIGNER_KEY(_FILE) and verifier key from
// SLOTD_AUDIT_VERIFIER_KEY. Only for the embedded store, when neither is
// set, a key pair is generated once in the data directory (0600).
func serveAuditLog(o options, getenv func(string) string, records persistence.RecordStore, store persistence.Store, log *slog.Logger) (*audit.Log, error) {
	if getenv(envAuditSigner) != "" || getenv(envAuditSignerFile) != "" || getenv(envAuditVerifier) != "" {
		return auditFromEnv(getenv, records, store, 0, false)
	}
	if o.databaseURL != "" || o.regions != "" {
		return nil, fmt.Errorf("set %s (or %s) and %s: `slotd audit keygen` prints a pair", envAuditSignerFile, envAuditSigner, envAuditVerifier)
	}
	signerPath := filepath.Join(o.dataDir, "audit-signer-key")
	verifierPath := filepath.Join(o.dataDir, "audit-verifier-key")
	if _, err := os.Stat(signerPath); errors.Is(err, os.ErrNotExist) {
		skey, vkey, err := audit.GenerateKey("slotd")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(signerPath, []byte(skey+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(verifierPath, []byte(vkey+"\n"), 0o600); err != nil {
			return nil, err
		}
		log.Warn("generated the audit log's signing key in the data directory; in production keep it apart from the data", "file", signerPath)
	}
	vkey, err := os.ReadFile(verifierPath)
	if err != nil {
		return nil, err
	}
	return auditFromEnv(func(k string) string {
		switch k {
		case envAuditSignerFile:
			return signerPath
		case envAuditVerifier:
			return strings.TrimSpace(string(vkey))
		}
		return ""
	}, records, store, 0, false)
}

// loadKeyring reads the master keys from SLOTD_MASTER_KEYS or
// SLOTD_MASTER_KEYS_FILE. Only for the embedded store, when neither is set,
// a key file is generated once in the data directory (mode 0600) so that
// `slotd` runs with nothing to configure; production keeps its keys away
// from the data.
func loadKeyring(o options, getenv func(string) string, log *slog.Logger) (*secrets.Keyring, error) {
	ring, err := secrets.LoadKeyring(getenv)
	if !errors.Is(err, secrets.ErrNoKeyring) {
		return ring, err
	}
	if o.databaseURL != "" || o.regions != "" {
		return nil, fmt.Errorf("%w (with a database the master keys must come from the environment or a key file)", err)
	}
	path := filepath.Join(o.dataDir, "master-keys")
	if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
		line, gerr := secrets.GenerateKey("k1")
		if gerr != nil {
			return nil, gerr
		}
		if werr := os.WriteFile(path, []byte(line+"\n"), 0o600); werr != nil {
			return nil, fmt.Errorf("write master keys: %w", werr)
		}
		log.Warn("generated master keys in the data directory; in production set SLOTD_MASTER_KEYS_FILE to a key file kept apart from the data", "file", path)
	}
	return secrets.LoadKeyring(func(k string) string {
		if k == secrets.EnvKeysFile {
			return path
		}
		return ""
	})
}

// oauthSecret is the HMAC key of OAuth tokens: SLOTD_OAUTH_SECRET (base64,
// at least 32 bytes), shared by every instance; generated once in the data
// directory for the embedded store.
func oauthSecret(o options, getenv func(string) string, log *slog.Logger) ([]byte, error) {
	if v := strings.TrimSpace(getenv("SLOTD_OAUTH_SECRET")); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) < 32 {
			return nil, errors.New("SLOTD_OAUTH_SECRET must be base64 of at least 32 bytes")
		}
		return b, nil
	}
	if o.databaseURL != "" || o.regions != "" {
		return nil, errors.New("set SLOTD_OAUTH_SECRET (base64, 32 bytes, the same on every instance)")
	}
	path := filepath.Join(o.dataDir, "oauth-secret")
	if b, err := os.ReadFile(path); err == nil {
		return base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write oauth secret: %w", err)
	}
	log.Info("generated the OAuth token key in the data directory", "file", path)
	return b, nil
}

// oidcProviders configures sign-in with Google and Microsoft from the
// environment: SLOTD_OIDC_GOOGLE_CLIENT_ID and _SECRET;
// SLOTD_OIDC_MICROSOFT_CLIENT_ID, _SECRET and _DIRECTORY (the tenant id of
// one Microsoft Entra directory). Redirect URLs are
// <public-url>/v1/oidc/{google,microsoft}/callback, so -public-url must be
// the https URL users reach.
func oidcProviders(o options, getenv func(string) string) ([]accounts.OIDCProvider, error) {
	base := strings.TrimRight(o.publicURL, "/")
	var out []accounts.OIDCProvider
	if id := getenv("SLOTD_OIDC_GOOGLE_CLIENT_ID"); id != "" {
		sec := getenv("SLOTD_OIDC_GOOGLE_CLIENT_SECRET")
		if sec == "" || base == "" {
			return nil, errors.New("sign-in with Google needs SLOTD_OIDC_GOOGLE_CLIENT_SECRET and -public-url")
		}
		out = append(out, accounts.Google(id, sec, base+"/v1/oidc/google/callback"))
	}
	if id := getenv("SLOTD_OIDC_MICROSOFT_CLIENT_ID"); id != "" {
		sec, dir := getenv("SLOTD_OIDC_MICROSOFT_CLIENT_SECRET"), getenv("SLOTD_OIDC_MICROSOFT_DIRECTORY")
		if sec == "" || dir == "" || base == "" {
			return nil, errors.New("sign-in with Microsoft needs SLOTD_OIDC_MICROSOFT_CLIENT_SECRET, SLOTD_OIDC_MICROSOFT_DIRECTORY and -public-url")
		}
		out = append(out, accounts.Microsoft(dir, id, sec, base+"/v1/oidc/microsoft/callback"))
	}
	return out, nil
}
