package main

import "sync"

// pushCache decodes each distinct push frame once. slotd sends every viewer
// of a query the same bytes for one change (a delta names the
// subscription, and each connection's first is "s1"), so 10,000 viewers of
// one tenant would otherwise decode the same JSON 10,000 times: a third of
// slotsim's CPU in fanout, on the cores slotd needs. The frames it returns
// are shared and must not be modified.
type pushCache struct {
	mu sync.Mutex
	m  map[string]*frame
}

// pushCacheSize bounds the distinct frames kept; when full the cache
// starts over (the frames of one change arrive together).
const pushCacheSize = 256

func (p *pushCache) get(data []byte) *frame {
	p.mu.Lock()
	f := p.m[string(data)] // no copy: the conversion is only a lookup key
	p.mu.Unlock()
	return f
}

// put keeps f, decoded from data, if it is a push (no request id).
func (p *pushCache) put(data []byte, f *frame) {
	if f.ID != "" {
		return
	}
	p.mu.Lock()
	if p.m == nil || len(p.m) >= pushCacheSize {
		p.m = make(map[string]*frame, pushCacheSize)
	}
	p.m[string(data)] = f
	p.mu.Unlock()
}
