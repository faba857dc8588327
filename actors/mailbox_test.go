package actors

import (
	"runtime"
	"sync"
	"testing"
)

func TestMailboxBoundedFIFO(t *testing.T) {
	mb := newMailbox(3)
	msgs := []*message{{}, {}, {}, {}}
	for i, m := range msgs[:3] {
		if !mb.put(m) {
			t.Fatalf("put %d into a mailbox of 3 refused", i)
		}
	}
	if mb.put(msgs[3]) {
		t.Fatal("put into a full mailbox accepted")
	}
	if mb.len() != 3 {
		t.Fatalf("len = %d, want 3", mb.len())
	}
	select {
	case <-mb.ready:
	default:
		t.Fatal("no ready token after puts")
	}
	for i, want := range msgs[:3] {
		if got, ok := mb.get(); !ok || got != want {
			t.Fatalf("get %d = %p, %v; want %p (FIFO)", i, got, ok, want)
		}
	}
	if _, ok := mb.get(); ok {
		t.Fatal("get from an empty mailbox succeeded")
	}
	if !mb.put(msgs[3]) {
		t.Fatal("put after draining refused")
	}
}

// TestMailboxReleasesBurst: after a burst drains, the mailbox lets go of
// the large backing array.
func TestMailboxReleasesBurst(t *testing.T) {
	mb := newMailbox(1024)
	for range 1000 {
		mb.put(&message{})
	}
	for range 1000 {
		mb.get()
	}
	if c := cap(mb.q); c > keepCap {
		t.Fatalf("after a burst of 1000 drained, the mailbox keeps an array of %d", c)
	}
}

// TestMailboxNoLostWakeup: a consumer that takes the token and then
// drains, as the actor does, sees every message put concurrently.
func TestMailboxNoLostWakeup(t *testing.T) {
	const producers, each = 4, 5000
	mb := newMailbox(producers * each)
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range each {
				for !mb.put(&message{}) {
					runtime.Gosched()
				}
			}
		})
	}
	got := 0
	for got < producers*each {
		<-mb.ready
		for _, ok := mb.get(); ok; _, ok = mb.get() {
			got++
		}
	}
	wg.Wait()
	if mb.len() != 0 {
		t.Fatalf("%d messages left", mb.len())
	}
}

// BenchmarkIdleActorMemory reports the heap one idle live tenant actor
// holds before its state is loaded: go test -run '^$' -bench IdleActorMemory ./actors
func BenchmarkIdleActorMemory(b *testing.B) {
	r := NewRegistry(Config{})
	defer r.Close()
	const n = 2000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		as := make([]*actor, n)
		for i := range as {
			as[i] = newActor(r, "t")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/actor")
		runtime.KeepAlive(as)
	}
}
