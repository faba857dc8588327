package persistence_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slotd/slotd/persistence"
)

func TestRecordBounds(t *testing.T) {
	tests := []struct {
		prefix, after string
		lower, upper  string
	}{
		{"", "", "", ""},
		{"a", "", "a", "b"},
		{"a/", "", "a/", "a0"},
		{"a\xff", "", "a\xff", "b"},
		{"\xff", "", "\xff", ""},
		{"\xff\xff", "", "\xff\xff", ""},
		{"", "b", "b\x00", ""},
		{"a", "b", "b\x00", "b"},     // after beyond the prefix: empty
		{"b", "a", "b", "c"},         // after before the prefix
		{"a", "a", "a\x00", "b"},     // the prefix itself is skipped
		{"a", "a/x", "a/x\x00", "b"}, // mid-prefix
	}
	for _, tt := range tests {
		lower, upper := persistence.RecordBounds(tt.prefix, tt.after)
		if lower != tt.lower || upper != tt.upper {
			t.Errorf("RecordBounds(%q, %q) = %q, %q; want %q, %q", tt.prefix, tt.after, lower, upper, tt.lower, tt.upper)
		}
	}
}

func TestCheckRecord(t *testing.T) {
	tests := []struct {
		tenant, kind, key string
		ok                bool
	}{
		{"acme", "session", "k", true},
		{"acme", "session", strings.Repeat("\xff", persistence.MaxRecordKey), true},
		{"acme", "session", strings.Repeat("k", persistence.MaxRecordKey+1), false},
		{"acme", "session", "", false},
		{"acme", "session", "a\x00", false},
		{"acme", "", "k", false},
		{"", "session", "k", false},
	}
	for _, tt := range tests {
		err := persistence.CheckRecord(tt.tenant, tt.kind, tt.key)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, persistence.ErrInvalid)) {
			t.Errorf("CheckRecord(%q, %q, %.20q) = %v, want ok %v", tt.tenant, tt.kind, tt.key, err, tt.ok)
		}
	}
	if err := persistence.CheckRecordValue(make([]byte, persistence.MaxRecordValue)); err != nil {
		t.Errorf("CheckRecordValue(MaxRecordValue bytes) = %v, want nil", err)
	}
	if err := persistence.CheckRecordValue(make([]byte, persistence.MaxRecordValue+1)); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("CheckRecordValue(MaxRecordValue+1 bytes) = %v, want ErrInvalid", err)
	}
	if err := persistence.CheckTenantRecords("acme", ""); err != nil {
		t.Errorf(`CheckTenantRecords(acme, "") = %v, want nil`, err)
	}
}
