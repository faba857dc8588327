package engine

import (
	"regexp"
	"strings"
	"testing"
)

// idSpec is what ValidID implements.
var idSpec = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func TestValidIDMatchesItsRegexp(t *testing.T) {
	for _, s := range []string{"", "a", "A", "0", "-", "_a", ".a", "a-b_c.d", "a b", "a\n", "é", "a/b",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a\x00"} {
		if got, want := ValidID(s), idSpec.MatchString(s); got != want {
			t.Errorf("ValidID(%q) = %v, regexp says %v", s, got, want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"", "a", "a-b", "-a", strings.Repeat("z", 64), "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidID(s), idSpec.MatchString(s); got != want {
			t.Errorf("ValidID(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
