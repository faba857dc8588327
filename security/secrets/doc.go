// Package secrets encrypts the secrets slotd keeps for others: third-party credentials (calendar
// refresh tokens, app-specific passwords) and, per data subject, personal data that must be
// erasable. It is invariant 6 of the design ("no secret in the clear") and the basis of GDPR
// erasure by crypto-shredding.
//
// The threats it addresses:
//
//   - A stolen database or backup. Secrets are stored only as AES-256-GCM ciphertexts. The master
//     keys live outside the database (a file or an environment variable, see [LoadKeyring]) and
//     are never written to it, so a copy of the database alone decrypts nothing.
//   - Ciphertexts moved between rows. Each ciphertext is bound, as GCM additional authenticated
//     data, to its tenant id and record id (length-prefixed, so "ab"+"c" differs from "a"+"bc").
//     A ciphertext copied into another tenant's row, or onto another record, fails to open with
//     [ErrAuthentication] instead of yielding a secret in the wrong place (invariant 4).
//   - Nonce reuse and key wear-out. Every seal draws a fresh 32-byte salt and derives its own
//     AES-256 key with HKDF-SHA256 from the master key, then a fresh 12-byte nonce: no two records
//     share a key, so GCM's per-key message limits and nonce-collision bounds never come close.
//   - Tampering. Any changed, added or removed byte makes Open fail; it never returns altered
//     plaintext, and it never panics on hostile input (fuzzed).
//   - A master key that must be replaced. Each ciphertext names its key id (KID). A [Keyring]
//     holds several keys, one active; [Keyring.Reseal] moves a ciphertext to the active key and
//     [Keyring.NeedsRotation] finds those still under an old one, so `slotd keys rotate` can
//     re-encrypt everything while the service runs, after which the old key is removed.
//   - Personal data that must be forgotten everywhere, including journals and backups that
//     cannot be rewritten. [SubjectKeys] encrypts a data subject's fields under a random key of
//     their own, stored only wrapped by the master key in a [KeyStore]. [SubjectKeys.Forget]
//     deletes that key, and every copy of every ciphertext for the subject becomes unreadable
//     ([ErrShredded]), even to someone holding the master keys.
//
// Only the standard library's crypto/aes and crypto/cipher (GCM) and golang.org/x/crypto/hkdf
// are used; no primitive is written here.
//
// # Ciphertext format
//
// A blob sealed by a Keyring (version 1):
//
//	0x01 | kidLen (1 byte, 1–64) | kid | salt (32) | nonce (12) | AES-GCM ciphertext and tag (16)
//
// with key = HKDF-SHA256(master[kid], salt, info = "slotd/secrets/v1") and
//
//	AAD = blob[0 : 2+kidLen+32] || u32be(len(tenant)) || tenant || 0x00 || u32be(len(record)) || record
//
// A blob sealed for a data subject (version 2):
//
//	0x02 | subject key id (16) | salt (32) | nonce (12) | AES-GCM ciphertext and tag (16)
//
// with key = HKDF-SHA256(subject key, salt, info = "slotd/secrets/v1/subject-data") and the AAD
// made the same way from the header, tenant, subject and record.
package secrets
