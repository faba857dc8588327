package gateway_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// TestEndToEnd is slotd in-process — gateway, tenant actors and the Pebble
// store in a temp data directory — behind a real HTTP server on :0, driven
// only through its public interfaces:
//
//  1. two booking pages subscribe to one tenant's availability;
//  2. fifty customers, each on their own WebSocket, race for one slot:
//     exactly one is booked, every other is told slot_taken, and exactly
//     one event reaches the journal;
//  3. both subscribers see the slot disappear;
//  4. everything is shut down and a fresh registry and gateway are started
//     on the same data directory: the tenant's state, its journal sequence
//     and its bookings list are identical, and the slot is still taken.
func TestEndToEnd(t *testing.T) {
	ts := newTestServer(t)
	link := ts.createTenant(t, "salon", testConfig())
	slot := at(t, "Europe/Rome", 1, 10) // Tuesday 10:00 in Rome

	subscribers := []*wsClient{ts.dialLink(t, link), ts.dialLink(t, link)}
	subIDs := make([]string, len(subscribers))
	for i, s := range subscribers {
		f := s.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
		if !hasSlot(f.Slots, slot) {
			t.Fatalf("subscriber %d: snapshot %v lacks %v", i, f.Slots, slot)
		}
		subIDs[i] = f.Sub
	}
	seqBefore := ts.seq(t, "salon")

	const n = 50
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = ts.dialLink(t, link)
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		replies = make([]gateway.Frame, n)
		errs    = make([]error, n)
	)
	ctx := timeout(t, 30*time.Second)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i], errs[i] = c.tryCall(ctx, "book", bookFields("cut", "alice", slot, customer(i)))
		}()
	}
	close(start)
	wg.Wait()

	var booked []gateway.Frame
	taken := 0
	for i, f := range replies {
		switch {
		case errs[i] != nil:
			t.Errorf("client %d: %v", i, errs[i])
		case f.Type == gateway.TypeBooked:
			booked = append(booked, f)
		case f.Type == gateway.TypeError && f.Code == string(engine.CodeSlotTaken):
			taken++
		default:
			t.Errorf("client %d: %s %s (%s), want booked or slot_taken", i, f.Type, f.Code, f.Message)
		}
	}
	if len(booked) != 1 || taken != n-1 {
		t.Fatalf("%d booked and %d slot_taken, want 1 and %d", len(booked), taken, n-1)
	}
	b := booked[0].Booking
	if b == nil || !b.Start.Equal(slot) || b.ResourceID != "alice" || b.Status != engine.StatusConfirmed {
		t.Fatalf("booked %+v, want a confirmed booking with alice at %v", b, slot)
	}
	if got := ts.seq(t, "salon"); got != seqBefore+1 {
		t.Errorf("journal sequence %d after the race, want %d (one booking event)", got, seqBefore+1)
	}
	if v := booked[0].Version; v == nil || *v != seqBefore+1 {
		t.Errorf("booked version %v, want %d", v, seqBefore+1)
	}

	for i, s := range subscribers {
		f, err := s.await(timeout(t, 10*time.Second), func(f gateway.Frame) bool {
			return f.Type == gateway.TypeAvailability && f.Sub == subIDs[i] && hasTime(f.Removed, slot)
		})
		if err != nil {
			t.Fatalf("subscriber %d: no availability frame removing %v: %v", i, slot, err)
		}
		if f.Version == nil || *f.Version != seqBefore+1 || f.Resync {
			t.Errorf("subscriber %d: delta version %v resync %v, want %d and false", i, f.Version, f.Resync, seqBefore+1)
		}
		if hasSlot(f.Upserted, slot) {
			t.Errorf("subscriber %d: delta both removes and upserts %v", i, slot)
		}
	}

	var avail struct {
		Slots []engine.Slot `json:"slots"`
	}
	ts.do(t, "GET", "/v1/public/"+link+"/availability?service=cut&resource=alice&from="+day1+"&to=2030-01-09&tz=Europe/Rome", "", nil).
		want(t, http.StatusOK, &avail)
	if hasSlot(avail.Slots, slot) {
		t.Errorf("availability after the race still offers %v", slot)
	}

	snapBefore, seqAtClose := ts.state(t, "salon")
	listBefore := ts.do(t, "GET", "/v1/tenants/salon/bookings", operatorToken, nil).want(t, http.StatusOK, nil).Body

	// Restart on the same data directory.
	ts2 := ts.restart(t)
	for i, s := range subscribers {
		if code := s.closed(timeout(t, 10*time.Second)); code != websocket.StatusGoingAway {
			t.Errorf("subscriber %d closed with %v at shutdown, want StatusGoingAway", i, code)
		}
	}
	snapAfter, seqAfter := ts2.state(t, "salon")
	if seqAfter != seqAtClose {
		t.Errorf("journal sequence %d after restart, want %d", seqAfter, seqAtClose)
	}
	if !bytes.Equal(snapAfter, snapBefore) {
		t.Errorf("state after restart differs:\n got %s\nwant %s", snapAfter, snapBefore)
	}
	listAfter := ts2.do(t, "GET", "/v1/tenants/salon/bookings", operatorToken, nil).want(t, http.StatusOK, nil).Body
	if !bytes.Equal(listAfter, listBefore) {
		t.Errorf("bookings after restart:\n got %s\nwant %s", listAfter, listBefore)
	}

	// The booking link still works and the slot is still taken.
	c := ts2.dialLink(t, link)
	if f := c.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed); hasSlot(f.Slots, slot) {
		t.Errorf("after restart the snapshot offers the booked slot %v", slot)
	}
	c.wantErr("book", bookFields("cut", "alice", slot, customer(n)), engine.CodeSlotTaken)
	if got := ts2.seq(t, "salon"); got != seqAtClose {
		t.Errorf("journal sequence %d after a refused booking, want %d", got, seqAtClose)
	}
}
