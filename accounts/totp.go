package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP after RFC 6238 with the parameters every authenticator app accepts:
// SHA-1, 6 digits, 30-second steps, a 160-bit secret. A code is accepted
// for its own step and one step either side (clock drift), and only for a
// step later than the last one accepted: each code works once.
const (
	totpPeriod     = 30
	totpSkew       = 1
	recoveryCount  = 10
	recoveryBytes  = 10 // 80 bits, 16 base32 characters
	recoveryLabel  = "slotd/accounts/recovery/v1/"
	totpSecretSize = 20
)

var totpValidate = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is what an authenticator app needs to add the account:
// the secret (for typing) and the otpauth:// URL (for a QR code).
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// newTOTP generates a secret for the account.
func (s *Service) newTOTP(email string) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.Issuer, AccountName: email, Period: totpPeriod,
		SecretSize: totpSecretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("generate totp secret: %w", err)
	}
	return TOTPEnrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// step is the TOTP time step of t.
func step(t time.Time) int64 { return t.Unix() / totpPeriod }

// checkTOTP returns the time step whose code code is, if it is the code of
// a step within the skew of now and after lastStep. Every candidate step
// is computed and compared in constant time.
func checkTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	var matched int64
	ok := 0
	cur := step(now)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		st := cur + d
		want, err := hotp.GenerateCodeCustom(secret, uint64(st), totpValidate)
		if err != nil {
			return 0, false
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		if eq == 1 && st > lastStep && ok == 0 {
			matched, ok = st, 1
		}
	}
	return matched, ok == 1
}

var recoveryEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newRecoveryCodes returns recoveryCount fresh codes ("abcd-efgh-ijkl-mnop")
// and their hashes, which are all that is stored.
func newRecoveryCodes() (codes, hashes []string) {
	for range recoveryCount {
		b := make([]byte, recoveryBytes)
		_, _ = rand.Read(b)
		raw := recoveryEnc.EncodeToString(b)
		codes = append(codes, raw[0:4]+"-"+raw[4:8]+"-"+raw[8:12]+"-"+raw[12:16])
		hashes = append(hashes, sha256Hex(recoveryLabel, raw))
	}
	return codes, hashes
}

// recoveryHash is the stored form of a recovery code as typed: case,
// spaces and dashes do not matter.
func recoveryHash(code string) (string, bool) {
	c := strings.ToLower(code)
	c = strings.NewReplacer("-", "", " ", "").Replace(c)
	if len(c) != 16 {
		return "", false
	}
	if _, err := recoveryEnc.DecodeString(c); err != nil {
		return "", false
	}
	return sha256Hex(recoveryLabel, c), true
}

// useRecoveryCode removes code's hash from hashes; ok reports whether it
// was there. Each stored hash is compared in constant time.
func useRecoveryCode(hashes []string, code string) (rest []string, ok bool) {
	h, valid := recoveryHash(code)
	if !valid {
		return hashes, false
	}
	idx := -1
	for i, c := range hashes {
		if subtle.ConstantTimeCompare([]byte(c), []byte(h)) == 1 {
			idx = i
		}
	}
	if idx < 0 {
		return hashes, false
	}
	rest = append(append([]string(nil), hashes[:idx]...), hashes[idx+1:]...)
	return rest, true
}
