package engine_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

// The seed corpora are in testdata/fuzz/<FuzzName>. Run a fuzzer with, for
// example,
//
//	go test ./engine -run '^$' -fuzz FuzzDecodeEvent -fuzztime 30s

// FuzzDecodeEvent: DecodeEvent never panics; what it accepts re-encodes to
// bytes that decode to the same event; and Evolve on a fresh and on a
// configured state returns an error rather than panicking.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"booking_cancelled","at":"2026-06-01T06:00:00Z","booking_id":"b1","reason":"flu"}`))
	f.Add([]byte(`{"type":"configured","config":null}`))
	base := newFixture(f)
	base.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
	base.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "class", Start: tue(10, 0)}, now0)
	snap := MustSnapshot(f, base.s)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := engine.DecodeEvent(data)
		if err != nil {
			return
		}
		b1, err := engine.EncodeEvent(e)
		if err != nil {
			t.Fatalf("EncodeEvent(DecodeEvent(%q)) = %v", data, err)
		}
		e2, err := engine.DecodeEvent(b1)
		if err != nil {
			t.Fatalf("DecodeEvent(%s) = %v, but it was encoded from a decoded event", b1, err)
		}
		b2, err := engine.EncodeEvent(e2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("re-encoding is not stable:\n%s\n%s (%v)", b1, b2, err)
		}
		_ = engine.NewState("fuzz").Evolve(e)
		s, err := engine.RestoreState("acme", snap)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Evolve(e); err == nil {
			if _, err := s.MarshalSnapshot(); err != nil {
				t.Fatalf("MarshalSnapshot after Evolve(%s) = %v", b1, err)
			}
		}
	})
}

// FuzzParseDate: ParseDate accepts exactly the canonical form of a real
// date from 1900 to 9999, and the date's arithmetic agrees with time.
func FuzzParseDate(f *testing.F) {
	f.Add("2026-10-25")
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := engine.ParseDate(s)
		if !ok {
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDate(%q) = %v, which prints differently", s, d)
		}
		if d.Year < 1900 || d.Year > 9999 {
			t.Fatalf("ParseDate(%q) accepted year %d", s, d.Year)
		}
		tm := time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC)
		if tm.Year() != d.Year || tm.Month() != d.Month || tm.Day() != d.Day {
			t.Fatalf("ParseDate(%q) = %v, not a real date", s, d)
		}
		if d.Weekday() != tm.Weekday() {
			t.Fatalf("%v.Weekday() = %v, want %v", d, d.Weekday(), tm.Weekday())
		}
		if next := d.AddDays(1); !d.Before(next) || !next.After(d) || next.AddDays(-1) != d {
			t.Fatalf("%v.AddDays(1) = %v does not round-trip", d, next)
		}
	})
}

// FuzzApplyConfigure: any JSON that decodes to a TenantConfig can be
// applied, to a new tenant and to one with bookings, without panicking,
// and is either refused with an *engine.Error or accepted in a canonical
// form that survives snapshots and a second Configure unchanged.
func FuzzApplyConfigure(f *testing.F) {
	b, err := json.Marshal(baseConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	// Days sharing hours, days with hours of their own, a day present but
	// empty: the weekly hours must be kept as given.
	f.Add([]byte(`{"name":"Week","time_zone":"Europe/Rome","resources":[{"id":"a","name":"A","kind":"staff","time_zone":"Europe/Rome","capacity":1,` +
		`"weekly":{"mon":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"tue":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],` +
		`"wed":[{"start":"10:00","end":"12:00"}],"thu":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"sat":[],"sun":[{"start":"10:00","end":"12:00"}]}}],` +
		`"services":[{"id":"s","name":"S","duration_min":30,"resources":["a"]}]}`))
	busy := newFixture(f)
	busy.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
	busy.apply(book("b2", "class", "room", tue(10, 0)), now0)
	busy.apply(book("b3", "class", "room", tue(10, 0)), now0)
	busySnap := MustSnapshot(f, busy.s)
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg engine.TenantConfig
		if json.Unmarshal(data, &cfg) != nil {
			return
		}
		s := engine.NewState("fuzz")
		_, err := engine.Apply(s, engine.Configure{Config: cfg}, now0)
		if code := codeOf(err); err != nil && (code == engine.CodeInternal || code[0] == '(') {
			t.Fatalf("Apply(Configure) = %v, want a domain error or success", err)
		}
		if err == nil {
			canon, ok := s.Config()
			if !ok {
				t.Fatal("Configure succeeded but the tenant is not configured")
			}
			// Opening hours are kept as given (days with equal hours share
			// storage, which must not show).
			for _, in := range cfg.Resources {
				i := slices.IndexFunc(canon.Resources, func(r engine.Resource) bool { return r.ID == in.ID })
				if i < 0 {
					t.Fatalf("resource %s is not in the configuration kept", in.ID)
				}
				if !sameJSON(in.Weekly, canon.Resources[i].Weekly) {
					t.Fatalf("resource %s: weekly hours kept as %+v, given %+v", in.ID, canon.Resources[i].Weekly, in.Weekly)
				}
			}
			snap := MustSnapshot(t, s)
			if r := MustSnapshot(t, MustRestore(t, s)); !bytes.Equal(snap, r) {
				t.Fatalf("restore changes the state:\n%s\n%s", snap, r)
			}
			again := engine.NewState("fuzz")
			MustApply(t, again, engine.Configure{Config: canon}, now0)
			if a := MustSnapshot(t, again); !bytes.Equal(snap, a) {
				t.Fatalf("configuring the canonical form changes it:\n%s\n%s", snap, a)
			}
			for i, svc := range canon.Services {
				if i == 3 {
					break
				}
				q := engine.AvailabilityQuery{ServiceID: svc.ID, From: "2026-06-01", To: "2026-06-03", TimeZone: canon.TimeZone}
				if _, err := s.Availability(q, now0); err != nil {
					t.Fatalf("Availability(%+v) = %v", q, err)
				}
				_, err := engine.Decide(s, book("b", svc.ID, "", tue(10, 0)), now0)
				if code := codeOf(err); code == engine.CodeInternal || (code != "" && code[0] == '(') {
					t.Fatalf("Book(any) = %v", err)
				}
			}
		}
		// The same configuration on a tenant with bookings.
		bs, err := engine.RestoreState("acme", busySnap)
		if err != nil {
			t.Fatal(err)
		}
		_, err = engine.Apply(bs, engine.Configure{Config: cfg}, now0)
		if code := codeOf(err); err != nil && (code == engine.CodeInternal || code[0] == '(') {
			t.Fatalf("Apply(Configure) on a busy tenant = %v", err)
		}
	})
}
