package main

import (
	"strings"
	"testing"
	"time"
)

func at(h int) time.Time { return time.Date(2030, 1, 7, h, 0, 0, 0, time.UTC) }

func bk(id, res string, h int, status, key string) booking {
	return booking{ID: id, ResourceID: res, Start: at(h), End: at(h).Add(30 * time.Minute), BlockStart: at(h),
		BlockEnd: at(h).Add(30 * time.Minute), Status: status, IdempotencyKey: key}
}

// goodTenant is a consistent ledger and server state: two acknowledged
// bookings, one cancelled one, one in flight at a crash that made it, one
// with an ambiguous reschedule that did not, and a pre-existing booking.
func goodTenant() tenantCheck {
	return tenantCheck{
		ID:       "t1",
		Capacity: map[string]int{"r0": 1, "r1": 2},
		Acked: map[string][]bookingState{
			"b1": {{Resource: "r0", Start: at(9), Status: "confirmed"}},
			"b2": {{Resource: "r1", Start: at(9), Status: "confirmed"}},
			"b3": {{Resource: "r0", Start: at(10), Status: "cancelled"}},
			"b4": {{Resource: "r0", Start: at(11), Status: "confirmed"}, {Resource: "", Start: at(12), Status: "confirmed"}},
		},
		UnknownKeys: map[string]bool{"k5": true, "k6": true},
		Ignore:      map[string]bool{"old": true},
		Server: []booking{
			bk("b1", "r0", 9, "confirmed", "k1"),
			bk("b2", "r1", 9, "confirmed", "k2"),
			bk("b3", "r0", 10, "cancelled", "k3"),
			bk("b4", "r0", 11, "confirmed", "k4"),
			bk("b5", "r1", 9, "confirmed", "k5"), // in flight; r1 has capacity 2
			bk("old", "r0", 14, "confirmed", ""),
		},
	}
}

func TestCheckPassesConsistentState(t *testing.T) {
	rep := checkBookings([]tenantCheck{goodTenant()})
	if !rep.Passed {
		t.Fatalf("checkBookings(consistent) failed: %+v", rep.Violations)
	}
	if rep.InFlight != 2 || rep.InFlightBooked != 1 || rep.InFlightAmbiguous != 1 || rep.AckedChecked != 4 {
		t.Errorf("report = %+v, want 2 in flight (1 exists), 1 ambiguous, 4 acked", rep)
	}
}

// TestCheckFailsCorruptedState feeds the checker deliberately corrupted
// results: each must be caught, with the right kind.
func TestCheckFailsCorruptedState(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(tc *tenantCheck)
		want    string
	}{
		{"acknowledged booking missing", func(tc *tenantCheck) { tc.Server = tc.Server[1:] }, vAckedMissing},
		{"acknowledged booking moved", func(tc *tenantCheck) { tc.Server[0].Start = at(15) }, vAckedMismatch},
		{"acknowledged booking on another resource", func(tc *tenantCheck) { tc.Server[0].ResourceID = "r1" }, vAckedMismatch},
		{"acknowledged cancellation lost", func(tc *tenantCheck) { tc.Server[2].Status = "confirmed" }, vAckedMismatch},
		{"ambiguous booking in neither state", func(tc *tenantCheck) { tc.Server[3].Start = at(13) }, vAckedMismatch},
		{"overlap beyond capacity", func(tc *tenantCheck) {
			b := bk("b9", "r0", 9, "confirmed", "k9")
			b.Start, b.BlockStart = at(9).Add(15*time.Minute), at(9).Add(15*time.Minute)
			b.BlockEnd = b.Start.Add(30 * time.Minute)
			tc.Server = append(tc.Server, b)
			tc.Acked["b9"] = []bookingState{{Resource: "r0", Start: b.Start, Status: "confirmed"}}
		}, vOverlap},
		{"overlap on a resource with capacity 2", func(tc *tenantCheck) {
			tc.Server = append(tc.Server, bk("b8", "r1", 9, "confirmed", "k6")) // in flight, but a third seat
		}, vOverlap},
		{"unacknowledged booking", func(tc *tenantCheck) {
			tc.Server = append(tc.Server, bk("b7", "r0", 16, "confirmed", "never-sent"))
		}, vUnacked},
		{"unacknowledged booking without a key", func(tc *tenantCheck) {
			tc.Server = append(tc.Server, bk("b6", "r0", 17, "cancelled", ""))
		}, vUnacked},
		{"booking on an unknown resource", func(tc *tenantCheck) {
			tc.Server = append(tc.Server, bk("b10", "r9", 9, "confirmed", "k6"))
		}, vUnknownRes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := goodTenant()
			tt.corrupt(&tc)
			rep := checkBookings([]tenantCheck{tc})
			if rep.Passed {
				t.Fatalf("checkBookings(%s) passed, want a %s violation", tt.name, tt.want)
			}
			found := false
			for _, v := range rep.Violations {
				found = found || v.Kind == tt.want
			}
			if !found {
				t.Errorf("checkBookings(%s) = %+v, want a %s violation", tt.name, rep.Violations, tt.want)
			}
		})
	}
}

func TestPeakOverlapHalfOpen(t *testing.T) {
	a, b := bk("a", "r", 9, "confirmed", ""), bk("b", "r", 9, "confirmed", "")
	b.BlockStart, b.BlockEnd = a.BlockEnd, a.BlockEnd.Add(time.Hour) // back to back
	if peak, _, _ := peakOverlap([]*booking{&a, &b}); peak != 1 {
		t.Errorf("peakOverlap(back to back) = %d, want 1", peak)
	}
	b.BlockStart = a.BlockEnd.Add(-time.Minute)
	if peak, _, ids := peakOverlap([]*booking{&a, &b}); peak != 2 || strings.Join(ids, ",") != "a,b" {
		t.Errorf("peakOverlap(overlapping) = %d %v, want 2 [a b]", peak, ids)
	}
}

func TestSlotsEqual(t *testing.T) {
	server := []slot{{Start: at(9), End: at(9).Add(30 * time.Minute), Resources: []string{"r0", "r1"}, Seats: 2}}
	view := map[int64]slot{at(9).UnixNano(): server[0]}
	if ok, diff := slotsEqual(view, server); !ok {
		t.Fatalf("slotsEqual(same) = false: %s", diff)
	}
	stale := server[0]
	stale.Seats = 1
	if ok, _ := slotsEqual(map[int64]slot{at(9).UnixNano(): stale}, server); ok {
		t.Error("slotsEqual(stale seats) = true, want false")
	}
	if ok, _ := slotsEqual(map[int64]slot{}, server); ok {
		t.Error("slotsEqual(missing slot) = true, want false")
	}
}

func TestParseMix(t *testing.T) {
	m, err := parseMix("book=70,hold=10,cancel=10,reschedule=5,browse=5")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.pick(0); got != opBook {
		t.Errorf("pick(0) = %v, want book", got)
	}
	if got := m.pick(0.999); got != opBrowse {
		t.Errorf("pick(0.999) = %v, want browse", got)
	}
	for _, bad := range []string{"", "book", "fly=3", "book=-1", "book=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) = nil error, want one", bad)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.3.2.1", "http://localhost:1", "http://[::1]:80"} {
		if _, err := checkLoopback(ok, false); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com", "http://192.168.1.2", "ftp://127.0.0.1", "127.0.0.1:80"} {
		if _, err := checkLoopback(bad, false); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want an error", bad)
		}
	}
}

func TestEncodeRequest(t *testing.T) {
	r := request{Type: "book", Service: "s0", Start: at(9), Customer: "sim 1", Idem: "k\"1"}
	got := string(r.encode("7"))
	want := `{"v":1,"id":"7","type":"book","service":"s0","start":"2030-01-07T09:00:00Z","idempotency_key":"k\"1","customer":{"name":"sim 1","email":"sim.1@sim.example"}}`
	if got != want {
		t.Errorf("encode =\n%s\nwant\n%s", got, want)
	}
}
