package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

// The tests import time/tzdata (in hours_test.go) so that they pass on a
// machine without a zoneinfo database; the engine itself does not, and
// deps_test.go keeps it that way.

// ada is a valid customer for bookings whose customer does not matter.
var ada = engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+44 20 7946 0000"}

// codeOf returns the code of an *engine.Error inside err, "" for nil, and
// "(not an engine error)" for anything else, so a test can compare codes in
// one expression.
func codeOf(err error) engine.Code {
	if err == nil {
		return ""
	}
	var ee *engine.Error
	if !errors.As(err, &ee) {
		return "(not an engine error: " + engine.Code(err.Error()) + ")"
	}
	return ee.Code
}

// MustApply applies cmd at now and fails the test if it is refused.
func MustApply(tb testing.TB, s *engine.State, cmd engine.Command, now time.Time) engine.Result {
	tb.Helper()
	res, err := engine.Apply(s, cmd, now)
	if err != nil {
		tb.Fatalf("Apply(%s %+v) = %v, want success", engine.CommandName(cmd), cmd, err)
	}
	return res
}

// MustFail applies cmd at now and fails the test unless it is refused with
// want. It also checks that a refused command leaves the state untouched.
func MustFail(tb testing.TB, s *engine.State, cmd engine.Command, now time.Time, want engine.Code) *engine.Error {
	tb.Helper()
	before := MustSnapshot(tb, s)
	res, err := engine.Apply(s, cmd, now)
	if got := codeOf(err); got != want {
		tb.Fatalf("Apply(%s %+v) = %+v, %v; want error %s", engine.CommandName(cmd), cmd, res, err, want)
	}
	if after := MustSnapshot(tb, s); !bytes.Equal(before, after) {
		tb.Fatalf("Apply(%s) refused with %v but changed the state:\nbefore %s\nafter  %s", engine.CommandName(cmd), err, before, after)
	}
	var ee *engine.Error
	errors.As(err, &ee)
	return ee
}

// MustSnapshot returns s.MarshalSnapshot() or fails the test.
func MustSnapshot(tb testing.TB, s *engine.State) []byte {
	tb.Helper()
	b, err := s.MarshalSnapshot()
	if err != nil {
		tb.Fatalf("MarshalSnapshot() = %v", err)
	}
	return b
}

// MustRestore round-trips s through MarshalSnapshot and RestoreState.
func MustRestore(tb testing.TB, s *engine.State) *engine.State {
	tb.Helper()
	r, err := engine.RestoreState(s.Tenant(), MustSnapshot(tb, s))
	if err != nil {
		tb.Fatalf("RestoreState(%s) = %v", s.Tenant(), err)
	}
	return r
}

// MustReplay builds a fresh state from events, each encoded and decoded as
// a journal would.
func MustReplay(tb testing.TB, tenant string, events []engine.Event) *engine.State {
	tb.Helper()
	s := engine.NewState(tenant)
	for i, e := range events {
		b, err := engine.EncodeEvent(e)
		if err != nil {
			tb.Fatalf("EncodeEvent(#%d %s) = %v", i, e.Type, err)
		}
		d, err := engine.DecodeEvent(b)
		if err != nil {
			tb.Fatalf("DecodeEvent(%s) = %v", b, err)
		}
		if err := s.Evolve(d); err != nil {
			tb.Fatalf("Evolve(#%d %s) = %v", i, d.Type, err)
		}
	}
	return s
}

// MustAvailability lists availability or fails the test.
func MustAvailability(tb testing.TB, s *engine.State, q engine.AvailabilityQuery, now time.Time) []engine.Slot {
	tb.Helper()
	slots, err := s.Availability(q, now)
	if err != nil {
		tb.Fatalf("Availability(%+v) = %v", q, err)
	}
	return slots
}

// slotStarts formats the slot starts as local clock times in loc, for
// compact comparisons.
func slotStarts(slots []engine.Slot, loc *time.Location) []string {
	out := make([]string, len(slots))
	for i, sl := range slots {
		out[i] = sl.Start.In(loc).Format("01-02 15:04 -0700")
	}
	return out
}

// MustLoadLocation loads an IANA zone or fails the test.
func MustLoadLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("LoadLocation(%q) = %v", name, err)
	}
	return loc
}

// utc is shorthand for a UTC instant.
func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

// weekdays returns the same ranges for Monday to Friday.
func weekdays(rs ...engine.Range) map[string][]engine.Range {
	return days([]string{"mon", "tue", "wed", "thu", "fri"}, rs...)
}

// everyDay returns the same ranges for all seven days.
func everyDay(rs ...engine.Range) map[string][]engine.Range {
	return days([]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, rs...)
}

func days(keys []string, rs ...engine.Range) map[string][]engine.Range {
	m := make(map[string][]engine.Range, len(keys))
	for _, k := range keys {
		m[k] = append([]engine.Range(nil), rs...)
	}
	return m
}

// rng is a Range shorthand.
func rng(start, end string) engine.Range { return engine.Range{Start: start, End: end} }

func describeSlots(slots []engine.Slot) string {
	var b bytes.Buffer
	for _, s := range slots {
		fmt.Fprintf(&b, "%s %v seats=%d; ", s.Start.UTC().Format(time.RFC3339), s.Resources, s.Seats)
	}
	return b.String()
}

// sameJSON reports whether a and b encode to the same JSON, which compares
// times by instant and representation without caring about *Location
// pointers.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
