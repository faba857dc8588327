package persistence

import (
	"regexp"
	"strings"
	"testing"
)

// The specifications ValidTenant and CheckKind implement.
var (
	tenantSpec = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	kindSpec   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
)

var validSeeds = []string{"", "a", "0", "-", "_", "a-b", "a_b", "A", "a b", "a\n", "é", "0abc",
	strings.Repeat("a", 32), strings.Repeat("a", 33), strings.Repeat("a", 63), strings.Repeat("a", 64), "a\x00"}

func TestValidatorsMatchTheirRegexps(t *testing.T) {
	for _, s := range validSeeds {
		checkValidators(t, s)
	}
}

func FuzzValidators(f *testing.F) {
	for _, s := range validSeeds {
		f.Add(s)
	}
	f.Fuzz(checkValidators)
}

func checkValidators(t *testing.T, s string) {
	if got, want := ValidTenant(s), tenantSpec.MatchString(s); got != want {
		t.Errorf("ValidTenant(%q) = %v, regexp says %v", s, got, want)
	}
	if got, want := CheckKind(s) == nil, kindSpec.MatchString(s); got != want {
		t.Errorf("CheckKind(%q) ok = %v, regexp says %v", s, got, want)
	}
}
