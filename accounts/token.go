package accounts

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/slotd/slotd/persistence"
)

// Bearer secrets (session ids, WebSocket tokens, sign-in challenges, OIDC
// states) share one form:
//
//	tag "." tenant "." base64url(32 random bytes)
//
// The tenant is not secret: it says which tenant's records to look the
// secret up in. Only SHA-256(tag, secret) is stored, as the record key.
const (
	tagSession   = "s1"
	tagChallenge = "c1"
	tagWSToken   = "w1"
	tagOIDCState = "o1"

	secretLen     = 32                            // 256 bits
	secretB64Len  = (secretLen*8 + 5) / 6         // 43
	maxTokenLen   = 3 + 63 + 1 + secretB64Len + 2 // tag, tenant, dots
	grantPrefix   = "session:"                    // Principal.Grant of a session
	csrfLabel     = "slotd/accounts/csrf/v1"      // HMAC message of the CSRF token
	hashLabelBase = "slotd/accounts/secret/v1/"   // domain separation of secret hashes
)

var b64 = base64.RawURLEncoding.Strict()

// bearerSecret is a decoded token.
type bearerSecret struct {
	tag    string
	tenant string
	secret []byte
}

// newSecret returns a fresh secret of kind tag for tenant.
func newSecret(tag, tenant string) bearerSecret {
	b := make([]byte, secretLen)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return weak bytes)
	return bearerSecret{tag: tag, tenant: tenant, secret: b}
}

// String is the token as handed to the client.
func (t bearerSecret) String() string {
	return t.tag + "." + t.tenant + "." + b64.EncodeToString(t.secret)
}

// hash is the record key: hex SHA-256 over the tag and the secret.
func (t bearerSecret) hash() string {
	h := sha256.New()
	h.Write([]byte(hashLabelBase + t.tag + "/"))
	h.Write(t.secret)
	return hex.EncodeToString(h.Sum(nil))
}

// grant is the Principal.Grant of a session: its hash, prefixed.
func (t bearerSecret) grant() string { return grantPrefix + t.hash() }

// csrf is the session's CSRF token: an HMAC keyed by the session secret,
// so it needs no storage and is worthless without the cookie.
func (t bearerSecret) csrf() string {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte(csrfLabel))
	return b64.EncodeToString(m.Sum(nil))
}

// parseSecret decodes a token of kind tag. It never panics and accepts
// only the exact form newSecret makes.
func parseSecret(tag, s string) (bearerSecret, bool) {
	if len(s) > maxTokenLen {
		return bearerSecret{}, false
	}
	rest, ok := strings.CutPrefix(s, tag+".")
	if !ok {
		return bearerSecret{}, false
	}
	tenant, enc, ok := strings.Cut(rest, ".")
	if !ok || !persistence.ValidTenant(tenant) || len(enc) != secretB64Len {
		return bearerSecret{}, false
	}
	b, err := b64.DecodeString(enc)
	if err != nil || len(b) != secretLen {
		return bearerSecret{}, false
	}
	return bearerSecret{tag: tag, tenant: tenant, secret: b}, true
}

// sha256Hex is the hex SHA-256 of label and s.
func sha256Hex(label, s string) string {
	h := sha256.Sum256([]byte(label + s))
	return hex.EncodeToString(h[:])
}
