package engine_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // tests only: pass on machines without a zoneinfo database

	"github.com/slotd/slotd/engine"
)

// zoneSwitch is one change of a zone's UTC offset.
type zoneSwitch struct {
	At            time.Time // first instant of the new offset
	Before, After int       // offsets in seconds
}

// switchesIn scans loc's zone bounds and returns the offset changes during
// year (in UTC), so the tests do not hard-code what Go's tzdata says.
func switchesIn(loc *time.Location, year int) []zoneSwitch {
	var out []zoneSwitch
	t := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	stop := time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC)
	for {
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() || !end.Before(stop) {
			return out
		}
		_, before := end.Add(-time.Nanosecond).In(loc).Zone()
		_, after := end.In(loc).Zone()
		if before != after { // a change of abbreviation only is no switch
			out = append(out, zoneSwitch{At: end, Before: before, After: after})
		}
		t = end
	}
}

// localDate is the civil date of the local clock just after sw.
func (sw zoneSwitch) localDate(loc *time.Location) engine.Date {
	return engine.DateOf(sw.At, loc)
}

func TestZoneSwitches2026(t *testing.T) {
	// What the rest of this file relies on: the 2026 switches in Go's
	// tzdata, as local date, clock before → clock after, and offsets.
	tests := []struct {
		zone string
		want []string
	}{
		{"Europe/Rome", []string{
			"2026-03-29 02:00→03:00 +0100→+0200",
			"2026-10-25 03:00→02:00 +0200→+0100",
		}},
		{"America/New_York", []string{
			"2026-03-08 02:00→03:00 -0500→-0400",
			"2026-11-01 02:00→01:00 -0400→-0500",
		}},
		{"Australia/Lord_Howe", []string{
			"2026-04-05 02:00→01:30 +1100→+1030",
			"2026-10-04 02:00→02:30 +1030→+1100",
		}},
		{"Pacific/Chatham", []string{
			"2026-04-05 03:45→02:45 +1345→+1245",
			"2026-09-27 02:45→03:45 +1245→+1345",
		}},
		{"Pacific/Auckland", []string{
			"2026-04-05 03:00→02:00 +1300→+1200",
			"2026-09-27 02:00→03:00 +1200→+1300",
		}},
		{"Pacific/Kiritimati", nil},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			loc := MustLoadLocation(t, tt.zone)
			var got []string
			for _, sw := range switchesIn(loc, 2026) {
				before := sw.At.In(time.FixedZone("", sw.Before))
				after := sw.At.In(loc)
				got = append(got, fmt.Sprintf("%s %s→%s %s→%s", sw.localDate(loc),
					before.Format("15:04"), after.Format("15:04"), before.Format("-0700"), after.Format("-0700")))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("switchesIn(%s, 2026) = %q, want %q", tt.zone, got, tt.want)
			}
		})
	}
}

func TestLocalInstant(t *testing.T) {
	tests := []struct {
		name  string
		zone  string
		date  string
		clock string
		want  string // RFC 3339, UTC
	}{
		// Europe/Rome: spring forward 2026-03-29 02:00→03:00 (+01→+02).
		{"rome 09:00 day before spring forward", "Europe/Rome", "2026-03-28", "09:00", "2026-03-28T08:00:00Z"},
		{"rome 09:00 on spring forward", "Europe/Rome", "2026-03-29", "09:00", "2026-03-29T07:00:00Z"},
		{"rome 09:00 day after spring forward", "Europe/Rome", "2026-03-30", "09:00", "2026-03-30T07:00:00Z"},
		{"rome last minute before gap", "Europe/Rome", "2026-03-29", "01:59", "2026-03-29T00:59:00Z"},
		{"rome gap start resolves to gap end", "Europe/Rome", "2026-03-29", "02:00", "2026-03-29T01:00:00Z"},
		{"rome inside gap resolves to gap end", "Europe/Rome", "2026-03-29", "02:30", "2026-03-29T01:00:00Z"},
		{"rome last gap minute resolves to gap end", "Europe/Rome", "2026-03-29", "02:59", "2026-03-29T01:00:00Z"},
		{"rome gap end", "Europe/Rome", "2026-03-29", "03:00", "2026-03-29T01:00:00Z"},
		{"rome 24:00 before spring forward", "Europe/Rome", "2026-03-28", "24:00", "2026-03-28T23:00:00Z"},
		// Europe/Rome: fall back 2026-10-25 03:00→02:00 (+02→+01).
		{"rome 09:00 day before fall back", "Europe/Rome", "2026-10-24", "09:00", "2026-10-24T07:00:00Z"},
		{"rome 09:00 on fall back", "Europe/Rome", "2026-10-25", "09:00", "2026-10-25T08:00:00Z"},
		{"rome 09:00 day after fall back", "Europe/Rome", "2026-10-26", "09:00", "2026-10-26T08:00:00Z"},
		{"rome midnight of fall back", "Europe/Rome", "2026-10-25", "00:00", "2026-10-24T22:00:00Z"},
		{"rome 24:00 is next midnight", "Europe/Rome", "2026-10-24", "24:00", "2026-10-24T22:00:00Z"},
		{"rome before repeated hour", "Europe/Rome", "2026-10-25", "01:59", "2026-10-24T23:59:00Z"},
		{"rome repeated 02:00 first occurrence", "Europe/Rome", "2026-10-25", "02:00", "2026-10-25T00:00:00Z"},
		{"rome repeated 02:30 first occurrence", "Europe/Rome", "2026-10-25", "02:30", "2026-10-25T00:30:00Z"},
		{"rome repeated 02:59 first occurrence", "Europe/Rome", "2026-10-25", "02:59", "2026-10-25T00:59:00Z"},
		{"rome 03:00 after repeated hour", "Europe/Rome", "2026-10-25", "03:00", "2026-10-25T02:00:00Z"},
		// America/New_York: 2026-03-08 02:00→03:00, 2026-11-01 02:00→01:00.
		{"new york 09:00 day before spring forward", "America/New_York", "2026-03-07", "09:00", "2026-03-07T14:00:00Z"},
		{"new york 09:00 on spring forward", "America/New_York", "2026-03-08", "09:00", "2026-03-08T13:00:00Z"},
		{"new york before gap", "America/New_York", "2026-03-08", "01:59", "2026-03-08T06:59:00Z"},
		{"new york gap start", "America/New_York", "2026-03-08", "02:00", "2026-03-08T07:00:00Z"},
		{"new york inside gap", "America/New_York", "2026-03-08", "02:30", "2026-03-08T07:00:00Z"},
		{"new york gap end", "America/New_York", "2026-03-08", "03:00", "2026-03-08T07:00:00Z"},
		{"new york 09:00 day before fall back", "America/New_York", "2026-10-31", "09:00", "2026-10-31T13:00:00Z"},
		{"new york 09:00 on fall back", "America/New_York", "2026-11-01", "09:00", "2026-11-01T14:00:00Z"},
		{"new york before repeated hour", "America/New_York", "2026-11-01", "00:59", "2026-11-01T04:59:00Z"},
		{"new york repeated 01:00 first occurrence", "America/New_York", "2026-11-01", "01:00", "2026-11-01T05:00:00Z"},
		{"new york repeated 01:30 first occurrence", "America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30:00Z"},
		{"new york 02:00 after repeated hour", "America/New_York", "2026-11-01", "02:00", "2026-11-01T07:00:00Z"},
		// Australia/Lord_Howe: half-hour shifts, 2026-04-05 02:00→01:30 (+11→+10:30),
		// 2026-10-04 02:00→02:30 (+10:30→+11).
		{"lord howe 09:00 day before fall back", "Australia/Lord_Howe", "2026-04-04", "09:00", "2026-04-03T22:00:00Z"},
		{"lord howe 09:00 on fall back", "Australia/Lord_Howe", "2026-04-05", "09:00", "2026-04-04T22:30:00Z"},
		{"lord howe before repeated half hour", "Australia/Lord_Howe", "2026-04-05", "01:29", "2026-04-04T14:29:00Z"},
		{"lord howe repeated 01:30 first occurrence", "Australia/Lord_Howe", "2026-04-05", "01:30", "2026-04-04T14:30:00Z"},
		{"lord howe repeated 01:45 first occurrence", "Australia/Lord_Howe", "2026-04-05", "01:45", "2026-04-04T14:45:00Z"},
		{"lord howe 02:00 after repeated half hour", "Australia/Lord_Howe", "2026-04-05", "02:00", "2026-04-04T15:30:00Z"},
		{"lord howe 09:00 day before spring forward", "Australia/Lord_Howe", "2026-10-03", "09:00", "2026-10-02T22:30:00Z"},
		{"lord howe 09:00 on spring forward", "Australia/Lord_Howe", "2026-10-04", "09:00", "2026-10-03T22:00:00Z"},
		{"lord howe before gap", "Australia/Lord_Howe", "2026-10-04", "01:59", "2026-10-03T15:29:00Z"},
		{"lord howe gap start", "Australia/Lord_Howe", "2026-10-04", "02:00", "2026-10-03T15:30:00Z"},
		{"lord howe inside gap", "Australia/Lord_Howe", "2026-10-04", "02:15", "2026-10-03T15:30:00Z"},
		{"lord howe gap end", "Australia/Lord_Howe", "2026-10-04", "02:30", "2026-10-03T15:30:00Z"},
		// East of UTC+12.
		{"chatham 09:00 day before fall back", "Pacific/Chatham", "2026-04-04", "09:00", "2026-04-03T19:15:00Z"},
		{"chatham 09:00 on fall back", "Pacific/Chatham", "2026-04-05", "09:00", "2026-04-04T20:15:00Z"},
		{"chatham repeated 02:45 first occurrence", "Pacific/Chatham", "2026-04-05", "02:45", "2026-04-04T13:00:00Z"},
		{"chatham repeated 03:00 first occurrence", "Pacific/Chatham", "2026-04-05", "03:00", "2026-04-04T13:15:00Z"},
		{"chatham 03:45 after repeated hour", "Pacific/Chatham", "2026-04-05", "03:45", "2026-04-04T15:00:00Z"},
		{"chatham 09:00 day before spring forward", "Pacific/Chatham", "2026-09-26", "09:00", "2026-09-25T20:15:00Z"},
		{"chatham 09:00 on spring forward", "Pacific/Chatham", "2026-09-27", "09:00", "2026-09-26T19:15:00Z"},
		{"chatham gap start", "Pacific/Chatham", "2026-09-27", "02:45", "2026-09-26T14:00:00Z"},
		{"chatham inside gap", "Pacific/Chatham", "2026-09-27", "03:00", "2026-09-26T14:00:00Z"},
		{"chatham gap end", "Pacific/Chatham", "2026-09-27", "03:45", "2026-09-26T14:00:00Z"},
		{"auckland repeated 02:30 first occurrence", "Pacific/Auckland", "2026-04-05", "02:30", "2026-04-04T13:30:00Z"},
		{"auckland 09:00 on fall back", "Pacific/Auckland", "2026-04-05", "09:00", "2026-04-04T21:00:00Z"},
		{"auckland inside gap", "Pacific/Auckland", "2026-09-27", "02:30", "2026-09-26T14:00:00Z"},
		{"auckland 09:00 day before spring forward", "Pacific/Auckland", "2026-09-26", "09:00", "2026-09-25T21:00:00Z"},
		{"auckland 09:00 on spring forward", "Pacific/Auckland", "2026-09-27", "09:00", "2026-09-26T20:00:00Z"},
		{"kiritimati midnight new year", "Pacific/Kiritimati", "2026-01-01", "00:00", "2025-12-31T10:00:00Z"},
		{"kiritimati 09:00 new year", "Pacific/Kiritimati", "2026-01-01", "09:00", "2025-12-31T19:00:00Z"},
		{"kiritimati 24:00", "Pacific/Kiritimati", "2026-01-01", "24:00", "2026-01-01T10:00:00Z"},
		{"kiritimati 09:00 midsummer", "Pacific/Kiritimati", "2026-06-15", "09:00", "2026-06-14T19:00:00Z"},
		{"utc 24:00", "UTC", "2026-12-31", "24:00", "2027-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := MustLoadLocation(t, tt.zone)
			d, ok := engine.ParseDate(tt.date)
			if !ok {
				t.Fatalf("ParseDate(%q) failed", tt.date)
			}
			var h, m int
			if _, err := fmt.Sscanf(tt.clock, "%d:%d", &h, &m); err != nil {
				t.Fatalf("bad clock %q in table", tt.clock)
			}
			got := engine.LocalInstant(d, h*60+m, loc)
			want, _ := time.Parse(time.RFC3339, tt.want)
			if !got.Equal(want) {
				t.Errorf("LocalInstant(%s, %s, %s) = %s (%s local), want %s", tt.date, tt.clock, tt.zone,
					got.UTC().Format(time.RFC3339), got.In(loc).Format("15:04 -0700"), tt.want)
			}
		})
	}
}

// TestLocalInstantAgainstZoneBounds checks the documented rule for every
// quarter hour of every day of 2026 (and of the days around each switch,
// by the minute) against an independent computation from the zone's bounds.
func TestLocalInstantAgainstZoneBounds(t *testing.T) {
	zones := []string{"UTC", "Europe/Rome", "America/New_York", "Australia/Lord_Howe",
		"Pacific/Chatham", "Pacific/Auckland", "Pacific/Kiritimati"}
	for _, zone := range zones {
		t.Run(zone, func(t *testing.T) {
			loc := MustLoadLocation(t, zone)
			sws := switchesIn(loc, 2026)
			_, janOff := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).In(loc).Zone()
			offsets := []int{janOff}
			for _, sw := range sws {
				offsets = append(offsets, sw.Before, sw.After)
			}
			step := map[engine.Date]int{}
			for d := (engine.Date{Year: 2026, Month: 1, Day: 1}); d.Year == 2026; d = d.AddDays(1) {
				step[d] = 15
			}
			for _, sw := range sws {
				for i := -1; i <= 1; i++ {
					step[sw.localDate(loc).AddDays(i)] = 1
				}
			}
			for d, by := range step {
				prev := time.Time{}
				for min := 0; min <= 1440; min += by {
					got := engine.LocalInstant(d, min, loc)
					want := wantLocalInstant(d, min, loc, offsets, sws)
					if !got.Equal(want) {
						t.Fatalf("LocalInstant(%s, %02d:%02d, %s) = %s, want %s", d, min/60, min%60, zone,
							got.UTC().Format(time.RFC3339), want.UTC().Format(time.RFC3339))
					}
					if got.Before(prev) {
						t.Fatalf("LocalInstant(%s, %02d:%02d, %s) = %s goes back from %s", d, min/60, min%60, zone, got, prev)
					}
					prev = got
				}
			}
		})
	}
}

// wantLocalInstant is the rule in engine/doc.go computed another way: try
// every offset the zone uses and keep the earliest instant whose local
// clock reads the wall time; if none does, the wall time is in a gap and
// the answer is the switch that skipped it.
func wantLocalInstant(d engine.Date, min int, loc *time.Location, offsets []int, sws []zoneSwitch) time.Time {
	wall := time.Date(d.Year, d.Month, d.Day, 0, min, 0, 0, time.UTC) // the wall clock, read as UTC
	var best time.Time
	for _, off := range offsets {
		cand := wall.Add(-time.Duration(off) * time.Second)
		if _, got := cand.In(loc).Zone(); got != off {
			continue
		}
		if best.IsZero() || cand.Before(best) {
			best = cand
		}
	}
	if !best.IsZero() {
		return best
	}
	for _, sw := range sws {
		gapStart := sw.At.Add(time.Duration(sw.Before) * time.Second) // wall clocks, read as UTC
		gapEnd := sw.At.Add(time.Duration(sw.After) * time.Second)
		if !wall.Before(gapStart) && wall.Before(gapEnd) {
			return sw.At
		}
	}
	panic(fmt.Sprintf("wall time %s %d in %s neither exists nor lies in a gap", d, min, loc))
}

func TestDateOf(t *testing.T) {
	tests := []struct {
		at   time.Time
		zone string
		want string
	}{
		{utc(2025, 12, 31, 9, 59), "Pacific/Kiritimati", "2025-12-31"},
		{utc(2025, 12, 31, 10, 0), "Pacific/Kiritimati", "2026-01-01"},
		{utc(2026, 9, 26, 10, 15), "Pacific/Chatham", "2026-09-26"}, // 23:00 +12:45
		{utc(2026, 9, 26, 11, 15), "Pacific/Chatham", "2026-09-27"},
		{utc(2026, 11, 1, 4, 59), "America/New_York", "2026-11-01"},
		{utc(2026, 11, 1, 3, 59), "America/New_York", "2026-10-31"},
		{utc(2026, 3, 28, 23, 0), "Europe/Rome", "2026-03-29"},
	}
	for _, tt := range tests {
		loc := MustLoadLocation(t, tt.zone)
		if got := engine.DateOf(tt.at, loc).String(); got != tt.want {
			t.Errorf("DateOf(%s, %s) = %s, want %s", tt.at.Format(time.RFC3339), tt.zone, got, tt.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		week time.Weekday
	}{
		{"2026-03-29", true, time.Sunday},
		{"2028-02-29", true, time.Tuesday},
		{"1900-01-01", true, time.Monday},
		{"9999-12-31", true, time.Friday},
		{"2026-02-29", false, 0},
		{"2026-02-30", false, 0},
		{"2026-13-01", false, 0},
		{"2026-00-10", false, 0},
		{"2026-1-01", false, 0},
		{"2026-01-1", false, 0},
		{"26-01-01", false, 0},
		{"1899-12-31", false, 0},
		{"2026-01-01T00:00:00Z", false, 0},
		{" 2026-01-01", false, 0},
		{"", false, 0},
	}
	for _, tt := range tests {
		d, ok := engine.ParseDate(tt.in)
		if ok != tt.ok {
			t.Errorf("ParseDate(%q) = %v, %v; want ok %v", tt.in, d, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if d.String() != tt.in {
			t.Errorf("ParseDate(%q).String() = %q, want the input back", tt.in, d)
		}
		if d.Weekday() != tt.week {
			t.Errorf("ParseDate(%q).Weekday() = %v, want %v", tt.in, d.Weekday(), tt.week)
		}
	}
}

func TestDateArithmetic(t *testing.T) {
	d := engine.Date{Year: 2028, Month: 2, Day: 28}
	tests := []struct {
		n    int
		want string
	}{{0, "2028-02-28"}, {1, "2028-02-29"}, {2, "2028-03-01"}, {-59, "2027-12-31"}, {366, "2029-02-28"}}
	for _, tt := range tests {
		if got := d.AddDays(tt.n).String(); got != tt.want {
			t.Errorf("%s.AddDays(%d) = %s, want %s", d, tt.n, got, tt.want)
		}
	}
	a, b := engine.Date{Year: 2026, Month: 1, Day: 31}, engine.Date{Year: 2026, Month: 2, Day: 1}
	if !a.Before(b) || b.Before(a) || a.Before(a) || !b.After(a) || a.After(b) {
		t.Errorf("Before/After on %s, %s disagree with the calendar", a, b)
	}
	if c := (engine.Date{Year: 2025, Month: 12, Day: 31}); !c.Before(a) {
		t.Errorf("%s.Before(%s) = false, want true", c, a)
	}
}

// hoursTenant configures a tenant with one resource "r" in zone with the
// given weekly hours and overrides, and a service "s" of dur minutes
// stepping every step minutes, bookable up to two years ahead.
func hoursTenant(tb testing.TB, zone string, weekly map[string][]engine.Range, overrides map[string][]engine.Range, dur, step int) *engine.State {
	tb.Helper()
	s := engine.NewState("hours")
	MustApply(tb, s, engine.Configure{Config: engine.TenantConfig{
		Name: "Hours", TimeZone: zone,
		Resources: []engine.Resource{{ID: "r", Name: "R", Kind: "staff", TimeZone: zone, Capacity: 1, Weekly: weekly, Overrides: overrides}},
		Services:  []engine.Service{{ID: "s", Name: "S", DurationMin: dur, StepMin: step, HorizonDays: engine.MaxHorizonDays, Resources: []string{"r"}}},
	}}, hoursNow)
	return s
}

// hoursNow is "now" for the DST tests: before every 2026 switch, with the
// whole year inside the maximum horizon.
var hoursNow = utc(2025, 12, 1, 0, 0)

func TestNineOClockOnBothSidesOfEverySwitch(t *testing.T) {
	zones := []string{"Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "Pacific/Auckland", "Pacific/Kiritimati"}
	for _, zone := range zones {
		loc := MustLoadLocation(t, zone)
		dates := []engine.Date{{Year: 2026, Month: 6, Day: 15}} // a plain day, for zones with no switch
		for _, sw := range switchesIn(loc, 2026) {
			dates = append(dates, sw.localDate(loc))
		}
		for _, d := range dates {
			t.Run(zone+"/"+d.String(), func(t *testing.T) {
				s := hoursTenant(t, zone, everyDay(rng("09:00", "12:00")), nil, 60, 0)
				q := engine.AvailabilityQuery{ServiceID: "s", From: d.AddDays(-1).String(), To: d.AddDays(2).String(), TimeZone: zone}
				slots := MustAvailability(t, s, q, hoursNow)
				var got, want []string
				for i := -1; i <= 1; i++ {
					for _, h := range []string{"09:00", "10:00", "11:00"} {
						want = append(want, d.AddDays(i).String()+" "+h)
					}
				}
				for _, sl := range slots {
					got = append(got, sl.Start.In(loc).Format("2006-01-02 15:04"))
					if l := sl.End.Sub(sl.Start); l != time.Hour {
						t.Errorf("slot %s lasts %v, want 1h", sl.Start, l)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("Availability(%+v) starts = %q, want %q", q, got, want)
				}
			})
		}
	}
}

func TestOpeningAcrossSwitchHasTrueLength(t *testing.T) {
	tests := []struct {
		name      string
		zone      string
		date      string
		open      engine.Range
		dur, step int
		want      []string // local starts "15:04 -0700"
	}{
		{"rome spring forward", "Europe/Rome", "2026-03-29", rng("00:00", "06:00"), 60, 60,
			[]string{"00:00 +0100", "01:00 +0100", "03:00 +0200", "04:00 +0200", "05:00 +0200"}},
		{"rome fall back", "Europe/Rome", "2026-10-25", rng("00:00", "06:00"), 60, 60,
			[]string{"00:00 +0200", "01:00 +0200", "02:00 +0200", "02:00 +0100", "03:00 +0100", "04:00 +0100", "05:00 +0100"}},
		{"rome opening starts in the gap", "Europe/Rome", "2026-03-29", rng("02:30", "05:00"), 60, 60,
			[]string{"03:00 +0200", "04:00 +0200"}},
		{"rome opening wholly in the gap vanishes", "Europe/Rome", "2026-03-29", rng("02:00", "02:45"), 15, 15, nil},
		{"rome opening in the repeated hour is its first occurrence", "Europe/Rome", "2026-10-25", rng("02:00", "02:30"), 30, 30,
			[]string{"02:00 +0200"}},
		{"new york spring forward", "America/New_York", "2026-03-08", rng("00:00", "05:00"), 60, 60,
			[]string{"00:00 -0500", "01:00 -0500", "03:00 -0400", "04:00 -0400"}},
		{"new york fall back", "America/New_York", "2026-11-01", rng("00:00", "05:00"), 60, 60,
			[]string{"00:00 -0400", "01:00 -0400", "01:00 -0500", "02:00 -0500", "03:00 -0500", "04:00 -0500"}},
		{"lord howe spring forward by 30 minutes", "Australia/Lord_Howe", "2026-10-04", rng("00:00", "06:00"), 60, 60,
			[]string{"00:00 +1030", "01:00 +1030", "02:30 +1100", "03:30 +1100", "04:30 +1100"}},
		{"lord howe fall back by 30 minutes", "Australia/Lord_Howe", "2026-04-05", rng("00:00", "04:00"), 60, 60,
			[]string{"00:00 +1100", "01:00 +1100", "01:30 +1030", "02:30 +1030"}},
		{"chatham spring forward", "Pacific/Chatham", "2026-09-27", rng("00:00", "06:00"), 60, 60,
			[]string{"00:00 +1245", "01:00 +1245", "02:00 +1245", "04:00 +1345", "05:00 +1345"}},
		{"auckland fall back", "Pacific/Auckland", "2026-04-05", rng("00:00", "06:00"), 60, 60,
			[]string{"00:00 +1300", "01:00 +1300", "02:00 +1300", "02:00 +1200", "03:00 +1200", "04:00 +1200", "05:00 +1200"}},
		{"kiritimati whole day", "Pacific/Kiritimati", "2026-01-01", rng("00:00", "24:00"), 240, 240,
			[]string{"00:00 +1400", "04:00 +1400", "08:00 +1400", "12:00 +1400", "16:00 +1400", "20:00 +1400"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := MustLoadLocation(t, tt.zone)
			d, _ := engine.ParseDate(tt.date)
			s := hoursTenant(t, tt.zone, nil, map[string][]engine.Range{tt.date: {tt.open}}, tt.dur, tt.step)
			q := engine.AvailabilityQuery{ServiceID: "s", From: tt.date, To: d.AddDays(1).String(), TimeZone: tt.zone}
			slots := MustAvailability(t, s, q, hoursNow)
			var got []string
			for _, sl := range slots {
				got = append(got, sl.Start.In(loc).Format("15:04 -0700"))
				if l := sl.End.Sub(sl.Start); l != time.Duration(tt.dur)*time.Minute {
					t.Errorf("slot at %s lasts %v of elapsed time, want %dm", sl.Start, l, tt.dur)
				}
				// Every offered slot is bookable, and booking it takes it.
				if _, err := engine.Decide(s, engine.Book{BookingID: "b", ServiceID: "s", ResourceID: "r", Start: sl.Start, Customer: ada}, hoursNow); err != nil {
					t.Errorf("Book(%s) = %v, want success for an offered slot", sl.Start, err)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Availability(%s %s %s–%s) = %q, want %q", tt.zone, tt.date, tt.open.Start, tt.open.End, got, tt.want)
			}
		})
	}
}

func TestBookingInGapOrRepeatedHour(t *testing.T) {
	// Rome, open 01:00–04:00 on both switch days, 30-minute slots.
	s := hoursTenant(t, "Europe/Rome", nil, map[string][]engine.Range{
		"2026-03-29": {rng("01:00", "04:00")},
		"2026-10-25": {rng("01:00", "04:00")},
	}, 30, 30)
	tests := []struct {
		name  string
		start time.Time
		want  engine.Code
	}{
		{"01:30 CET before the gap", utc(2026, 3, 29, 0, 30), ""},
		{"03:00 CEST the gap's end", utc(2026, 3, 29, 1, 0), ""},
		{"03:30 CEST", utc(2026, 3, 29, 1, 30), ""},
		{"04:00 CEST is closing time", utc(2026, 3, 29, 2, 0), engine.CodeOutsideHours},
		{"off the elapsed-time grid", utc(2026, 3, 29, 1, 15), engine.CodeOffGrid},
		{"02:30 CEST, first 02:30", utc(2026, 10, 25, 0, 30), ""},
		{"02:00 CET, second 02:00", utc(2026, 10, 25, 1, 0), ""},
		{"03:30 CET", utc(2026, 10, 25, 2, 30), ""},
		{"04:00 CET is closing time", utc(2026, 10, 25, 3, 0), engine.CodeOutsideHours},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.Decide(s, engine.Book{BookingID: "b", ServiceID: "s", ResourceID: "r", Start: tt.start, Customer: ada}, hoursNow)
			if got := codeOf(err); got != tt.want {
				t.Errorf("Book(%s) = %v, want %q", tt.start.Format(time.RFC3339), err, tt.want)
			}
		})
	}
}

func TestAvailabilityViewerZone(t *testing.T) {
	// A Kiritimati resource viewed from New York: slots keep their instants
	// and are reported in the viewer's zone; the viewer's dates bound them.
	s := hoursTenant(t, "Pacific/Kiritimati", everyDay(rng("09:00", "11:00")), nil, 60, 0)
	ny := MustLoadLocation(t, "America/New_York")
	q := engine.AvailabilityQuery{ServiceID: "s", From: "2026-06-15", To: "2026-06-16", TimeZone: "America/New_York"}
	got := slotStarts(MustAvailability(t, s, q, hoursNow), ny)
	// 09:00 and 10:00 +14 on 06-16 are 15:00 and 16:00 -04 on 06-15.
	want := []string{"06-15 15:00 -0400", "06-15 16:00 -0400"}
	if !slices.Equal(got, want) {
		t.Errorf("Availability(%+v) = %q, want %q", q, got, want)
	}
	for _, sl := range MustAvailability(t, s, q, hoursNow) {
		if sl.Start.Location().String() != "America/New_York" {
			t.Errorf("slot start %v is in %v, want the viewer's zone", sl.Start, sl.Start.Location())
		}
	}
}
