package main

import (
	"context"
	"github.com/slotd/slotd/internal/demo"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/internal/testenv"
)

// TestBrowserBooking runs tests/browser/booking.mjs against an in-process
// slotd: two headless Chromium users in Rome and New York on the demo
// booking page; A holds and books a capacity-1 slot and B sees it vanish
// live, without a reload. The test then checks that the booking the page
// confirmed is the one slotd stored.
//
// It needs Debian's chromium and tests/browser/node_modules (scripts/test.sh
// installs both); without them it skips, or fails under CI=true.
func TestBrowserBooking(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real browser; skipped in -short mode")
	}
	chromium := testenv.Chromium(t)
	dir := testenv.BrowserDir(t)
	s := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, nil)

	out := testenv.RunNode(t, dir, "booking.mjs", []string{testenv.ChromiumEnv + "=" + chromium}, s.book)
	var id, start string
	ok := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) == 3 && f[0] == "booked" {
			id, start = f[1], f[2]
		}
		ok = ok || line == "ok"
	}
	if !ok || id == "" {
		t.Fatalf("booking.mjs exited 0 without printing \"booked <id> <start>\" and \"ok\"; output:\n%s", out)
	}
	want, err := time.Parse(time.RFC3339, start)
	if err != nil {
		t.Fatalf("booking.mjs printed start %q: %v", start, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := listBookings(ctx, s.base, s.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("slotd has %d bookings, want the 1 the page made: %+v", len(list), list)
	}
	b := list[0]
	if b.ID != id || !b.Start.Equal(want) || b.ServiceID != "consultation" || b.Status != "confirmed" ||
		b.Customer.Name != "Ada Browser" || b.Customer.Email != "ada.browser@example.com" || b.FromHold == "" {
		t.Errorf("stored booking %+v; the page confirmed %s at %s for Ada Browser, from a hold", b, id, start)
	}
}
