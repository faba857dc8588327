package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
)

// day is the day the test bookings are on.
var day = time.Date(2030, 3, 4, 0, 0, 0, 0, time.UTC)

// at returns hour h of day (fractions allowed).
func at(h float64) time.Time { return day.Add(time.Duration(h * float64(time.Hour))) }

func encode(t testing.TB, e engine.Event) []byte {
	t.Helper()
	e.At = day
	b, err := engine.EncodeEvent(e)
	if err != nil {
		t.Fatalf("EncodeEvent(%s) = %v", e.Type, err)
	}
	return b
}

func resource(id string, capacity int) engine.Resource {
	return engine.Resource{ID: id, Name: id, Kind: "room", TimeZone: "UTC", Capacity: capacity}
}

func configured(t testing.TB, resources ...engine.Resource) []byte {
	return encode(t, engine.Event{Type: engine.EvConfigured, Config: &engine.TenantConfig{Name: "test", TimeZone: "UTC", Resources: resources}})
}

func upserted(t testing.TB, r engine.Resource) []byte {
	return encode(t, engine.Event{Type: engine.EvResourceUpserted, Resource: &r})
}

func booking(id, resourceID string, start, end time.Time) *engine.Booking {
	return &engine.Booking{ID: id, ServiceID: "svc", ResourceID: resourceID, Start: start, End: end,
		BlockStart: start, BlockEnd: end, Status: engine.StatusConfirmed, CreatedAt: day, UpdatedAt: day}
}

func confirmed(t testing.TB, id, resourceID string, start, end time.Time) []byte {
	return encode(t, engine.Event{Type: engine.EvBookingConfirmed, Booking: booking(id, resourceID, start, end)})
}

func rescheduled(t testing.TB, id, resourceID string, start, end time.Time) []byte {
	return encode(t, engine.Event{Type: engine.EvBookingRescheduled, Booking: booking(id, resourceID, start, end)})
}

func cancelled(t testing.TB, id string) []byte {
	return encode(t, engine.Event{Type: engine.EvBookingCancelled, BookingID: id})
}

// journal keeps a tenant's head for a sequence of appends.
type journal struct {
	t      *testing.T
	s      persistence.Store
	tenant string
	head   uint64
}

// ok appends events and fails t if the store refuses them.
func (j *journal) ok(events ...[]byte) {
	j.t.Helper()
	head, err := j.s.Append(j.t.Context(), j.tenant, j.head, events)
	if err != nil {
		j.t.Fatalf("Append(%s, %d, %d events) = %v, want nil", j.tenant, j.head, len(events), err)
	}
	j.head = head
}

// overlap appends events, expects ErrOverlap, and checks that nothing of
// the append was stored.
func (j *journal) overlap(events ...[]byte) error {
	j.t.Helper()
	_, err := j.s.Append(j.t.Context(), j.tenant, j.head, events)
	if !errors.Is(err, postgres.ErrOverlap) {
		j.t.Fatalf("Append(%s, %d, %d events) = %v, want ErrOverlap", j.tenant, j.head, len(events), err)
	}
	if tail, err := j.s.ReadFrom(j.t.Context(), j.tenant, j.head, 0); err != nil || len(tail) != 0 {
		j.t.Fatalf("after a refused append: ReadFrom(%s, %d) = %d entries, %v; want none", j.tenant, j.head, len(tail), err)
	}
	if _, err := j.s.Append(j.t.Context(), j.tenant, j.head, nil); err != nil {
		j.t.Fatalf("after a refused append: head moved: %v", err)
	}
	return err
}

// seats returns the confirmed bookings of a resource as id → seat.
func seats(t *testing.T, dsn, tenant, resourceID string) map[string]int {
	t.Helper()
	tx := beginAs(t, connect(t, dsn), tenant)
	rows, err := tx.Query(t.Context(), "SELECT booking_id, capacity_slot FROM bookings WHERE tenant_id = $1 AND resource_id = $2 AND status = 'confirmed'", tenant, resourceID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var id string
		var slot int
		if err := rows.Scan(&id, &slot); err != nil {
			t.Fatal(err)
		}
		out[id] = slot
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExclusionConstraintDirectSQL bypasses engine and store: the
// application role, bound to its tenant, inserts bookings by hand, and the
// database itself refuses the overlap.
func TestExclusionConstraintDirectSQL(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	app := connect(t, db.AppDSN)
	const insert = `INSERT INTO bookings (tenant_id, booking_id, resource_id, block_start, block_end, capacity, capacity_slot, status, seq)
		VALUES ('acme', $1, $2, $3, $4, $5, $6, $7, 1)`
	tests := []struct {
		name       string
		id, res    string
		start, end float64
		capacity   int
		slot       int
		status     string
		wantCode   string // "" for success
	}{
		{"first", "b1", "room", 9, 10, 1, 0, "confirmed", ""},
		{"overlap", "b2", "room", 9.5, 10.5, 1, 0, "confirmed", "23P01"},
		{"same block", "b3", "room", 9, 10, 1, 0, "confirmed", "23P01"},
		{"inside", "b4", "room", 9.25, 9.75, 1, 0, "confirmed", "23P01"},
		{"back to back", "b5", "room", 10, 11, 1, 0, "confirmed", ""},
		{"other resource", "b6", "desk", 9, 10, 1, 0, "confirmed", ""},
		{"cancelled overlap", "b7", "room", 9, 10, 1, 0, "cancelled", ""},
		{"seat beyond capacity", "b8", "room", 9, 10, 1, 1, "confirmed", "23514"},
		{"second seat of capacity 2", "b9", "hall", 9, 10, 2, 0, "confirmed", ""},
		{"other seat", "b10", "hall", 9, 10, 2, 1, "confirmed", ""},
		{"taken seat", "b11", "hall", 9.5, 11, 2, 1, "confirmed", "23P01"},
		{"empty block", "b12", "room", 12, 12, 1, 0, "confirmed", "23514"},
	}
	for _, tt := range tests {
		tx := beginAs(t, app, "acme")
		_, err := tx.Exec(t.Context(), insert, tt.id, tt.res, at(tt.start), at(tt.end), tt.capacity, tt.slot, tt.status)
		if tt.wantCode == "" {
			if err != nil {
				t.Fatalf("%s: insert %s = %v, want nil", tt.name, tt.id, err)
			}
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatalf("%s: commit = %v", tt.name, err)
			}
			continue
		}
		wantCode(t, tt.name+": insert "+tt.id, err, tt.wantCode)
		tx.Rollback(t.Context())
	}
	// Uncancelling an overlapping booking is refused too.
	tx := beginAs(t, app, "acme")
	_, err := tx.Exec(t.Context(), "UPDATE bookings SET status = 'confirmed' WHERE tenant_id = 'acme' AND booking_id = 'b7'")
	wantCode(t, "confirm cancelled overlapping b7", err, "23P01")
}

// TestProjectionRefusesOverlap appends a crafted double booking, as a buggy
// engine would: the append fails as a whole.
func TestProjectionRefusesOverlap(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	j := &journal{t: t, s: s, tenant: "acme"}
	j.ok(configured(t, resource("room", 1), resource("hall", 2)))
	j.ok(confirmed(t, "b1", "room", at(9), at(10)))

	// The overlapping booking comes with other, innocent events: none of
	// them may be stored.
	j.overlap(upserted(t, resource("desk", 1)), confirmed(t, "b2", "room", at(9.5), at(10.5)))
	j.overlap(confirmed(t, "b3", "room", at(8), at(12)))
	// Two overlapping bookings in one append.
	j.overlap(confirmed(t, "b4", "room", at(13), at(14)), confirmed(t, "b5", "room", at(13.5), at(14.5)))
	if got := seats(t, db.AppDSN, "acme", "room"); len(got) != 1 {
		t.Fatalf("room bookings = %v, want only b1", got)
	}

	j.ok(confirmed(t, "b6", "room", at(10), at(11))) // back to back
	j.ok(cancelled(t, "b1"))
	j.ok(confirmed(t, "b7", "room", at(9), at(10))) // b1's block is free again
	// Rescheduling onto another booking's block is an overlap; onto its own
	// old block, or a free one, is not.
	j.overlap(rescheduled(t, "b7", "room", at(9.5), at(10.5)))
	j.ok(rescheduled(t, "b7", "room", at(9.5), at(10)))
	j.ok(rescheduled(t, "b7", "room", at(15), at(16)))
	j.ok(confirmed(t, "b8", "room", at(9), at(10)))
	if got, want := seats(t, db.AppDSN, "acme", "room"), map[string]int{"b6": 0, "b7": 0, "b8": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("room seats = %v, want %v", got, want)
	}

	// A resource the projection never saw configured counts as capacity 1.
	j.ok(confirmed(t, "u1", "unknown", at(9), at(10)))
	j.overlap(confirmed(t, "u2", "unknown", at(9), at(10)))

	// A crafted event cannot raise a capacity behind the engine's back:
	// capacities come from configuration events, and a configuration that
	// removes the resource leaves it at capacity 1.
	j.ok(configured(t, resource("hall", 2)))
	j.overlap(confirmed(t, "b9", "room", at(9), at(10)))
}

// TestProjectionCapacity seats bookings on a capacity-2 resource, including
// the fragmented case that needs a repack.
func TestProjectionCapacity(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	j := &journal{t: t, s: s, tenant: "gym"}
	j.ok(configured(t, resource("hall", 2)))

	j.ok(confirmed(t, "a", "hall", at(9), at(10)))
	j.ok(confirmed(t, "b", "hall", at(9), at(10)))
	j.overlap(confirmed(t, "c", "hall", at(9.5), at(9.75)))
	j.ok(cancelled(t, "a"))
	j.ok(confirmed(t, "c", "hall", at(9.5), at(9.75)))

	// Fragmentation: x [11,12) on seat 0, y [14,15) on seat 1 (seat 0 was
	// held by z when y came), z cancelled: no single seat is free over
	// [11.5, 14.5), yet at most two bookings overlap at any instant.
	j.ok(confirmed(t, "z", "hall", at(13), at(16)))
	j.ok(confirmed(t, "y", "hall", at(14), at(15)))
	j.ok(cancelled(t, "z"))
	j.ok(confirmed(t, "x", "hall", at(11), at(12)))
	before := seats(t, db.AppDSN, "gym", "hall")
	if before["x"] == before["y"] {
		t.Fatalf("setup: x and y share seat %d; the case needs them on different seats", before["x"])
	}
	j.ok(confirmed(t, "w", "hall", at(11.5), at(14.5))) // repacks
	after := seats(t, db.AppDSN, "gym", "hall")
	if after["w"] == after["x"] || after["w"] == after["y"] {
		t.Fatalf("after repack: seats %v, want w on a seat of its own", after)
	}
	// Now the hall is full over [11.5, 12) and [14, 14.5).
	j.overlap(confirmed(t, "v", "hall", at(11.75), at(12.5)))
	j.ok(confirmed(t, "v", "hall", at(12), at(14))) // only w overlaps

	// Raising capacity makes room; the bookings keep their seats.
	j.ok(upserted(t, resource("hall", 3)))
	j.ok(confirmed(t, "u", "hall", at(11.75), at(12.5)))
}

// TestProjectionCatchesSeatBug plays a projection bug, seating every booking
// on seat 0 of a capacity-2 resource: the exclusion constraint still refuses
// the overlap and the append stores nothing.
func TestProjectionCatchesSeatBug(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := mustOpen(t, db.AppDSN, postgres.Options{})
	postgres.SetChooseSeat(s, func(capacity int32, used []int32) (int32, bool) { return 0, true })
	j := &journal{t: t, s: s, tenant: "gym"}
	j.ok(configured(t, resource("hall", 2)))
	j.ok(confirmed(t, "a", "hall", at(9), at(10)))
	err := j.overlap(confirmed(t, "b", "hall", at(9), at(10)))
	wantCode(t, "Append(overlap on seat 0)", err, "23P01")
}
