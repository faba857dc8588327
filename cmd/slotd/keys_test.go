package main

import (
	"context"
	"errors"
	"github.com/slotd/slotd/engine"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
	"github.com/slotd/slotd/security/secrets"

	"golang.org/x/mod/sumdb/note"
)

// runSlotd runs slotd in-process with args and returns its output and error.
func runSlotd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut syncBuffer
	err := run(context.Background(), args, envOf(env), &out, &errOut)
	if t.Failed() || testing.Verbose() {
		t.Logf("slotd %s:\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	}
	return out.String() + errOut.String(), err
}

// mustPebble opens the embedded store of data directory dir, as slotd does.
func mustPebble(t *testing.T, dir string) *pebble.Store {
	t.Helper()
	st, err := pebble.Open(filepath.Join(dir, "store"), pebble.Options{})
	if err != nil {
		t.Fatalf("pebble.Open = %v", err)
	}
	return st
}

func mustKeyLine(t *testing.T, kid string) string {
	t.Helper()
	line, err := secrets.GenerateKey(kid)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func mustRing(t *testing.T, lines ...string) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.ParseKeyring(strings.Join(lines, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestKeysGenerate(t *testing.T) {
	out, err := runSlotd(t, nil, "keys", "generate", "-kid", "2030-01")
	if err != nil {
		t.Fatalf("slotd keys generate = %v", err)
	}
	line, _, _ := strings.Cut(out, "\n")
	ring, err := secrets.ParseKeyring(line)
	if err != nil || ring.ActiveKID() != "2030-01" {
		t.Fatalf("generated entry %q parses as %v, %v; want a keyring with key 2030-01", line, ring, err)
	}
	if _, err := runSlotd(t, nil, "keys", "generate", "-kid", "bad kid"); err == nil {
		t.Fatal("slotd keys generate -kid 'bad kid' = nil error")
	}
	if _, err := runSlotd(t, nil, "keys", "frobnicate"); err == nil {
		t.Fatal("slotd keys frobnicate = nil error")
	}
}

// TestKeysRotate: secrets sealed under k1 are moved to k2 by `slotd keys rotate`, after which
// the keyring without k1 opens all of them, and the rotation is in each tenant's audit trail.
func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k1, k2 := mustKeyLine(t, "k1"), mustKeyLine(t, "k2")
	skey, vkey, err := audit.GenerateKey("slotd-test")
	if err != nil {
		t.Fatal(err)
	}

	// Before: slotd ran with k1 only.
	st := mustPebble(t, dir)
	for _, tenant := range []string{"acme", "beta", "idle"} {
		if err := st.PutDirectory(ctx, gateway.KindTenant, tenant, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	ring1 := mustRing(t, k1)
	integ, err := integrations.New(integrations.Config{Records: st, Keys: ring1})
	if err != nil {
		t.Fatal(err)
	}
	google := integrations.NewConnection{Account: "ada", Provider: integrations.Google, Email: "ada@example.com",
		Credential: integrations.Credential{RefreshToken: "1//ada-refresh"}}
	icloud := integrations.NewConnection{Account: "ada", Provider: integrations.ICloud, Email: "ada@icloud.example",
		Credential: integrations.Credential{Username: "ada@icloud.example", Password: "abcd-efgh-ijkl-mnop"}}
	var conns []integrations.Connection
	for _, c := range []struct {
		tenant string
		nc     integrations.NewConnection
	}{{"acme", google}, {"acme", icloud}, {"beta", google}} {
		conn, err := integ.Connect(ctx, c.tenant, "account:ada", c.nc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	subjects := secrets.NewSubjectKeys(ring1, privacy.NewKeyStore(st))
	sealedName, err := subjects.SealFor(ctx, "acme", "subj-1", "booking-1", []byte("Ada Lovelace"))
	if err != nil {
		t.Fatal(err)
	}
	// A booking's customer: the tenant's customer index salt and the
	// customer's subject key, both sealed with the master key too.
	if _, err := privacy.NewCodec(ring1, st).PrepareCommand(ctx, "acme", engine.Book{Customer: engine.Customer{Name: "Ada", Email: "ada@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{secrets.EnvKeys: k2 + "," + k1, envAuditSigner: skey, envAuditVerifier: vkey}
	out, err := runSlotd(t, env, "keys", "rotate", "-data", dir)
	if err != nil {
		t.Fatalf("slotd keys rotate = %v", err)
	}
	for _, want := range []string{"rotating to key k2 (keyring: k2, k1), 3 tenants", "tenant acme: moved 2 calendar credentials, 3 data subject secrets to k2",
		"calendar credentials: 3 moved to k2, 0 already under it", "data subject secrets: 3 moved to k2", "checked again: all second-factor secrets and calendar credentials and data subject secrets are under k2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Idempotent.
	out, err = runSlotd(t, env, "keys", "rotate", "-data", dir)
	if err != nil || !strings.Contains(out, "calendar credentials: 0 moved to k2, 3 already under it") ||
		!strings.Contains(out, "data subject secrets: 0 moved to k2, 2 already under it") {
		t.Fatalf("second slotd keys rotate = %v; want nothing moved", err)
	}

	// After: k1 is removed from the keyring, and everything still opens.
	st = mustPebble(t, dir)
	defer st.Close()
	ring2 := mustRing(t, k2)
	integ2, err := integrations.New(integrations.Config{Records: st, Keys: ring2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		got, err := integ2.Get(ctx, c.Tenant, c.ID)
		if err != nil || got.KeyID != "k2" {
			t.Fatalf("Get(%s) = %+v, %v; want key k2", c.ID, got, err)
		}
		if _, err := integ2.Credential(ctx, c.Tenant, c.ID); err != nil {
			t.Fatalf("Credential(%s) with k2 only = %v", c.ID, err)
		}
	}
	name, err := secrets.NewSubjectKeys(ring2, privacy.NewKeyStore(st)).OpenFor(ctx, "acme", "subj-1", "booking-1", sealedName)
	if err != nil || string(name) != "Ada Lovelace" {
		t.Fatalf("OpenFor with k2 only = %q, %v", name, err)
	}
	if _, _, err := privacy.NewCodec(ring2, st).Subject(ctx, "acme", "ada@example.com"); err != nil {
		t.Fatalf("customer index with k2 only = %v", err)
	}
	if _, err := secrets.NewSubjectKeys(mustRing(t, k1), privacy.NewKeyStore(st)).OpenFor(ctx, "acme", "subj-1", "booking-1", sealedName); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Fatalf("OpenFor with k1 only after rotation = %v, want ErrUnknownKey", err)
	}

	// The rotation is in acme's and beta's audit trails (once each: the second run moved
	// nothing), not in idle's.
	v, _ := note.NewVerifier(vkey)
	l, err := audit.New(auditstore.New(st, nil), audit.Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]string{"acme": "5", "beta": "1", "idle": ""} {
		rep, err := l.Verify(ctx, tenant, nil)
		if err != nil {
			t.Fatalf("audit Verify(%s) = %v", tenant, err)
		}
		es, _ := l.Entries(ctx, tenant, 0, rep.Checkpoint.Size)
		if want == "" {
			if len(es) != 0 {
				t.Fatalf("audit entries of %s = %v, want none", tenant, es)
			}
			continue
		}
		if len(es) != 1 || es[0].Action != audit.ActionKeyRotation || es[0].Detail["new_key_id"] != "k2" || es[0].Detail["resealed"] != want {
			t.Fatalf("audit entries of %s = %v, want one key rotation to k2 of %s secrets", tenant, es, want)
		}
	}
}

// TestKeysRotateUnknownKey: a secret under a key missing from the keyring makes the tenant
// fail, loudly, and the run exit non-zero, without touching the secret.
func TestKeysRotateUnknownKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k0, k1, k2 := mustKeyLine(t, "k0"), mustKeyLine(t, "k1"), mustKeyLine(t, "k2")
	st := mustPebble(t, dir)
	_ = st.PutDirectory(ctx, gateway.KindTenant, "acme", []byte("{}"))
	integ, _ := integrations.New(integrations.Config{Records: st, Keys: mustRing(t, k0)})
	c, err := integ.Connect(ctx, "acme", "account:ada", integrations.NewConnection{Account: "ada", Provider: integrations.Google,
		Email: "ada@example.com", Credential: integrations.Credential{RefreshToken: "1//ada-refresh"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, err := runSlotd(t, map[string]string{secrets.EnvKeys: k2 + "," + k1}, "keys", "rotate", "-data", dir)
	if err == nil || !strings.Contains(err.Error(), "acme") || !strings.Contains(out, `unknown key id "k0"`) {
		t.Fatalf("slotd keys rotate with k0 missing = %v; want tenant acme to fail naming k0", err)
	}
	st = mustPebble(t, dir)
	defer st.Close()
	integ, _ = integrations.New(integrations.Config{Records: st, Keys: mustRing(t, k0)})
	if _, err := integ.Credential(ctx, "acme", c.ID); err != nil {
		t.Fatalf("Credential under k0 after the failed rotation = %v; want it untouched", err)
	}
}
