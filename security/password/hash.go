package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes over the memory
	Threads uint8  // degree of parallelism
	SaltLen uint32 // salt length in bytes
	KeyLen  uint32 // derived key (hash) length in bytes
}

// DefaultParams returns the parameters new hashes are made with: Argon2id at m=19 MiB, t=2, p=1,
// a 16-byte salt and a 32-byte key.
//
// OWASP's Password Storage Cheat Sheet lists m=19 MiB/t=2/p=1 and m=46 MiB/t=1/p=1 (and three
// more) as equally strong against an attacker. We take the 19 MiB one because slotd's cost is
// memory under concurrency: a burst of 100 sign-ins holds about 1.9 GiB instead of 4.6 GiB on a
// 2-core server, and the extra pass costs CPU we have while the server is not saturated by
// sign-ins. With p=1 a hash uses one core, so concurrent sign-ins do not starve the tenant actors
// of more than one core each.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Limits on the cost named by a stored hash, checked before any work is done, so that a crafted
// or corrupted hash cannot make one sign-in allocate gigabytes or run for minutes.
const (
	DefaultMaxMemory     = 256 * 1024 // KiB (256 MiB)
	DefaultMaxTime       = 16
	DefaultMaxThreads    = 16
	DefaultMaxBcryptCost = 16 // 2^16 rounds, about 5 s; imported hashes use 10–14 in practice

	// MaxPasswordBytes bounds the input of Hash and Verify after NFKC normalisation. The policy
	// limit (128 code points) is far below it; this only stops a megabyte "password" from
	// reaching the hash function.
	MaxPasswordBytes = 1024
)

// Options configure a Hasher. The zero value gives the production configuration.
type Options struct {
	// Params for new hashes; the zero value means DefaultParams. Tests pass cheaper ones (for
	// example m=64 KiB, t=1) to stay fast; production code should leave it zero.
	Params Params

	// Limits on the cost named by a stored hash; zero means the Default* constant.
	MaxMemory     uint32 // KiB
	MaxTime       uint32
	MaxThreads    uint8
	MaxBcryptCost int
}

// A Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	params        Params
	maxMemory     uint32
	maxTime       uint32
	maxThreads    uint8
	maxBcryptCost int

	dummy func() string // a hash of a random password, made once, for VerifyDummy
}

// New returns a Hasher with the given options.
func New(opts Options) (*Hasher, error) {
	h := &Hasher{
		params:        opts.Params,
		maxMemory:     opts.MaxMemory,
		maxTime:       opts.MaxTime,
		maxThreads:    opts.MaxThreads,
		maxBcryptCost: opts.MaxBcryptCost,
	}
	if h.params == (Params{}) {
		h.params = DefaultParams()
	}
	if h.maxMemory == 0 {
		h.maxMemory = DefaultMaxMemory
	}
	if h.maxTime == 0 {
		h.maxTime = DefaultMaxTime
	}
	if h.maxThreads == 0 {
		h.maxThreads = DefaultMaxThreads
	}
	if h.maxBcryptCost == 0 {
		h.maxBcryptCost = DefaultMaxBcryptCost
	}
	p := h.params
	switch {
	case p.Time < 1 || p.Threads < 1:
		return nil, fmt.Errorf("password: argon2 time and threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads):
		return nil, fmt.Errorf("password: argon2 memory must be at least 8 KiB per thread")
	case p.SaltLen < 16 || p.SaltLen > maxSaltLen:
		return nil, fmt.Errorf("password: salt length must be between 16 and %d bytes", maxSaltLen)
	case p.KeyLen < 16 || p.KeyLen > maxKeyLen:
		return nil, fmt.Errorf("password: key length must be between 16 and %d bytes", maxKeyLen)
	case p.Memory > h.maxMemory || p.Time > h.maxTime || p.Threads > h.maxThreads:
		return nil, fmt.Errorf("password: params exceed the verification limits; raise the limits too")
	case h.maxBcryptCost < bcrypt.MinCost || h.maxBcryptCost > bcrypt.MaxCost:
		return nil, fmt.Errorf("password: bcrypt cost limit must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	h.dummy = sync.OnceValue(func() string {
		enc, err := h.Hash(rand.Text())
		if err != nil {
			// Hash only fails on a too-long password or a broken random source; neither happens
			// here, and VerifyDummy must not fail, so fall back to the current params' cost.
			return ""
		}
		return enc
	})
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash hashes password (after NFKC normalisation) with Argon2id and a fresh random salt and
// returns it in PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64.
func Hash(password string) (string, error) {
	h, err := New(Options{})
	if err != nil {
		return "", err
	}
	return h.Hash(password)
}

// Verify is Hasher.Verify with the default options.
func Verify(encoded, password string) (ok, needsRehash bool, err error) {
	h, err := New(Options{})
	if err != nil {
		return false, false, err
	}
	return h.Verify(encoded, password)
}

// Hash hashes password; see the package-level Hash.
func (h *Hasher) Hash(password string) (string, error) {
	if len(password) > 4*MaxPasswordBytes {
		return "", errHashTooLong
	}
	pw := Normalize(password)
	if len(pw) > MaxPasswordBytes {
		return "", errHashTooLong
	}
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	p := h.params
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the stored hash encoded, and whether the caller
// should replace the stored hash with h.Hash(password) now that it has the password: true for
// bcrypt, for argon2i, and for Argon2id hashes with a smaller memory, time, salt or key than h's
// parameters. needsRehash is false whenever ok is false.
//
// It accepts Argon2id and Argon2i PHC strings (version 19) and bcrypt hashes ($2a$, $2b$, $2y$).
// A hash it cannot read yields a *HashError (matching ErrMalformedHash or ErrUnsupportedHash),
// never a panic; a wrong password yields ok == false and a nil error.
//
// Argon2 hashes are checked against the NFKC form of the password, as Hash makes them. Hashes
// imported from systems that did not normalise are also checked against the password as given,
// when that differs; bcrypt hashes (always imported) are checked as given first. A match on the
// un-normalised form asks for a rehash.
func (h *Hasher) Verify(encoded, password string) (ok, needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		ah, err := h.parseArgon2(encoded)
		if err != nil {
			return false, false, err
		}
		ok, raw := h.verifyArgon2(ah, password)
		if !ok {
			return false, false, nil
		}
		return true, raw || ah.variant != "argon2id" || ah.weakerThan(h.params), nil
	case strings.HasPrefix(encoded, "$2"):
		if err := h.checkBcrypt(encoded); err != nil {
			return false, false, err
		}
		if len(password) > 4*MaxPasswordBytes {
			return false, false, nil
		}
		if bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password)) == nil {
			return true, true, nil
		}
		if pw := Normalize(password); pw != password &&
			bcrypt.CompareHashAndPassword([]byte(encoded), []byte(pw)) == nil {
			return true, true, nil
		}
		return false, false, nil
	case encoded == "":
		return false, false, hashErr(ErrMalformedHash, "empty hash")
	case strings.HasPrefix(encoded, "$"):
		return false, false, hashErr(ErrUnsupportedHash, "unknown algorithm")
	default:
		return false, false, hashErr(ErrMalformedHash, "not a PHC or bcrypt string")
	}
}

// VerifyDummy spends the time of one Verify against a current-parameter hash and returns
// nothing. Call it when a sign-in names an account that does not exist, so that the response
// takes as long as for an existing account and does not reveal which accounts exist.
func (h *Hasher) VerifyDummy(password string) {
	if enc := h.dummy(); enc != "" {
		_, _, _ = h.Verify(enc, password)
	}
}

// Normalize returns password in Unicode Normalization Form KC, the form that is counted,
// checked and hashed (NIST SP 800-63B §5.1.1.2).
func Normalize(password string) string {
	return norm.NFKC.String(password)
}

// ErrMalformedHash and ErrUnsupportedHash classify a *HashError.
var (
	ErrMalformedHash   = errors.New("password: malformed hash")
	ErrUnsupportedHash = errors.New("password: unsupported hash")
)

// A HashError says why a stored hash could not be used. Its message never contains the hash.
type HashError struct {
	Kind   error  // ErrMalformedHash or ErrUnsupportedHash
	Reason string // a short description, without any part of the hash
}

func (e *HashError) Error() string { return e.Kind.Error() + ": " + e.Reason }
func (e *HashError) Unwrap() error { return e.Kind }

func hashErr(kind error, reason string) error { return &HashError{Kind: kind, Reason: reason} }

const (
	maxSaltLen = 64
	maxKeyLen  = 64
	minSaltLen = 8 // RFC 9106 minimum, for imported hashes
	minKeyLen  = 16
)

var b64 = base64.RawStdEncoding.Strict()

var errHashTooLong = &PolicyError{Code: CodeTooLong, Limit: MaxPasswordBytes,
	Message: fmt.Sprintf("password: longer than %d bytes after normalisation", MaxPasswordBytes)}

type argonHash struct {
	variant string // "argon2id" or "argon2i"
	params  Params
	salt    []byte
	key     []byte
}

func (a argonHash) weakerThan(p Params) bool {
	return a.params.Memory < p.Memory || a.params.Time < p.Time ||
		a.params.SaltLen < p.SaltLen || a.params.KeyLen < p.KeyLen
}

// ParseHash checks that encoded is a hash Verify can use under the default limits, without
// verifying any password. It is what an account import runs on each row.
func ParseHash(encoded string) error {
	h, err := New(Options{})
	if err != nil {
		return err
	}
	return h.ParseHash(encoded)
}

// ParseHash checks that encoded is a hash h.Verify can use, without verifying any password.
func (h *Hasher) ParseHash(encoded string) error {
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		_, err := h.parseArgon2(encoded)
		return err
	case strings.HasPrefix(encoded, "$2"):
		return h.checkBcrypt(encoded)
	case strings.HasPrefix(encoded, "$"):
		return hashErr(ErrUnsupportedHash, "unknown algorithm")
	default:
		return hashErr(ErrMalformedHash, "not a PHC or bcrypt string")
	}
}

// parseArgon2 parses $argon2id$v=19$m=M,t=T,p=P$salt$hash strictly: fields in this order,
// canonical decimal numbers, strict unpadded base64, costs within h's limits.
func (h *Hasher) parseArgon2(encoded string) (argonHash, error) {
	var a argonHash
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		if len(parts) == 5 && parts[0] == "" && strings.HasPrefix(parts[2], "m=") {
			return a, hashErr(ErrUnsupportedHash, "argon2 version 16 (no v= field)")
		}
		return a, hashErr(ErrMalformedHash, "argon2 hash must have 5 $-separated fields")
	}
	a.variant = parts[1]
	switch a.variant {
	case "argon2id", "argon2i":
	case "argon2d":
		return a, hashErr(ErrUnsupportedHash, "argon2d")
	default:
		return a, hashErr(ErrMalformedHash, "unknown argon2 variant")
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return a, hashErr(ErrMalformedHash, "missing version")
	}
	ver, err := parseDecimal(v)
	if err != nil {
		return a, hashErr(ErrMalformedHash, "version: "+err.Error())
	}
	if ver != argon2.Version {
		return a, hashErr(ErrUnsupportedHash, fmt.Sprintf("argon2 version %d", ver))
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return a, hashErr(ErrMalformedHash, "argon2 parameters must be m=,t=,p=")
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		s, ok := strings.CutPrefix(fields[i], name)
		if !ok {
			return a, hashErr(ErrMalformedHash, "argon2 parameters must be m=,t=,p=")
		}
		if vals[i], err = parseDecimal(s); err != nil {
			return a, hashErr(ErrMalformedHash, name[:1]+": "+err.Error())
		}
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case t < 1 || p < 1 || p > 255 || m < 8*p:
		return a, hashErr(ErrMalformedHash, "argon2 parameters out of range")
	case m > h.maxMemory || t > h.maxTime || p > uint32(h.maxThreads):
		return a, hashErr(ErrUnsupportedHash, "argon2 cost above the configured limit")
	}
	// Decoded lengths are bounded by the string lengths checked first.
	if len(parts[4]) > b64.EncodedLen(maxSaltLen) || len(parts[5]) > b64.EncodedLen(maxKeyLen) {
		return a, hashErr(ErrMalformedHash, "salt or hash too long")
	}
	if a.salt, err = b64.DecodeString(parts[4]); err != nil {
		return a, hashErr(ErrMalformedHash, "salt is not base64")
	}
	if a.key, err = b64.DecodeString(parts[5]); err != nil {
		return a, hashErr(ErrMalformedHash, "hash is not base64")
	}
	if len(a.salt) < minSaltLen || len(a.key) < minKeyLen {
		return a, hashErr(ErrMalformedHash, "salt or hash too short")
	}
	a.params = Params{Memory: m, Time: t, Threads: uint8(p), SaltLen: uint32(len(a.salt)), KeyLen: uint32(len(a.key))}
	return a, nil
}

// verifyArgon2 checks the NFKC form of password, then the form as given if it differs; raw
// reports a match on the latter.
func (h *Hasher) verifyArgon2(a argonHash, password string) (ok, raw bool) {
	if len(password) > 4*MaxPasswordBytes {
		return false, false
	}
	pw := Normalize(password)
	if len(pw) <= MaxPasswordBytes && a.matches(pw) {
		return true, false
	}
	if pw != password && len(password) <= MaxPasswordBytes && a.matches(password) {
		return true, true
	}
	return false, false
}

func (a argonHash) matches(pw string) bool {
	p := a.params
	var key []byte
	if a.variant == "argon2id" {
		key = argon2.IDKey([]byte(pw), a.salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	} else {
		key = argon2.Key([]byte(pw), a.salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	}
	return subtle.ConstantTimeCompare(key, a.key) == 1
}

// checkBcrypt validates $2a$/$2b$/$2y$NN$<53 chars of bcrypt base64> and the cost limit, so
// that the bcrypt package only sees well-formed input within our cost budget.
func (h *Hasher) checkBcrypt(encoded string) error {
	if len(encoded) != 60 {
		return hashErr(ErrMalformedHash, "bcrypt hash must be 60 characters")
	}
	if encoded[0] != '$' || encoded[1] != '2' || encoded[3] != '$' || encoded[6] != '$' {
		return hashErr(ErrMalformedHash, "bcrypt hash must start with $2x$NN$")
	}
	switch encoded[2] {
	case 'a', 'b', 'y':
	default:
		// $2$ and $2x$ (the crypt_blowfish sign-extension bug) are not safe to accept as-is.
		return hashErr(ErrUnsupportedHash, "bcrypt variant")
	}
	if !isDigit(encoded[4]) || !isDigit(encoded[5]) {
		return hashErr(ErrMalformedHash, "bcrypt cost")
	}
	cost := int(encoded[4]-'0')*10 + int(encoded[5]-'0')
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return hashErr(ErrMalformedHash, "bcrypt cost out of range")
	}
	if cost > h.maxBcryptCost {
		return hashErr(ErrUnsupportedHash, "bcrypt cost above the configured limit")
	}
	for i := 7; i < len(encoded); i++ {
		if !isBcryptB64(encoded[i]) {
			return hashErr(ErrMalformedHash, "bcrypt salt or hash is not bcrypt base64")
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isBcryptB64(c byte) bool {
	return c == '.' || c == '/' || isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// parseDecimal parses a canonical unsigned decimal that fits in uint32: no sign, no leading
// zeros, at most 10 digits.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical number")
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, errors.New("not a canonical number")
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("number out of range")
	}
	return uint32(n), nil
}
