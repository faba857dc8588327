package engine

import (
	"slices"
	"sort"
	"time"
)

// View is one availability query's slots, kept up to date from a state's
// Changes: after a booking, only the slots that booking can touch are
// recomputed, not the weeks the query covers. Subscribers of a query share
// one View. A View is not safe for concurrent use.
type View struct {
	q    AvailabilityQuery
	last map[int64]Slot // by start (UnixNano)
	keys []int64        // last's keys, sorted
}

// NewView computes q's availability in st at now.
func NewView(st *State, q AvailabilityQuery, now time.Time) (*View, error) {
	slots, err := st.Availability(q, now)
	if err != nil {
		return nil, err
	}
	v := &View{q: q}
	v.set(slots)
	return v, nil
}

// Query is the view's query.
func (v *View) Query() AvailabilityQuery { return v.q }

// Slots returns the view's slots, sorted by start.
func (v *View) Slots() []Slot {
	out := make([]Slot, len(v.keys))
	for i, k := range v.keys {
		out[i] = v.last[k]
	}
	return out
}

// Len is the number of slots in the view.
func (v *View) Len() int { return len(v.keys) }

// Update brings the view up to date with st at now and returns what changed:
// the slots added or changed (sorted by start) and the starts of those gone
// (sorted). With full unset only what c says changed is recomputed; full
// recomputes everything, which also catches what time changed (minimum
// notice, the horizon; see Changes). An error (the query's service or
// resource was removed) leaves the view as it was.
func (v *View) Update(st *State, now time.Time, c Changes, full bool) (up []Slot, removed []time.Time, err error) {
	if full {
		c = Changes{all: true}
	}
	if c.Empty() {
		return nil, nil, nil
	}
	slots, windows, all, err := st.ChangedAvailability(v.q, now, c)
	if err != nil {
		return nil, nil, err
	}
	if all {
		return v.replace(slots)
	}
	// Windows and slots are sorted; go backwards so that splicing a
	// window's keys leaves the earlier windows' indexes alone.
	end := len(slots)
	for w := len(windows) - 1; w >= 0; w-- {
		win := windows[w]
		start := sort.Search(end, func(i int) bool { return !slots[i].Start.Before(win.Start) })
		cur := slots[start:end]
		end = start
		lo, _ := slices.BinarySearch(v.keys, win.Start.UnixNano())
		hi, _ := slices.BinarySearch(v.keys, win.End.UnixNano())
		fresh := make([]int64, len(cur))
		for i, s := range cur {
			k := s.Start.UnixNano()
			fresh[i] = k
			if o, ok := v.last[k]; !ok || !o.Equal(s) {
				up = append(up, s)
				v.last[k] = s
			}
		}
		for _, k := range v.keys[lo:hi] {
			if _, ok := slices.BinarySearch(fresh, k); !ok {
				removed = append(removed, v.last[k].Start)
				delete(v.last, k)
			}
		}
		v.keys = slices.Replace(v.keys, lo, hi, fresh...)
	}
	sortSlotsByStart(up)
	sortTimes(removed)
	return up, removed, nil
}

// replace makes cur (sorted) the view's slots and returns the difference.
func (v *View) replace(cur []Slot) (up []Slot, removed []time.Time, err error) {
	seen := make(map[int64]bool, len(cur))
	for _, s := range cur {
		k := s.Start.UnixNano()
		seen[k] = true
		if o, ok := v.last[k]; !ok || !o.Equal(s) {
			up = append(up, s)
		}
	}
	for k, s := range v.last {
		if !seen[k] {
			removed = append(removed, s.Start)
		}
	}
	sortTimes(removed)
	v.set(cur)
	return up, removed, nil
}

func (v *View) set(slots []Slot) {
	v.last = make(map[int64]Slot, len(slots))
	v.keys = make([]int64, len(slots))
	for i, s := range slots {
		k := s.Start.UnixNano()
		v.last[k] = s
		v.keys[i] = k
	}
}

func sortSlotsByStart(s []Slot) {
	sort.Slice(s, func(i, j int) bool { return s[i].Start.Before(s[j].Start) })
}

func sortTimes(ts []time.Time) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
}
