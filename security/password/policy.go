package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Policy decides which new passwords are acceptable, after NIST SP 800-63B §5.1.1 and OWASP
// ASVS 5 (V6.2): length is what matters, so it sets a long minimum and a generous maximum,
// imposes no composition rules (no "one digit, one symbol"), allows every printable character
// including spaces (so passphrases and pasted passwords from a manager work), and refuses
// passwords that attackers try first: common or breached ones, and ones built from the
// account's own context.
//
// Zero fields take the defaults of DefaultPolicy, so Policy{} is the default policy.
type Policy struct {
	// MinLength is the minimum for accounts that sign in with a password alone (default 15).
	MinLength int
	// MinLengthWithSecondFactor is the minimum when a second factor is enabled (default 8).
	MinLengthWithSecondFactor int
	// MaxLength is the maximum (default 128; ASVS asks that at least 64 be allowed).
	MaxLength int
	// ProductNames are refused inside passwords (default "slotd").
	ProductNames []string
}

// DefaultPolicy returns the policy described on Policy.
func DefaultPolicy() Policy {
	return Policy{MinLength: 15, MinLengthWithSecondFactor: 8, MaxLength: 128, ProductNames: []string{"slotd"}}
}

// Account is the context a password is checked in.
type Account struct {
	// Email is the account's email; its local part (before the @, without a +tag) and the whole
	// address may not appear in the password.
	Email string
	// SecondFactor says the account has a second factor enabled, which lowers the minimum.
	SecondFactor bool
	// Words are further context-specific words to refuse inside the password: the person's
	// name, the business (tenant) name, the username.
	Words []string
}

// Stable error codes of PolicyError. Codes are only ever added, never renamed.
const (
	CodeTooShort   = "password_too_short"
	CodeTooLong    = "password_too_long"
	CodeCommon     = "password_common"
	CodeContextual = "password_contextual"
)

// A PolicyError says why a password was refused. Code is stable and machine-readable; Message
// is for the person choosing the password and never contains the password.
type PolicyError struct {
	Code    string
	Message string
	Limit   int // the length limit, for password_too_short and password_too_long
}

func (e *PolicyError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrTooShort) (and the others) match on Code.
func (e *PolicyError) Is(target error) bool {
	t, ok := target.(*PolicyError)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is; the errors Check returns carry specific messages.
var (
	ErrTooShort   = &PolicyError{Code: CodeTooShort, Message: "password is too short"}
	ErrTooLong    = &PolicyError{Code: CodeTooLong, Message: "password is too long"}
	ErrCommon     = &PolicyError{Code: CodeCommon, Message: "password is too common"}
	ErrContextual = &PolicyError{Code: CodeContextual, Message: "password contains account details"}
)

func tooShort(n int) *PolicyError {
	return &PolicyError{Code: CodeTooShort, Limit: n, Message: fmt.Sprintf(
		"Use at least %d characters. A few unrelated words with spaces between them make a long password that is easy to remember.", n)}
}

func tooLong(n int) *PolicyError {
	return &PolicyError{Code: CodeTooLong, Limit: n, Message: fmt.Sprintf("Use at most %d characters.", n)}
}

// Check returns nil if password is acceptable for account a, or a *PolicyError. Length is
// counted in Unicode code points after NFKC normalisation.
//
// A password is "common" (password_common) when, compared case-insensitively, it
//   - is on the bundled list of 10,000 common passwords, with or without its spaces;
//   - is a listed password padded only with digits, symbols and spaces ("iloveyou12345678");
//   - repeats a short unit or a listed password ("aaaaaaaaaaaaaaa", "passwordpassword");
//   - is a straight run of letters or digits ("abcdefghijklmnop", "1234567890123456").
//
// A password is "contextual" (password_contextual) when it contains a product name, the email
// address or its local part, or one of a.Words; words shorter than 4 characters are refused
// only as the whole password, so a short local part like "jo" does not rule out half the
// dictionary.
func (p Policy) Check(password string, a Account) error {
	p = p.withDefaults()
	if len(password) > 4*MaxPasswordBytes { // no need to normalise megabytes
		return tooLong(p.MaxLength)
	}
	pw := Normalize(password)
	n := utf8.RuneCountInString(pw)
	if n > p.MaxLength {
		return tooLong(p.MaxLength)
	}
	minLen := p.MinLength
	if a.SecondFactor {
		minLen = p.MinLengthWithSecondFactor
	}
	if n < minLen {
		return tooShort(minLen)
	}
	lower := strings.ToLower(pw)
	squeezed := removeSpaces(lower)
	if containsContext(squeezed, p.contextWords(a)) {
		return &PolicyError{Code: CodeContextual, Message: "Do not use your email address, your name or the name of this service in your password."}
	}
	if isCommon(lower, squeezed) {
		return &PolicyError{Code: CodeCommon, Message: "This password is on a list of common or breached passwords, or follows a simple pattern. Choose another."}
	}
	return nil
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.MinLength == 0 {
		p.MinLength = d.MinLength
	}
	if p.MinLengthWithSecondFactor == 0 {
		p.MinLengthWithSecondFactor = d.MinLengthWithSecondFactor
	}
	if p.MaxLength == 0 {
		p.MaxLength = d.MaxLength
	}
	if p.ProductNames == nil {
		p.ProductNames = d.ProductNames
	}
	return p
}

func (p Policy) contextWords(a Account) []string {
	words := append([]string(nil), p.ProductNames...)
	words = append(words, a.Words...)
	if email := strings.TrimSpace(a.Email); email != "" {
		words = append(words, email)
		if at := strings.LastIndexByte(email, '@'); at > 0 {
			local := email[:at]
			if plus := strings.IndexByte(local, '+'); plus > 0 {
				local = local[:plus]
			}
			words = append(words, local)
		}
	}
	return words
}

func containsContext(squeezed string, words []string) bool {
	for _, w := range words {
		w = removeSpaces(strings.ToLower(Normalize(w)))
		switch {
		case w == "":
		case utf8.RuneCountInString(w) >= 4:
			if strings.Contains(squeezed, w) {
				return true
			}
		case squeezed == w:
			return true
		}
	}
	return false
}

// IsCommon reports whether password is on the bundled blocklist (case-insensitively, after NFKC
// normalisation) or follows one of the simple patterns Check refuses as common.
func IsCommon(password string) bool {
	lower := strings.ToLower(Normalize(password))
	return isCommon(lower, removeSpaces(lower))
}

func isCommon(lower, squeezed string) bool {
	list := blocklist()
	if _, ok := list[lower]; ok {
		return true
	}
	if _, ok := list[squeezed]; ok {
		return true
	}
	// A listed word padded with digits and symbols only.
	if letters := keep(squeezed, unicode.IsLetter); letters != "" && letters != squeezed {
		if _, ok := list[letters]; ok {
			return true
		}
	} else if letters == "" {
		if digits := keep(squeezed, unicode.IsDigit); digits != squeezed {
			if _, ok := list[digits]; ok {
				return true
			}
		}
	}
	return isRepeated(squeezed, list) || isRun(squeezed)
}

// isRepeated reports whether s is k ≥ 2 copies of a unit that is at most 4 code points long or
// is itself a listed password.
func isRepeated(s string, list map[string]struct{}) bool {
	r := []rune(s)
	for d := 1; d <= len(r)/2; d++ {
		if len(r)%d != 0 {
			continue
		}
		unit := string(r[:d])
		if strings.Repeat(unit, len(r)/d) != s {
			continue
		}
		if _, listed := list[unit]; d <= 4 || listed {
			return true
		}
	}
	return false
}

// isRun reports whether s is a run of at least 4 code points each one more (or each one less)
// than the one before, digits wrapping from 9 to 0.
func isRun(s string) bool {
	r := []rune(s)
	if len(r) < 4 {
		return false
	}
	for _, step := range []rune{1, -1} {
		run := true
		for i := 1; i < len(r) && run; i++ {
			next := r[i-1] + step
			if unicode.IsDigit(r[i-1]) && r[i-1] <= '9' {
				next = '0' + (r[i-1]-'0'+step+10)%10
			}
			run = r[i] == next
		}
		if run {
			return true
		}
	}
	return false
}

func removeSpaces(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func keep(s string, f func(rune) bool) string {
	return strings.Map(func(r rune) rune {
		if f(r) {
			return r
		}
		return -1
	}, s)
}
