package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// MustKeyring returns a keyring of fresh random keys with the given ids, the first active.
func MustKeyring(tb testing.TB, kids ...string) *Keyring {
	tb.Helper()
	keys := make([]Key, len(kids))
	for i, kid := range kids {
		keys[i] = Key{ID: kid, Secret: randomKey(tb)}
	}
	k, err := NewKeyring(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func randomKey(tb testing.TB) []byte {
	tb.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := MustKeyring(t, "k1")
	for _, pt := range [][]byte{nil, []byte("x"), []byte("1//0refresh-token-from-google"), bytes.Repeat([]byte{0xAB}, 1<<16)} {
		blob, err := k.Seal("tenant-a", "calendar-conn-1", pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 4 && bytes.Contains(blob, pt) {
			t.Fatalf("Seal output contains the plaintext")
		}
		got, err := k.Open(blob, "tenant-a", "calendar-conn-1")
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open(Seal(%d bytes)) = %d bytes, %v", len(pt), len(got), err)
		}
		if want := 1 + 1 + 2 + saltSize + nonceSize + len(pt) + tagSize; len(blob) != want {
			t.Fatalf("len(blob) = %d, want %d", len(blob), want)
		}
		if kid, err := KeyID(blob); kid != "k1" || err != nil {
			t.Fatalf("KeyID = %q, %v, want k1", kid, err)
		}
	}
}

func TestOpenBindsTenantAndRecord(t *testing.T) {
	k := MustKeyring(t, "k1")
	blob, err := k.Seal("tenant-a", "rec-1", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, tenant, record string }{
		{"other tenant", "tenant-b", "rec-1"},
		{"other record", "tenant-a", "rec-2"},
		{"swapped", "rec-1", "tenant-a"},
		{"boundary moved left", "tenant-", "arec-1"},
		{"boundary moved right", "tenant-ar", "ec-1"},
		{"case", "Tenant-a", "rec-1"},
		{"nul added", "tenant-a\x00", "rec-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Open(blob, tt.tenant, tt.record)
			if !errors.Is(err, ErrAuthentication) || got != nil {
				t.Fatalf("Open(blob, %q, %q) = %q, %v, want ErrAuthentication", tt.tenant, tt.record, got, err)
			}
		})
	}
	// The length prefixes keep ("ab","c") and ("a","bc") apart in the AAD.
	if bytes.Equal(aad(nil, "ab", "c"), aad(nil, "a", "bc")) {
		t.Fatal("aad is ambiguous")
	}
	for _, ids := range [][2]string{{"", "r"}, {"t", ""}, {strings.Repeat("t", maxIDLength+1), "r"}} {
		if _, err := k.Seal(ids[0], ids[1], []byte("x")); err == nil {
			t.Errorf("Seal(%q, %q) = nil error, want one", ids[0][:min(len(ids[0]), 8)], ids[1])
		}
	}
}

func TestEverySingleByteChangeFails(t *testing.T) {
	k := MustKeyring(t, "key-2025")
	blob, err := k.Seal("tenant-a", "rec-1", []byte("an iCloud app-specific password"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xFF} {
			tampered := bytes.Clone(blob)
			tampered[i] ^= mask
			got, err := k.Open(tampered, "tenant-a", "rec-1")
			if err == nil || got != nil {
				t.Fatalf("Open(blob with byte %d ^ %#x) = %q, %v, want an error", i, mask, got, err)
			}
			if !errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Open(blob with byte %d ^ %#x) error = %v, not a typed error", i, mask, err)
			}
		}
	}
	// Truncated at every length, and extended.
	for n := 0; n < len(blob); n++ {
		if _, err := k.Open(blob[:n], "tenant-a", "rec-1"); err == nil {
			t.Fatalf("Open(blob[:%d]) = nil error", n)
		}
	}
	if _, err := k.Open(append(bytes.Clone(blob), 0), "tenant-a", "rec-1"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Open(blob + 1 byte) = %v, want ErrAuthentication", err)
	}
}

func TestUnknownKID(t *testing.T) {
	a := MustKeyring(t, "a")
	blob, err := a.Seal("t", "r", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = MustKeyring(t, "b").Open(blob, "t", "r")
	var uk *UnknownKeyError
	if !errors.Is(err, ErrUnknownKey) || !errors.As(err, &uk) || uk.KID != "a" {
		t.Fatalf("Open under a keyring without kid a = %v, want *UnknownKeyError{a}", err)
	}
	// Same id, different key: it does not authenticate.
	if _, err := MustKeyring(t, "a").Open(blob, "t", "r"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Open under another key named a = %v, want ErrAuthentication", err)
	}
}

func TestRotation(t *testing.T) {
	old := Key{ID: "2024-11", Secret: randomKey(t)}
	next := Key{ID: "2025-06", Secret: randomKey(t)}
	before, err := NewKeyring(old)
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for i := 0; i < 20; i++ {
		b, err := before.Seal("tenant-a", fmt.Sprint("rec-", i), []byte(fmt.Sprint("token-", i)))
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}

	// The new key goes first; the old one stays until every blob is resealed.
	during, err := NewKeyring(next, old)
	if err != nil {
		t.Fatal(err)
	}
	if during.ActiveKID() != "2025-06" || strings.Join(during.KIDs(), ",") != "2025-06,2024-11" {
		t.Fatalf("keyring = %v", during)
	}
	for i, b := range blobs {
		if rot, err := during.NeedsRotation(b); !rot || err != nil {
			t.Fatalf("NeedsRotation(old blob) = %v, %v, want true", rot, err)
		}
		// Still readable mid-rotation.
		if _, err := during.Open(b, "tenant-a", fmt.Sprint("rec-", i)); err != nil {
			t.Fatalf("Open(old blob) during rotation: %v", err)
		}
		nb, err := during.Reseal(b, "tenant-a", fmt.Sprint("rec-", i))
		if err != nil {
			t.Fatal(err)
		}
		if rot, err := during.NeedsRotation(nb); rot || err != nil {
			t.Fatalf("NeedsRotation(resealed) = %v, %v, want false", rot, err)
		}
		blobs[i] = nb
	}
	if _, err := during.Reseal(blobs[0], "tenant-b", "rec-0"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Reseal for the wrong tenant = %v, want ErrAuthentication", err)
	}

	// The old key is retired: resealed blobs open, anything still under it does not.
	after, err := NewKeyring(next)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		got, err := after.Open(b, "tenant-a", fmt.Sprint("rec-", i))
		if err != nil || string(got) != fmt.Sprint("token-", i) {
			t.Fatalf("Open(resealed %d) after retiring the old key = %q, %v", i, got, err)
		}
	}
	stale, err := before.Seal("tenant-a", "rec-x", []byte("missed by rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Open(stale, "tenant-a", "rec-x"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open(blob under retired key) = %v, want ErrUnknownKey", err)
	}
}

func TestSaltsAndNoncesAreUnique(t *testing.T) {
	k := MustKeyring(t, "k")
	salts := map[string]bool{}
	nonces := map[string]bool{}
	for i := 0; i < 10000; i++ {
		blob, err := k.Seal("t", "r", []byte("same plaintext"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseMaster(blob)
		if err != nil {
			t.Fatal(err)
		}
		if salts[string(b.salt)] || nonces[string(b.nonce)] {
			t.Fatalf("salt or nonce repeated after %d seals", i)
		}
		salts[string(b.salt)], nonces[string(b.nonce)] = true, true
	}
}

func TestParseKeyring(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	tests := []struct {
		name, text string
		wantKIDs   string // "" means an error is expected
	}{
		{"comma list", "a:" + k1 + ",b:" + k2, "a,b"},
		{"spaces", " a : " + k1 + " , b:" + k2 + " ", "a,b"},
		{"file form", "# active first\n\n2025-06:" + k1 + "\n# previous\n2024-11:" + k2 + "\n", "2025-06,2024-11"},
		{"empty", "", ""},
		{"only comments", "# nothing\n", ""},
		{"no colon", "a" + k1, ""},
		{"bad base64", "a:!!!!", ""},
		{"short key", "a:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), ""},
		{"all-zero key", "a:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), ""},
		{"duplicate kid", "a:" + k1 + ",a:" + k2, ""},
		{"duplicate key", "a:" + k1 + ",b:" + k1, ""},
		{"bad kid", "a b:" + k1, ""},
		{"long kid", strings.Repeat("k", 65) + ":" + k1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.text)
			if tt.wantKIDs == "" {
				if err == nil {
					t.Fatalf("ParseKeyring = %v, want an error", k)
				}
				if strings.Contains(err.Error(), k1) || strings.Contains(err.Error(), k2) {
					t.Fatalf("error %q contains key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring: %v", err)
			}
			if got := strings.Join(k.KIDs(), ","); got != tt.wantKIDs {
				t.Fatalf("KIDs = %s, want %s", got, tt.wantKIDs)
			}
		})
	}
}

func TestKeyringNeverPrintsKeys(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5A}, 32)
	k, err := NewKeyring(Key{ID: "k1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(secret)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{k, *k, Key{ID: "k1", Secret: secret}, struct{ K *Keyring }{k}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, b64) || strings.Contains(out, "5a5a5a") || strings.Contains(out, "ZZZZ") ||
				strings.Contains(out, "90 90 90") || strings.Contains(out, "[90") {
				t.Fatalf("Sprintf(%s, %T) = %q leaks the key", verb, v, out)
			}
		}
	}
}

func TestLoadKeyring(t *testing.T) {
	entry, err := GenerateKey("2025-06")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("# slotd master keys\n"+entry+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "keys-readable")
	if err := os.WriteFile(open, []byte(entry+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"inline", map[string]string{EnvKeys: entry}, false},
		{"file", map[string]string{EnvKeysFile: good}, false},
		{"both", map[string]string{EnvKeys: entry, EnvKeysFile: good}, true},
		{"neither", map[string]string{}, true},
		{"world-readable file", map[string]string{EnvKeysFile: open}, true},
		{"missing file", map[string]string{EnvKeysFile: filepath.Join(dir, "nope")}, true},
		{"bad inline", map[string]string{EnvKeys: "2025-06:short"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKeyring(env(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadKeyring = %v, %v, wantErr %v", k, err, tt.wantErr)
			}
			if err == nil && k.ActiveKID() != "2025-06" {
				t.Fatalf("ActiveKID = %q", k.ActiveKID())
			}
		})
	}
	if _, err := LoadKeyring(env(nil)); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("LoadKeyring(no env) = %v, want ErrNoKeyring", err)
	}
}

func ExampleKeyring_Seal() {
	ring, err := ParseKeyring("2025-06:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		panic(err)
	}
	blob, err := ring.Seal("tenant-42", "calendar/google/staff-7", []byte("1//refresh-token"))
	if err != nil {
		panic(err)
	}
	kid, _ := KeyID(blob)
	pt, _ := ring.Open(blob, "tenant-42", "calendar/google/staff-7")
	_, err = ring.Open(blob, "tenant-43", "calendar/google/staff-7")
	fmt.Println(kid, string(pt), errors.Is(err, ErrAuthentication))
	// Output: 2025-06 1//refresh-token true
}

// BenchmarkDeriveAEAD is the cost of the key every sealed or opened record
// derives (HKDF-SHA256, then AES-256-GCM set up), and BenchmarkHKDF that of
// the HKDF step alone: the bulk of the privacy codec's garbage per booking.
//
//	go test -run '^$' -bench 'DeriveAEAD|HKDF' -benchmem ./security/secrets/
func BenchmarkDeriveAEAD(b *testing.B) {
	secret, salt := make([]byte, KeySize), make([]byte, saltSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := deriveAEAD(secret, salt, infoSubjectData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHKDF(b *testing.B) {
	secret, salt := make([]byte, KeySize), make([]byte, saltSize)
	key := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(infoSubjectData)), key); err != nil {
			b.Fatal(err)
		}
	}
}
