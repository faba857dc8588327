package actors

import (
	"fmt"
	"math"
	"testing"
)

// TestSnapshotDueSpread: without spread every tenant is due at the same
// count; with it each tenant's count is its own, within the spread, and
// stays the same for that tenant.
func TestSnapshotDueSpread(t *testing.T) {
	if got := snapshotDue(1000, 10, 0, snapshotShare("a")); got != 1000 {
		t.Errorf("no spread, small state: due %d, want 1000", got)
	}
	if got := snapshotDue(1000, 5000, 0, snapshotShare("a")); got != 2500 {
		t.Errorf("no spread, state of 5000: due %d, want 2500 (half the state)", got)
	}
	seen := map[uint64]bool{}
	for i := range 100 {
		tenant := fmt.Sprintf("t%03d", i)
		due := snapshotDue(1000, 10, 0.5, snapshotShare(tenant))
		if due < 500 || due > 1000 {
			t.Errorf("spread 0.5: tenant %s due at %d, want 500–1000", tenant, due)
		}
		if again := snapshotDue(1000, 10, 0.5, snapshotShare(tenant)); again != due {
			t.Errorf("tenant %s due at %d, then %d", tenant, due, again)
		}
		seen[due/50] = true
	}
	if len(seen) < 6 {
		t.Errorf("100 tenants' snapshots fall in %d of 10 bands of 50 events; want them spread", len(seen))
	}
	if got := snapshotDue(1, 0, 0.9, 0.999); got != 1 {
		t.Errorf("due %d, want at least 1", got)
	}
}

// TestSnapshotSpreadClamped: a spread outside [0, 0.9], NaN included,
// never stops snapshots.
func TestSnapshotSpreadClamped(t *testing.T) {
	for _, in := range []float64{math.NaN(), -1, math.Inf(1), 5} {
		c := Config{SnapshotSpread: in}
		c.defaults()
		if !(c.SnapshotSpread >= 0 && c.SnapshotSpread <= 0.9) {
			t.Errorf("SnapshotSpread %v clamped to %v, want a value in [0, 0.9]", in, c.SnapshotSpread)
		}
		if due := snapshotDue(1000, 10, c.SnapshotSpread, 0.999); due < 1 || due > 1000 {
			t.Errorf("SnapshotSpread %v: due after %d events, want 1–1000", in, due)
		}
	}
}
