package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

const (
	versionMaster  = 0x01 // sealed under a master key of a Keyring
	versionSubject = 0x02 // sealed under a data subject's key

	saltSize    = 32
	nonceSize   = 12
	tagSize     = 16
	subjectKID  = 16 // size of a subject key's random id
	maxIDLength = 4096

	infoMaster      = "slotd/secrets/v1"
	infoSubjectKey  = "slotd/secrets/v1/subject-key"
	infoSubjectData = "slotd/secrets/v1/subject-data"
)

// Errors from Open, Reseal and OpenFor. Match them with errors.Is.
var (
	// ErrMalformed: the blob is not a ciphertext of this package (too short, unknown version,
	// invalid key id).
	ErrMalformed = errors.New("secrets: malformed ciphertext")
	// ErrUnknownKey: the blob names a key id the keyring does not hold (retired, or never
	// loaded). The error is an *UnknownKeyError naming the KID.
	ErrUnknownKey = errors.New("secrets: unknown key id")
	// ErrAuthentication: the blob does not authenticate: it was sealed for another tenant,
	// record or subject, under another key with the same id, or it was altered.
	ErrAuthentication = errors.New("secrets: ciphertext does not authenticate")
	// ErrShredded: the data subject's key was forgotten; the ciphertext can never be opened.
	ErrShredded = errors.New("secrets: subject key forgotten, data erased")
)

// An UnknownKeyError names the key id a ciphertext was sealed under that the keyring lacks.
type UnknownKeyError struct{ KID string }

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("secrets: unknown key id %q (retired, or missing from the keyring)", e.KID)
}

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrUnknownKey }

// Seal encrypts plaintext under the active master key for the record recordID of tenant
// tenantID, and returns the ciphertext blob to store (format in the package doc). Both ids must
// be non-empty; Open needs the same ones.
func (k *Keyring) Seal(tenantID, recordID string, plaintext []byte) ([]byte, error) {
	return k.seal(infoMaster, tenantID, recordID, plaintext)
}

// Open decrypts a blob made by Seal for the same tenant and record. It fails with ErrMalformed,
// ErrUnknownKey or ErrAuthentication, and never returns altered plaintext.
func (k *Keyring) Open(blob []byte, tenantID, recordID string) ([]byte, error) {
	return k.open(infoMaster, blob, tenantID, recordID)
}

// Reseal opens blob under the key it names and seals its plaintext again under the active key,
// with a fresh salt and nonce. It is the step `slotd keys rotate` runs on every stored secret.
func (k *Keyring) Reseal(blob []byte, tenantID, recordID string) ([]byte, error) {
	pt, err := k.Open(blob, tenantID, recordID)
	if err != nil {
		return nil, err
	}
	return k.Seal(tenantID, recordID, pt)
}

// NeedsRotation reports whether blob is sealed under a key other than the active one.
func (k *Keyring) NeedsRotation(blob []byte) (bool, error) {
	kid, err := KeyID(blob)
	if err != nil {
		return false, err
	}
	return kid != k.active, nil
}

// KeyID returns the key id a blob made by Seal names, without opening it.
func KeyID(blob []byte) (string, error) {
	b, err := parseMaster(blob)
	if err != nil {
		return "", err
	}
	return b.kid, nil
}

type masterBlob struct {
	kid    string
	header []byte // version, kidLen, kid, salt: the part bound as AAD
	salt   []byte
	nonce  []byte
	sealed []byte // ciphertext and tag
}

func parseMaster(blob []byte) (masterBlob, error) {
	var b masterBlob
	if len(blob) < 2 {
		return b, ErrMalformed
	}
	if blob[0] != versionMaster {
		if blob[0] == versionSubject {
			return b, fmt.Errorf("%w: a data subject's ciphertext (open it with SubjectKeys.OpenFor)", ErrMalformed)
		}
		return b, fmt.Errorf("%w: unknown version", ErrMalformed)
	}
	n := int(blob[1])
	if n < 1 || n > maxKIDLen {
		return b, fmt.Errorf("%w: key id length", ErrMalformed)
	}
	hdr := 2 + n + saltSize
	if len(blob) < hdr+nonceSize+tagSize {
		return b, fmt.Errorf("%w: too short", ErrMalformed)
	}
	b.kid = string(blob[2 : 2+n])
	if checkKID(b.kid) != nil {
		return b, fmt.Errorf("%w: key id", ErrMalformed)
	}
	b.header = blob[:hdr]
	b.salt = blob[2+n : hdr]
	b.nonce = blob[hdr : hdr+nonceSize]
	b.sealed = blob[hdr+nonceSize:]
	return b, nil
}

func (k *Keyring) seal(info, tenantID, recordID string, plaintext []byte) ([]byte, error) {
	if err := checkIDs(tenantID, recordID); err != nil {
		return nil, err
	}
	kid := k.active
	out := make([]byte, 0, 2+len(kid)+saltSize+nonceSize+len(plaintext)+tagSize)
	out = append(out, versionMaster, byte(len(kid)))
	out = append(out, kid...)
	hdr := len(out) + saltSize
	out = out[:hdr+nonceSize]
	if _, err := rand.Read(out[len(out)-saltSize-nonceSize:]); err != nil {
		return nil, fmt.Errorf("secrets: read salt and nonce: %w", err)
	}
	aead, err := deriveAEAD(k.keys[kid], out[hdr-saltSize:hdr], info)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, out[hdr:], plaintext, aad(out[:hdr], tenantID, recordID)), nil
}

func (k *Keyring) open(info string, blob []byte, tenantID, recordID string) ([]byte, error) {
	if err := checkIDs(tenantID, recordID); err != nil {
		return nil, err
	}
	b, err := parseMaster(blob)
	if err != nil {
		return nil, err
	}
	master, ok := k.keys[b.kid]
	if !ok {
		return nil, &UnknownKeyError{KID: b.kid}
	}
	aead, err := deriveAEAD(master, b.salt, info)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, b.nonce, b.sealed, aad(b.header, tenantID, recordID))
	if err != nil {
		return nil, ErrAuthentication
	}
	return pt, nil
}

// deriveAEAD returns AES-256-GCM under HKDF-SHA256(secret, salt, info).
func deriveAEAD(secret, salt []byte, info string) (cipher.AEAD, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), key); err != nil {
		return nil, fmt.Errorf("secrets: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return cipher.NewGCM(block)
}

// aad returns header || u32be(len(id0)) || id0 || 0x00 || u32be(len(id1)) || id1 || 0x00 || ...
// The length prefixes make the encoding injective: no two id lists give the same bytes.
func aad(header []byte, ids ...string) []byte {
	n := len(header)
	for _, id := range ids {
		n += 5 + len(id)
	}
	out := make([]byte, 0, n)
	out = append(out, header...)
	for i, id := range ids {
		if i > 0 {
			out = append(out, 0)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(id)))
		out = append(out, id...)
	}
	return out
}

func checkIDs(ids ...string) error {
	for _, id := range ids {
		if id == "" || len(id) > maxIDLength {
			return fmt.Errorf("secrets: tenant, subject and record ids must be 1 to %d bytes", maxIDLength)
		}
	}
	return nil
}
