package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slotd/slotd/engine"
)

// ErrOverlap is wrapped by Append's error when the bookings projection
// refuses the append: a confirmed booking would overlap other confirmed
// bookings of its resource beyond the resource's capacity. It means the
// writer (the engine) accepted a double booking; nothing of the append is
// stored.
var ErrOverlap = errors.New("postgres store: booking overlaps confirmed bookings beyond its resource's capacity")

// The bookings projection, maintained inside the append transaction from
// the events being appended: defence in depth against a double booking
// that the engine, the actor or a second slotd instance let through.
//
// Seats. A resource of capacity c takes c overlapping bookings, so "no
// overlap" cannot be the constraint. Instead every confirmed booking gets a
// seat, capacity_slot in [0, c), and the PostgreSQL exclusion constraint
// forbids two confirmed bookings with overlapping blocks on the same seat
// of a resource. On a capacity-1 resource every booking has seat 0 and the
// constraint is exactly "no overlap"; for c > 1 it bounds the overlap at c.
//
// A new booking takes the lowest seat free over its block. Seats fixed one
// booking at a time can fragment: with capacity 2, bookings A [1,2) and
// B [4,5) on different seats leave no single seat free over [1,5) even
// though at most two bookings overlap at any instant. Then the projection
// repacks the resource: all its confirmed bookings, in order of start, each
// take the lowest seat free at their start, which uses no more seats than
// the largest number of bookings overlapping at one instant (interval
// graphs are perfect). If even that needs more than c seats, the resource
// really is over capacity and the append fails with ErrOverlap.
//
// Capacities come from the configured and resource_upserted events, so a
// crafted event cannot raise them; a booking on a resource the projection
// has not seen gets capacity 1, the strictest. Each booking row keeps the
// capacity it was seated with (a CHECK keeps its seat below it), so a later
// capacity cut, which the engine allows only when upcoming bookings fit,
// does not invalidate past rows.
//
// Events that do not decode as engine events are stored and not projected:
// the engine could not replay them either. Holds are not projected: they
// expire, and the engine counts them against capacity on top of bookings.

// projOp is one projection change derived from an event.
type projOp struct {
	typ       string
	seq       int64
	resources []engine.Resource // configured: every resource of the tenant
	booking   *engine.Booking   // booking_confirmed, booking_rescheduled
	bookingID string            // booking_cancelled
}

// projectEvents decodes the events that will get seqs head+1… and returns
// the projection changes they make, in order.
func projectEvents(events [][]byte, head uint64) []projOp {
	var ops []projOp
	for i, ev := range events {
		if !looksLikeObject(ev) {
			continue
		}
		e, err := engine.DecodeEvent(ev)
		if err != nil {
			continue
		}
		op := projOp{typ: e.Type, seq: int64(head) + int64(i) + 1}
		switch e.Type {
		case engine.EvConfigured:
			if e.Config == nil {
				continue
			}
			op.resources = e.Config.Resources
		case engine.EvResourceUpserted:
			if e.Resource == nil {
				continue
			}
			op.resources = []engine.Resource{*e.Resource}
		case engine.EvBookingConfirmed, engine.EvBookingRescheduled:
			if e.Booking == nil {
				continue
			}
			op.booking = e.Booking
		case engine.EvBookingCancelled:
			if e.BookingID == "" {
				continue
			}
			op.bookingID = e.BookingID
		default:
			continue
		}
		ops = append(ops, op)
	}
	return ops
}

// looksLikeObject reports whether b starts (after white space) with '{':
// only those can be engine events, so other payloads skip the decoder.
func looksLikeObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

const (
	deleteResourcesSQL = `
DELETE FROM resources WHERE tenant_id = $1 AND NOT (resource_id = ANY($2::text[]))`

	upsertResourcesSQL = `
INSERT INTO resources (tenant_id, resource_id, capacity, home_region)
SELECT $1, u.id, u.capacity, $4 FROM unnest($2::text[], $3::integer[]) AS u(id, capacity)
ON CONFLICT (tenant_id, resource_id) DO UPDATE SET capacity = excluded.capacity`

	// seatsSQL returns the resource's capacity and the seats taken by other
	// confirmed bookings overlapping [$4, $5).
	seatsSQL = `
SELECT COALESCE((SELECT capacity FROM resources WHERE tenant_id = $1 AND resource_id = $2), 1),
       ARRAY(SELECT capacity_slot FROM bookings
             WHERE tenant_id = $1 AND resource_id = $2 AND status = 'confirmed'
               AND booking_id <> $3 AND block_start < $5 AND block_end > $4)`

	upsertBookingSQL = `
INSERT INTO bookings (tenant_id, booking_id, resource_id, block_start, block_end, capacity, capacity_slot, status, seq, home_region)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'confirmed', $8, $9)
ON CONFLICT (tenant_id, booking_id) DO UPDATE SET
    resource_id = excluded.resource_id, block_start = excluded.block_start, block_end = excluded.block_end,
    capacity = excluded.capacity, capacity_slot = excluded.capacity_slot, status = excluded.status,
    seq = excluded.seq`

	cancelBookingSQL = `
UPDATE bookings SET status = 'cancelled', seq = $3 WHERE tenant_id = $1 AND booking_id = $2`

	resourceBookingsSQL = `
SELECT booking_id, block_start, block_end, capacity, capacity_slot FROM bookings
WHERE tenant_id = $1 AND resource_id = $2 AND status = 'confirmed' AND booking_id <> $3
ORDER BY block_start, booking_id`

	reseatSQL = `
UPDATE bookings AS b SET capacity_slot = u.slot
FROM unnest($2::text[], $3::integer[]) AS u(id, slot)
WHERE b.tenant_id = $1 AND b.booking_id = u.id`
)

// project applies ops in order inside the append transaction.
func (s *Store) project(ctx context.Context, tx pgx.Tx, tenant, region string, ops []projOp) error {
	for _, op := range ops {
		var err error
		switch op.typ {
		case engine.EvConfigured, engine.EvResourceUpserted:
			err = projectResources(ctx, tx, tenant, region, op)
		case engine.EvBookingConfirmed, engine.EvBookingRescheduled:
			err = s.seat(ctx, tx, tenant, region, op)
		case engine.EvBookingCancelled:
			_, err = tx.Exec(ctx, cancelBookingSQL, tenant, op.bookingID, op.seq)
		}
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23P01" { // exclusion_violation
				err = fmt.Errorf("%w: %w", ErrOverlap, err)
			}
			return fmt.Errorf("bookings projection, seq %d (%s): %w", op.seq, op.typ, err)
		}
	}
	return nil
}

func projectResources(ctx context.Context, tx pgx.Tx, tenant, region string, op projOp) error {
	ids := make([]string, len(op.resources))
	caps := make([]int32, len(op.resources))
	for i, r := range op.resources {
		ids[i], caps[i] = r.ID, int32(max(1, min(r.Capacity, engine.MaxCapacity)))
	}
	if op.typ == engine.EvConfigured {
		// A configuration replaces the tenant's resources.
		if _, err := tx.Exec(ctx, deleteResourcesSQL, tenant, ids); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, upsertResourcesSQL, tenant, ids, caps, region)
	return err
}

// seat stores a confirmed (or rescheduled) booking on the lowest seat free
// over its block, repacking the resource when fragmentation leaves none.
func (s *Store) seat(ctx context.Context, tx pgx.Tx, tenant, region string, op projOp) error {
	b := op.booking
	var capacity int32
	var used []int32
	if err := tx.QueryRow(ctx, seatsSQL, tenant, b.ResourceID, b.ID, b.BlockStart, b.BlockEnd).Scan(&capacity, &used); err != nil {
		return fmt.Errorf("read seats: %w", err)
	}
	choose := s.chooseSeat
	if choose == nil {
		choose = lowestFreeSeat
	}
	slot, ok := choose(capacity, used)
	if !ok {
		var err error
		if slot, err = repack(ctx, tx, tenant, b, capacity); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, upsertBookingSQL, tenant, b.ID, b.ResourceID, b.BlockStart, b.BlockEnd,
		capacity, slot, op.seq, region)
	return err
}

// lowestFreeSeat returns the lowest seat in [0, capacity) not in used.
func lowestFreeSeat(capacity int32, used []int32) (int32, bool) {
	slices.Sort(used)
	var seat int32
	for _, u := range used {
		if u == seat {
			seat++
		} else if u > seat {
			break
		}
	}
	return seat, seat < capacity
}

// seated is one booking in a repack.
type seated struct {
	id         string
	start, end time.Time
	capacity   int32
	slot       int32
}

// repack reassigns the seats of the resource's confirmed bookings, b
// included, in order of start, and returns b's seat. It fails with
// ErrOverlap when some instant has more bookings than seats.
func repack(ctx context.Context, tx pgx.Tx, tenant string, b *engine.Booking, capacity int32) (int32, error) {
	rows, err := tx.Query(ctx, resourceBookingsSQL, tenant, b.ResourceID, b.ID)
	if err != nil {
		return 0, fmt.Errorf("repack: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (seated, error) {
		var x seated
		err := row.Scan(&x.id, &x.start, &x.end, &x.capacity, &x.slot)
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("repack: %w", err)
	}
	before := make(map[string]int32, len(all))
	for _, x := range all {
		before[x.id] = x.slot
	}
	all = append(all, seated{id: b.ID, start: b.BlockStart, end: b.BlockEnd, capacity: capacity})
	slices.SortFunc(all, func(x, y seated) int {
		return cmp.Or(x.start.Compare(y.start), cmp.Compare(x.id, y.id))
	})
	var active []seated // seated bookings whose blocks may still overlap the next
	var newSlot int32
	var ids []string
	var slots []int32
	for _, x := range all {
		active = slices.DeleteFunc(active, func(a seated) bool { return !a.end.After(x.start) })
		used := make([]int32, len(active))
		for i, a := range active {
			used[i] = a.slot
		}
		slot, ok := lowestFreeSeat(x.capacity, used)
		if !ok {
			return 0, fmt.Errorf("resource %s has more than %d confirmed bookings overlapping %s: %w",
				b.ResourceID, x.capacity, x.start.Format(time.RFC3339), ErrOverlap)
		}
		x.slot = slot
		active = append(active, x)
		if x.id == b.ID {
			newSlot = slot
		} else if before[x.id] != slot {
			ids, slots = append(ids, x.id), append(slots, slot)
		}
	}
	if len(ids) > 0 {
		// One statement: the deferrable constraint is checked at its end,
		// when the seats are consistent again.
		if _, err := tx.Exec(ctx, reseatSQL, tenant, ids, slots); err != nil {
			return 0, fmt.Errorf("repack: %w", err)
		}
	}
	return newSlot, nil
}
