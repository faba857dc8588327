package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/demo"
)

// Several slotd instances on one PostgreSQL database, in-process: what a
// client does through one, the others' clients see; when clients race
// through several, the database's conditional append lets one win.

// followDeadline bounds how long an update may take to cross instances.
// Notifications and the polls under test take milliseconds; the bound is
// for a loaded machine running the suite with -race.
const followDeadline = 15 * time.Second

// bookRequest books service on resource at start for a customer named who.
func bookRequest(service, resource string, start time.Time, who string) gateway.Request {
	return gateway.Request{Type: gateway.TypeBook, Service: service, Resource: resource, Start: start.Format(time.RFC3339),
		Customer: &engine.Customer{Name: who, Email: url.PathEscape(who) + "@example.com"}, IdempotencyKey: "multi-" + who}
}

// subscribe subscribes c to the availability of service on resource for
// the next two weeks (UTC) and returns the subscription id and snapshot.
func (w *wsClient) subscribe(ctx context.Context, service, resource string) (string, []engine.Slot, error) {
	from := time.Now().UTC()
	f, err := w.do(ctx, gateway.Request{Type: gateway.TypeSubscribe, Service: service, Resource: resource,
		From: from.Format(time.DateOnly), To: from.AddDate(0, 0, 14).Format(time.DateOnly), TZ: "UTC"})
	if err != nil {
		return "", nil, err
	}
	if f.Type != gateway.TypeSubscribed {
		return "", nil, fmt.Errorf("subscribe: %+v", f)
	}
	return f.Sub, f.Slots, nil
}

// waitGone reads c's pushed frames until subscription sub no longer offers
// start: a delta removing it, or a resync without it. It fails tb after
// followDeadline.
func waitGone(tb testing.TB, w *wsClient, sub string, start time.Time) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), followDeadline)
	defer cancel()
	began := time.Now()
	for {
		f, err := w.read(ctx)
		if err != nil {
			tb.Fatalf("waiting %v for the slot at %v to go from subscription %s: %v", followDeadline, start, sub, err)
		}
		if f.Type != gateway.TypeAvailability || f.Sub != sub {
			continue
		}
		gone := slices.ContainsFunc(f.Removed, start.Equal)
		if f.Resync {
			gone = !slices.ContainsFunc(f.Slots, func(s engine.Slot) bool { return s.Start.Equal(start) })
		}
		if gone {
			tb.Logf("the slot left subscription %s after %v", sub, time.Since(began).Round(time.Millisecond))
			return
		}
	}
}

// middleSlot is a slot from the middle of a snapshot: far enough ahead
// that the passing of time does not remove it during a test.
func middleSlot(tb testing.TB, slots []engine.Slot) time.Time {
	tb.Helper()
	if len(slots) < 4 {
		tb.Fatalf("only %d slots offered", len(slots))
	}
	return slots[len(slots)/2].Start
}

// TestInstancesFollow: a WebSocket subscriber on instance B sees a booking
// made on instance A. With notifications (B polls never: only LISTEN/NOTIFY
// and the journal tail can bring it), and without them (both instances
// send and hear none: only B's poll can).
func TestInstancesFollow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flagA []string
		flagB []string
	}{
		{"notify", nil, []string{"-follow-poll", "0"}},
		{"poll", []string{"-database-notify=false"}, []string{"-database-notify=false", "-follow-poll", "100ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := migratedDB(t)
			a := startOnDB(t, db, tt.flagA...)
			b := startOnDB(t, db, tt.flagB...)
			if a.link == "" || b.link != a.link {
				t.Fatalf("demo links: A %q, B %q; want one tenant, one link", a.link, b.link)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			watcher, err := dialLink(ctx, b.base, b.link)
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.close()
			sub, slots, err := watcher.subscribe(ctx, "consultation", "ana")
			if err != nil {
				t.Fatal(err)
			}
			start := middleSlot(t, slots)

			booker, err := dialLink(ctx, a.base, a.link)
			if err != nil {
				t.Fatal(err)
			}
			defer booker.close()
			f, err := booker.do(ctx, bookRequest("consultation", "ana", start, "ada"))
			if err != nil || f.Type != gateway.TypeBooked {
				t.Fatalf("book on A: %+v, %v", f, err)
			}
			waitGone(t, watcher, sub, start)

			// B's state has the booking too: the slot is refused there.
			f, err = watcher.do(ctx, bookRequest("consultation", "ana", start, "bob"))
			if err != nil || f.Type != gateway.TypeError || f.Code != string(engine.CodeSlotTaken) {
				t.Errorf("book A's slot on B: %+v, %v; want slot_taken", f, err)
			}
		})
	}
}

// TestInstancesRace: clients split across two instances all book one slot
// of one member of staff at once. Exactly one hears booked, every other
// slot_taken; both instances end up listing the same single booking, and
// no resource is overbooked.
func TestInstancesRace(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	instances := []*slotd{startOnDB(t, db), startOnDB(t, db)}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	const clients = 16
	conns := make([]*wsClient, clients)
	for i := range conns {
		s := instances[i%2]
		c, err := dialLink(ctx, s.base, s.link)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		conns[i] = c
	}
	_, slots, err := conns[0].subscribe(ctx, "consultation", "ben")
	if err != nil {
		t.Fatal(err)
	}
	start := middleSlot(t, slots)

	frames := make([]gateway.Frame, clients)
	errs := make([]error, clients)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			<-ready
			frames[i], errs[i] = c.do(ctx, bookRequest("consultation", "ben", start, fmt.Sprintf("client%02d", i)))
		})
	}
	close(ready)
	wg.Wait()
	var winners []int
	for i := range conns {
		switch {
		case errs[i] != nil:
			t.Errorf("client %d (instance %d): %v", i, i%2, errs[i])
		case frames[i].Type == gateway.TypeBooked:
			winners = append(winners, i)
		case frames[i].Type != gateway.TypeError || frames[i].Code != string(engine.CodeSlotTaken):
			t.Errorf("client %d (instance %d): %+v, want booked or slot_taken", i, i%2, frames[i])
		}
	}
	if len(winners) != 1 {
		t.Fatalf("clients %v heard booked, want exactly one", winners)
	}
	winner := frames[winners[0]].Booking
	t.Logf("client %d on instance %d won", winners[0], winners[0]%2)

	caps, err := capacities(ctx, instances[0].base, testToken, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range instances {
		checkFor(t, followDeadline, 10*time.Millisecond, func() error {
			list, err := listBookings(ctx, s.base, testToken, demo.Tenant)
			if err != nil {
				return err
			}
			if len(list) != 1 || list[0].ID != winner.ID || !list[0].Start.Equal(start) {
				return fmt.Errorf("instance %d lists %+v, want only %s at %v", i, list, winner.ID, start)
			}
			if p := checkNoOverbooking(list, caps); len(p) > 0 {
				return fmt.Errorf("instance %d: %v", i, p)
			}
			return nil
		})
	}
}

// TestInstancesErasure: two instances on one PostgreSQL database, neither
// sending nor hearing notifications nor polling, so that instance B learns
// of nothing A does unless it reads the journal itself. A customer booked
// through A, whom B has loaded, is erased through A; B's bookings list, its
// booking read and its customer export then name the customer nowhere,
// and a booking for her email through B gets a new pseudonym.
func TestInstancesErasure(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	quiet := []string{"-database-notify=false", "-follow-poll", "0"}
	a := startOnDB(t, db, quiet...)
	b := startOnDB(t, db, quiet...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	booker, err := dialLink(ctx, a.base, a.link)
	if err != nil {
		t.Fatal(err)
	}
	defer booker.close()
	slots, err := availability(ctx, a.base, a.link, "consultation", 14)
	if err != nil {
		t.Fatal(err)
	}
	f, err := booker.do(ctx, bookRequest("consultation", "", middleSlot(t, slots), "grace"))
	if err != nil || f.Type != gateway.TypeBooked || f.Booking == nil {
		t.Fatalf("book on A: %+v, %v", f, err)
	}
	booking := f.Booking
	mustName := func(where string, list []engine.Booking, want bool) {
		t.Helper()
		i := slices.IndexFunc(list, func(x engine.Booking) bool { return x.ID == booking.ID })
		if i < 0 {
			t.Fatalf("%s: booking %s missing", where, booking.ID)
		}
		c := list[i].Customer
		if named := c.Name != "" || c.Email != ""; named != want || (!want && !c.Erased) {
			t.Errorf("%s: customer %+v; want named %v", where, c, want)
		}
	}
	list, err := listBookings(ctx, b.base, testToken, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	mustName("B before the erasure", list, true) // B has loaded the tenant, with her in it

	var receipt struct {
		Bookings []string `json:"bookings"`
	}
	if err := postJSON(ctx, a.base, "/v1/tenants/"+demo.Tenant+"/privacy/erase", testToken, map[string]string{"email": booking.Customer.Email}, &receipt); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(receipt.Bookings, []string{booking.ID}) {
		t.Fatalf("erasure receipt names bookings %v, want [%s]", receipt.Bookings, booking.ID)
	}
	if list, err = listBookings(ctx, b.base, testToken, demo.Tenant); err != nil {
		t.Fatal(err)
	}
	mustName("B's bookings list after the erasure", list, false)
	var one struct{ Booking engine.Booking }
	if err := getJSON(ctx, b.base, "/v1/tenants/"+demo.Tenant+"/bookings/"+booking.ID, testToken, &one); err != nil {
		t.Fatal(err)
	}
	mustName("B's booking read after the erasure", []engine.Booking{one.Booking}, false)
	var export struct {
		Bookings []json.RawMessage `json:"bookings"`
	}
	if err := postJSON(ctx, b.base, "/v1/tenants/"+demo.Tenant+"/privacy/export-customer", testToken, map[string]string{"email": booking.Customer.Email}, &export); err != nil {
		t.Fatal(err)
	}
	if len(export.Bookings) != 0 {
		t.Errorf("B's export of the erased customer holds %d bookings, want none", len(export.Bookings))
	}

	again, err := dialLink(ctx, b.base, b.link)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	req := bookRequest("consultation", "", slots[len(slots)*3/4].Start, "grace")
	req.IdempotencyKey = "multi-grace-again"
	f, err = again.do(ctx, req)
	if err != nil || f.Type != gateway.TypeBooked || f.Booking == nil {
		t.Fatalf("booking her again on B: %+v, %v", f, err)
	}
	if s := f.Booking.Customer.Subject; s == "" || s == booking.Customer.Subject {
		t.Errorf("booking her again gave pseudonym %q, want a new one (the erased one is %q)", s, booking.Customer.Subject)
	}
}
