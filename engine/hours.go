package engine

import (
	"fmt"
	"time"
)

// Date is a civil date with no zone, as used for opening-hour overrides,
// holidays and availability ranges.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses "2006-01-02", rejecting impossible dates like 2026-02-30.
func ParseDate(s string) (Date, bool) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return Date{}, false
	}
	if t.Year() < 1900 || t.Year() > 9999 {
		return Date{}, false
	}
	return Date{t.Year(), t.Month(), t.Day()}, true
}

// DateOf is the civil date of t in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// AddDays returns d shifted by n days.
func (d Date) AddDays(n int) Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC)
	return Date{t.Year(), t.Month(), t.Day()}
}

// Before reports whether d is strictly before e.
func (d Date) Before(e Date) bool {
	if d.Year != e.Year {
		return d.Year < e.Year
	}
	if d.Month != e.Month {
		return d.Month < e.Month
	}
	return d.Day < e.Day
}

// Weekday of the civil date.
func (d Date) Weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

// LocalInstant resolves the wall-clock time min minutes after midnight of d
// in loc to an instant, deliberately: a time inside a spring-forward gap
// resolves to the instant the gap ends (the first existing time after it);
// a time that occurs twice in a fall-back resolves to its first occurrence.
// min may be 1440 (24:00), meaning midnight at the start of the next day.
func LocalInstant(d Date, min int, loc *time.Location) time.Time {
	wall := time.Date(d.Year, d.Month, d.Day, 0, min, 0, 0, time.UTC)
	// The offsets in force around this wall time. Transitions are months
	// apart in every zone, so the offsets a day either side cover both.
	var offs [3]int
	for i, probe := range []time.Time{wall.Add(-36 * time.Hour), wall, wall.Add(36 * time.Hour)} {
		_, offs[i] = probe.In(loc).Zone()
	}
	var best time.Time
	found := false
	for i, off := range offs {
		if i > 0 && (off == offs[0] || (i == 2 && off == offs[1])) {
			continue
		}
		cand := wall.Add(-time.Duration(off) * time.Second)
		if _, got := cand.In(loc).Zone(); got != off {
			continue // this offset is not in force at cand
		}
		if !found || cand.Before(best) {
			best, found = cand, true
		}
	}
	if found {
		return best
	}
	// In a gap: no offset maps to this wall time. With the earlier offset
	// the candidate lies after the transition; the zone then in force began
	// at the transition, which is the first instant that exists.
	earlier := offs[0]
	cand := wall.Add(-time.Duration(earlier) * time.Second)
	start, _ := cand.In(loc).ZoneBounds()
	if start.IsZero() || start.After(cand) {
		return cand
	}
	return start
}

// Interval is a half-open span of time [Start, End).
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Overlaps reports whether i and j share any instant.
func (i Interval) Overlaps(j Interval) bool { return i.Start.Before(j.End) && j.Start.Before(i.End) }

// rangesOn returns the wall-clock opening ranges of r on local date d:
// the date override if one exists, else nothing on a holiday, else the
// weekly hours.
func (c *compiled) rangesOn(r *resource, d Date) []minRange {
	if rs, ok := r.overrides[d]; ok {
		return rs
	}
	if c.holidays[d] {
		return nil
	}
	return r.weekly[d.Weekday()]
}

// openOn returns r's opening intervals on local date d as instants.
func (c *compiled) openOn(r *resource, d Date) []Interval {
	rs := c.rangesOn(r, d)
	if len(rs) == 0 {
		return nil
	}
	out := make([]Interval, 0, len(rs))
	for _, mr := range rs {
		s := LocalInstant(d, mr.start, r.loc)
		e := LocalInstant(d, mr.end, r.loc)
		if e.After(s) { // a range wholly inside a DST gap vanishes
			out = append(out, Interval{s, e})
		}
	}
	return out
}

// openingContaining returns the opening interval of r that contains
// [start, start+dur), checking the local dates around start.
func (c *compiled) openingContaining(r *resource, start time.Time, dur time.Duration) (Interval, bool) {
	d := DateOf(start, r.loc)
	end := start.Add(dur)
	for _, dd := range []Date{d.AddDays(-1), d, d.AddDays(1)} {
		for _, iv := range c.openOn(r, dd) {
			if !start.Before(iv.Start) && !end.After(iv.End) {
				return iv, true
			}
		}
	}
	return Interval{}, false
}
