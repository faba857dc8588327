package engine

import (
	"slices"
	"sort"
	"time"
)

// MaxAvailabilityDays bounds one availability query.
const MaxAvailabilityDays = 62

// AvailabilityQuery asks for bookable slots of a service, on one resource or
// any (ResourceID ""), for the local dates From (inclusive) to To
// (exclusive) in the viewer's zone.
type AvailabilityQuery struct {
	ServiceID  string `json:"service"`
	ResourceID string `json:"resource,omitempty"`
	From       string `json:"from"`
	To         string `json:"to"`
	TimeZone   string `json:"tz"`
}

// Key identifies the query: equal queries have equal keys.
func (q AvailabilityQuery) Key() string {
	return q.ServiceID + "\x00" + q.ResourceID + "\x00" + q.From + "\x00" + q.To + "\x00" + q.TimeZone
}

// Slot is one bookable start. Resources lists those free for it (sorted);
// Seats is the number of bookings still possible (summed over resources).
// Start and End are in the viewer's zone.
type Slot struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Resources []string  `json:"resources"`
	Seats     int       `json:"seats"`
}

// Equal reports whether two slots say the same thing.
func (s Slot) Equal(o Slot) bool {
	if !s.Start.Equal(o.Start) || !s.End.Equal(o.End) || s.Seats != o.Seats || len(s.Resources) != len(o.Resources) {
		return false
	}
	for i := range s.Resources {
		if s.Resources[i] != o.Resources[i] {
			return false
		}
	}
	return true
}

// ValidateQuery checks a query's shape and returns the viewer's zone and the
// instant range it covers.
func (s *State) ValidateQuery(q AvailabilityQuery) (*time.Location, Interval, error) {
	if s.cfg == nil {
		return nil, Interval{}, Errorf(CodeNotFound, "tenant %q has no configuration yet", s.tenant)
	}
	svc := s.cfg.services[q.ServiceID]
	if svc == nil {
		return nil, Interval{}, Errorf(CodeNotFound, "service %q does not exist", q.ServiceID)
	}
	if q.ResourceID != "" {
		if s.cfg.resources[q.ResourceID] == nil {
			return nil, Interval{}, Errorf(CodeNotFound, "resource %q does not exist", q.ResourceID)
		}
		if !svc.delivers(q.ResourceID) {
			return nil, Interval{}, Errorf(CodeInvalid, "resource %q does not deliver service %s", q.ResourceID, q.ServiceID)
		}
	}
	loc, lerr := s.zone(q.TimeZone)
	if lerr != nil {
		return nil, Interval{}, lerr
	}
	from, ok1 := ParseDate(q.From)
	to, ok2 := ParseDate(q.To)
	if !ok1 || !ok2 {
		return nil, Interval{}, Errorf(CodeInvalid, "from and to must be dates YYYY-MM-DD")
	}
	if !from.Before(to) {
		return nil, Interval{}, Errorf(CodeInvalid, "to (%s) must be after from (%s); to is exclusive", to, from)
	}
	if to.AddDays(-MaxAvailabilityDays).After(from) {
		return nil, Interval{}, Errorf(CodeInvalid, "at most %d days per query", MaxAvailabilityDays)
	}
	return loc, Interval{LocalInstant(from, 0, loc), LocalInstant(to, 0, loc)}, nil
}

// After reports whether d is strictly after e.
func (d Date) After(e Date) bool { return e.Before(d) }

// Availability lists the bookable slots for q at now, sorted by start.
// A slot is bookable when it lies in opening hours, on the service's grid,
// outside minimum notice and within the horizon, and its whole block
// (buffers included) has free capacity and no busy block.
func (s *State) Availability(q AvailabilityQuery, now time.Time) ([]Slot, error) {
	loc, span, err := s.ValidateQuery(q)
	if err != nil {
		return nil, err
	}
	return s.availability(q, now, loc, span), nil
}

// availability is Availability for a valid query, limited to the slots
// starting in win (within the query's span). Slots are on the grid of each
// opening interval, whatever win is, so a slot computed over a part of the
// span is the slot computed over all of it.
func (s *State) availability(q AvailabilityQuery, now time.Time, loc *time.Location, win Interval) []Slot {
	now = now.UTC().Truncate(time.Microsecond) // the same now Decide uses
	svc := s.cfg.services[q.ServiceID]
	ids := svc.resources
	if q.ResourceID != "" {
		ids = []string{q.ResourceID}
	}
	earliest := maxTime(win.Start, now.Add(svc.notice))
	latest := minTime(win.End, now.Add(svc.horizon).Add(time.Nanosecond))
	if !earliest.Before(latest) {
		return nil
	}
	byStart := map[int64]*Slot{}
	for _, id := range ids {
		r := s.cfg.resources[id]
		first := DateOf(earliest, r.loc).AddDays(-1)
		last := DateOf(latest, r.loc).AddDays(1)
		for d := first; !last.Before(d); d = d.AddDays(1) {
			for _, iv := range s.cfg.openOn(r, d) {
				t := iv.Start
				if t.Before(earliest) { // jump to the first grid point not before earliest
					n := (earliest.Sub(t) + svc.step - 1) / svc.step
					t = t.Add(n * svc.step)
				}
				for ; !t.Add(svc.dur).After(iv.End) && t.Before(latest); t = t.Add(svc.step) {
					free := r.free(t.Add(-svc.before), t.Add(svc.dur+svc.after), now, "")
					if free < 1 {
						continue
					}
					k := t.UnixNano()
					sl := byStart[k]
					if sl == nil {
						sl = &Slot{Start: t.In(loc), End: t.Add(svc.dur).In(loc)}
						byStart[k] = sl
					}
					sl.Resources = append(sl.Resources, id)
					sl.Seats += free
				}
			}
		}
	}
	keys := make([]int64, 0, len(byStart))
	for k := range byStart {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Slot, len(keys))
	for i, k := range keys {
		sl := byStart[k]
		if len(ids) > 1 {
			sort.Strings(sl.Resources)
		}
		out[i] = *sl
	}
	return out
}
