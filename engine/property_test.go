package engine_test

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

var propSeed = flag.Uint64("engine.seed", 0, "run the engine property test for this one seed only")

// TestPropertyRandomCommands runs seeded random command sequences against
// one tenant and checks, after every step, that no resource is ever over
// capacity (buffers included), that the bookings and holds are what the
// results said they would be, and that availability and Book agree. At the
// end it checks that replaying the events and restoring a snapshot give the
// same state, and that those states decide exactly like the live one.
//
// A failure names its seed; rerun it alone with
//
//	go test ./engine -run TestPropertyRandomCommands -engine.seed=N -v
func TestPropertyRandomCommands(t *testing.T) {
	seqs, steps := 2000, 30
	if testing.Short() {
		seqs = 300
	}
	if raceEnabled { // the race detector slows this code about sevenfold: 400 sequences
		seqs /= 5
	}
	if *propSeed != 0 {
		runSequence(t, *propSeed, steps)
		return
	}
	// Seeds are split over a few parallel subtests: the sequences are
	// independent, and this keeps -race runs short on small machines.
	const groups = 4
	for g := range groups {
		t.Run(fmt.Sprintf("seeds%d", g), func(t *testing.T) {
			t.Parallel()
			for i := g; i < seqs; i += groups {
				if !runSequence(t, uint64(i+1), steps) {
					return // one failing seed is enough to read
				}
			}
		})
	}
}

// sim drives one random sequence. Its model (bookings, holds) is updated
// from command results, independently of the engine's occupancy, and the
// invariants are checked against it.
type sim struct {
	t      testing.TB
	seed   uint64
	r      *rand.Rand
	s      *engine.State
	now    time.Time
	events []engine.Event
	next   int
	trail  []string // recent commands, for failure messages

	bookings map[string]engine.Booking
	holds    map[string]engine.Hold
	busy     map[string]map[string][]engine.Interval // resource → source → blocks
	keyed    []keyedCmd
	removed  []engine.Resource // resources taken out of the configuration
	erased   map[string]bool   // subjects erased
	failed   bool

	views  map[string]*engine.View // kept up to date from the state's Changes
	viewsR *rand.Rand              // their queries' randomness, apart from r's
}

type keyedCmd struct {
	cmd engine.Command
	id  string // booking or hold it produced
}

var propZones = []string{"UTC", "Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
	"Pacific/Kiritimati", "Asia/Kolkata", "America/St_Johns"}

// propLocs caches the zones: time.LoadLocation reads the zone file each time.
var propLocs = func() map[string]*time.Location {
	m := map[string]*time.Location{}
	for _, z := range propZones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			panic(err)
		}
		m[z] = loc
	}
	return m
}()

// propStarts are first "now"s: the days before 2026's DST switches in the
// zones above, and two quiet weeks.
var propStarts = []time.Time{
	utc(2026, 3, 27, 6, 0), utc(2026, 10, 23, 6, 0), utc(2026, 3, 6, 12, 0), utc(2026, 10, 30, 12, 0),
	utc(2026, 4, 3, 0, 0), utc(2026, 10, 2, 0, 0), utc(2026, 9, 25, 0, 0), utc(2026, 6, 1, 6, 0), utc(2026, 1, 12, 9, 0),
}

func (m *sim) fatalf(format string, args ...any) {
	m.t.Helper()
	m.failed = true
	m.t.Fatalf("seed %d at %s: %s\nrecent commands:\n  %s", m.seed, m.now.Format(time.RFC3339Nano),
		fmt.Sprintf(format, args...), strings.Join(m.trail, "\n  "))
}

func (m *sim) id(prefix string) string {
	m.next++
	return fmt.Sprintf("%s%d", prefix, m.next)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// runSequence runs one seed and reports whether it passed.
func runSequence(t *testing.T, seed uint64, steps int) bool {
	t.Helper()
	m := &sim{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, 0x510d)), s: engine.NewState("prop"),
		bookings: map[string]engine.Booking{}, holds: map[string]engine.Hold{}, busy: map[string]map[string][]engine.Interval{},
		erased: map[string]bool{}, views: map[string]*engine.View{}, viewsR: rand.New(rand.NewPCG(seed, 0x71e3))}
	m.now = pick(m.r, propStarts).Add(time.Duration(m.r.IntN(24*60)) * time.Minute)
	m.mustApply(engine.Configure{Config: m.genConfig()})
	m.checkViews(true)
	for range steps {
		m.step()
		m.checkViews(false)
		m.checkModel()
		m.checkCapacity()
		m.checkAvailability()
		m.advance()
		m.checkViews(true) // as an actor's periodic refresh does, for what time changed
	}
	m.checkReplayAndRestore()
	return !m.failed
}

// ---- configuration ----

func (m *sim) genConfig() engine.TenantConfig {
	cfg := engine.TenantConfig{Name: "prop", TimeZone: pick(m.r, propZones), HoldTTLSec: pick(m.r, []int{0, 30, 120, 600})}
	n := 2 + m.r.IntN(3)
	for range n {
		cfg.Resources = append(cfg.Resources, m.genResource(m.id("r")))
	}
	for range 1 + m.r.IntN(3) {
		cfg.Services = append(cfg.Services, m.genService(m.id("s"), cfg.Resources))
	}
	if m.r.IntN(3) == 0 {
		cfg.Holidays = []engine.Holiday{{Date: engine.DateOf(m.now, time.UTC).AddDays(1 + m.r.IntN(3)).String(), Name: "holiday"}}
	}
	return cfg
}

func (m *sim) genResource(id string) engine.Resource {
	r := engine.Resource{ID: id, Name: "res " + id, Kind: pick(m.r, []string{"staff", "room"}), TimeZone: pick(m.r, propZones),
		Capacity: 1 + m.r.IntN(3), Weekly: map[string][]engine.Range{}}
	for _, day := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		if m.r.IntN(5) == 0 {
			continue // closed
		}
		r.Weekly[day] = m.genRanges()
	}
	if m.r.IntN(3) == 0 {
		d := engine.DateOf(m.now, time.UTC).AddDays(m.r.IntN(4)).String()
		r.Overrides = map[string][]engine.Range{d: m.genRanges()}
	}
	return r
}

// genRanges returns one or two opening ranges, often over the small hours
// when clocks change.
func (m *sim) genRanges() []engine.Range {
	clock := func(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }
	start := pick(m.r, []int{0, 60, 90, 7 * 60, 8*60 + 30, 9 * 60, 13 * 60})
	end := min(start+60*(2+m.r.IntN(8))+pick(m.r, []int{0, 15, 30, 45}), 24*60)
	rs := []engine.Range{{Start: clock(start), End: clock(end)}}
	if end <= 20*60 && m.r.IntN(3) == 0 {
		s2 := end + 30*(1+m.r.IntN(4))
		rs = append(rs, engine.Range{Start: clock(s2), End: clock(min(s2+120+30*m.r.IntN(6), 24*60))})
	}
	return rs
}

func (m *sim) genService(id string, resources []engine.Resource) engine.Service {
	s := engine.Service{ID: id, Name: "svc " + id,
		DurationMin:     pick(m.r, []int{15, 20, 30, 45, 60, 90}),
		BufferBeforeMin: pick(m.r, []int{0, 0, 5, 10, 15, 30}),
		BufferAfterMin:  pick(m.r, []int{0, 0, 5, 10, 15, 30}),
		StepMin:         pick(m.r, []int{0, 0, 5, 10, 15, 15, 30, 30, 60}),
		MinNoticeMin:    pick(m.r, []int{0, 0, 0, 30, 120}),
		HorizonDays:     pick(m.r, []int{0, 1, 2, 3, 7}),
	}
	for _, r := range resources {
		if m.r.IntN(3) != 0 {
			s.Resources = append(s.Resources, r.ID)
		}
	}
	if len(s.Resources) == 0 {
		s.Resources = []string{pick(m.r, resources).ID}
	}
	return s
}

func (m *sim) config() engine.TenantConfig {
	cfg, ok := m.s.Config()
	if !ok {
		m.fatalf("tenant lost its configuration")
	}
	return cfg
}

func (m *sim) service(id string) (engine.Service, bool) {
	for _, s := range m.config().Services {
		if s.ID == id {
			return s, true
		}
	}
	return engine.Service{}, false
}

// ---- commands ----

func (m *sim) step() {
	cfg := m.config()
	switch n := m.r.IntN(100); {
	case n < 18:
		m.placeHold(cfg)
	case n < 40:
		m.book(cfg)
	case n < 50:
		m.bookFromHold()
	case n < 57:
		m.cancel()
	case n < 67:
		m.reschedule(cfg)
	case n < 71:
		m.importBusy(cfg)
	case n < 76:
		m.expireHolds()
	case n < 79:
		m.release()
	case n < 89:
		m.reconfigure(cfg)
	case n < 91:
		m.erase()
	default:
		m.retry()
	}
}

// start picks a start for service on resource ("" any): usually one the
// engine offers, sometimes an arbitrary whole minute in the next days.
func (m *sim) start(svc engine.Service, resource string) time.Time {
	if m.r.IntN(10) < 7 {
		q := m.query(svc.ID, resource)
		if slots, err := m.s.Availability(q, m.now); err == nil && len(slots) > 0 {
			if m.r.IntN(2) == 0 { // crowd the first slots, where capacity runs out
				slots = slots[:min(len(slots), 3)]
			}
			return pick(m.r, slots).Start
		}
	}
	t := m.now.Truncate(5 * time.Minute).Add(time.Duration(m.r.IntN(4*24*12)) * 5 * time.Minute)
	if m.r.IntN(10) == 0 {
		t = t.Add(time.Duration(m.r.IntN(5)) * time.Minute)
	}
	return t
}

// query is a sample availability query from "today" in a random zone.
func (m *sim) query(service, resource string) engine.AvailabilityQuery {
	zone := pick(m.r, propZones)
	from := engine.DateOf(m.now, propLocs[zone]).AddDays(m.r.IntN(2) - 1)
	return engine.AvailabilityQuery{ServiceID: service, ResourceID: resource, From: from.String(), To: from.AddDays(1 + m.r.IntN(3)).String(), TimeZone: zone}
}

func (m *sim) pickService(cfg engine.TenantConfig) (engine.Service, string) {
	svc := pick(m.r, cfg.Services)
	res := ""
	if m.r.IntN(2) == 0 {
		res = pick(m.r, svc.Resources)
	}
	return svc, res
}

func (m *sim) key() string {
	if m.r.IntN(3) == 0 {
		return m.id("k")
	}
	return ""
}

func (m *sim) placeHold(cfg engine.TenantConfig) {
	svc, res := m.pickService(cfg)
	ttl := pick(m.r, []time.Duration{0, 10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, time.Hour,
		10*time.Second + time.Duration(m.r.IntN(1000))*time.Nanosecond})
	m.apply(engine.PlaceHold{HoldID: m.id("h"), ServiceID: svc.ID, ResourceID: res, Start: m.start(svc, res), TTL: ttl, IdempotencyKey: m.key()})
}

func (m *sim) book(cfg engine.TenantConfig) {
	svc, res := m.pickService(cfg)
	c := ada
	c.Subject = pick(m.r, propSubjects)
	if m.r.IntN(20) == 0 {
		c.Email = "not an email"
	}
	m.apply(engine.Book{BookingID: m.id("b"), ServiceID: svc.ID, ResourceID: res, Start: m.start(svc, res), Customer: c, IdempotencyKey: m.key()})
}

func (m *sim) bookFromHold() {
	holds := m.s.Holds()
	cmd := engine.Book{BookingID: m.id("b"), HoldID: "unknown", Customer: ada, IdempotencyKey: m.key()}
	if len(holds) > 0 && m.r.IntN(10) != 0 {
		h := pick(m.r, holds)
		cmd.HoldID = h.ID
		switch m.r.IntN(6) {
		case 0:
			cmd.ServiceID, cmd.ResourceID, cmd.Start = h.ServiceID, h.ResourceID, h.Start
		case 1:
			cmd.Start = h.Start.Add(5 * time.Minute) // mismatch: invalid
		}
	}
	m.apply(cmd)
}

// propSubjects are the pseudonyms customers book under ("": none).
var propSubjects = []string{"", "s1", "s2", "s3", "s4"}

func (m *sim) erase() {
	m.apply(engine.EraseSubject{Subject: pick(m.r, propSubjects[1:])})
}

func (m *sim) randomBooking() string {
	if len(m.bookings) == 0 || m.r.IntN(15) == 0 {
		return "nobooking"
	}
	ids := slices.Sorted(maps.Keys(m.bookings))
	return pick(m.r, ids)
}

func (m *sim) cancel() {
	m.apply(engine.Cancel{BookingID: m.randomBooking(), Reason: pick(m.r, []string{"", "ill", "moved"}), IdempotencyKey: m.key()})
}

func (m *sim) reschedule(cfg engine.TenantConfig) {
	id := m.randomBooking()
	cmd := engine.Reschedule{BookingID: id, IdempotencyKey: m.key()}
	b, ok := m.bookings[id]
	svc, svcOK := m.service(b.ServiceID)
	if !ok || !svcOK {
		cmd.Start = m.now.Add(time.Hour).Truncate(time.Hour)
		m.apply(cmd)
		return
	}
	switch m.r.IntN(4) {
	case 0:
		cmd.AnyResource = true
	case 1:
		cmd.ResourceID = pick(m.r, svc.Resources)
	}
	target := cmd.ResourceID
	if target == "" && !cmd.AnyResource {
		target = b.ResourceID
	}
	if m.r.IntN(4) == 0 && !cmd.AnyResource {
		// Near its own slot, to exercise moves within its own block.
		cmd.Start = b.Start.Add(time.Duration(m.r.IntN(7)-3) * 15 * time.Minute)
	} else {
		cmd.Start = m.start(svc, target)
	}
	m.apply(cmd)
}

func (m *sim) importBusy(cfg engine.TenantConfig) {
	cmd := engine.ImportBusy{ResourceID: pick(m.r, cfg.Resources).ID, Source: pick(m.r, []string{"gcal", "ical"})}
	for range m.r.IntN(4) {
		s := m.now.Truncate(time.Minute).Add(time.Duration(m.r.IntN(72*60)) * time.Minute)
		cmd.Blocks = append(cmd.Blocks, engine.Interval{Start: s, End: s.Add(time.Duration(15+m.r.IntN(180)) * time.Minute)})
	}
	m.apply(cmd)
}

func (m *sim) expireHolds() {
	dnow := m.now.UTC().Truncate(time.Microsecond)
	var want []string
	for id, h := range m.holds {
		if !dnow.Before(h.ExpiresAt) {
			want = append(want, id)
		}
	}
	sort.Strings(want)
	res := m.mustApply(engine.ExpireHolds{})
	var got []string
	for _, e := range res.Events {
		got = append(got, e.HoldID)
	}
	if !slices.Equal(got, want) {
		m.fatalf("ExpireHolds expired %v, want %v", got, want)
	}
}

func (m *sim) release() {
	id := "nohold"
	if hs := m.s.Holds(); len(hs) > 0 {
		id = pick(m.r, hs).ID
	}
	m.apply(engine.ReleaseHold{HoldID: id})
}

func (m *sim) reconfigure(cfg engine.TenantConfig) {
	switch m.r.IntN(7) {
	case 0: // capacity up or down
		r := pick(m.r, cfg.Resources)
		r.Capacity = max(1, min(3, r.Capacity+pick(m.r, []int{-1, -1, 1})))
		m.apply(engine.UpsertResource{Resource: r})
	case 1: // new hours, maybe a new zone
		r := pick(m.r, cfg.Resources)
		nr := m.genResource(r.ID)
		nr.Capacity = r.Capacity
		if m.r.IntN(2) == 0 {
			nr.TimeZone = r.TimeZone
		}
		m.apply(engine.UpsertResource{Resource: nr})
	case 2: // change or add a service
		id := m.id("s")
		if m.r.IntN(2) == 0 {
			id = pick(m.r, cfg.Services).ID
		}
		m.apply(engine.UpsertService{Service: m.genService(id, cfg.Resources)})
	case 3:
		r := pick(m.r, cfg.Resources)
		d := engine.DateOf(m.now, time.UTC).AddDays(m.r.IntN(4)).String()
		switch m.r.IntN(3) {
		case 0:
			m.apply(engine.SetOverride{ResourceID: r.ID, Date: d, Clear: true})
		case 1:
			m.apply(engine.SetOverride{ResourceID: r.ID, Date: d})
		default:
			m.apply(engine.SetOverride{ResourceID: r.ID, Date: d, Open: m.genRanges()})
		}
	case 4: // remove a resource (refused while it has upcoming bookings)
		if len(cfg.Resources) < 2 {
			return
		}
		gone := pick(m.r, cfg.Resources)
		nc := cfg
		nc.Resources = slices.DeleteFunc(slices.Clone(cfg.Resources), func(r engine.Resource) bool { return r.ID == gone.ID })
		nc.Services = nil
		for _, s := range cfg.Services {
			s.Resources = slices.DeleteFunc(slices.Clone(s.Resources), func(id string) bool { return id == gone.ID })
			if len(s.Resources) > 0 {
				nc.Services = append(nc.Services, s)
			}
		}
		if len(nc.Services) == 0 {
			nc.Services = []engine.Service{m.genService(m.id("s"), nc.Resources)}
		}
		if _, err := m.apply(engine.Configure{Config: nc}); err == nil {
			m.removed = append(m.removed, gone)
		}
	case 5: // bring a removed resource back, or add a new one
		if len(cfg.Resources) >= 6 {
			return
		}
		nc := cfg
		var r engine.Resource
		if len(m.removed) > 0 && m.r.IntN(3) != 0 {
			r, m.removed = m.removed[0], m.removed[1:]
		} else {
			r = m.genResource(m.id("r"))
		}
		nc.Resources = append(slices.Clone(cfg.Resources), r)
		nc.Services = slices.Clone(cfg.Services)
		nc.Services[0].Resources = append(slices.Clone(nc.Services[0].Resources), r.ID)
		m.apply(engine.Configure{Config: nc})
	default: // holidays and the hold TTL
		nc := cfg
		nc.HoldTTLSec = pick(m.r, []int{0, 10, 300, 3600})
		nc.Holidays = nil
		if m.r.IntN(2) == 0 {
			nc.Holidays = []engine.Holiday{{Date: engine.DateOf(m.now, time.UTC).AddDays(m.r.IntN(3)).String()}}
		}
		m.apply(engine.Configure{Config: nc})
	}
}

// retry resends an earlier keyed command that succeeded, as it was (it
// must return the first result) or changed (it must be refused).
func (m *sim) retry() {
	if len(m.keyed) == 0 {
		return
	}
	k := pick(m.r, m.keyed)
	cmd := k.cmd
	changed := m.r.IntN(3) == 0
	if changed {
		switch c := cmd.(type) {
		case engine.Book:
			c.Start = c.Start.Add(time.Minute)
			cmd = c
		case engine.PlaceHold:
			c.Start = c.Start.Add(time.Minute)
			cmd = c
		case engine.Reschedule:
			c.Start = c.Start.Add(time.Minute)
			cmd = c
		case engine.Cancel:
			c.BookingID += "x"
			cmd = c
		}
	}
	res, err := m.apply(cmd)
	switch {
	case changed:
		if codeOf(err) != engine.CodeIdemReused {
			m.fatalf("changed retry of %+v = %+v, %v; want %s", cmd, res, err, engine.CodeIdemReused)
		}
	case err != nil:
		if _, isHold := cmd.(engine.PlaceHold); !isHold || codeOf(err) != engine.CodeHoldExpired {
			m.fatalf("retry of %+v = %v, want the first result", cmd, err)
		}
		if h, ok := m.holds[k.id]; ok && m.now.UTC().Truncate(time.Microsecond).Before(h.ExpiresAt) {
			m.fatalf("retry of hold %s = %v, but the hold is live", k.id, err)
		}
	default:
		id := ""
		if res.Booking != nil {
			id = res.Booking.ID
		} else if res.Hold != nil {
			id = res.Hold.ID
		}
		if !res.Duplicate || len(res.Events) != 0 || id != k.id {
			m.fatalf("retry of %+v = %+v; want Duplicate of %s with no events", cmd, res, k.id)
		}
	}
}

// ---- applying and the model ----

func (m *sim) mustApply(cmd engine.Command) engine.Result {
	m.t.Helper()
	res, err := m.apply(cmd)
	if err != nil {
		m.fatalf("Apply(%s %+v) = %v, want success", engine.CommandName(cmd), cmd, err)
	}
	return res
}

// apply applies cmd at the current time, checks the shape of what comes
// back, and updates the model.
func (m *sim) apply(cmd engine.Command) (engine.Result, error) {
	m.t.Helper()
	var before []byte
	checkUnchanged := m.r.IntN(10) == 0
	if checkUnchanged {
		before = MustSnapshot(m.t, m.s)
	}
	prevCfg, _ := m.s.Config()
	res, err := engine.Apply(m.s, cmd, m.now)
	line := fmt.Sprintf("%s %s", engine.CommandName(cmd), describeCmd(cmd))
	if err != nil {
		line += " → " + string(codeOf(err))
	} else if res.Duplicate {
		line += " → duplicate"
	} else if res.Booking != nil {
		line += fmt.Sprintf(" → %s on %s", res.Booking.ID, res.Booking.ResourceID)
	} else if res.Hold != nil {
		line += fmt.Sprintf(" → %s on %s", res.Hold.ID, res.Hold.ResourceID)
	}
	m.trail = append(m.trail, line)
	if len(m.trail) > 25 {
		m.trail = m.trail[1:]
	}
	if err != nil {
		code := codeOf(err)
		if code == engine.CodeInternal || strings.HasPrefix(string(code), "(not") {
			m.fatalf("Apply(%+v) = %v, want a domain error", cmd, err)
		}
		if checkUnchanged && !bytes.Equal(before, MustSnapshot(m.t, m.s)) {
			m.fatalf("Apply(%+v) = %v but changed the state", cmd, err)
		}
		if code == engine.CodeSlotTaken {
			m.checkTaken(cmd)
		}
		return res, err
	}
	if res.Duplicate {
		if len(res.Events) != 0 {
			m.fatalf("duplicate %+v has events %+v", cmd, res.Events)
		}
		return res, nil
	}
	m.events = append(m.events, res.Events...)
	dnow := m.now.UTC().Truncate(time.Microsecond)
	for _, e := range res.Events {
		if !e.At.Equal(dnow) {
			m.fatalf("event %s at %v, want %v", e.Type, e.At, dnow)
		}
	}
	svcAt := func(id string) engine.Service {
		for _, s := range prevCfg.Services {
			if s.ID == id {
				return s
			}
		}
		m.fatalf("result names unknown service %q", id)
		return engine.Service{}
	}
	// checkBlock: appointment and block follow the service as configured
	// when the command was decided.
	checkBlock := func(what, svcID string, start, end, bs, be time.Time) {
		s := svcAt(svcID)
		mins := func(n int) time.Duration { return time.Duration(n) * time.Minute }
		if end.Sub(start) != mins(s.DurationMin) || !bs.Equal(start.Add(-mins(s.BufferBeforeMin))) || !be.Equal(end.Add(mins(s.BufferAfterMin))) {
			m.fatalf("%s %s–%s block %s–%s does not match service %+v", what, start, end, bs, be, s)
		}
	}
	key := ""
	switch c := cmd.(type) {
	case engine.PlaceHold:
		h := *res.Hold
		checkBlock("hold "+h.ID, h.ServiceID, h.Start, h.End, h.BlockStart, h.BlockEnd)
		ttl := c.TTL
		if ttl == 0 {
			ttl = time.Duration(prevCfg.HoldTTLSec) * time.Second
		}
		if !h.ExpiresAt.Equal(dnow.Add(ttl)) || !h.Start.Equal(c.Start) || (c.ResourceID != "" && h.ResourceID != c.ResourceID) {
			m.fatalf("PlaceHold(%+v) = %+v", c, h)
		}
		m.holds[h.ID] = h
		key = c.IdempotencyKey
		if key != "" {
			m.keyed = append(m.keyed, keyedCmd{cmd, h.ID})
		}
	case engine.ReleaseHold:
		delete(m.holds, c.HoldID)
	case engine.ImportBusy:
		if m.busy[c.ResourceID] == nil {
			m.busy[c.ResourceID] = map[string][]engine.Interval{}
		}
		m.busy[c.ResourceID][c.Source] = c.Blocks // unmerged: overlap tests do not care
	case engine.Configure:
		for id := range m.busy {
			if !slices.ContainsFunc(c.Config.Resources, func(r engine.Resource) bool { return r.ID == id }) {
				delete(m.busy, id) // a removed resource loses its busy blocks
			}
		}
	case engine.ExpireHolds:
		for _, e := range res.Events {
			delete(m.holds, e.HoldID)
		}
	case engine.EraseSubject:
		// Only the customer changes; capacity and history stay.
		for id, b := range m.bookings {
			if b.Customer.Subject == c.Subject {
				b.Customer = engine.Customer{Subject: c.Subject, Erased: true}
				m.bookings[id] = b
			}
		}
		m.erased[c.Subject] = true
	case engine.Book:
		b := *res.Booking
		if m.erased[c.Customer.Subject] {
			m.fatalf("Book(%+v) succeeded for an erased subject", c)
		}
		checkBlock("booking "+b.ID, b.ServiceID, b.Start, b.End, b.BlockStart, b.BlockEnd)
		if c.HoldID != "" {
			h, ok := m.holds[c.HoldID]
			if !ok || !dnow.Before(h.ExpiresAt) || b.ResourceID != h.ResourceID || !b.Start.Equal(h.Start) || b.ServiceID != h.ServiceID {
				m.fatalf("Book(%+v) from hold %+v (known %v) = %+v", c, h, ok, b)
			}
			delete(m.holds, c.HoldID)
		} else if !b.Start.Equal(c.Start) || (c.ResourceID != "" && b.ResourceID != c.ResourceID) {
			m.fatalf("Book(%+v) = %+v", c, b)
		}
		m.bookings[b.ID] = b
		if c.IdempotencyKey != "" {
			m.keyed = append(m.keyed, keyedCmd{cmd, b.ID})
		}
	case engine.Cancel:
		b := m.bookings[c.BookingID]
		if b.Status != engine.StatusConfirmed {
			m.fatalf("Cancel(%s) succeeded on a booking that was %q", c.BookingID, b.Status)
		}
		b.Status = engine.StatusCancelled
		m.bookings[c.BookingID] = b
		if c.IdempotencyKey != "" {
			m.keyed = append(m.keyed, keyedCmd{cmd, b.ID})
		}
	case engine.Reschedule:
		b := *res.Booking
		checkBlock("rescheduled "+b.ID, b.ServiceID, b.Start, b.End, b.BlockStart, b.BlockEnd)
		old := m.bookings[c.BookingID]
		if b.Rescheduled != old.Rescheduled+1 || !b.Start.Equal(c.Start) || b.Status != engine.StatusConfirmed {
			m.fatalf("Reschedule(%+v) of %+v = %+v", c, old, b)
		}
		m.bookings[b.ID] = b
		if c.IdempotencyKey != "" {
			m.keyed = append(m.keyed, keyedCmd{cmd, b.ID})
		}
	}
	return res, nil
}

func describeCmd(cmd engine.Command) string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("01-02T15:04")
	}
	switch c := cmd.(type) {
	case engine.PlaceHold:
		return fmt.Sprintf("%s %s/%s@%s ttl=%v key=%q", c.HoldID, c.ServiceID, c.ResourceID, ts(c.Start), c.TTL, c.IdempotencyKey)
	case engine.Book:
		return fmt.Sprintf("%s hold=%q %s/%s@%s key=%q", c.BookingID, c.HoldID, c.ServiceID, c.ResourceID, ts(c.Start), c.IdempotencyKey)
	case engine.Reschedule:
		return fmt.Sprintf("%s → %s@%s any=%v key=%q", c.BookingID, c.ResourceID, ts(c.Start), c.AnyResource, c.IdempotencyKey)
	case engine.Cancel:
		return fmt.Sprintf("%s key=%q", c.BookingID, c.IdempotencyKey)
	case engine.ReleaseHold:
		return c.HoldID
	case engine.ImportBusy:
		return fmt.Sprintf("%s/%s %d blocks", c.ResourceID, c.Source, len(c.Blocks))
	case engine.UpsertResource:
		return fmt.Sprintf("%s cap=%d tz=%s", c.Resource.ID, c.Resource.Capacity, c.Resource.TimeZone)
	case engine.UpsertService:
		return fmt.Sprintf("%s %dm on %v", c.Service.ID, c.Service.DurationMin, c.Service.Resources)
	case engine.SetOverride:
		return fmt.Sprintf("%s %s %v clear=%v", c.ResourceID, c.Date, c.Open, c.Clear)
	case engine.Configure:
		var ids []string
		for _, r := range c.Config.Resources {
			ids = append(ids, fmt.Sprintf("%s(cap %d)", r.ID, r.Capacity))
		}
		return strings.Join(ids, ",")
	}
	return ""
}

func (m *sim) advance() {
	switch n := m.r.IntN(10); {
	case n < 5:
		m.now = m.now.Add(time.Duration(m.r.IntN(10*60)) * time.Second)
	case n < 8:
		m.now = m.now.Add(time.Duration(10+m.r.IntN(110)) * time.Minute)
	case n < 9:
		m.now = m.now.Add(time.Duration(2+m.r.IntN(22)) * time.Hour)
	default:
		m.now = m.now.Add(time.Duration(m.r.Int64N(int64(time.Second)))) // sub-second, sub-microsecond
	}
}

// checkViews brings every view up to date (full: recomputing everything,
// otherwise only what the state's Changes say changed) and checks that each
// then shows exactly what Availability shows, and that the delta Update
// returned turns the view's earlier slots into its new ones, as it does
// for a subscriber. Each service has a view over any resource and one over
// its first resource, made when first seen and dropped when its query goes
// invalid.
func (m *sim) checkViews(full bool) {
	m.t.Helper()
	changes := m.s.TakeChanges()
	for _, svc := range m.config().Services {
		// Any resource, and the service's first: more views cost time
		// (the race detector's above all) and exercise the same code.
		for _, res := range []string{"", svc.Resources[0]} {
			key := svc.ID + "/" + res
			v := m.views[key]
			if v == nil {
				zone := pick(m.viewsR, propZones)
				from := engine.DateOf(m.now, propLocs[zone]).AddDays(-1)
				q := engine.AvailabilityQuery{ServiceID: svc.ID, ResourceID: res, From: from.String(), To: from.AddDays(2 + m.viewsR.IntN(4)).String(), TimeZone: zone}
				var err error
				if v, err = engine.NewView(m.s, q, m.now); err != nil {
					m.fatalf("NewView(%+v) = %v", q, err)
				}
				m.views[key] = v
				continue
			}
			before := map[int64]engine.Slot{}
			for _, sl := range v.Slots() {
				before[sl.Start.UnixNano()] = sl
			}
			up, removed, err := v.Update(m.s, m.now, changes, full)
			if err != nil {
				m.fatalf("view %s: Update = %v", key, err)
			}
			for _, sl := range up {
				before[sl.Start.UnixNano()] = sl
			}
			for _, t := range removed {
				delete(before, t.UnixNano())
			}
			got := v.Slots()
			want := got // a full update is Availability itself
			if !full {
				if want, err = m.s.Availability(v.Query(), m.now); err != nil {
					m.fatalf("Availability(%+v) = %v", v.Query(), err)
				}
			}
			if !slices.EqualFunc(got, want, engine.Slot.Equal) {
				m.fatalf("view %s (full %v, changes %+v) shows %d slots, Availability %d:\n got %v\nwant %v", key, full, changes, len(got), len(want), got, want)
			}
			if len(before) != len(want) {
				m.fatalf("view %s: its delta (%d up, %d removed) leaves a subscriber with %d slots, want %d", key, len(up), len(removed), len(before), len(want))
			}
			for _, w := range want {
				if b, ok := before[w.Start.UnixNano()]; !ok || !b.Equal(w) {
					m.fatalf("view %s: its delta leaves a subscriber with %+v at %s, want %+v", key, b, w.Start, w)
				}
			}
		}
	}
	// Views of services or resources gone from the configuration.
	for key, v := range m.views {
		if _, err := m.s.Availability(v.Query(), m.now); err != nil {
			delete(m.views, key)
		}
	}
}

// checkModel compares the engine's bookings and holds with the model.
func (m *sim) checkModel() {
	got := m.s.Bookings(time.Time{}, time.Time{})
	if len(got) != len(m.bookings) {
		m.fatalf("engine has %d bookings, model %d", len(got), len(m.bookings))
	}
	for _, b := range got {
		want, ok := m.bookings[b.ID]
		if !ok || b.ResourceID != want.ResourceID || b.Status != want.Status || !b.Start.Equal(want.Start) ||
			!b.BlockStart.Equal(want.BlockStart) || !b.BlockEnd.Equal(want.BlockEnd) || b.Customer != want.Customer {
			m.fatalf("engine booking %+v, model %+v", b, want)
		}
	}
	holds := m.s.Holds()
	if len(holds) != len(m.holds) {
		m.fatalf("engine has %d holds, model %d", len(holds), len(m.holds))
	}
	for _, h := range holds {
		if want, ok := m.holds[h.ID]; !ok || h.ResourceID != want.ResourceID || h.ServiceID != want.ServiceID || !h.Start.Equal(want.Start) ||
			!h.BlockStart.Equal(want.BlockStart) || !h.BlockEnd.Equal(want.BlockEnd) || !h.ExpiresAt.Equal(want.ExpiresAt) {
			m.fatalf("engine hold %+v, model %+v", h, want)
		}
	}
}

// checkCapacity is invariant 1: from now on, on every resource, confirmed
// bookings plus live holds never exceed capacity at any instant, buffers
// included. (Before now a capacity may since have been lowered.)
func (m *sim) checkCapacity() {
	dnow := m.now.UTC().Truncate(time.Microsecond)
	type edge struct {
		t time.Time
		d int
	}
	edges := map[string][]edge{}
	add := func(res string, s, e time.Time) {
		if !e.After(dnow) {
			return
		}
		edges[res] = append(edges[res], edge{maxT(s, dnow), +1}, edge{e, -1})
	}
	for _, b := range m.bookings {
		if b.Status == engine.StatusConfirmed {
			add(b.ResourceID, b.BlockStart, b.BlockEnd)
		}
	}
	for _, h := range m.holds {
		if dnow.Before(h.ExpiresAt) {
			add(h.ResourceID, h.BlockStart, h.BlockEnd)
		}
	}
	caps := map[string]int{}
	for _, r := range m.config().Resources {
		caps[r.ID] = r.Capacity
	}
	for res, es := range edges {
		c, ok := caps[res]
		if !ok {
			m.fatalf("resource %s is gone but has upcoming bookings or live holds", res)
		}
		sort.Slice(es, func(i, j int) bool {
			if !es[i].t.Equal(es[j].t) {
				return es[i].t.Before(es[j].t)
			}
			return es[i].d < es[j].d
		})
		cur := 0
		for _, e := range es {
			cur += e.d
			if cur > c {
				m.fatalf("resource %s has %d bookings and holds at %s, capacity %d", res, cur, e.t.Format(time.RFC3339), c)
			}
		}
	}
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkAvailability asks for a sample of availability and checks it
// against Decide: every offered slot is bookable on each resource listed
// and with "any", the seats are exact, and a start that Book accepts is
// offered.
func (m *sim) checkAvailability() {
	cfg := m.config()
	svc := pick(m.r, cfg.Services)
	res := ""
	if m.r.IntN(3) == 0 {
		res = pick(m.r, svc.Resources)
	}
	q := m.query(svc.ID, res)
	slots, err := m.s.Availability(q, m.now)
	if err != nil {
		m.fatalf("Availability(%+v) = %v", q, err)
	}
	probe := func(resource string, start time.Time) (engine.Result, error) {
		return engine.Decide(m.s, engine.Book{BookingID: "probe", ServiceID: svc.ID, ResourceID: resource, Start: start, Customer: ada}, m.now)
	}
	offered := map[int64][]string{}
	for _, sl := range slots {
		offered[sl.Start.UnixNano()] = sl.Resources
		if sl.End.Sub(sl.Start) != time.Duration(svc.DurationMin)*time.Minute {
			m.fatalf("slot %s–%s of %s lasts %v", sl.Start, sl.End, svc.ID, sl.End.Sub(sl.Start))
		}
	}
	sample := slots
	if len(sample) > 2 {
		sample = make([]engine.Slot, 2)
		for i := range sample {
			sample[i] = pick(m.r, slots)
		}
	}
	for _, sl := range sample {
		seats := 0
		for _, r := range sl.Resources {
			if _, err := probe(r, sl.Start); err != nil {
				m.fatalf("Availability(%+v) offers %s on %s, but Book = %v", q, sl.Start.Format(time.RFC3339), r, err)
			}
			free := m.modelFree(r, svc, sl.Start, "")
			if free < 1 {
				m.fatalf("Availability(%+v) offers %s on %s, but the model has it full", q, sl.Start.Format(time.RFC3339), r)
			}
			seats += free
		}
		if seats != sl.Seats {
			m.fatalf("Availability(%+v) offers %s with %d seats on %v, the model has %d", q, sl.Start.Format(time.RFC3339), sl.Seats, sl.Resources, seats)
		}
		got, err := probe("", sl.Start)
		if err != nil {
			m.fatalf("Availability(%+v) offers %s, but Book(any) = %v", q, sl.Start.Format(time.RFC3339), err)
		}
		if res == "" {
			// The rule: fewest bookings on the resource's local day, then
			// the smallest id (Resources is sorted).
			want, load := "", 0
			for _, r := range sl.Resources {
				if l := m.modelLoad(r, sl.Start); want == "" || l < load {
					want, load = r, l
				}
			}
			if got.Booking.ResourceID != want {
				m.fatalf("Book(any, %s) chose %s, want %s by the rule (offered %v)", sl.Start.Format(time.RFC3339), got.Booking.ResourceID, want, sl.Resources)
			}
		}
	}
	// A restored state offers the same.
	if m.r.IntN(10) == 0 {
		got, err := MustRestore(m.t, m.s).Availability(q, m.now)
		if err != nil || !sameJSON(got, slots) {
			m.fatalf("restored state: Availability(%+v) = %s, %v; live %s", q, describeSlots(got), err, describeSlots(slots))
		}
	}
	// Seats are exact: that many bookings fit, one more does not.
	if len(slots) > 0 && m.r.IntN(10) == 0 {
		sl := pick(m.r, slots)
		c := MustRestore(m.t, m.s)
		for i := range sl.Seats {
			b := engine.Book{BookingID: fmt.Sprintf("seat%d", i), ServiceID: svc.ID, ResourceID: res, Start: sl.Start, Customer: ada}
			if _, err := engine.Apply(c, b, m.now); err != nil {
				m.fatalf("slot %s offers %d seats, but booking seat %d = %v", sl.Start, sl.Seats, i+1, err)
			}
		}
		b := engine.Book{BookingID: "seat-extra", ServiceID: svc.ID, ResourceID: res, Start: sl.Start, Customer: ada}
		if _, err := engine.Apply(c, b, m.now); codeOf(err) != engine.CodeSlotTaken {
			m.fatalf("slot %s offers %d seats, but one more booking = %v, want slot_taken", sl.Start, sl.Seats, err)
		}
	}
	// Conversely, starts near the offered ones that Book accepts are offered.
	from, _ := engine.ParseDate(q.From)
	to, _ := engine.ParseDate(q.To)
	span := engine.Interval{Start: engine.LocalInstant(from, 0, propLocs[q.TimeZone]), End: engine.LocalInstant(to, 0, propLocs[q.TimeZone])}
	var cands []time.Time
	for _, sl := range sample {
		for _, d := range []int{-5, 5, 15} {
			cands = append(cands, sl.Start.Add(time.Duration(d)*time.Minute))
		}
	}
	for range 2 {
		cands = append(cands, span.Start.Add(time.Duration(m.r.Int64N(int64(span.End.Sub(span.Start))/int64(5*time.Minute)))*5*time.Minute))
	}
	for _, st := range cands {
		if st.Before(span.Start) || !st.Before(span.End) {
			continue
		}
		rs := svc.Resources
		if res != "" {
			rs = []string{res}
		}
		for _, r := range rs {
			_, err := probe(r, st)
			if err == nil && !slices.Contains(offered[st.UnixNano()], r) {
				m.fatalf("Book(%s on %s) succeeds but Availability(%+v) does not offer it (offers %v there)", st.Format(time.RFC3339), r, q, offered[st.UnixNano()])
			}
			if free := m.modelFree(r, svc, st, ""); codeOf(err) == engine.CodeSlotTaken && free != 0 {
				m.fatalf("Book(%s on %s) = %v, but the model has %d free", st.Format(time.RFC3339), r, err, free)
			}
		}
	}
}

// checkReplayAndRestore: replaying the journal (encoded and decoded) and
// restoring a snapshot both give the live state, byte for byte, and decide
// like it.
func (m *sim) checkReplayAndRestore() {
	live := MustSnapshot(m.t, m.s)
	replayed := MustReplay(m.t, m.s.Tenant(), m.events)
	if got := MustSnapshot(m.t, replayed); !bytes.Equal(got, live) {
		m.fatalf("replay of %d events differs:\nlive   %s\nreplay %s", len(m.events), live, got)
	}
	restored := MustRestore(m.t, m.s)
	if got := MustSnapshot(m.t, restored); !bytes.Equal(got, live) {
		m.fatalf("restore differs:\nlive     %s\nrestored %s", live, got)
	}
	cfg := m.config()
	for range 3 {
		svc, res := m.pickService(cfg)
		q := m.query(svc.ID, res)
		want, werr := m.s.Availability(q, m.now)
		cmd := engine.Book{BookingID: "probe", ServiceID: svc.ID, ResourceID: res, Start: m.start(svc, res), Customer: ada}
		wantRes, wantErr := engine.Decide(m.s, cmd, m.now)
		for name, other := range map[string]*engine.State{"replayed": replayed, "restored": restored} {
			got, gerr := other.Availability(q, m.now)
			if !sameJSON(got, want) || codeOf(gerr) != codeOf(werr) {
				m.fatalf("%s state: Availability(%+v) = %s, %v; live %s, %v", name, q, describeSlots(got), gerr, describeSlots(want), werr)
			}
			gotRes, gotErr := engine.Decide(other, cmd, m.now)
			if codeOf(gotErr) != codeOf(wantErr) || !sameJSON(gotRes.Events, wantRes.Events) {
				m.fatalf("%s state: Decide(%s) = %+v, %v; live %+v, %v", name, describeCmd(cmd), gotRes.Events, gotErr, wantRes.Events, wantErr)
			}
		}
	}
}

// checkTaken: a slot_taken refusal for one named resource means the model
// has that resource full (or busy) over the block.
func (m *sim) checkTaken(cmd engine.Command) {
	var (
		svcID, res, ignore string
		start              time.Time
	)
	switch c := cmd.(type) {
	case engine.PlaceHold:
		svcID, res, start = c.ServiceID, c.ResourceID, c.Start
	case engine.Book:
		svcID, res, start = c.ServiceID, c.ResourceID, c.Start
		if c.HoldID != "" {
			h := m.holds[c.HoldID]
			svcID, res, start, ignore = h.ServiceID, h.ResourceID, h.Start, h.ID
		}
	case engine.Reschedule:
		if c.AnyResource {
			return
		}
		b := m.bookings[c.BookingID]
		svcID, res, start, ignore = b.ServiceID, c.ResourceID, c.Start, b.ID
		if res == "" {
			res = b.ResourceID
		}
	}
	if res == "" {
		return // "any": which resources were open is the engine's business
	}
	svc, _ := m.service(svcID)
	if free := m.modelFree(res, svc, start, ignore); free != 0 {
		m.fatalf("%s %s refused with slot_taken, but the model has %d free on %s", engine.CommandName(cmd), describeCmd(cmd), free, res)
	}
}

// modelFree is how many more bookings of svc at start fit on res according
// to the model: capacity less the peak of confirmed bookings and live holds
// (other than ignore) over the block, or 0 if a busy block overlaps it.
func (m *sim) modelFree(res string, svc engine.Service, start time.Time, ignore string) int {
	mins := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	bs := start.Add(-mins(svc.BufferBeforeMin))
	be := start.Add(mins(svc.DurationMin + svc.BufferAfterMin))
	for _, blocks := range m.busy[res] {
		for _, b := range blocks {
			if b.Start.Before(be) && bs.Before(b.End) {
				return 0
			}
		}
	}
	capacity := 0
	for _, r := range m.config().Resources {
		if r.ID == res {
			capacity = r.Capacity
		}
	}
	dnow := m.now.UTC().Truncate(time.Microsecond)
	type edge struct {
		t time.Time
		d int
	}
	var edges []edge
	add := func(s, e time.Time) {
		if s.Before(be) && bs.Before(e) {
			edges = append(edges, edge{maxT(s, bs), 1}, edge{e, -1})
		}
	}
	for _, b := range m.bookings {
		if b.ResourceID == res && b.ID != ignore && b.Status == engine.StatusConfirmed {
			add(b.BlockStart, b.BlockEnd)
		}
	}
	for _, h := range m.holds {
		if h.ResourceID == res && h.ID != ignore && dnow.Before(h.ExpiresAt) {
			add(h.BlockStart, h.BlockEnd)
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].t.Equal(edges[j].t) {
			return edges[i].t.Before(edges[j].t)
		}
		return edges[i].d < edges[j].d
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.d
		peak = max(peak, cur)
	}
	return max(0, capacity-peak)
}

// modelLoad is what the "any resource" rule weighs: res's confirmed
// bookings whose block starts on the local date (in res's zone) of start.
func (m *sim) modelLoad(res string, start time.Time) int {
	var loc *time.Location
	for _, r := range m.config().Resources {
		if r.ID == res {
			loc = propLocs[r.TimeZone]
		}
	}
	day := engine.DateOf(start, loc)
	n := 0
	for _, b := range m.bookings {
		if b.ResourceID == res && b.Status == engine.StatusConfirmed && engine.DateOf(b.BlockStart, loc) == day {
			n++
		}
	}
	return n
}
