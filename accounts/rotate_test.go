package accounts_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/slotd/slotd/accounts"
	"github.com/slotd/slotd/security/secrets"
)

// TestRotateKeysResealsTOTPSecrets checks that after RotateKeys every TOTP
// secret opens under the new key alone, so the old key can be retired
// without any account losing its second factor; and that a second run has
// nothing left to do.
func TestRotateKeysResealsTOTPSecrets(t *testing.T) {
	oldKey := secrets.Key{ID: "old", Secret: mustKeyBytes(t)}
	newKey := secrets.Key{ID: "new", Secret: mustKeyBytes(t)}
	oldRing, err := secrets.NewKeyring(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *accounts.Config) { c.Secrets = oldRing })
	ada := e.account("ada@example.com", accounts.RoleStaff, goodPassword)
	b := e.browser()
	b.signIn("ada@example.com", goodPassword)
	secret, _ := b.enrolTOTP()

	both, err := secrets.NewKeyring(newKey, oldKey) // the new key first: active
	if err != nil {
		t.Fatal(err)
	}
	svc, err := accounts.New(accounts.Config{Records: e.store, Passwords: e.hasher, Secrets: both, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := svc.RotateKeys(ctx, "salon"); err != nil || n != 1 {
		t.Fatalf("RotateKeys = %d, %v, want 1 re-sealed", n, err)
	}
	if n, err := svc.RotateKeys(ctx, "salon"); err != nil || n != 0 {
		t.Fatalf("second RotateKeys = %d, %v, want 0", n, err)
	}

	rec, err := e.store.GetRecord(ctx, "salon", "account", ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		TOTP []byte `json:"totp"`
	}
	if err := json.Unmarshal(rec.Value, &stored); err != nil {
		t.Fatal(err)
	}
	if kid, _ := secrets.KeyID(stored.TOTP); kid != "new" {
		t.Fatalf("TOTP secret sealed under %q, want new", kid)
	}
	onlyNew, err := secrets.NewKeyring(newKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := onlyNew.Open(stored.TOTP, "salon", "account/"+ada.ID+"/totp")
	if err != nil || string(plain) != secret {
		t.Fatalf("Open under the new key alone = %q, %v, want the enrolled secret", plain, err)
	}
}

func mustKeyBytes(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, secrets.KeySize)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}
