package password

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
)

func TestPolicyCheck(t *testing.T) {
	p := DefaultPolicy()
	jane := Account{Email: "jane.doe+work@example.com", Words: []string{"Jane Doe", "Bright Smile Dental"}}
	janeMFA := jane
	janeMFA.SecondFactor = true
	tests := []struct {
		name     string
		password string
		account  Account
		want     string // error code, "" for accepted
	}{
		{"empty", "", jane, CodeTooShort},
		{"14 characters", "tuba lemon cat", jane, CodeTooShort},
		{"15 characters", "tuba lemon cats", jane, ""},
		{"8 characters with a second factor", "tuba:cat", janeMFA, ""},
		{"7 characters with a second factor", "tubacat", janeMFA, CodeTooShort},
		{"14 characters with a second factor", "tuba lemon cat", janeMFA, ""},
		{"64 characters", strings.Repeat("tuba lemon ", 6)[:64], jane, ""},
		{"128 characters", strings.Repeat("gravel orbit ", 10)[:128], jane, ""},
		{"129 characters", strings.Repeat("gravel orbit ", 10)[:129], jane, CodeTooLong},
		{"a megabyte", strings.Repeat("x", 1<<20), jane, CodeTooLong},

		// No composition rules: all lowercase, no digits, no symbols is fine when long.
		{"lowercase passphrase", "purple elephants dance quietly", jane, ""},
		{"only digits, long and random", "8302 6617 2949 0055", jane, ""},
		// Paste with spaces: spaces count and are kept.
		{"pasted with spaces", "  correct horse battery staple  ", jane, ""},
		{"tabs and spaces", "gravel\torbit\tlantern moss", jane, ""},

		// Unicode: code points after NFKC, not bytes.
		{"15 CJK code points (45 bytes)", "日本語のパスワードはとても長い", jane, ""},
		{"14 CJK code points", "日本語のパスワードはとても", jane, CodeTooShort},
		{"15 different emoji", "🔑🐙🌵🎲🚲🧭🍋🦉🎻🪁🧀🌋🛶🎈🪴", jane, ""},
		{"14 decomposed é count as 14", strings.Repeat("e\u0301", 14), jane, CodeTooShort},
		{"decomposed accents", "de\u0301ja\u0300 vu, mon ami!", jane, ""},
		{"128 emoji", strings.Repeat("🔑🐙🌵🎲🚲🧭🍋🦉🎻🪁🧀🌋🛶🎈🪴🐝", 8), jane, ""},
		{"129 emoji", strings.Repeat("🔑🐙🌵🎲🚲🧭🍋🦉🎻🪁🧀🌋🛶🎈🪴🐝", 8) + "🐝", jane, CodeTooLong},

		// Common passwords, case-insensitive.
		{"listed, with second factor", "password", janeMFA, CodeCommon},
		{"listed, mixed case", "PassWord", janeMFA, CodeCommon},
		{"listed, 8 digits", "12345678", janeMFA, CodeCommon},
		{"listed word padded with digits", "iloveyou12345678", jane, CodeCommon},
		{"listed word padded with symbols", "football!!!!!!!!", jane, CodeCommon},
		{"listed word spaced out", "s u n s h i n e 1 2 3 4", jane, CodeCommon},
		{"repeated listed word", "passwordpassword", jane, CodeCommon},
		{"one character repeated", "aaaaaaaaaaaaaaaa", jane, CodeCommon},
		{"short unit repeated", "abcabcabcabcabcabc", jane, CodeCommon},
		{"digit run wrapping", "1234567890123456", jane, CodeCommon},
		{"letter run", "abcdefghijklmnop", jane, CodeCommon},
		{"descending run", "9876543210987654", jane, CodeCommon},
		{"listed words inside a passphrase are fine", "dragon castle under a purple moon", jane, ""},

		// Context.
		{"product name", "my slotd password is long", jane, CodeContextual},
		{"product name, upper case", "SLOTD-for-my-dental-practice", jane, CodeContextual},
		{"email local part", "jane.doe loves long walks", jane, CodeContextual},
		{"email local part, other case", "JANE.DOE loves long walks", jane, CodeContextual},
		{"whole email", "jane.doe+work@example.com!", jane, CodeContextual},
		{"name from Words", "janedoe is my name forever", jane, CodeContextual},
		{"business from Words", "bright smile dental 2024!!", jane, CodeContextual},
		{"short local part only refused whole", "joker in the garden path", Account{Email: "jo@example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.password, tt.account)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.password, err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Code != tt.want {
				t.Fatalf("Check(%q) = %v, want code %s", tt.password, err, tt.want)
			}
			if pe.Message == "" || len(tt.password) >= 12 && strings.Contains(pe.Message, tt.password) {
				t.Fatalf("Check(%q) message %q is empty or echoes the password", tt.password, pe.Message)
			}
		})
	}
}

func TestPolicyErrorsMatchSentinels(t *testing.T) {
	p := Policy{} // zero value is the default policy
	for _, tt := range []struct {
		pw   string
		a    Account
		want error
		code string
	}{
		{"short", Account{}, ErrTooShort, "password_too_short"},
		{strings.Repeat("z", 200), Account{}, ErrTooLong, "password_too_long"},
		{"qwertyuiop", Account{SecondFactor: true}, ErrCommon, "password_common"},
		{"slotd is my favourite app", Account{}, ErrContextual, "password_contextual"},
	} {
		err := p.Check(tt.pw, tt.a)
		if !errors.Is(err, tt.want) {
			t.Errorf("Check(%q) = %v, want errors.Is %v", tt.pw, err, tt.want)
		}
		var pe *PolicyError
		if errors.As(err, &pe) && pe.Code != tt.code {
			t.Errorf("Check(%q).Code = %q, want the stable code %q", tt.pw, pe.Code, tt.code)
		}
	}
	if err := p.Check("short", Account{}); err.(*PolicyError).Limit != 15 {
		t.Errorf("too-short Limit = %d, want 15", err.(*PolicyError).Limit)
	}
}

func TestPolicyCustomLimits(t *testing.T) {
	p := Policy{MinLength: 20, MaxLength: 64, ProductNames: []string{"acme"}}
	if err := p.Check("nineteen characters", Account{}); !errors.Is(err, ErrTooShort) {
		t.Errorf("Check(19 chars, min 20) = %v, want too short", err)
	}
	if err := p.Check(strings.Repeat("q", 65), Account{}); !errors.Is(err, ErrTooLong) {
		t.Errorf("Check(65 chars, max 64) = %v, want too long", err)
	}
	if err := p.Check("slotd is fine here, acme is not", Account{}); !errors.Is(err, ErrContextual) {
		t.Errorf("Check(acme) = %v, want contextual", err)
	}
	if err := p.Check("slotd is fine here, nothing else", Account{}); err != nil {
		t.Errorf("Check(slotd, product acme) = %v, want nil", err)
	}
}

func TestBlocklist(t *testing.T) {
	if n := BlocklistLen(); n < 10000 {
		t.Fatalf("BlocklistLen() = %d, want at least 10,000", n)
	}
	lines := strings.Split(strings.TrimSuffix(blocklistText, "\n"), "\n")
	seen := make(map[string]bool, len(lines))
	for i, l := range lines {
		if l == "" || l != strings.ToLower(l) || strings.TrimSpace(l) != l || seen[l] {
			t.Fatalf("blocklist.txt line %d = %q: want non-empty, lowercase, trimmed, unique", i+1, l)
		}
		for _, r := range l {
			if !unicode.IsPrint(r) {
				t.Fatalf("blocklist.txt line %d has an unprintable character", i+1)
			}
		}
		seen[l] = true
	}
	for _, pw := range []string{"123456", "password", "qwerty", "dragon", "letmein", "trustno1", "PASSWORD", "Letmein"} {
		if !IsCommon(pw) {
			t.Errorf("IsCommon(%q) = false, want true", pw)
		}
	}
	for _, pw := range []string{"gravel orbit lantern moss", "tuba lemon cats"} {
		if IsCommon(pw) {
			t.Errorf("IsCommon(%q) = true, want false", pw)
		}
	}
}

func ExamplePolicy_Check() {
	p := DefaultPolicy()
	for _, pw := range []string{"Tr0ub4dor&3", "qwerty123456789!", "correct horse battery staple"} {
		err := p.Check(pw, Account{Email: "jane@example.com"})
		var pe *PolicyError
		if errors.As(err, &pe) {
			fmt.Println(pe.Code)
		} else {
			fmt.Println("ok")
		}
	}
	// Output:
	// password_too_short
	// password_common
	// ok
}
