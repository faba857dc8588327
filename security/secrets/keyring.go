package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of a master key and of a subject key: 32 bytes, for AES-256.
const KeySize = 32

// Environment variables LoadKeyring reads. Exactly one of them must be set.
const (
	// EnvKeys holds the keyring itself, as "kid1:base64,kid2:base64" (see ParseKeyring).
	EnvKeys = "SLOTD_MASTER_KEYS"
	// EnvKeysFile names a file holding the keyring, one "kid:base64" per line.
	EnvKeysFile = "SLOTD_MASTER_KEYS_FILE"
)

const maxKIDLen = 64

// A Keyring holds the master keys, each named by a key id (KID), and which one is active: new
// ciphertexts are sealed under the active key; the others only open older ciphertexts until
// they are re-sealed. A Keyring is immutable and safe for concurrent use. Its String and
// GoString methods name the KIDs and never print key material.
type Keyring struct {
	active string
	kids   []string // in the order given, active first
	keys   map[string]keyBytes
}

// keyBytes is key material that formats as "[redacted]" with every fmt verb, so that even a
// Keyring printed by value through reflection shows no key.
type keyBytes []byte

func (keyBytes) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// A Key is one master key for NewKeyring.
type Key struct {
	ID     string // 1–64 characters from [A-Za-z0-9._-]
	Secret []byte // KeySize random bytes
}

// String hides the secret.
func (k Key) String() string { return "Key{" + k.ID + ", [redacted]}" }

// GoString hides the secret from %#v too.
func (k Key) GoString() string { return k.String() }

// NewKeyring returns a keyring of keys; keys[0] is active. KIDs must be unique, and so must the
// secrets (the same secret under two KIDs is a configuration mistake that would make rotation
// a no-op). The secrets are copied.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secrets: keyring has no keys")
	}
	k := &Keyring{active: keys[0].ID, keys: make(map[string]keyBytes, len(keys))}
	for _, key := range keys {
		if err := checkKID(key.ID); err != nil {
			return nil, err
		}
		if len(key.Secret) != KeySize {
			return nil, fmt.Errorf("secrets: key %q is %d bytes, want %d", key.ID, len(key.Secret), KeySize)
		}
		if _, dup := k.keys[key.ID]; dup {
			return nil, fmt.Errorf("secrets: key id %q appears twice", key.ID)
		}
		if bytes.Equal(key.Secret, make([]byte, KeySize)) {
			return nil, fmt.Errorf("secrets: key %q is all zeros", key.ID)
		}
		for id, other := range k.keys {
			if subtle.ConstantTimeCompare(other, key.Secret) == 1 {
				return nil, fmt.Errorf("secrets: keys %q and %q are the same key", id, key.ID)
			}
		}
		k.keys[key.ID] = bytes.Clone(key.Secret)
		k.kids = append(k.kids, key.ID)
	}
	return k, nil
}

func checkKID(kid string) error {
	if kid == "" || len(kid) > maxKIDLen {
		return fmt.Errorf("secrets: key id must be 1 to %d characters", maxKIDLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("secrets: key id %q may only use letters, digits, '.', '_' and '-'", kid)
		}
	}
	return nil
}

// ParseKeyring parses a keyring from its text form: entries "kid:base64key" separated by commas
// or newlines, the first entry active. Blank lines and lines starting with '#' are ignored, and
// spaces around entries are trimmed. Keys are 32 bytes in standard base64 (padding optional), as
// GenerateKey makes them. For example:
//
//	# active key first; keep the previous one until `slotd keys rotate` has run
//	2025-06:kXv7...base64...=
//	2024-11:Q2Fu...base64...=
//
// Error messages name the entry by position and KID, never by its key.
func ParseKeyring(text string) (*Keyring, error) {
	var keys []Key
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			kid, b64, ok := strings.Cut(entry, ":")
			if !ok {
				return nil, fmt.Errorf("secrets: keyring entry %d: want kid:base64key", len(keys)+1)
			}
			kid = strings.TrimSpace(kid)
			if err := checkKID(kid); err != nil {
				return nil, fmt.Errorf("keyring entry %d: %w", len(keys)+1, err)
			}
			secret, err := decodeKey(strings.TrimSpace(b64))
			if err != nil {
				return nil, fmt.Errorf("secrets: keyring entry %d (%s): key is not base64 of %d bytes", len(keys)+1, kid, KeySize)
			}
			keys = append(keys, Key{ID: kid, Secret: secret})
		}
	}
	return NewKeyring(keys...)
}

func decodeKey(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != KeySize {
		return nil, errors.New("wrong length")
	}
	return b, nil
}

// ErrNoKeyring is returned by LoadKeyring when neither EnvKeys nor EnvKeysFile is set.
var ErrNoKeyring = errors.New("secrets: no master keys: set " + EnvKeys + " or " + EnvKeysFile)

// LoadKeyring loads the keyring from the environment, through getenv (os.Getenv in production):
// from the variable EnvKeys, or from the file named by EnvKeysFile. Exactly one must be set.
// A keyring file must not be readable or writable by others (mode 0400 or 0440 is right; a
// Kubernetes secret volume needs defaultMode: 0400). Master keys never come from the database.
func LoadKeyring(getenv func(string) string) (*Keyring, error) {
	inline, file := getenv(EnvKeys), getenv(EnvKeysFile)
	switch {
	case inline != "" && file != "":
		return nil, fmt.Errorf("secrets: both %s and %s are set; set one", EnvKeys, EnvKeysFile)
	case inline != "":
		k, err := ParseKeyring(inline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return k, nil
	case file != "":
		fi, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("secrets: keyring file: %w", err)
		}
		if fi.Mode().Perm()&0o007 != 0 {
			return nil, fmt.Errorf("secrets: keyring file %s has mode %v; it must not be accessible to others (chmod 0400)", file, fi.Mode().Perm())
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("secrets: keyring file %s is not a regular file", file)
		}
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secrets: keyring file: %w", err)
		}
		k, err := ParseKeyring(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", EnvKeysFile, file, err)
		}
		return k, nil
	default:
		return nil, ErrNoKeyring
	}
}

// GenerateKey returns a keyring entry "kid:base64" with a fresh random 32-byte key, for
// `slotd keys generate` and for operators adding a key at the front of the keyring.
func GenerateKey(kid string) (string, error) {
	if err := checkKID(kid); err != nil {
		return "", err
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("secrets: generate key: %w", err)
	}
	return kid + ":" + base64.StdEncoding.EncodeToString(secret), nil
}

// ActiveKID returns the key id new ciphertexts are sealed under.
func (k *Keyring) ActiveKID() string { return k.active }

// KIDs returns the key ids in the keyring, the active one first.
func (k *Keyring) KIDs() []string { return append([]string(nil), k.kids...) }

// String names the keys without their material. String, GoString and Format have value
// receivers so that a Keyring printed by value is redacted too.
func (k Keyring) String() string {
	return fmt.Sprintf("Keyring{active: %s, kids: %s}", k.active, strings.Join(k.kids, ","))
}

// GoString hides the key material from %#v too.
func (k Keyring) GoString() string { return k.String() }

// Format hides the key material from every verb (%v, %+v, %#v, %s, %x, …).
func (k Keyring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }
