// Package clock abstracts time for the parts of slotd that wait on it (hold
// expiry timers), so tests can move time by hand instead of sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once, d from now, and a stop
	// function reporting whether it stopped the timer before it fired.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Manual is a clock that only moves when told to. Timers fire during
// Advance or Set, in deadline order.
type Manual struct {
	mu     sync.Mutex // guards the fields below
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
}

// NewManual returns a Manual clock at start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// NewTimer returns a timer that fires once the clock reaches now+d.
func (m *Manual) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{at: m.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- m.now
		t.stopped = true
	} else {
		m.timers = append(m.timers, t)
	}
	stop := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
	return t.c, stop
}

// Advance moves the clock forward by d, firing due timers.
func (m *Manual) Advance(d time.Duration) { m.Set(m.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing due timers.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.now = t
	}
	sort.SliceStable(m.timers, func(i, j int) bool { return m.timers[i].at.Before(m.timers[j].at) })
	keep := m.timers[:0]
	for _, tm := range m.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(m.now):
			tm.stopped = true
			tm.c <- m.now
		default:
			keep = append(keep, tm)
		}
	}
	m.timers = keep
}

// Pending reports how many timers are waiting, for tests that need to know
// an actor has armed its timer before advancing.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}
