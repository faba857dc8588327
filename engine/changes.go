package engine

import (
	"sort"
	"time"
)

// Changes is what Evolve changed in a state's availability since the last
// TakeChanges: the blocks of time on a resource whose occupancy changed
// (bookings, holds), or everything (configuration, imported busy times, a
// state just created or restored). A subscriber that knows the slots of a
// query before the changes recomputes only the slots the changes can touch
// (ChangedAvailability) instead of the whole query.
//
// Time passing also changes availability (minimum notice, the horizon, a
// hold running out before its expiry is stored): Changes does not track
// that; a subscriber recomputes in full from time to time for it.
type Changes struct {
	all    bool
	blocks []resourceBlock
}

type resourceBlock struct {
	resource string
	block    Interval
}

// maxTrackedBlocks bounds the blocks a state remembers between two
// TakeChanges; past it, it remembers "everything" instead, so a state whose
// changes nobody takes stays small.
const maxTrackedBlocks = 64

// Empty reports whether nothing that availability depends on changed.
func (c Changes) Empty() bool { return !c.all && len(c.blocks) == 0 }

// TakeChanges returns the changes since the last call and forgets them. A
// new or restored state reports everything changed.
func (s *State) TakeChanges() Changes {
	c := Changes{all: s.changedAll, blocks: s.changed}
	s.changedAll, s.changed = false, nil
	return c
}

// touched records that the occupancy of resource changed over block.
func (s *State) touched(resource string, block Interval) {
	if s.changedAll {
		return
	}
	if len(s.changed) >= maxTrackedBlocks {
		s.touchedAll()
		return
	}
	s.changed = append(s.changed, resourceBlock{resource, block})
}

// touchedAll records that anything may have changed.
func (s *State) touchedAll() { s.changedAll, s.changed = true, nil }

// ChangedAvailability returns what changes can have changed in q's
// availability at now: the windows of slot starts to recompute (sorted,
// disjoint, each [Start, End)) and q's bookable slots that start in them,
// sorted by start. Slots of q starting outside the windows are as
// Availability gave them before the changes (time passing aside, see
// Changes). all is set, and slots is the whole of Availability, when the
// changes do not say where they are.
func (s *State) ChangedAvailability(q AvailabilityQuery, now time.Time, c Changes) (slots []Slot, windows []Interval, all bool, err error) {
	if c.all {
		slots, err = s.Availability(q, now)
		return slots, nil, true, err
	}
	loc, span, err := s.ValidateQuery(q)
	if err != nil {
		return nil, nil, false, err
	}
	svc := s.cfg.services[q.ServiceID]
	for _, b := range c.blocks {
		if !svc.delivers(b.resource) || (q.ResourceID != "" && b.resource != q.ResourceID) {
			continue
		}
		// A slot starting at t occupies [t-before, t+dur+after): it
		// overlaps the block when t is in (block.Start-dur-after,
		// block.End+before).
		w := Interval{Start: b.block.Start.Add(-svc.dur - svc.after), End: b.block.End.Add(svc.before)}
		w.Start, w.End = maxTime(w.Start, span.Start), minTime(w.End, span.End)
		if w.Start.Before(w.End) {
			windows = append(windows, w)
		}
	}
	windows = mergeIntervals(windows)
	for _, w := range windows {
		slots = append(slots, s.availability(q, now, loc, w)...)
	}
	return slots, windows, false, nil
}

// mergeIntervals sorts ivs and merges those that overlap or touch.
func mergeIntervals(ivs []Interval) []Interval {
	if len(ivs) < 2 {
		return ivs
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start.Before(ivs[j].Start) })
	out := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &out[len(out)-1]
		if iv.Start.After(last.End) {
			out = append(out, iv)
			continue
		}
		last.End = maxTime(last.End, iv.End)
	}
	return out
}
