package password

import (
	"errors"
	"testing"
)

// fuzzHasher has tiny limits so that a fuzzed hash naming a large cost is refused instead of
// computed, and the fuzzer spends its time in the parser.
func fuzzHasher(tb testing.TB) *Hasher {
	return MustHasher(tb, Options{MaxMemory: 256, MaxTime: 2, MaxThreads: 2, MaxBcryptCost: 5})
}

func addSeeds(f *testing.F) {
	for _, s := range []string{
		"",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2i$v=19$m=64,t=2,p=2$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2xvdGQtdmVjdG9yLXNhbHQ$j8dSU7c1T2zVi3nDnVEKfJb0AJ6qwpL/jK44QtBSuKQ",
		"$argon2i$m=64,t=1,p=1$c2FsdA$aGFzaA",
		"$2a$04$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0",
		"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
		"$2x$04$",
		"$$$$$",
		"$argon2id$v=19$m=,t=,p=$$",
	} {
		f.Add(s, "password")
	}
}

// FuzzParseHash checks that the parser never panics, classifies every failure, and agrees
// with Verify.
func FuzzParseHash(f *testing.F) {
	addSeeds(f)
	h := fuzzHasher(f)
	f.Fuzz(func(t *testing.T, encoded, _ string) {
		err := h.ParseHash(encoded)
		if err != nil && !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrUnsupportedHash) {
			t.Fatalf("ParseHash(%q) = %v, not a classified *HashError", encoded, err)
		}
	})
}

// FuzzVerify checks that Verify never panics on any hash and password, that an unparsable hash
// is reported as an error and never as a match, and that a hash Hash made verifies.
func FuzzVerify(f *testing.F) {
	addSeeds(f)
	h := fuzzHasher(f)
	f.Fuzz(func(t *testing.T, encoded, password string) {
		ok, rehash, err := h.Verify(encoded, password)
		if err != nil {
			if ok || rehash {
				t.Fatalf("Verify(%q) = %v, %v, %v: a match with an error", encoded, ok, rehash, err)
			}
			if perr := h.ParseHash(encoded); perr == nil {
				t.Fatalf("Verify(%q) error %v, but ParseHash accepts it", encoded, err)
			}
		}
		if !ok && rehash {
			t.Fatalf("Verify(%q) = false, true: needsRehash without a match", encoded)
		}
		if len(password) > 64 {
			return
		}
		enc, err := h.Hash(password)
		if err != nil {
			t.Fatalf("Hash(%q): %v", password, err)
		}
		if ok, _, err := h.Verify(enc, password); !ok || err != nil {
			t.Fatalf("Verify(Hash(%q)) = %v, %v", password, ok, err)
		}
	})
}
