package password

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// testParams are cheap Argon2id parameters so that the tests run fast; production uses
// DefaultParams.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// MustHasher returns a Hasher with cheap parameters.
func MustHasher(tb testing.TB, opts Options) *Hasher {
	tb.Helper()
	if opts.Params == (Params{}) {
		opts.Params = testParams
	}
	h, err := New(opts)
	if err != nil {
		tb.Fatalf("New(%+v): %v", opts, err)
	}
	return h
}

func TestDefaultParamsAreOWASP(t *testing.T) {
	want := Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if got := DefaultParams(); got != want {
		t.Fatalf("DefaultParams() = %+v, want %+v", got, want)
	}
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Params() != want {
		t.Fatalf("New(Options{}).Params() = %+v, want %+v", h.Params(), want)
	}
	// One real hash at the production cost.
	enc, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("Hash() = %q, want the OWASP parameters in the PHC string", enc)
	}
	ok, rehash, err := Verify(enc, "correct horse battery staple")
	if !ok || rehash || err != nil {
		t.Fatalf("Verify(Hash(pw), pw) = %v, %v, %v, want true, false, nil", ok, rehash, err)
	}
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashRoundTrip(t *testing.T) {
	h := MustHasher(t, Options{})
	for _, pw := range []string{
		"correct horse battery staple",
		"  leading and trailing spaces  ",
		"パスワードはとても長い秘密です",
		"emoji 🔑🔑🔑 are fine too",
		"",
	} {
		t.Run(pw, func(t *testing.T) {
			enc, err := h.Hash(pw)
			if err != nil {
				t.Fatalf("Hash(%q): %v", pw, err)
			}
			if !phcRE.MatchString(enc) {
				t.Fatalf("Hash(%q) = %q, not a PHC argon2id string with 16-byte salt and 32-byte key", pw, enc)
			}
			ok, rehash, err := h.Verify(enc, pw)
			if !ok || rehash || err != nil {
				t.Fatalf("Verify(Hash(%q)) = %v, %v, %v, want true, false, nil", pw, ok, rehash, err)
			}
			for _, wrong := range []string{pw + "x", strings.ToUpper(pw) + "!", strings.TrimSpace(pw) + "."} {
				if ok, rehash, err := h.Verify(enc, wrong); ok || rehash || err != nil {
					t.Errorf("Verify(Hash(%q), %q) = %v, %v, %v, want false, false, nil", pw, wrong, ok, rehash, err)
				}
			}
		})
	}
}

func TestHashUsesFreshSalt(t *testing.T) {
	h := MustHasher(t, Options{})
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		enc, err := h.Hash("same password every time")
		if err != nil {
			t.Fatal(err)
		}
		salt := strings.Split(enc, "$")[4]
		if seen[salt] {
			t.Fatalf("salt %q repeated after %d hashes", salt, i)
		}
		seen[salt] = true
	}
}

func TestHashRefusesHugeInput(t *testing.T) {
	h := MustHasher(t, Options{})
	_, err := h.Hash(strings.Repeat("a", MaxPasswordBytes+1))
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("Hash(1025 bytes) error = %v, want ErrTooLong", err)
	}
	ok, _, err := h.Verify("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", strings.Repeat("a", 1<<20))
	if ok || err != nil {
		t.Fatalf("Verify(1 MiB password) = %v, %v, want false, nil", ok, err)
	}
}

// Vectors made by the reference implementation (Debian's argon2 CLI, phc-winner-argon2):
//
//	echo -n "correct horse battery staple" | argon2 slotd-vector-salt -id -t 2 -k 19456 -p 1 -l 32 -e
//	echo -n "correct horse battery staple" | argon2 slotd-vector-salt -i -t 3 -k 4096 -p 1 -l 32 -e
//
// and PHP's password_hash documentation example for bcrypt ($2y$, "rasmuslerdorf").
func TestVerifyInteropVectors(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, encoded, password string
		wantRehash              bool
	}{
		{"argon2id OWASP params", "$argon2id$v=19$m=19456,t=2,p=1$c2xvdGQtdmVjdG9yLXNhbHQ$j8dSU7c1T2zVi3nDnVEKfJb0AJ6qwpL/jK44QtBSuKQ", "correct horse battery staple", false},
		{"argon2i is upgraded", "$argon2i$v=19$m=4096,t=3,p=1$c2xvdGQtdmVjdG9yLXNhbHQ$3olNAOYDS3h6ndpI1X3qtLzhOtr1cTS3LqeJSh89IUI", "correct horse battery staple", true},
		{"bcrypt $2y$ from PHP", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "rasmuslerdorf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tt.encoded, tt.password)
			if !ok || rehash != tt.wantRehash || err != nil {
				t.Fatalf("Verify(%q) = %v, %v, %v, want true, %v, nil", tt.encoded, ok, rehash, err, tt.wantRehash)
			}
			if ok, _, err := h.Verify(tt.encoded, tt.password+" "); ok || err != nil {
				t.Fatalf("Verify(%q, wrong) = %v, %v, want false, nil", tt.encoded, ok, err)
			}
		})
	}
}

func TestVerifyBcryptImportAndUpgrade(t *testing.T) {
	h := MustHasher(t, Options{})
	const pw = "imported from the old booking system"
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, variant := range []string{"$2a$", "$2b$", "$2y$"} {
		enc := variant + string(b[4:])
		t.Run(variant, func(t *testing.T) {
			ok, rehash, err := h.Verify(enc, pw)
			if !ok || !rehash || err != nil {
				t.Fatalf("Verify(bcrypt %s) = %v, %v, %v, want true, true, nil", variant, ok, rehash, err)
			}
			if ok, rehash, err := h.Verify(enc, "not the password"); ok || rehash || err != nil {
				t.Fatalf("Verify(bcrypt, wrong) = %v, %v, %v, want false, false, nil", ok, rehash, err)
			}
			// The upgrade at sign-in: re-hash, store, and the new hash needs nothing more.
			upgraded, err := h.Hash(pw)
			if err != nil {
				t.Fatal(err)
			}
			if ok, rehash, err := h.Verify(upgraded, pw); !ok || rehash || err != nil {
				t.Fatalf("Verify(upgraded) = %v, %v, %v, want true, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestVerifyNeedsRehashForWeakerArgon2(t *testing.T) {
	strong := MustHasher(t, Options{Params: Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}})
	tests := []struct {
		name string
		p    Params
		want bool
	}{
		{"same", strong.Params(), false},
		{"less memory", Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, true},
		{"fewer passes", Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true},
		{"shorter key", Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 16}, true},
		{"stronger", Params{Memory: 256, Time: 3, Threads: 2, SaltLen: 32, KeyLen: 64}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := MustHasher(t, Options{Params: tt.p}).Hash("a long enough passphrase")
			if err != nil {
				t.Fatal(err)
			}
			ok, rehash, err := strong.Verify(enc, "a long enough passphrase")
			if !ok || rehash != tt.want || err != nil {
				t.Fatalf("Verify(%+v hash) = %v, %v, %v, want true, %v, nil", tt.p, ok, rehash, err, tt.want)
			}
		})
	}
}

func TestVerifyNormalisesUnicode(t *testing.T) {
	h := MustHasher(t, Options{})
	composed := "caf\u00e9 au lait sans sucre"    // é as one code point
	decomposed := "cafe\u0301 au lait sans sucre" // e + combining acute
	ligature := "\ufb01ne print on the contract"  // ﬁ ligature
	enc, err := h.Hash(composed)
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify(enc, decomposed); !ok || rehash || err != nil {
		t.Fatalf("Verify(Hash(composed), decomposed) = %v, %v, %v, want true, false, nil", ok, rehash, err)
	}
	enc, err = h.Hash(ligature)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := h.Verify(enc, "fine print on the contract"); !ok {
		t.Fatalf("Verify(Hash(ligature), fi) = false, want true (NFKC)")
	}

	// A hash some other system made over the un-normalised bytes still verifies, and is
	// re-hashed in normal form.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(decomposed), salt, 1, 64, 1, 32)
	foreign := fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s", b64.EncodeToString(salt), b64.EncodeToString(key))
	if ok, rehash, err := h.Verify(foreign, decomposed); !ok || !rehash || err != nil {
		t.Fatalf("Verify(un-normalised foreign hash) = %v, %v, %v, want true, true, nil", ok, rehash, err)
	}
}

func TestVerifyTamperedHashFails(t *testing.T) {
	h := MustHasher(t, Options{})
	const pw = "tamper with me if you can"
	enc, err := h.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	// Change every character of the salt and hash fields in turn to another base64 character.
	start := strings.LastIndex(enc, "$") - 22
	for i := start; i < len(enc); i++ {
		if enc[i] == '$' {
			continue
		}
		c := byte('A')
		if enc[i] == 'A' {
			c = 'B'
		}
		tampered := enc[:i] + string(c) + enc[i+1:]
		ok, _, err := h.Verify(tampered, pw)
		if ok {
			t.Fatalf("Verify(hash with byte %d changed) = true", i)
		}
		if err != nil && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("Verify(hash with byte %d changed) error = %v, want nil or ErrMalformedHash", i, err)
		}
	}
	// Changing the cost parameters changes the result too.
	for _, tampered := range []string{
		strings.Replace(enc, "m=64,", "m=72,", 1),
		strings.Replace(enc, "t=1,", "t=2,", 1),
		strings.Replace(enc, "$argon2id$", "$argon2i$", 1),
	} {
		if ok, _, _ := h.Verify(tampered, pw); ok {
			t.Fatalf("Verify(%q) = true, want false", tampered)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := MustHasher(t, Options{})
	good := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name, encoded string
		want          error
	}{
		{"empty", "", ErrMalformedHash},
		{"plain text", "hunter2", ErrMalformedHash},
		{"unknown algorithm", "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA", ErrUnsupportedHash},
		{"argon2d", strings.Replace(good, "argon2id", "argon2d", 1), ErrUnsupportedHash},
		{"unknown variant", strings.Replace(good, "argon2id", "argon2x", 1), ErrMalformedHash},
		{"version 16 without v=", "$argon2i$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ErrUnsupportedHash},
		{"version 16", strings.Replace(good, "v=19", "v=16", 1), ErrUnsupportedHash},
		{"missing field", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA", ErrMalformedHash},
		{"extra field", good + "$x", ErrMalformedHash},
		{"params out of order", strings.Replace(good, "m=64,t=1,p=1", "t=1,m=64,p=1", 1), ErrMalformedHash},
		{"extra param", strings.Replace(good, "p=1", "p=1,keyid=x", 1), ErrMalformedHash},
		{"leading zero", strings.Replace(good, "m=64", "m=064", 1), ErrMalformedHash},
		{"sign", strings.Replace(good, "m=64", "m=+64", 1), ErrMalformedHash},
		{"overflow", strings.Replace(good, "m=64", "m=99999999999", 1), ErrMalformedHash},
		{"zero time", strings.Replace(good, "t=1", "t=0", 1), ErrMalformedHash},
		{"zero threads", strings.Replace(good, "p=1", "p=0", 1), ErrMalformedHash},
		{"memory below 8p", strings.Replace(good, "m=64,t=1,p=1", "m=8,t=1,p=2", 1), ErrMalformedHash},
		{"memory above limit", strings.Replace(good, "m=64", "m=4194304", 1), ErrUnsupportedHash},
		{"time above limit", strings.Replace(good, "t=1", "t=1000000", 1), ErrUnsupportedHash},
		{"threads above limit", strings.Replace(good, "m=64,t=1,p=1", "m=4096,t=1,p=255", 1), ErrUnsupportedHash},
		{"padded base64", strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNhbHRzYWx0c2FsdA==", 1), ErrMalformedHash},
		{"bad base64", strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNhbHRz*Wx0c2FsdA", 1), ErrMalformedHash},
		{"short salt", strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdA", 1), ErrMalformedHash},
		{"short key", strings.Replace(good, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAA", 1), ErrMalformedHash},
		{"huge key", strings.Replace(good, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", strings.Repeat("A", 200), 1), ErrMalformedHash},
		{"bcrypt short", "$2a$10$abc", ErrMalformedHash},
		{"bcrypt 2x", "$2x$04$" + strings.Repeat("a", 53), ErrUnsupportedHash},
		{"bcrypt bad cost", "$2a$1a$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt cost 3", "$2a$03$" + strings.Repeat("a", 53), ErrMalformedHash},
		{"bcrypt cost above limit", "$2a$31$" + strings.Repeat("a", 53), ErrUnsupportedHash},
		{"bcrypt bad alphabet", "$2a$04$" + strings.Repeat("+", 53), ErrMalformedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tt.encoded, "password")
			var he *HashError
			if ok || rehash || !errors.As(err, &he) || !errors.Is(err, tt.want) {
				t.Fatalf("Verify(%q) = %v, %v, %v, want false, false, a *HashError matching %v", tt.encoded, ok, rehash, err, tt.want)
			}
			if strings.Contains(err.Error(), tt.encoded) && tt.encoded != "" {
				t.Fatalf("error %q echoes the hash", err)
			}
			if err := h.ParseHash(tt.encoded); !errors.Is(err, tt.want) {
				t.Fatalf("ParseHash(%q) = %v, want %v", tt.encoded, err, tt.want)
			}
		})
	}
	if err := h.ParseHash(good); err != nil {
		t.Fatalf("ParseHash(good) = %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{Params: Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{Params: Params{Memory: 4, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{Params: Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 32}},
		{Params: Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8}},
		{Params: Params{Memory: 1 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{MaxBcryptCost: 40},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) = nil error, want one", opts)
		}
	}
}

func TestVerifyDummy(t *testing.T) {
	h := MustHasher(t, Options{})
	h.VerifyDummy("whatever the attacker typed")
	h.VerifyDummy("") // and again, from the cached dummy hash
}

func BenchmarkHash(b *testing.B) {
	h, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

func BenchmarkVerifyBcrypt10(b *testing.B) {
	h, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	const enc = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"
	for b.Loop() {
		if ok, _, _ := h.Verify(enc, "rasmuslerdorf"); !ok {
			b.Fatal("no match")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}
