package zonecache

import (
	"sync"
	"testing"
	"time"
)

// TestLoadSharesOneZone: every Load of a name, also concurrent ones, gives
// the same *time.Location, equal to time.LoadLocation's; unknown names fail
// like time.LoadLocation and are not kept.
func TestLoadSharesOneZone(t *testing.T) {
	const name = "Europe/Rome"
	want, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("no tzdata for %s on this machine: %v", name, err)
	}
	var wg sync.WaitGroup
	got := make([]*time.Location, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loc, err := Load(name)
			if err != nil {
				t.Error(err)
			}
			got[i] = loc
		}()
	}
	wg.Wait()
	for i, loc := range got {
		if loc != got[0] {
			t.Fatalf("Load #%d gave another *time.Location than #0", i)
		}
	}
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	if a, b := at.In(got[0]).Format(time.RFC3339), at.In(want).Format(time.RFC3339); a != b || got[0].String() != name {
		t.Errorf("cached zone gives %s (%s), time.LoadLocation %s", a, got[0], b)
	}
	if _, err := Load("Not/AZone"); err == nil {
		t.Error("Load of an unknown zone succeeded")
	}
	if _, ok := cache.Load("Not/AZone"); ok {
		t.Error("an unknown zone was cached")
	}
}
