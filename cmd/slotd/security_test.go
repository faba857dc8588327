package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestEmbeddedGeneratesKeysOnce checks that slotd on the embedded store,
// with no master keys or OAuth key configured, generates both once in the
// data directory (readable by its owner only) and reuses them on restart.
func TestEmbeddedGeneratesKeysOnce(t *testing.T) {
	dir := t.TempDir()
	noKeys := map[string]string{"SLOTD_MASTER_KEYS": "", "SLOTD_MASTER_KEYS_FILE": "", "SLOTD_OAUTH_SECRET": "",
		"SLOTD_AUDIT_SIGNER_KEY": "", "SLOTD_AUDIT_SIGNER_KEY_FILE": "", "SLOTD_AUDIT_VERIFIER_KEY": ""}
	args := []string{"-addr", "127.0.0.1:0", "-data", dir}
	first := startSlotd(t, args, noKeys)
	if err := first.stop(t); err != nil {
		t.Fatalf("stop = %v", err)
	}
	read := func() map[string]string {
		out := map[string]string{}
		for _, name := range []string{"master-keys", "oauth-secret", "audit-signer-key"} {
			p := filepath.Join(dir, name)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("stat %s: %v", name, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
			}
			b, _ := os.ReadFile(p)
			out[name] = string(b)
		}
		return out
	}
	before := read()
	second := startSlotd(t, args, noKeys)
	if err := second.stop(t); err != nil {
		t.Fatalf("stop = %v", err)
	}
	after := read()
	for k := range before {
		if before[k] != after[k] {
			t.Errorf("%s changed across a restart", k)
		}
	}
}

// TestDatabaseNeedsKeysFromEnvironment checks that with a database slotd
// refuses to start without master keys from the environment: keys never
// live beside (or in) the data.
func TestDatabaseNeedsKeysFromEnvironment(t *testing.T) {
	o := options{databaseURL: "postgres://unused", dataDir: t.TempDir()}
	if _, err := loadKeyring(o, func(string) string { return "" }, discardLogger()); err == nil {
		t.Fatal("loadKeyring with a database and no SLOTD_MASTER_KEYS = nil error, want a refusal")
	}
	if _, err := oauthSecret(o, func(string) string { return "" }, discardLogger()); err == nil {
		t.Fatal("oauthSecret with a database and no SLOTD_OAUTH_SECRET = nil error, want a refusal")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestOIDCProvidersFromEnvironment(t *testing.T) {
	env := map[string]string{
		"SLOTD_OIDC_GOOGLE_CLIENT_ID": "gid", "SLOTD_OIDC_GOOGLE_CLIENT_SECRET": "gsecret",
		"SLOTD_OIDC_MICROSOFT_CLIENT_ID": "mid", "SLOTD_OIDC_MICROSOFT_CLIENT_SECRET": "msecret", "SLOTD_OIDC_MICROSOFT_DIRECTORY": "dir-1",
	}
	ps, err := oidcProviders(options{publicURL: "https://book.example.com/"}, func(k string) string { return env[k] })
	if err != nil || len(ps) != 2 {
		t.Fatalf("oidcProviders = %v, %v; want google and microsoft", ps, err)
	}
	if ps[0].Name != "google" || ps[0].RedirectURL != "https://book.example.com/v1/oidc/google/callback" {
		t.Errorf("google provider = %+v", ps[0])
	}
	if ps[1].Name != "microsoft" || ps[1].Issuer != "https://login.microsoftonline.com/dir-1/v2.0" {
		t.Errorf("microsoft provider = %+v", ps[1])
	}
	delete(env, "SLOTD_OIDC_GOOGLE_CLIENT_SECRET")
	if _, err := oidcProviders(options{publicURL: "https://book.example.com"}, func(k string) string { return env[k] }); err == nil {
		t.Error("oidcProviders without the Google secret = nil error, want a refusal")
	}
	if ps, err := oidcProviders(options{}, func(string) string { return "" }); err != nil || len(ps) != 0 {
		t.Errorf("oidcProviders with nothing set = %v, %v; want none", ps, err)
	}
}
