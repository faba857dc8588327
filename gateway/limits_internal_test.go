package gateway

import (
	"net/netip"
	"testing"
	"time"
)

// TestLimiterBounded: however many keys call, at most MaxKeys buckets are
// kept.
func TestLimiterBounded(t *testing.T) {
	l := newKeyedLimiter(Rate{PerSec: 1, Burst: 2}, 8)
	now := time.Now()
	for i := range 1000 {
		take(now, limitKey{l, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), "address"})
	}
	if n := l.buckets.Len(); n > 8 {
		t.Errorf("%d buckets kept, want at most 8", n)
	}
}

// TestTakeAllOrNothing: a call refused by one bucket spends no token of
// the others.
func TestTakeAllOrNothing(t *testing.T) {
	ip := newKeyedLimiter(Rate{PerSec: 0.001, Burst: 2}, 8)
	tenant := newKeyedLimiter(Rate{PerSec: 0.001, Burst: 1}, 8)
	now := time.Now()
	if _, _, ok := take(now, limitKey{ip, "a", "address"}, limitKey{tenant, "t", "tenant"}); !ok {
		t.Fatal("first call refused")
	}
	for range 5 {
		who, wait, ok := take(now, limitKey{ip, "a", "address"}, limitKey{tenant, "t", "tenant"})
		if ok || who != "tenant" || wait <= 0 {
			t.Fatalf("take over the tenant's budget = %q, %v, %v; want refused by tenant", who, wait, ok)
		}
	}
	// The address still has its second token: the refusals spent none.
	if _, _, ok := take(now, limitKey{ip, "a", "address"}); !ok {
		t.Error("the address's budget was spent by calls the tenant refused")
	}
	if _, _, ok := take(now, limitKey{ip, "a", "address"}); ok {
		t.Error("the address allowed more than its burst")
	}
}
