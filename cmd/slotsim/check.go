package main

import (
	"fmt"
	"sort"
	"time"
)

// The invariant check compares what clients were told with the server's
// final state. It is a pure function of both, so that tests can feed it a
// corrupted state and see it fail.

// tenantCheck is one tenant's side of the comparison.
type tenantCheck struct {
	ID       string
	Capacity map[string]int
	// Acked: booking id → every final state the server may show for it.
	Acked map[string][]bookingState
	// UnknownKeys: idempotency keys of books whose outcome is unknown.
	UnknownKeys map[string]bool
	// Ignore: bookings that existed before the run.
	Ignore map[string]bool
	// Server: the final GET /v1/tenants/{id}/bookings.
	Server []booking
}

// violation is one broken invariant.
type violation struct {
	Kind   string `json:"kind"`
	Tenant string `json:"tenant,omitempty"`
	Detail string `json:"detail"`
}

// Violation kinds.
const (
	vAckedMissing  = "acked_missing"     // an acknowledged booking is not in the server
	vAckedMismatch = "acked_mismatch"    // it is, but not as the client was told
	vOverlap       = "overlap"           // confirmed bookings exceed a resource's capacity
	vUnacked       = "unacknowledged"    // a booking no client was told about, not in flight
	vViewer        = "viewer_diverged"   // a viewer's live availability differs from the server's
	vRush          = "rush_seats"        // a rush round did not sell exactly its seats
	vUnknownRes    = "unknown_resource"  // a booking on a resource the tenant does not have
	vCheckFailed   = "check_incomplete"  // the server's state could not be read
	vStuck         = "viewer_subscribed" // a viewer ended the run without a subscription
)

// checkReport is the outcome of the check.
type checkReport struct {
	Violations        []violation `json:"violations"`
	TenantsChecked    int         `json:"tenants_checked"`
	AckedChecked      int         `json:"acked_bookings_checked"`
	ServerBookings    int         `json:"server_bookings"`
	ServerConfirmed   int         `json:"server_confirmed"`
	InFlight          int         `json:"in_flight_books"`
	InFlightBooked    int         `json:"in_flight_books_that_exist"`
	InFlightAmbiguous int         `json:"bookings_with_ambiguous_last_op"`
	ViewersChecked    int         `json:"viewers_checked"`
	ViewerRetries     int         `json:"viewer_compare_rounds"`
	Passed            bool        `json:"passed"`
}

// maxListed bounds violations listed per kind; the count stays exact.
const maxListed = 50

func (r *checkReport) add(v violation) {
	r.Violations = append(r.Violations, v)
}

// checkBookings runs the booking invariants over every tenant.
func checkBookings(tenants []tenantCheck) checkReport {
	var r checkReport
	for i := range tenants {
		checkTenant(&r, &tenants[i])
	}
	r.Passed = len(r.Violations) == 0
	return r
}

func checkTenant(r *checkReport, t *tenantCheck) {
	r.TenantsChecked++
	byID := make(map[string]*booking, len(t.Server))
	for i := range t.Server {
		b := &t.Server[i]
		byID[b.ID] = b
		if t.Ignore[b.ID] {
			continue
		}
		r.ServerBookings++
		if b.Status == "confirmed" {
			r.ServerConfirmed++
		}
	}
	// 1. Every acknowledged booking exists, as the client was told.
	for _, id := range sortedKeys(t.Acked) {
		want := t.Acked[id]
		r.AckedChecked++
		if len(want) > 1 {
			r.InFlightAmbiguous++
		}
		b := byID[id]
		if b == nil {
			r.add(violation{vAckedMissing, t.ID, fmt.Sprintf("booking %s was acknowledged (%s) but the server does not have it", id, describe(want[0]))})
			continue
		}
		if !matchesAny(b, want) {
			r.add(violation{vAckedMismatch, t.ID, fmt.Sprintf("booking %s: server has %s on %s at %s, clients were told %s",
				id, b.Status, b.ResourceID, b.Start.UTC().Format(time.RFC3339), describeAll(want))})
		}
	}
	// 2. Every booking in the server was acknowledged, or was in flight.
	r.InFlight += len(t.UnknownKeys)
	for i := range t.Server {
		b := &t.Server[i]
		if t.Ignore[b.ID] {
			continue
		}
		if _, ok := t.Acked[b.ID]; ok {
			continue
		}
		if b.IdempotencyKey != "" && t.UnknownKeys[b.IdempotencyKey] {
			r.InFlightBooked++
			continue
		}
		r.add(violation{vUnacked, t.ID, fmt.Sprintf("booking %s (%s on %s at %s, key %q) was never acknowledged to a client",
			b.ID, b.Status, b.ResourceID, b.Start.UTC().Format(time.RFC3339), b.IdempotencyKey)})
	}
	// 3. Confirmed bookings never exceed a resource's capacity.
	byRes := map[string][]*booking{}
	for i := range t.Server {
		b := &t.Server[i]
		if b.Status == "confirmed" {
			byRes[b.ResourceID] = append(byRes[b.ResourceID], b)
		}
	}
	for _, res := range sortedKeys(byRes) {
		capacity, ok := t.Capacity[res]
		if !ok {
			r.add(violation{vUnknownRes, t.ID, fmt.Sprintf("%d confirmed bookings on resource %q, which the tenant does not have", len(byRes[res]), res)})
			continue
		}
		if peak, at, ids := peakOverlap(byRes[res]); peak > capacity {
			r.add(violation{vOverlap, t.ID, fmt.Sprintf("resource %s has %d confirmed bookings at %s, capacity %d: %v",
				res, peak, at.UTC().Format(time.RFC3339), capacity, ids)})
		}
	}
}

func matchesAny(b *booking, want []bookingState) bool {
	for _, w := range want {
		if b.Status != w.Status {
			continue
		}
		if w.Resource != "" && w.Resource != b.ResourceID {
			continue
		}
		if !w.Start.Equal(b.Start) {
			continue
		}
		return true
	}
	return false
}

func describe(s bookingState) string {
	res := s.Resource
	if res == "" {
		res = "any resource"
	}
	return fmt.Sprintf("%s on %s at %s", s.Status, res, s.Start.UTC().Format(time.RFC3339))
}

func describeAll(ss []bookingState) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " or "
		}
		out += describe(s)
	}
	return out
}

// peakOverlap returns the most bookings whose blocks [block_start,
// block_end) overlap at one instant, that instant, and the bookings.
func peakOverlap(bs []*booking) (int, time.Time, []string) {
	type edge struct {
		t time.Time
		d int
		i int
	}
	edges := make([]edge, 0, 2*len(bs))
	for i, b := range bs {
		edges = append(edges, edge{b.BlockStart, +1, i}, edge{b.BlockEnd, -1, i})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].t.Equal(edges[j].t) {
			return edges[i].t.Before(edges[j].t)
		}
		return edges[i].d < edges[j].d // half-open: an end frees before a start takes
	})
	cur, best := 0, 0
	var at time.Time
	open := map[int]bool{}
	var ids []string
	for _, e := range edges {
		cur += e.d
		if e.d > 0 {
			open[e.i] = true
		} else {
			delete(open, e.i)
		}
		if cur > best {
			best, at = cur, e.t
			ids = ids[:0]
			for i := range open {
				ids = append(ids, bs[i].ID)
			}
		}
	}
	sort.Strings(ids)
	return best, at, ids
}

// slotsEqual compares a viewer's slots with the server's.
func slotsEqual(view map[int64]slot, server []slot) (bool, string) {
	if len(view) != len(server) {
		return false, fmt.Sprintf("viewer shows %d slots, server %d", len(view), len(server))
	}
	for _, s := range server {
		v, ok := view[s.Start.UnixNano()]
		if !ok {
			return false, fmt.Sprintf("viewer lacks slot %s", s.Start.UTC().Format(time.RFC3339))
		}
		if v.Seats != s.Seats || !v.End.Equal(s.End) || !sameStrings(v.Resources, s.Resources) {
			return false, fmt.Sprintf("slot %s: viewer shows %d seats on %v, server %d on %v",
				s.Start.UTC().Format(time.RFC3339), v.Seats, v.Resources, s.Seats, s.Resources)
		}
	}
	return true, ""
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// summarizeViolations keeps at most maxListed of each kind, with counts.
func summarizeViolations(vs []violation) (listed []violation, counts map[string]int) {
	counts = map[string]int{}
	for _, v := range vs {
		counts[v.Kind]++
		if counts[v.Kind] <= maxListed {
			listed = append(listed, v)
		}
	}
	return listed, counts
}
