package main

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestPushCacheSharesPushesOnly: identical push frames are decoded once and
// shared; replies (with a request id) are never kept, since their handlers
// own them; the cache stays bounded.
func TestPushCacheSharesPushesOnly(t *testing.T) {
	var p pushCache
	decode := func(s string) *frame {
		t.Helper()
		data := []byte(s)
		if f := p.get(data); f != nil {
			return f
		}
		f := new(frame)
		if err := json.Unmarshal(data, f); err != nil {
			t.Fatal(err)
		}
		p.put(data, f)
		return f
	}
	delta := `{"v":1,"type":"availability","sub":"s1","version":7,"removed":["2030-01-07T09:00:00Z"]}`
	a, b := decode(delta), decode(delta)
	if a != b {
		t.Error("the same push decoded twice, want one shared frame")
	}
	if a.Version == nil || *a.Version != 7 || len(a.Removed) != 1 {
		t.Errorf("shared frame = %+v, want the delta's contents", a)
	}
	if c := decode(`{"v":1,"type":"availability","sub":"s1","version":8}`); c == a {
		t.Error("a different push got the first one's frame")
	}
	reply := `{"v":1,"id":"1","type":"booked"}`
	if r1, r2 := decode(reply), decode(reply); r1 == r2 {
		t.Error("a reply was shared; each call's handler must get its own")
	}
	for i := range 3 * pushCacheSize {
		decode(fmt.Sprintf(`{"v":1,"type":"availability","sub":"s1","version":%d}`, i))
	}
	if n := len(p.m); n > pushCacheSize {
		t.Errorf("cache holds %d frames, want at most %d", n, pushCacheSize)
	}
}
