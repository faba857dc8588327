package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

// now0 is the default "now" of these tests: Monday 2026-06-01 06:00 UTC.
var now0 = utc(2026, 6, 1, 6, 0)

// tue is a time on Tuesday 2026-06-02, UTC, when every resource of the base
// configuration is open 09:00–17:00.
func tue(h, m int) time.Time { return utc(2026, 6, 2, h, m) }

// baseConfig is a small salon: two stylists, a studio with three places,
// all in UTC and open weekdays 09:00–17:00.
func baseConfig() engine.TenantConfig {
	open := func() map[string][]engine.Range { return weekdays(rng("09:00", "17:00")) }
	return engine.TenantConfig{
		Name: "Acme Salon", TimeZone: "Europe/London",
		Resources: []engine.Resource{
			{ID: "room", Name: "Studio", Kind: "room", TimeZone: "UTC", Capacity: 3, Weekly: open()},
			{ID: "bob", Name: "Bob", Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: open()},
			{ID: "alice", Name: "Alice", Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: open()},
		},
		Services: []engine.Service{
			{ID: "cut", Name: "Haircut", DurationMin: 30, Resources: []string{"bob", "alice"}},
			{ID: "consult", Name: "Consultation", DurationMin: 60, StepMin: 15, Resources: []string{"alice"}},
			{ID: "massage", Name: "Massage", DurationMin: 60, BufferBeforeMin: 15, BufferAfterMin: 15, Resources: []string{"alice"}},
			{ID: "class", Name: "Yoga", DurationMin: 60, Resources: []string{"room"}},
			{ID: "vip", Name: "VIP", DurationMin: 30, MinNoticeMin: 120, HorizonDays: 7, Resources: []string{"alice", "bob"}},
		},
	}
}

// fixture is a configured tenant plus every event it has accepted, so a
// test can replay them.
type fixture struct {
	tb     testing.TB
	s      *engine.State
	events []engine.Event
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{tb: tb, s: engine.NewState("acme")}
	f.apply(engine.Configure{Config: baseConfig()}, now0)
	return f
}

// apply applies cmd at now, which must succeed, and records its events.
func (f *fixture) apply(cmd engine.Command, now time.Time) engine.Result {
	f.tb.Helper()
	res := MustApply(f.tb, f.s, cmd, now)
	f.events = append(f.events, res.Events...)
	return res
}

// fail applies cmd at now, which must be refused with want.
func (f *fixture) fail(cmd engine.Command, now time.Time, want engine.Code) *engine.Error {
	f.tb.Helper()
	return MustFail(f.tb, f.s, cmd, now, want)
}

// book is a direct booking command for ada.
func book(id, service, resource string, start time.Time) engine.Book {
	return engine.Book{BookingID: id, ServiceID: service, ResourceID: resource, Start: start, Customer: ada}
}

func TestConfigureValidation(t *testing.T) {
	long := strings.Repeat("x", engine.MaxNameLen+1)
	res := func(c *engine.TenantConfig, id string) *engine.Resource {
		for i := range c.Resources {
			if c.Resources[i].ID == id {
				return &c.Resources[i]
			}
		}
		panic("no resource " + id)
	}
	svc := func(c *engine.TenantConfig, id string) *engine.Service {
		for i := range c.Services {
			if c.Services[i].ID == id {
				return &c.Services[i]
			}
		}
		panic("no service " + id)
	}
	tests := []struct {
		name   string
		change func(c *engine.TenantConfig)
		want   engine.Code
	}{
		{"base", func(c *engine.TenantConfig) {}, ""},
		{"empty tenant zone defaults to UTC", func(c *engine.TenantConfig) { c.TimeZone = "" }, ""},
		{"unknown tenant zone", func(c *engine.TenantConfig) { c.TimeZone = "Mars/Olympus_Mons" }, engine.CodeInvalid},
		{"tenant zone Local", func(c *engine.TenantConfig) { c.TimeZone = "Local" }, engine.CodeInvalid},
		{"tenant name too long", func(c *engine.TenantConfig) { c.Name = long }, engine.CodeInvalid},
		{"resource zone empty", func(c *engine.TenantConfig) { res(c, "bob").TimeZone = "" }, engine.CodeInvalid},
		{"resource zone Local", func(c *engine.TenantConfig) { res(c, "bob").TimeZone = "Local" }, engine.CodeInvalid},
		{"resource zone unknown", func(c *engine.TenantConfig) { res(c, "bob").TimeZone = "Europe/Atlantis" }, engine.CodeInvalid},
		{"resource zone path", func(c *engine.TenantConfig) { res(c, "bob").TimeZone = "../../etc/passwd" }, engine.CodeInvalid},
		{"resource id empty", func(c *engine.TenantConfig) { res(c, "room").ID = "" }, engine.CodeInvalid},
		{"resource id starts with dash", func(c *engine.TenantConfig) { res(c, "room").ID = "-room" }, engine.CodeInvalid},
		{"resource id with space", func(c *engine.TenantConfig) { res(c, "room").ID = "the room" }, engine.CodeInvalid},
		{"resource id 65 bytes", func(c *engine.TenantConfig) { res(c, "room").ID = strings.Repeat("r", 65) }, engine.CodeInvalid},
		{"resource id 64 bytes", func(c *engine.TenantConfig) {
			res(c, "room").ID = strings.Repeat("r", 64)
			svc(c, "class").Resources = []string{strings.Repeat("r", 64)}
		}, ""},
		{"resource name too long", func(c *engine.TenantConfig) { res(c, "bob").Name = long }, engine.CodeInvalid},
		{"resource kind unknown", func(c *engine.TenantConfig) { res(c, "bob").Kind = "robot" }, engine.CodeInvalid},
		{"capacity 0", func(c *engine.TenantConfig) { res(c, "room").Capacity = 0 }, engine.CodeInvalid},
		{"capacity negative", func(c *engine.TenantConfig) { res(c, "room").Capacity = -1 }, engine.CodeInvalid},
		{"capacity at limit", func(c *engine.TenantConfig) { res(c, "room").Capacity = engine.MaxCapacity }, ""},
		{"capacity over limit", func(c *engine.TenantConfig) { res(c, "room").Capacity = engine.MaxCapacity + 1 }, engine.CodeInvalid},
		{"weekly key unknown", func(c *engine.TenantConfig) { res(c, "bob").Weekly["monday"] = []engine.Range{rng("09:00", "10:00")} }, engine.CodeInvalid},
		{"overlapping ranges", func(c *engine.TenantConfig) {
			res(c, "bob").Weekly["mon"] = []engine.Range{rng("09:00", "12:00"), rng("11:00", "13:00")}
		}, engine.CodeInvalid},
		{"overlapping ranges out of order", func(c *engine.TenantConfig) {
			res(c, "bob").Weekly["mon"] = []engine.Range{rng("13:00", "17:00"), rng("09:00", "13:30")}
		}, engine.CodeInvalid},
		{"adjacent ranges", func(c *engine.TenantConfig) {
			res(c, "bob").Weekly["mon"] = []engine.Range{rng("12:00", "17:00"), rng("09:00", "12:00")}
		}, ""},
		{"range ends before start", func(c *engine.TenantConfig) { res(c, "bob").Weekly["tue"] = []engine.Range{rng("12:00", "09:00")} }, engine.CodeInvalid},
		{"empty range", func(c *engine.TenantConfig) { res(c, "bob").Weekly["tue"] = []engine.Range{rng("12:00", "12:00")} }, engine.CodeInvalid},
		{"range to 24:00", func(c *engine.TenantConfig) { res(c, "bob").Weekly["sat"] = []engine.Range{rng("00:00", "24:00")} }, ""},
		{"too many ranges", func(c *engine.TenantConfig) {
			var rs []engine.Range
			for h := 0; h <= engine.MaxRangesPerDay; h++ {
				rs = append(rs, rng(fmt.Sprintf("%02d:00", h), fmt.Sprintf("%02d:30", h)))
			}
			res(c, "bob").Weekly["wed"] = rs
		}, engine.CodeInvalid},
		{"override date impossible", func(c *engine.TenantConfig) {
			res(c, "bob").Overrides = map[string][]engine.Range{"2026-02-30": nil}
		}, engine.CodeInvalid},
		{"override ranges overlap", func(c *engine.TenantConfig) {
			res(c, "bob").Overrides = map[string][]engine.Range{"2026-06-02": {rng("09:00", "11:00"), rng("10:00", "12:00")}}
		}, engine.CodeInvalid},
		{"override closed", func(c *engine.TenantConfig) {
			res(c, "bob").Overrides = map[string][]engine.Range{"2026-06-02": {}}
		}, ""},
		{"service unknown resource", func(c *engine.TenantConfig) { svc(c, "cut").Resources = []string{"alice", "zed"} }, engine.CodeInvalid},
		{"service resource listed twice", func(c *engine.TenantConfig) { svc(c, "cut").Resources = []string{"alice", "bob", "alice"} }, engine.CodeInvalid},
		{"service without resources", func(c *engine.TenantConfig) { svc(c, "cut").Resources = nil }, engine.CodeInvalid},
		{"service id invalid", func(c *engine.TenantConfig) { svc(c, "cut").ID = "hair/cut" }, engine.CodeInvalid},
		{"service name too long", func(c *engine.TenantConfig) { svc(c, "cut").Name = long }, engine.CodeInvalid},
		{"duration 0", func(c *engine.TenantConfig) { svc(c, "cut").DurationMin = 0 }, engine.CodeInvalid},
		{"duration a day", func(c *engine.TenantConfig) { svc(c, "cut").DurationMin = engine.MaxDurationMin }, ""},
		{"duration over a day", func(c *engine.TenantConfig) { svc(c, "cut").DurationMin = engine.MaxDurationMin + 1 }, engine.CodeInvalid},
		{"buffer negative", func(c *engine.TenantConfig) { svc(c, "cut").BufferBeforeMin = -1 }, engine.CodeInvalid},
		{"buffer too long", func(c *engine.TenantConfig) { svc(c, "cut").BufferAfterMin = engine.MaxBufferMin + 1 }, engine.CodeInvalid},
		{"step 4", func(c *engine.TenantConfig) { svc(c, "cut").StepMin = 4 }, engine.CodeInvalid},
		{"step 5", func(c *engine.TenantConfig) { svc(c, "cut").StepMin = 5 }, ""},
		{"duration below the minimum step", func(c *engine.TenantConfig) { svc(c, "cut").DurationMin = 3 }, engine.CodeInvalid},
		{"notice negative", func(c *engine.TenantConfig) { svc(c, "cut").MinNoticeMin = -1 }, engine.CodeInvalid},
		{"horizon too far", func(c *engine.TenantConfig) { svc(c, "cut").HorizonDays = engine.MaxHorizonDays + 1 }, engine.CodeInvalid},
		{"horizon negative", func(c *engine.TenantConfig) { svc(c, "cut").HorizonDays = -1 }, engine.CodeInvalid},
		{"hold ttl too short", func(c *engine.TenantConfig) { c.HoldTTLSec = 9 }, engine.CodeInvalid},
		{"hold ttl too long", func(c *engine.TenantConfig) { c.HoldTTLSec = engine.MaxHoldTTLSec + 1 }, engine.CodeInvalid},
		{"hold ttl at limits", func(c *engine.TenantConfig) { c.HoldTTLSec = 10 }, ""},
		{"duplicate resource id", func(c *engine.TenantConfig) { c.Resources = append(c.Resources, c.Resources[1]) }, engine.CodeInvalid},
		{"duplicate service id", func(c *engine.TenantConfig) { c.Services = append(c.Services, c.Services[0]) }, engine.CodeInvalid},
		{"holiday date invalid", func(c *engine.TenantConfig) { c.Holidays = []engine.Holiday{{Date: "2026-6-2"}} }, engine.CodeInvalid},
		{"holiday name too long", func(c *engine.TenantConfig) { c.Holidays = []engine.Holiday{{Date: "2026-06-02", Name: long}} }, engine.CodeInvalid},
		{"too many resources", func(c *engine.TenantConfig) {
			for i := 0; i < engine.MaxResources; i++ {
				c.Resources = append(c.Resources, engine.Resource{ID: fmt.Sprintf("r%d", i), Kind: "room", TimeZone: "UTC", Capacity: 1})
			}
		}, engine.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.change(&cfg)
			s := engine.NewState("acme")
			res, err := engine.Apply(s, engine.Configure{Config: cfg}, now0)
			if got := codeOf(err); got != tt.want {
				t.Fatalf("Apply(Configure) = %v, want %q", err, tt.want)
			}
			if err != nil {
				if s.Configured() {
					t.Errorf("Configured() = true after a refused configuration")
				}
				return
			}
			if len(res.Events) != 1 || res.Events[0].Type != engine.EvConfigured {
				t.Errorf("Apply(Configure) events = %+v, want one %s", res.Events, engine.EvConfigured)
			}
		})
	}
}

func TestConfigureCanonicalForm(t *testing.T) {
	cfg := baseConfig()
	cfg.TimeZone = ""
	cfg.Holidays = []engine.Holiday{{Date: "2026-12-25", Name: "Christmas"}, {Date: "2026-01-01"}}
	s := engine.NewState("acme")
	res := MustApply(t, s, engine.Configure{Config: cfg}, now0)
	got, ok := s.Config()
	if !ok {
		t.Fatal("Config() after Configure = not configured")
	}
	var rids, sids []string
	for _, r := range got.Resources {
		rids = append(rids, r.ID)
	}
	for _, sv := range got.Services {
		sids = append(sids, sv.ID)
	}
	if want := []string{"alice", "bob", "room"}; !slices.Equal(rids, want) {
		t.Errorf("Config().Resources ids = %v, want %v", rids, want)
	}
	if want := []string{"class", "consult", "cut", "massage", "vip"}; !slices.Equal(sids, want) {
		t.Errorf("Config().Services ids = %v, want %v", sids, want)
	}
	cut := got.Services[2]
	if cut.StepMin != 30 || cut.HorizonDays != 60 || !slices.Equal(cut.Resources, []string{"alice", "bob"}) {
		t.Errorf("Config() cut = %+v, want step 30, horizon 60, resources [alice bob]", cut)
	}
	if got.TimeZone != "UTC" || got.HoldTTLSec != engine.DefaultHoldTTLSec {
		t.Errorf("Config() zone, hold ttl = %q, %d; want UTC, %d", got.TimeZone, got.HoldTTLSec, engine.DefaultHoldTTLSec)
	}
	if got.Holidays[0].Date != "2026-01-01" {
		t.Errorf("Config().Holidays = %+v, want sorted by date", got.Holidays)
	}
	// The event carries the canonical form, so replay gives the same state.
	if c := res.Events[0].Config; c == nil || c.Services[2].StepMin != 30 || c.Resources[0].ID != "alice" {
		t.Errorf("configured event = %+v, want the canonical configuration", c)
	}
	// The same configuration in another order is the same state.
	other := engine.NewState("acme")
	cfg2 := baseConfig()
	cfg2.TimeZone = "UTC"
	cfg2.Holidays = []engine.Holiday{{Date: "2026-01-01"}, {Date: "2026-12-25", Name: "Christmas"}}
	slices.Reverse(cfg2.Resources)
	slices.Reverse(cfg2.Services)
	MustApply(t, other, engine.Configure{Config: cfg2}, now0)
	if a, b := MustSnapshot(t, s), MustSnapshot(t, other); !bytes.Equal(a, b) {
		t.Errorf("equal configurations in different order give different snapshots:\n%s\n%s", a, b)
	}
}

func TestUnconfiguredTenant(t *testing.T) {
	tests := []struct {
		cmd  engine.Command
		want engine.Code
	}{
		{engine.UpsertResource{Resource: engine.Resource{ID: "r", Kind: "room", TimeZone: "UTC", Capacity: 1}}, engine.CodeNotFound},
		{engine.UpsertService{Service: engine.Service{ID: "s", DurationMin: 30, Resources: []string{"r"}}}, engine.CodeNotFound},
		{engine.SetOverride{ResourceID: "r", Date: "2026-06-02"}, engine.CodeNotFound},
		{engine.PlaceHold{HoldID: "h", ServiceID: "s", Start: tue(9, 0)}, engine.CodeNotFound},
		{book("b", "s", "", tue(9, 0)), engine.CodeNotFound},
		{engine.Reschedule{BookingID: "b", Start: tue(9, 0)}, engine.CodeNotFound},
		{engine.Cancel{BookingID: "b"}, engine.CodeNotFound},
		{engine.ReleaseHold{HoldID: "h"}, engine.CodeHoldExpired},
		{engine.ImportBusy{ResourceID: "r", Source: "gcal"}, engine.CodeNotFound},
		{engine.ExpireHolds{}, ""},
	}
	for _, tt := range tests {
		t.Run(engine.CommandName(tt.cmd), func(t *testing.T) {
			s := engine.NewState("acme")
			res, err := engine.Apply(s, tt.cmd, now0)
			if got := codeOf(err); got != tt.want {
				t.Errorf("Apply(%+v) = %+v, %v; want %q", tt.cmd, res, err, tt.want)
			}
			if s.Configured() {
				t.Errorf("Apply(%+v) configured the tenant", tt.cmd)
			}
		})
	}
	s := engine.NewState("acme")
	if _, err := s.Availability(engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, now0); codeOf(err) != engine.CodeNotFound {
		t.Errorf("Availability on an unconfigured tenant = %v, want %s", err, engine.CodeNotFound)
	}
	if _, ok := s.Config(); ok {
		t.Errorf("Config() on a new state = ok, want not configured")
	}
}

func TestInUse(t *testing.T) {
	withoutResource := func(id string) engine.TenantConfig {
		c := baseConfig()
		c.Resources = slices.DeleteFunc(c.Resources, func(r engine.Resource) bool { return r.ID == id })
		for i := range c.Services {
			c.Services[i].Resources = slices.DeleteFunc(c.Services[i].Resources, func(r string) bool { return r == id })
		}
		c.Services = slices.DeleteFunc(c.Services, func(s engine.Service) bool { return len(s.Resources) == 0 })
		return c
	}
	withCapacity := func(id string, n int) engine.TenantConfig {
		c := baseConfig()
		for i := range c.Resources {
			if c.Resources[i].ID == id {
				c.Resources[i].Capacity = n
			}
		}
		return c
	}
	room := func(n int) engine.Resource {
		return engine.Resource{ID: "room", Name: "Studio", Kind: "room", TimeZone: "UTC", Capacity: n, Weekly: weekdays(rng("09:00", "17:00"))}
	}
	tests := []struct {
		name  string
		setup func(f *fixture)
		cmd   engine.Command
		now   time.Time
		want  engine.Code
	}{
		{"remove resource without bookings", func(f *fixture) {}, engine.Configure{Config: withoutResource("bob")}, now0, ""},
		{"remove resource with upcoming booking", func(f *fixture) {
			f.apply(book("b1", "cut", "bob", tue(10, 0)), now0)
		}, engine.Configure{Config: withoutResource("bob")}, now0, engine.CodeInUse},
		{"remove resource with booking in progress", func(f *fixture) {
			f.apply(book("b1", "cut", "bob", tue(10, 0)), now0)
		}, engine.Configure{Config: withoutResource("bob")}, tue(10, 29), engine.CodeInUse},
		{"remove resource whose bookings are over", func(f *fixture) {
			f.apply(book("b1", "cut", "bob", tue(10, 0)), now0)
		}, engine.Configure{Config: withoutResource("bob")}, tue(10, 30), ""},
		{"remove resource whose booking was cancelled", func(f *fixture) {
			f.apply(book("b1", "cut", "bob", tue(10, 0)), now0)
			f.apply(engine.Cancel{BookingID: "b1"}, now0)
		}, engine.Configure{Config: withoutResource("bob")}, now0, ""},
		{"remove resource with live hold", func(f *fixture) {
			f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(10, 0)}, now0)
		}, engine.Configure{Config: withoutResource("bob")}, now0.Add(time.Minute), engine.CodeInUse},
		{"remove resource whose hold expired", func(f *fixture) {
			f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(10, 0)}, now0)
		}, engine.Configure{Config: withoutResource("bob")}, now0.Add(5 * time.Minute), ""},
		{"lower capacity below overlap", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(book("b2", "class", "room", tue(10, 0)), now0)
		}, engine.Configure{Config: withCapacity("room", 1)}, now0, engine.CodeInUse},
		{"lower capacity below overlap with a hold", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "class", ResourceID: "room", Start: tue(10, 0)}, now0)
		}, engine.UpsertResource{Resource: room(1)}, now0, engine.CodeInUse},
		{"lower capacity to overlap", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(book("b2", "class", "room", tue(10, 0)), now0)
		}, engine.Configure{Config: withCapacity("room", 2)}, now0, ""},
		{"lower capacity, bookings apart", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(book("b2", "class", "room", tue(11, 0)), now0)
			f.apply(book("b3", "class", "room", tue(12, 0)), now0)
		}, engine.UpsertResource{Resource: room(1)}, now0, ""},
		{"lower capacity, overlap in the past", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(book("b2", "class", "room", tue(10, 0)), now0)
		}, engine.UpsertResource{Resource: room(1)}, tue(11, 0), ""},
		{"lower capacity by upsert below overlap", func(f *fixture) {
			f.apply(book("b1", "class", "room", tue(10, 0)), now0)
			f.apply(book("b2", "class", "room", tue(10, 0)), now0)
			f.apply(book("b3", "class", "room", tue(10, 0)), now0)
		}, engine.UpsertResource{Resource: room(2)}, now0, engine.CodeInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(f)
			if tt.want != "" {
				f.fail(tt.cmd, tt.now, tt.want)
				return
			}
			f.apply(tt.cmd, tt.now)
		})
	}
}

func TestUpsertAndOverrideValidation(t *testing.T) {
	tests := []struct {
		name string
		cmd  engine.Command
		want engine.Code
	}{
		{"new resource", engine.UpsertResource{Resource: engine.Resource{ID: "carol", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1}}, ""},
		{"resource with bad zone", engine.UpsertResource{Resource: engine.Resource{ID: "carol", Kind: "staff", TimeZone: "Local", Capacity: 1}}, engine.CodeInvalid},
		{"resource with bad clock", engine.UpsertResource{Resource: engine.Resource{ID: "carol", Kind: "staff", TimeZone: "UTC", Capacity: 1,
			Weekly: map[string][]engine.Range{"mon": {rng("9:00", "12:00")}}}}, engine.CodeInvalid},
		{"new service", engine.UpsertService{Service: engine.Service{ID: "color", DurationMin: 90, Resources: []string{"bob"}}}, ""},
		{"service on unknown resource", engine.UpsertService{Service: engine.Service{ID: "color", DurationMin: 90, Resources: []string{"carol"}}}, engine.CodeInvalid},
		{"service with bad step", engine.UpsertService{Service: engine.Service{ID: "cut", DurationMin: 30, StepMin: 1, Resources: []string{"bob"}}}, engine.CodeInvalid},
		{"override", engine.SetOverride{ResourceID: "bob", Date: "2026-06-06", Open: []engine.Range{rng("10:00", "14:00")}}, ""},
		{"override closing", engine.SetOverride{ResourceID: "bob", Date: "2026-06-02"}, ""},
		{"override clear of nothing", engine.SetOverride{ResourceID: "bob", Date: "2026-06-02", Clear: true}, ""},
		{"override bad date", engine.SetOverride{ResourceID: "bob", Date: "2026-06-31"}, engine.CodeInvalid},
		{"override unknown resource", engine.SetOverride{ResourceID: "carol", Date: "2026-06-02"}, engine.CodeNotFound},
		{"override bad clock", engine.SetOverride{ResourceID: "bob", Date: "2026-06-02", Open: []engine.Range{rng("10:00", "24:30")}}, engine.CodeInvalid},
		{"override overlapping", engine.SetOverride{ResourceID: "bob", Date: "2026-06-02", Open: []engine.Range{rng("10:00", "12:00"), rng("11:59", "13:00")}}, engine.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.want != "" {
				f.fail(tt.cmd, now0, tt.want)
				return
			}
			res := f.apply(tt.cmd, now0)
			if len(res.Events) != 1 {
				t.Fatalf("Apply(%+v) events = %+v, want one", tt.cmd, res.Events)
			}
			// Replaying the events rebuilds the same configuration.
			if a, b := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, b) {
				t.Errorf("replay after %s differs:\nlive   %s\nreplay %s", engine.CommandName(tt.cmd), a, b)
			}
		})
	}
}

func TestHoldLifecycle(t *testing.T) {
	f := newFixture(t)
	res := f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0)}, now0)
	h := res.Hold
	if h == nil || h.ID != "h1" || h.ResourceID != "alice" || !h.Start.Equal(tue(10, 0)) || !h.End.Equal(tue(10, 30)) ||
		!h.ExpiresAt.Equal(now0.Add(engine.DefaultHoldTTLSec*time.Second)) {
		t.Fatalf("PlaceHold result hold = %+v, want h1 on alice 10:00–10:30 expiring after the default TTL", h)
	}
	if len(res.Events) != 1 || res.Events[0].Type != engine.EvHoldPlaced {
		t.Fatalf("PlaceHold events = %+v, want one %s", res.Events, engine.EvHoldPlaced)
	}
	if exp, ok := f.s.NextHoldExpiry(); !ok || !exp.Equal(h.ExpiresAt) {
		t.Errorf("NextHoldExpiry() = %v, %v; want %v", exp, ok, h.ExpiresAt)
	}
	// The hold takes the slot.
	f.fail(book("b1", "cut", "alice", tue(10, 0)), now0, engine.CodeSlotTaken)
	f.fail(engine.PlaceHold{HoldID: "h2", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0)}, now0, engine.CodeSlotTaken)
	// Ids are unique across holds and bookings.
	f.fail(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(10, 0)}, now0, engine.CodeInvalid)
	f.fail(book("h1", "cut", "bob", tue(10, 0)), now0, engine.CodeInvalid)

	// Expiry: nothing before, the hold at its expiry instant.
	if res := f.apply(engine.ExpireHolds{}, h.ExpiresAt.Add(-time.Microsecond)); len(res.Events) != 0 {
		t.Errorf("ExpireHolds before expiry = %+v, want no events", res.Events)
	}
	// Once expired the slot is free even before ExpireHolds runs.
	slots := MustAvailability(t, f.s, engine.AvailabilityQuery{ServiceID: "cut", ResourceID: "alice", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, h.ExpiresAt)
	if len(slots) == 0 || !slots[2].Start.Equal(tue(10, 0)) {
		t.Errorf("Availability after hold expiry = %s, want 10:00 offered again", describeSlots(slots))
	}
	if _, err := engine.Decide(f.s, book("b1", "cut", "alice", tue(10, 0)), h.ExpiresAt); err != nil {
		t.Errorf("Book over an expired hold = %v, want success", err)
	}
	f.fail(engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, h.ExpiresAt, engine.CodeHoldExpired)
	res = f.apply(engine.ExpireHolds{}, h.ExpiresAt)
	if len(res.Events) != 1 || res.Events[0].Type != engine.EvHoldExpired || res.Events[0].HoldID != "h1" {
		t.Errorf("ExpireHolds at expiry = %+v, want hold_expired h1", res.Events)
	}
	if _, ok := f.s.Hold("h1"); ok {
		t.Errorf("Hold(h1) still present after expiry")
	}
	if _, ok := f.s.NextHoldExpiry(); ok {
		t.Errorf("NextHoldExpiry() = ok with no holds")
	}

	// Release.
	later := h.ExpiresAt
	f.apply(engine.PlaceHold{HoldID: "h3", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), TTL: time.Hour}, later)
	res = f.apply(engine.ReleaseHold{HoldID: "h3"}, later)
	if len(res.Events) != 1 || res.Events[0].Type != engine.EvHoldReleased {
		t.Errorf("ReleaseHold events = %+v, want hold_released", res.Events)
	}
	f.fail(engine.ReleaseHold{HoldID: "h3"}, later, engine.CodeHoldExpired)
	f.fail(engine.ReleaseHold{HoldID: "nope"}, later, engine.CodeHoldExpired)
	f.fail(engine.Book{BookingID: "b1", HoldID: "h3", Customer: ada}, later, engine.CodeHoldExpired)
	f.apply(book("b1", "cut", "alice", tue(10, 0)), later)

	if a, b := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, b) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", a, b)
	}
}

func TestHoldTTL(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want engine.Code
	}{
		{0, ""},
		{10 * time.Second, ""},
		{time.Hour, ""},
		{9 * time.Second, engine.CodeInvalid},
		{time.Hour + time.Second, engine.CodeInvalid},
		{-time.Minute, engine.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			f := newFixture(t)
			cmd := engine.PlaceHold{HoldID: "h", ServiceID: "cut", ResourceID: "bob", Start: tue(9, 0), TTL: tt.ttl}
			if tt.want != "" {
				f.fail(cmd, now0, tt.want)
				return
			}
			h := f.apply(cmd, now0).Hold
			want := tt.ttl
			if want == 0 {
				want = engine.DefaultHoldTTLSec * time.Second
			}
			if got := h.ExpiresAt.Sub(now0); got != want {
				t.Errorf("PlaceHold(TTL %v) expires after %v, want %v", tt.ttl, got, want)
			}
		})
	}
	// The tenant's default TTL applies when the command gives none.
	f := newFixture(t)
	cfg := baseConfig()
	cfg.HoldTTLSec = 45
	f.apply(engine.Configure{Config: cfg}, now0)
	if h := f.apply(engine.PlaceHold{HoldID: "h", ServiceID: "cut", Start: tue(9, 0)}, now0).Hold; !h.ExpiresAt.Equal(now0.Add(45 * time.Second)) {
		t.Errorf("PlaceHold with tenant TTL 45s expires at %v, want %v", h.ExpiresAt, now0.Add(45*time.Second))
	}
}

func TestBookFromHold(t *testing.T) {
	hold := engine.PlaceHold{HoldID: "h1", ServiceID: "massage", ResourceID: "alice", Start: tue(10, 0), TTL: 10 * time.Minute}
	tests := []struct {
		name   string
		book   engine.Book
		at     time.Time
		setup  func(f *fixture)
		want   engine.Code
		holdAt time.Time // when the hold is placed; zero: now0
	}{
		{"hold only", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0, nil, "", time.Time{}},
		{"matching details", engine.Book{BookingID: "b1", HoldID: "h1", ServiceID: "massage", ResourceID: "alice", Start: tue(10, 0), Customer: ada}, now0, nil, "", time.Time{}},
		{"service mismatch", engine.Book{BookingID: "b1", HoldID: "h1", ServiceID: "consult", Customer: ada}, now0, nil, engine.CodeInvalid, time.Time{}},
		{"resource mismatch", engine.Book{BookingID: "b1", HoldID: "h1", ResourceID: "bob", Customer: ada}, now0, nil, engine.CodeInvalid, time.Time{}},
		{"start mismatch", engine.Book{BookingID: "b1", HoldID: "h1", Start: tue(11, 0), Customer: ada}, now0, nil, engine.CodeInvalid, time.Time{}},
		{"same start in another zone", engine.Book{BookingID: "b1", HoldID: "h1", Start: tue(10, 0).In(time.FixedZone("X", 3*3600)), Customer: ada}, now0, nil, "", time.Time{}},
		{"hold expired", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0.Add(10 * time.Minute), nil, engine.CodeHoldExpired, time.Time{}},
		{"hold unknown", engine.Book{BookingID: "b1", HoldID: "h9", Customer: ada}, now0, nil, engine.CodeHoldExpired, time.Time{}},
		{"hold already booked", engine.Book{BookingID: "b2", HoldID: "h1", Customer: ada}, now0, func(f *fixture) {
			f.apply(engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0)
		}, engine.CodeHoldExpired, time.Time{}},
		{"bad customer", engine.Book{BookingID: "b1", HoldID: "h1", Customer: engine.Customer{Name: "Ada"}}, now0, nil, engine.CodeInvalid, time.Time{}},
		{"busy block arrived meanwhile", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0, func(f *fixture) {
			f.apply(engine.ImportBusy{ResourceID: "alice", Source: "gcal", Blocks: []engine.Interval{{Start: tue(11, 0), End: tue(11, 5)}}}, now0)
		}, engine.CodeSlotTaken, time.Time{}},
		{"hours changed meanwhile", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0, func(f *fixture) {
			f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-02", Open: []engine.Range{rng("12:00", "17:00")}}, now0)
		}, engine.CodeOutsideHours, time.Time{}},
		// The notice and horizon were checked when the hold was placed, but
		// a held slot that has already started cannot be booked.
		{"notice passed while holding", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, tue(9, 58), nil, "", tue(9, 55)},
		{"start passed while holding", engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, tue(10, 1), nil, engine.CodeTooSoon, tue(9, 58)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			holdAt := tt.holdAt
			if holdAt.IsZero() {
				holdAt = now0
			}
			f.apply(hold, holdAt)
			if tt.setup != nil {
				tt.setup(f)
			}
			if tt.want != "" {
				f.fail(tt.book, tt.at, tt.want)
				return
			}
			res := f.apply(tt.book, tt.at)
			b := res.Booking
			if b == nil || b.FromHold != "h1" || b.ServiceID != "massage" || b.ResourceID != "alice" || !b.Start.Equal(tue(10, 0)) ||
				!b.BlockStart.Equal(tue(9, 45)) || !b.BlockEnd.Equal(tue(11, 15)) || b.Status != engine.StatusConfirmed {
				t.Fatalf("Book(%+v) = %+v, want a confirmed massage from h1 on alice 10:00, block 09:45–11:15", tt.book, b)
			}
			if _, ok := f.s.Hold("h1"); ok {
				t.Errorf("hold h1 survives its booking")
			}
			if got, ok := f.s.Booking("b1"); !ok || got.FromHold != "h1" {
				t.Errorf("Booking(b1) = %+v, %v", got, ok)
			}
		})
	}
}

func TestBookRefusals(t *testing.T) {
	tests := []struct {
		name string
		book engine.Book
		now  time.Time
		want engine.Code
	}{
		{"ok", book("b1", "cut", "alice", tue(9, 0)), now0, ""},
		{"last slot of the day", book("b1", "cut", "alice", tue(16, 30)), now0, ""},
		{"in the past", book("b1", "cut", "alice", tue(9, 0)), tue(9, 1), engine.CodeTooSoon},
		{"starting now", book("b1", "cut", "alice", tue(9, 0)), tue(9, 0), ""},
		{"within notice", book("b1", "vip", "alice", tue(9, 0)), tue(7, 1), engine.CodeTooSoon},
		{"at notice", book("b1", "vip", "alice", tue(9, 0)), tue(7, 0), ""},
		{"beyond horizon", book("b1", "vip", "alice", utc(2026, 6, 8, 9, 0)), utc(2026, 6, 1, 8, 59), engine.CodeTooFar},
		{"at horizon", book("b1", "vip", "alice", utc(2026, 6, 8, 9, 0)), utc(2026, 6, 1, 9, 0), ""},
		{"default horizon 60 days", book("b1", "cut", "alice", utc(2026, 7, 31, 9, 0)), now0, engine.CodeTooFar},
		{"saturday", book("b1", "cut", "alice", utc(2026, 6, 6, 10, 0)), now0, engine.CodeOutsideHours},
		{"before opening", book("b1", "cut", "alice", tue(8, 30)), now0, engine.CodeOutsideHours},
		{"ends after closing", book("b1", "consult", "alice", tue(16, 15)), now0, engine.CodeOutsideHours},
		{"at closing", book("b1", "cut", "alice", tue(17, 0)), now0, engine.CodeOutsideHours},
		{"off grid", book("b1", "cut", "alice", tue(9, 10)), now0, engine.CodeOffGrid},
		{"finer grid", book("b1", "consult", "alice", tue(9, 15)), now0, ""},
		{"not a whole minute", book("b1", "cut", "alice", tue(9, 0).Add(30*time.Second)), now0, engine.CodeOffGrid},
		{"zero start", book("b1", "cut", "alice", time.Time{}), now0, engine.CodeInvalid},
		{"implausible start", book("b1", "cut", "alice", time.Date(10000, 1, 1, 9, 0, 0, 0, time.UTC)), now0, engine.CodeInvalid},
		{"unknown service", book("b1", "perm", "alice", tue(9, 0)), now0, engine.CodeNotFound},
		{"unknown resource", book("b1", "cut", "zed", tue(9, 0)), now0, engine.CodeNotFound},
		{"resource does not deliver service", book("b1", "class", "alice", tue(9, 0)), now0, engine.CodeInvalid},
		{"booking id empty", book("", "cut", "alice", tue(9, 0)), now0, engine.CodeInvalid},
		{"booking id with slash", book("a/b", "cut", "alice", tue(9, 0)), now0, engine.CodeInvalid},
		{"idempotency key too long", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(9, 0), Customer: ada,
			IdempotencyKey: strings.Repeat("k", 129)}, now0, engine.CodeInvalid},
		{"idempotency key at limit", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(9, 0), Customer: ada,
			IdempotencyKey: strings.Repeat("k", 128)}, now0, ""},
	}
	customers := []struct {
		name string
		c    engine.Customer
		want engine.Code
	}{
		{"no name", engine.Customer{Email: "a@example.com"}, engine.CodeInvalid},
		{"blank name", engine.Customer{Name: "   ", Email: "a@example.com"}, engine.CodeInvalid},
		{"long name", engine.Customer{Name: strings.Repeat("n", engine.MaxNameLen+1), Email: "a@example.com"}, engine.CodeInvalid},
		{"no email", engine.Customer{Name: "Ada"}, engine.CodeInvalid},
		{"email without at", engine.Customer{Name: "Ada", Email: "ada.example.com"}, engine.CodeInvalid},
		{"email without domain dot", engine.Customer{Name: "Ada", Email: "ada@localhost"}, engine.CodeInvalid},
		{"email without local part", engine.Customer{Name: "Ada", Email: "@example.com"}, engine.CodeInvalid},
		{"email with space", engine.Customer{Name: "Ada", Email: "ada lovelace@example.com"}, engine.CodeInvalid},
		{"email too long", engine.Customer{Name: "Ada", Email: strings.Repeat("a", 250) + "@x.io"}, engine.CodeInvalid},
		{"control character", engine.Customer{Name: "Ada\x00", Email: "a@example.com"}, engine.CodeInvalid},
		{"newline in phone", engine.Customer{Name: "Ada", Email: "a@example.com", Phone: "1\n2"}, engine.CodeInvalid},
		{"phone too long", engine.Customer{Name: "Ada", Email: "a@example.com", Phone: strings.Repeat("1", 33)}, engine.CodeInvalid},
		{"unicode name", engine.Customer{Name: "Zoë Ōtsuka", Email: "zoe@example.jp"}, ""},
		{"no phone", engine.Customer{Name: "Ada", Email: "a@example.com"}, ""},
	}
	for _, c := range customers {
		tests = append(tests, struct {
			name string
			book engine.Book
			now  time.Time
			want engine.Code
		}{"customer " + c.name, engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(9, 0), Customer: c.c}, now0, c.want})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.want != "" {
				f.fail(tt.book, tt.now, tt.want)
				return
			}
			res := f.apply(tt.book, tt.now)
			if res.Booking == nil || res.Booking.ID != "b1" || res.Duplicate || len(res.Events) != 1 {
				t.Fatalf("Book(%+v) = %+v, want booking b1 with one event", tt.book, res)
			}
		})
	}
}

func TestSlotTakenAndBuffers(t *testing.T) {
	tests := []struct {
		name     string
		existing []engine.Book
		book     engine.Book
		want     engine.Code
	}{
		{"same slot", []engine.Book{book("x", "cut", "alice", tue(10, 0))}, book("b", "cut", "alice", tue(10, 0)), engine.CodeSlotTaken},
		{"same slot other resource", []engine.Book{book("x", "cut", "alice", tue(10, 0))}, book("b", "cut", "bob", tue(10, 0)), ""},
		{"next slot", []engine.Book{book("x", "cut", "alice", tue(10, 0))}, book("b", "cut", "alice", tue(10, 30)), ""},
		{"overlap from another service", []engine.Book{book("x", "consult", "alice", tue(9, 45))}, book("b", "cut", "alice", tue(10, 0)), engine.CodeSlotTaken},
		{"before buffer", []engine.Book{book("x", "massage", "alice", tue(10, 0))}, book("b", "cut", "alice", tue(9, 30)), engine.CodeSlotTaken},
		{"after buffer", []engine.Book{book("x", "massage", "alice", tue(10, 0))}, book("b", "cut", "alice", tue(11, 0)), engine.CodeSlotTaken},
		{"clear of buffers", []engine.Book{book("x", "massage", "alice", tue(10, 0))}, book("b", "consult", "alice", tue(11, 15)), ""},
		{"clear of buffer before", []engine.Book{book("x", "massage", "alice", tue(10, 0))}, book("b", "cut", "alice", tue(9, 0)), ""},
		{"own buffer hits booking", []engine.Book{book("x", "cut", "alice", tue(11, 0))}, book("b", "massage", "alice", tue(10, 0)), engine.CodeSlotTaken},
		{"own buffer touches booking", []engine.Book{book("x", "consult", "alice", tue(11, 15))}, book("b", "massage", "alice", tue(10, 0)), ""},
		{"buffers may leave opening hours", nil, book("b", "massage", "alice", tue(9, 0)), ""},
		{"back to back, buffers overlap", []engine.Book{book("x", "massage", "alice", tue(9, 0))}, book("b", "massage", "alice", tue(10, 0)), engine.CodeSlotTaken},
		{"buffers apart", []engine.Book{book("x", "massage", "alice", tue(9, 0))}, book("b", "massage", "alice", tue(11, 0)), ""},
		{"seats left", []engine.Book{book("x", "class", "room", tue(10, 0)), book("y", "class", "room", tue(10, 0))}, book("b", "class", "room", tue(10, 0)), ""},
		{"seats full", []engine.Book{book("x", "class", "room", tue(10, 0)), book("y", "class", "room", tue(10, 0)), book("z", "class", "room", tue(10, 0))},
			book("b", "class", "room", tue(10, 0)), engine.CodeSlotTaken},
		{"seats full next hour free", []engine.Book{book("x", "class", "room", tue(10, 0)), book("y", "class", "room", tue(10, 0)), book("z", "class", "room", tue(10, 0))},
			book("b", "class", "room", tue(11, 0)), ""},
		{"any resource falls back", []engine.Book{book("x", "cut", "alice", tue(10, 0))}, book("b", "cut", "", tue(10, 0)), ""},
		{"any resource all taken", []engine.Book{book("x", "cut", "alice", tue(10, 0)), book("y", "cut", "bob", tue(10, 0))}, book("b", "cut", "", tue(10, 0)), engine.CodeSlotTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, b := range tt.existing {
				f.apply(b, now0)
			}
			if tt.want != "" {
				f.fail(tt.book, now0, tt.want)
				return
			}
			f.apply(tt.book, now0)
		})
	}
}

func TestSeats(t *testing.T) {
	f := newFixture(t)
	q := engine.AvailabilityQuery{ServiceID: "class", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}
	seatsAt10 := func() int {
		for _, sl := range MustAvailability(t, f.s, q, now0) {
			if sl.Start.Equal(tue(10, 0)) {
				return sl.Seats
			}
		}
		return 0
	}
	if got := seatsAt10(); got != 3 {
		t.Fatalf("seats at 10:00 = %d, want 3", got)
	}
	f.apply(book("b1", "class", "room", tue(10, 0)), now0)
	f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "class", Start: tue(10, 0)}, now0)
	if got := seatsAt10(); got != 1 {
		t.Errorf("seats at 10:00 after a booking and a hold = %d, want 1", got)
	}
	f.apply(book("b2", "class", "", tue(10, 0)), now0)
	if got := seatsAt10(); got != 0 {
		t.Errorf("seats at 10:00 when full = %d, want 0 (slot not offered)", got)
	}
	f.fail(book("b3", "class", "room", tue(10, 0)), now0, engine.CodeSlotTaken)
	f.apply(engine.Cancel{BookingID: "b1"}, now0)
	if got := seatsAt10(); got != 1 {
		t.Errorf("seats at 10:00 after a cancellation = %d, want 1", got)
	}
	// Booking from the hold turns its seat into a booking: still one left.
	f.apply(engine.Book{BookingID: "b3", HoldID: "h1", Customer: ada}, now0)
	if got := seatsAt10(); got != 1 {
		t.Errorf("seats at 10:00 after booking from the hold = %d, want 1", got)
	}
	f.apply(book("b4", "class", "room", tue(10, 0)), now0)
	f.fail(book("b5", "class", "room", tue(10, 0)), now0, engine.CodeSlotTaken)
}

func TestBusyBlocks(t *testing.T) {
	f := newFixture(t)
	busy := func(src string, ivs ...engine.Interval) engine.ImportBusy {
		return engine.ImportBusy{ResourceID: "alice", Source: src, Blocks: ivs}
	}
	res := f.apply(busy("gcal", engine.Interval{Start: tue(10, 45), End: tue(11, 0)}, engine.Interval{Start: tue(10, 0), End: tue(10, 50)},
		engine.Interval{Start: tue(14, 0), End: tue(14, 1)}), now0)
	got := res.Events[0].Busy.Blocks
	want := []engine.Interval{{Start: tue(10, 0), End: tue(11, 0)}, {Start: tue(14, 0), End: tue(14, 1)}}
	if !slices.EqualFunc(got, want, func(a, b engine.Interval) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }) {
		t.Errorf("ImportBusy blocks = %v, want sorted and merged %v", got, want)
	}
	for _, tc := range []struct {
		start time.Time
		want  engine.Code
	}{
		{tue(9, 30), ""}, {tue(10, 0), engine.CodeSlotTaken}, {tue(10, 30), engine.CodeSlotTaken}, {tue(11, 0), ""},
		{tue(13, 30), ""}, {tue(14, 0), engine.CodeSlotTaken},
	} {
		_, err := engine.Decide(f.s, book("b", "cut", "alice", tc.start), now0)
		if codeOf(err) != tc.want {
			t.Errorf("Book(alice %s) with busy blocks = %v, want %q", tc.start.Format("15:04"), err, tc.want)
		}
	}
	// Buffers count against busy blocks too: a massage at 12:00 needs 11:45–13:15.
	f.apply(busy("outlook", engine.Interval{Start: tue(13, 10), End: tue(13, 20)}), now0)
	f.fail(book("b", "massage", "alice", tue(12, 0)), now0, engine.CodeSlotTaken)
	// The "any" rule routes around busy resources.
	if b := f.apply(book("b1", "cut", "", tue(10, 0)), now0).Booking; b.ResourceID != "bob" {
		t.Errorf("Book(any, 10:00) chose %s, want bob (alice is busy)", b.ResourceID)
	}
	slots := MustAvailability(t, f.s, engine.AvailabilityQuery{ServiceID: "cut", ResourceID: "alice", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, now0)
	for _, sl := range slots {
		if s := sl.Start; !s.Before(tue(10, 0)) && s.Before(tue(11, 0)) || s.Equal(tue(14, 0)) || s.Equal(tue(13, 0)) {
			t.Errorf("Availability offers alice at %s, inside a busy block", s.Format("15:04"))
		}
	}
	// Each source is replaced on its own; an empty import clears it.
	f.apply(busy("gcal"), now0)
	f.apply(book("b2", "cut", "alice", tue(10, 0)), now0)
	f.fail(book("b3", "cut", "alice", tue(13, 0)), now0, engine.CodeSlotTaken)
	f.apply(busy("outlook"), now0)
	f.apply(book("b3", "cut", "alice", tue(13, 0)), now0)

	for _, tc := range []struct {
		name string
		cmd  engine.ImportBusy
		want engine.Code
	}{
		{"unknown resource", engine.ImportBusy{ResourceID: "zed", Source: "gcal"}, engine.CodeNotFound},
		{"empty source", engine.ImportBusy{ResourceID: "alice"}, engine.CodeInvalid},
		{"bad source", engine.ImportBusy{ResourceID: "alice", Source: "g cal"}, engine.CodeInvalid},
		{"end before start", busy("gcal", engine.Interval{Start: tue(11, 0), End: tue(10, 0)}), engine.CodeInvalid},
		{"empty block", busy("gcal", engine.Interval{Start: tue(11, 0), End: tue(11, 0)}), engine.CodeInvalid},
		{"zero start", busy("gcal", engine.Interval{End: tue(11, 0)}), engine.CodeInvalid},
		{"too many blocks", busy("gcal", make([]engine.Interval, engine.MaxBusyBlocks+1)...), engine.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) { MustFail(t, f.s, tc.cmd, now0, tc.want) })
	}
	if a, b := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, b) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", a, b)
	}
	if a, b := MustSnapshot(t, f.s), MustSnapshot(t, MustRestore(t, f.s)); !bytes.Equal(a, b) {
		t.Errorf("restore differs:\nlive     %s\nrestored %s", a, b)
	}
}

func TestHolidaysAndOverrides(t *testing.T) {
	cfg := baseConfig()
	cfg.Holidays = []engine.Holiday{{Date: "2026-06-02", Name: "Festa della Repubblica"}}
	for i := range cfg.Resources {
		if cfg.Resources[i].ID == "bob" {
			cfg.Resources[i].Overrides = map[string][]engine.Range{"2026-06-02": {rng("12:00", "14:00")}}
		}
	}
	f := newFixture(t)
	f.apply(engine.Configure{Config: cfg}, now0)
	tests := []struct {
		name string
		book engine.Book
		want engine.Code
	}{
		{"holiday closes", book("b", "cut", "alice", tue(10, 0)), engine.CodeOutsideHours},
		{"override beats holiday", book("b", "cut", "bob", tue(12, 0)), ""},
		{"override replaces weekly hours", book("b", "cut", "bob", tue(10, 0)), engine.CodeOutsideHours},
		{"day after holiday", book("b", "cut", "alice", utc(2026, 6, 3, 10, 0)), ""},
		{"any resource on holiday", book("b", "cut", "", tue(12, 30)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.Decide(f.s, tt.book, now0)
			if got := codeOf(err); got != tt.want {
				t.Errorf("Book(%s %s %s) = %v, want %q", tt.book.ServiceID, tt.book.ResourceID, tt.book.Start.Format(time.RFC3339), err, tt.want)
			}
		})
	}
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}
	if got, want := slotStarts(MustAvailability(t, f.s, q, now0), time.UTC), []string{"06-02 12:00 +0000", "06-02 12:30 +0000", "06-02 13:00 +0000", "06-02 13:30 +0000"}; !slices.Equal(got, want) {
		t.Errorf("Availability on the holiday = %q, want bob's override only %q", got, want)
	}

	// SetOverride: open on a Saturday, close a weekday, then clear.
	sat := utc(2026, 6, 6, 10, 0)
	f.fail(book("b", "cut", "alice", sat), now0, engine.CodeOutsideHours)
	f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-06", Open: []engine.Range{rng("10:00", "12:00")}}, now0)
	f.apply(book("b1", "cut", "alice", sat), now0)
	f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-03"}, now0)
	f.fail(book("b2", "cut", "alice", utc(2026, 6, 3, 10, 0)), now0, engine.CodeOutsideHours)
	f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-03", Clear: true}, now0)
	f.apply(book("b2", "cut", "alice", utc(2026, 6, 3, 10, 0)), now0)
	// An override on a holiday opens it; clearing it closes it again.
	f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-02", Open: []engine.Range{rng("09:00", "10:00")}}, now0)
	f.apply(book("b3", "cut", "alice", tue(9, 0)), now0)
	f.apply(engine.SetOverride{ResourceID: "alice", Date: "2026-06-02", Clear: true}, now0)
	f.fail(book("b4", "cut", "alice", tue(9, 30)), now0, engine.CodeOutsideHours)
	if cfg, _ := f.s.Config(); cfg.Resources[0].Overrides["2026-06-06"] == nil {
		t.Errorf("Config() alice overrides = %v, want 2026-06-06", cfg.Resources[0].Overrides)
	}
	if a, b := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, b) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", a, b)
	}
}

func TestReschedule(t *testing.T) {
	// b1 is a consult (60 minutes every 15, alice only: moves within its
	// own block are possible) unless a case books a cut (alice or bob).
	tests := []struct {
		name    string
		svc     string
		setup   []engine.Command
		cmd     engine.Reschedule
		now     time.Time
		want    engine.Code
		wantRes string
		wantAt  time.Time
	}{
		{"move", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(14, 0)}, now0, "", "alice", tue(14, 0)},
		{"move to another resource", "cut", nil, engine.Reschedule{BookingID: "b1", Start: tue(14, 0), ResourceID: "bob"}, now0, "", "bob", tue(14, 0)},
		{"move to any resource", "cut", []engine.Command{book("x", "cut", "alice", tue(14, 0))},
			engine.Reschedule{BookingID: "b1", Start: tue(14, 0), AnyResource: true}, now0, "", "bob", tue(14, 0)},
		{"new slot taken", "consult", []engine.Command{book("x", "cut", "alice", tue(14, 0))},
			engine.Reschedule{BookingID: "b1", Start: tue(14, 0)}, now0, engine.CodeSlotTaken, "", time.Time{}},
		{"new slot held", "consult", []engine.Command{engine.PlaceHold{HoldID: "h", ServiceID: "cut", ResourceID: "alice", Start: tue(14, 0)}},
			engine.Reschedule{BookingID: "b1", Start: tue(14, 0)}, now0, engine.CodeSlotTaken, "", time.Time{}},
		{"overlapping own slot", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(10, 15)}, now0, "", "alice", tue(10, 15)},
		{"same slot", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(10, 0)}, now0, "", "alice", tue(10, 0)},
		{"off grid", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(10, 5)}, now0, engine.CodeOffGrid, "", time.Time{}},
		{"outside hours", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(16, 30)}, now0, engine.CodeOutsideHours, "", time.Time{}},
		{"into the past", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(9, 0)}, tue(9, 30), engine.CodeTooSoon, "", time.Time{}},
		{"beyond horizon", "consult", nil, engine.Reschedule{BookingID: "b1", Start: utc(2026, 8, 3, 10, 0)}, now0, engine.CodeTooFar, "", time.Time{}},
		{"resource without service", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(14, 0), ResourceID: "bob"}, now0, engine.CodeInvalid, "", time.Time{}},
		{"unknown resource", "consult", nil, engine.Reschedule{BookingID: "b1", Start: tue(14, 0), ResourceID: "zed"}, now0, engine.CodeNotFound, "", time.Time{}},
		{"unknown booking", "consult", nil, engine.Reschedule{BookingID: "nope", Start: tue(14, 0)}, now0, engine.CodeNotFound, "", time.Time{}},
		{"cancelled booking", "consult", []engine.Command{engine.Cancel{BookingID: "b1"}},
			engine.Reschedule{BookingID: "b1", Start: tue(14, 0)}, now0, engine.CodeAlreadyDone, "", time.Time{}},
		{"zero start", "consult", nil, engine.Reschedule{BookingID: "b1"}, now0, engine.CodeInvalid, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			svc := tt.svc
			orig := f.apply(book("b1", svc, "alice", tue(10, 0)), now0).Booking
			for _, c := range tt.setup {
				f.apply(c, now0)
			}
			if tt.want != "" {
				f.fail(tt.cmd, tt.now, tt.want)
				// The booking keeps its slot, which is still taken.
				got, _ := f.s.Booking("b1")
				if tt.want != engine.CodeAlreadyDone && (!got.Start.Equal(orig.Start) || got.Rescheduled != 0) {
					t.Errorf("Booking(b1) after a refused move = %+v, want the original", got)
				}
				if got.Status == engine.StatusConfirmed {
					f.fail(book("other", svc, "alice", tue(10, 0)), now0, engine.CodeSlotTaken)
				}
				return
			}
			res := f.apply(tt.cmd, tt.now)
			b := res.Booking
			if b == nil || b.ResourceID != tt.wantRes || !b.Start.Equal(tt.wantAt) || b.Rescheduled != 1 || b.ID != "b1" ||
				!b.CreatedAt.Equal(orig.CreatedAt) || b.Customer != orig.Customer {
				t.Fatalf("Reschedule(%+v) = %+v, want b1 on %s at %s, moved once", tt.cmd, b, tt.wantRes, tt.wantAt)
			}
			if len(res.Events) != 1 || res.Events[0].Type != engine.EvBookingRescheduled {
				t.Errorf("Reschedule events = %+v", res.Events)
			}
			// The old slot is free unless the booking still covers it.
			if !b.Start.Equal(orig.Start) && !(b.ResourceID == "alice" && b.BlockStart.Before(orig.BlockEnd) && orig.BlockStart.Before(b.BlockEnd)) {
				if _, err := engine.Decide(f.s, book("other", svc, "alice", orig.Start), now0); err != nil {
					t.Errorf("old slot after Reschedule: Book = %v, want free", err)
				}
			}
			if a, r := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, r) {
				t.Errorf("replay differs:\nlive   %s\nreplay %s", a, r)
			}
			if a, r := MustSnapshot(t, f.s), MustSnapshot(t, MustRestore(t, f.s)); !bytes.Equal(a, r) {
				t.Errorf("restore differs:\nlive     %s\nrestored %s", a, r)
			}
		})
	}
}

func TestRescheduleKeepsCapacityExact(t *testing.T) {
	// A move onto a fully booked room is refused; moving within the room's
	// free hour works and frees the old seat.
	f := newFixture(t)
	for _, id := range []string{"a", "b", "c"} {
		f.apply(book(id, "class", "room", tue(10, 0)), now0)
	}
	f.apply(book("d", "class", "room", tue(11, 0)), now0)
	f.fail(engine.Reschedule{BookingID: "d", Start: tue(10, 0)}, now0, engine.CodeSlotTaken)
	f.apply(engine.Reschedule{BookingID: "a", Start: tue(11, 0)}, now0)
	f.apply(engine.Reschedule{BookingID: "d", Start: tue(10, 0)}, now0)
	f.fail(book("e", "class", "room", tue(10, 0)), now0, engine.CodeSlotTaken)
	f.apply(book("e", "class", "room", tue(11, 0)), now0)
}

func TestCancel(t *testing.T) {
	f := newFixture(t)
	f.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
	at := now0.Add(time.Hour)
	f.fail(engine.Cancel{BookingID: "b1", Reason: strings.Repeat("r", 501)}, at, engine.CodeInvalid)
	res := f.apply(engine.Cancel{BookingID: "b1", Reason: "flu"}, at)
	b := res.Booking
	if b == nil || b.Status != engine.StatusCancelled || b.CancelReason != "flu" || !b.UpdatedAt.Equal(at) {
		t.Fatalf("Cancel(b1) = %+v, want cancelled for flu at %v", b, at)
	}
	if got, _ := f.s.Booking("b1"); got.Status != engine.StatusCancelled {
		t.Errorf("Booking(b1).Status = %s, want cancelled", got.Status)
	}
	f.fail(engine.Cancel{BookingID: "b1"}, at, engine.CodeAlreadyDone)
	f.fail(engine.Cancel{BookingID: "nope"}, at, engine.CodeNotFound)
	// The slot is free again, and the cancelled booking is still listed.
	f.apply(book("b2", "cut", "alice", tue(10, 0)), at)
	if got := f.s.Bookings(tue(10, 0), tue(10, 30)); len(got) != 2 || got[0].ID != "b1" || got[1].ID != "b2" {
		t.Errorf("Bookings(10:00–10:30) = %+v, want b1 (cancelled) and b2", got)
	}
	if got := f.s.Bookings(tue(10, 30), tue(11, 0)); len(got) != 0 {
		t.Errorf("Bookings(10:30–11:00) = %+v, want none (half-open)", got)
	}
	if a, r := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, r) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", a, r)
	}
}

// A state keeps idempotency records compactly (the fingerprint as bytes);
// records of another shape, which the engine never writes but an old or
// hand-made journal may hold, must come back out of a snapshot exactly as
// they went in, and a key moving between the two forms is kept once.
func TestIdempotencyRecordsOfAnyShapeSurviveSnapshots(t *testing.T) {
	f := newFixture(t)
	r := f.apply(engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: ada, IdempotencyKey: "k-normal"}, now0)
	normal := *r.Events[0].Idem
	fp := normal.Fingerprint
	odd := []engine.IdemRecord{
		{Key: "k-empty-fingerprint", Kind: "booking", ID: "b1"},
		{Key: "k-upper-case", Fingerprint: strings.ToUpper(fp), Kind: "booking", ID: "b1"},
		{Key: "k-short", Fingerprint: fp[:10], Kind: "booking", ID: "b1"},
		{Key: "k-not-hex", Fingerprint: strings.Repeat("z", len(fp)), Kind: "hold", ID: "h1"},
		{Key: "k-other-kind", Fingerprint: fp, Kind: "reschedule", ID: "b1"},
		{Key: "k-no-kind", Fingerprint: fp, ID: "b1"},
	}
	var snap map[string]json.RawMessage
	if err := json.Unmarshal(MustSnapshot(t, f.s), &snap); err != nil {
		t.Fatal(err)
	}
	want := append([]engine.IdemRecord{normal}, odd...)
	slices.SortFunc(want, func(a, b engine.IdemRecord) int { return strings.Compare(a.Key, b.Key) })
	snap["idem"], _ = json.Marshal(want)
	in, _ := json.Marshal(snap)
	s, err := engine.RestoreState("acme", in)
	if err != nil {
		t.Fatalf("RestoreState = %v", err)
	}
	idemOf := func(s *engine.State) []engine.IdemRecord {
		var got struct{ Idem []engine.IdemRecord }
		if err := json.Unmarshal(MustSnapshot(t, s), &got); err != nil {
			t.Fatal(err)
		}
		return got.Idem
	}
	if got := idemOf(s); !sameJSON(got, want) {
		t.Errorf("idempotency records after a restore:\n got %+v\nwant %+v", got, want)
	}
	if again := MustSnapshot(t, MustRestore(t, s)); !bytes.Equal(again, MustSnapshot(t, s)) {
		t.Errorf("a second round trip changed the snapshot")
	}
	// The normal record still answers a retry, and still refuses misuse.
	retry := engine.Book{BookingID: "b1-retry", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), Customer: ada, IdempotencyKey: "k-normal"}
	if res := MustApply(t, s, retry, now0); !res.Duplicate || res.Booking.ID != "b1" {
		t.Errorf("retry = %+v, want Duplicate of b1", res)
	}
	retry.Start = tue(11, 0)
	MustFail(t, s, retry, now0, engine.CodeIdemReused)

	// Keys moving between the forms: each is kept once, in its last form.
	moved := []engine.IdemRecord{
		{Key: "k-upper-case", Fingerprint: fp, Kind: "booking", ID: "b1"},              // odd → compact
		{Key: "k-normal", Fingerprint: strings.ToUpper(fp), Kind: "booking", ID: "b1"}, // compact → odd
	}
	for _, rec := range moved {
		if err := s.Evolve(engine.Event{Type: engine.EvBookingCancelled, BookingID: "b1", At: now0, Idem: &rec}); err != nil {
			t.Fatalf("Evolve = %v", err)
		}
	}
	for i := range want {
		for _, m := range moved {
			if want[i].Key == m.Key {
				want[i] = m
			}
		}
	}
	if got := idemOf(s); !sameJSON(got, want) {
		t.Errorf("idempotency records after keys moved:\n got %+v\nwant %+v", got, want)
	}
	if n := s.Size(); n != 1+len(want) {
		t.Errorf("Size() = %d, want %d (one booking, %d records)", n, 1+len(want), len(want))
	}
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	first := engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "", Start: tue(10, 0), Customer: ada, IdempotencyKey: "k-book"}
	r1 := f.apply(first, now0)
	later := now0.Add(time.Minute)

	type check struct {
		name string
		cmd  engine.Command
		want engine.Code
		dup  bool // want Duplicate with booking b1
	}
	retry := first
	retry.BookingID = "b1-retry" // a client that mints a new id per attempt
	changed := first
	changed.Start = tue(11, 0)
	otherCustomer := first
	otherCustomer.Customer.Email = "someone@example.com"
	checks := []check{
		{"same request", first, "", true},
		{"same request, new booking id", retry, "", true},
		{"different start", changed, engine.CodeIdemReused, false},
		{"different customer", otherCustomer, engine.CodeIdemReused, false},
		{"key used for a cancel", engine.Cancel{BookingID: "b1", IdempotencyKey: "k-book"}, engine.CodeIdemReused, false},
		{"key used for a hold", engine.PlaceHold{HoldID: "h", ServiceID: "cut", Start: tue(12, 0), IdempotencyKey: "k-book"}, engine.CodeIdemReused, false},
	}
	run := func(t *testing.T, s *engine.State) {
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				if !c.dup {
					MustFail(t, s, c.cmd, later, c.want)
					return
				}
				before := MustSnapshot(t, s)
				res := MustApply(t, s, c.cmd, later)
				if !res.Duplicate || len(res.Events) != 0 || res.Booking == nil || !sameJSON(*res.Booking, *r1.Booking) {
					t.Errorf("Apply(%+v) = %+v, want Duplicate of %+v with no events", c.cmd, res, r1.Booking)
				}
				if after := MustSnapshot(t, s); !bytes.Equal(before, after) {
					t.Errorf("a duplicate changed the state")
				}
			})
		}
	}
	t.Run("live", func(t *testing.T) { run(t, f.s) })
	t.Run("restored", func(t *testing.T) { run(t, MustRestore(t, f.s)) })
	t.Run("replayed", func(t *testing.T) { run(t, MustReplay(t, "acme", f.events)) })

	// A key whose command failed was not used: the retry is a fresh attempt.
	f.apply(book("x", "cut", "alice", tue(13, 0)), now0)
	f.apply(book("y", "cut", "bob", tue(13, 0)), now0)
	failed := engine.Book{BookingID: "b2", ServiceID: "cut", Start: tue(13, 0), Customer: ada, IdempotencyKey: "k-failed"}
	f.fail(failed, now0, engine.CodeSlotTaken)
	f.apply(engine.Cancel{BookingID: "y"}, now0)
	if res := f.apply(failed, now0); res.Duplicate || res.Booking.ID != "b2" {
		t.Errorf("retry of a failed keyed command = %+v, want a new booking b2", res)
	}

	// Cancel and reschedule are idempotent too.
	cancel := engine.Cancel{BookingID: "x", IdempotencyKey: "k-cancel"}
	f.apply(cancel, now0)
	if res := f.apply(cancel, later); !res.Duplicate || len(res.Events) != 0 || res.Booking.Status != engine.StatusCancelled {
		t.Errorf("repeated Cancel = %+v, want Duplicate of the cancelled booking", res)
	}
	f.fail(engine.Cancel{BookingID: "x"}, later, engine.CodeAlreadyDone)
	move := engine.Reschedule{BookingID: "b1", Start: tue(15, 0), IdempotencyKey: "k-move"}
	f.apply(move, now0)
	res := f.apply(move, later)
	if !res.Duplicate || len(res.Events) != 0 || res.Booking.Rescheduled != 1 || !res.Booking.Start.Equal(tue(15, 0)) {
		t.Errorf("repeated Reschedule = %+v, want Duplicate, moved once to 15:00", res)
	}
	f.fail(engine.Reschedule{BookingID: "b1", Start: tue(15, 30), IdempotencyKey: "k-move"}, later, engine.CodeIdemReused)

	// Holds: a retried hold returns the same hold while it lives.
	hold := engine.PlaceHold{HoldID: "h1", ServiceID: "cut", Start: tue(16, 0), IdempotencyKey: "k-hold"}
	h := f.apply(hold, now0).Hold
	retryHold := hold
	retryHold.HoldID = "h1-retry"
	if res := f.apply(retryHold, later); !res.Duplicate || len(res.Events) != 0 || res.Hold == nil || res.Hold.ID != "h1" {
		t.Errorf("repeated PlaceHold = %+v, want Duplicate of h1", res)
	}
	f.fail(retryHold, h.ExpiresAt, engine.CodeHoldExpired)

	if a, r := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events)); !bytes.Equal(a, r) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", a, r)
	}
}

func TestAnyResourceRule(t *testing.T) {
	wed := func(h, m int) time.Time { return utc(2026, 6, 3, h, m) }
	tests := []struct {
		name     string
		existing []engine.Command
		start    time.Time
		want     string
	}{
		{"no bookings: smallest id", nil, tue(10, 0), "alice"},
		{"fewest bookings that day", []engine.Command{book("x", "cut", "alice", tue(15, 0))}, tue(10, 0), "bob"},
		{"tie: smallest id", []engine.Command{book("x", "cut", "alice", tue(15, 0)), book("y", "cut", "bob", tue(16, 0))}, tue(10, 0), "alice"},
		{"other days do not count", []engine.Command{book("x", "cut", "alice", wed(9, 0)), book("y", "cut", "alice", wed(10, 0))}, tue(10, 0), "alice"},
		{"cancelled bookings do not count", []engine.Command{book("x", "cut", "alice", tue(15, 0)), engine.Cancel{BookingID: "x"}}, tue(10, 0), "alice"},
		{"holds do not count", []engine.Command{engine.PlaceHold{HoldID: "h", ServiceID: "cut", ResourceID: "alice", Start: tue(15, 0)}}, tue(10, 0), "alice"},
		{"bookings of other services count", []engine.Command{book("x", "massage", "alice", tue(15, 0))}, tue(10, 0), "bob"},
		{"busy resource skipped", []engine.Command{
			book("x", "cut", "bob", tue(15, 0)), book("y", "cut", "bob", tue(16, 0)),
			engine.ImportBusy{ResourceID: "alice", Source: "gcal", Blocks: []engine.Interval{{Start: tue(10, 0), End: tue(10, 30)}}},
		}, tue(10, 0), "bob"},
		{"closed resource skipped", []engine.Command{
			book("x", "cut", "bob", tue(15, 0)),
			engine.SetOverride{ResourceID: "alice", Date: "2026-06-02", Open: []engine.Range{rng("12:00", "17:00")}},
		}, tue(10, 0), "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, c := range tt.existing {
				f.apply(c, now0)
			}
			b := f.apply(book("b", "cut", "", tt.start), now0).Booking
			if b.ResourceID != tt.want {
				t.Errorf("Book(any, %s) chose %s, want %s", tt.start.Format(time.RFC3339), b.ResourceID, tt.want)
			}
			// A hold for "any" follows the same rule.
			g := newFixture(t)
			for _, c := range tt.existing {
				g.apply(c, now0)
			}
			if h := g.apply(engine.PlaceHold{HoldID: "hh", ServiceID: "cut", Start: tt.start}, now0).Hold; h.ResourceID != tt.want {
				t.Errorf("PlaceHold(any, %s) chose %s, want %s", tt.start.Format(time.RFC3339), h.ResourceID, tt.want)
			}
		})
	}
}

func TestAnyResourceCountsTheResourcesOwnLocalDay(t *testing.T) {
	// east (Asia/Tokyo, +09) and west (UTC) are open around the clock. The
	// request is 2026-06-02 20:00Z: 2026-06-03 05:00 in Tokyo.
	cfg := engine.TenantConfig{Name: "Zones", TimeZone: "UTC",
		Resources: []engine.Resource{
			{ID: "east", Kind: "staff", TimeZone: "Asia/Tokyo", Capacity: 1, Weekly: everyDay(rng("00:00", "24:00"))},
			{ID: "west", Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: everyDay(rng("00:00", "24:00"))},
		},
		Services: []engine.Service{{ID: "call", DurationMin: 60, Resources: []string{"east", "west"}}},
	}
	at := utc(2026, 6, 2, 20, 0)
	tests := []struct {
		name     string
		existing []time.Time // bookings on east
		west     []time.Time // bookings on west
		want     string
	}{
		// 14:00Z is 23:00 in Tokyo on 06-02: not east's day of the request.
		{"east booking on its previous local day", []time.Time{utc(2026, 6, 2, 14, 0)}, []time.Time{utc(2026, 6, 2, 1, 0)}, "east"},
		// 16:00Z is 01:00 in Tokyo on 06-03: east's day of the request.
		{"east booking on its local day", []time.Time{utc(2026, 6, 2, 16, 0)}, nil, "west"},
		{"tie across zones", []time.Time{utc(2026, 6, 2, 16, 0)}, []time.Time{utc(2026, 6, 2, 1, 0)}, "east"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := engine.NewState("zones")
			MustApply(t, s, engine.Configure{Config: cfg}, now0)
			for i, st := range tt.existing {
				MustApply(t, s, book(fmt.Sprintf("e%d", i), "call", "east", st), now0)
			}
			for i, st := range tt.west {
				MustApply(t, s, book(fmt.Sprintf("w%d", i), "call", "west", st), now0)
			}
			if b := MustApply(t, s, book("b", "call", "", at), now0).Booking; b.ResourceID != tt.want {
				t.Errorf("Book(any, %s) chose %s, want %s", at.Format(time.RFC3339), b.ResourceID, tt.want)
			}
		})
	}
}

func TestAvailabilityQueryValidation(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		q    engine.AvailabilityQuery
		want engine.Code
	}{
		{"ok", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, ""},
		{"62 days", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-01", To: "2026-08-02", TimeZone: "UTC"}, ""},
		{"63 days", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-01", To: "2026-08-03", TimeZone: "UTC"}, engine.CodeInvalid},
		{"unknown service", engine.AvailabilityQuery{ServiceID: "perm", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, engine.CodeNotFound},
		{"resource without service", engine.AvailabilityQuery{ServiceID: "class", ResourceID: "alice", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, engine.CodeInvalid},
		{"unknown resource", engine.AvailabilityQuery{ServiceID: "cut", ResourceID: "zed", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}, engine.CodeNotFound},
		{"empty zone", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03"}, engine.CodeInvalid},
		{"Local zone", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "Local"}, engine.CodeInvalid},
		{"bad from", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-31", To: "2026-07-03", TimeZone: "UTC"}, engine.CodeInvalid},
		{"to equals from", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-02", TimeZone: "UTC"}, engine.CodeInvalid},
		{"to before from", engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-03", To: "2026-06-02", TimeZone: "UTC"}, engine.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s.Availability(tt.q, now0)
			if got := codeOf(err); got != tt.want {
				t.Errorf("Availability(%+v) = %v, want %q", tt.q, err, tt.want)
			}
		})
	}
}

func TestAvailability(t *testing.T) {
	f := newFixture(t)
	f.apply(book("x", "cut", "alice", tue(9, 30)), now0)
	f.apply(book("y", "massage", "alice", tue(14, 0)), now0) // block 13:45–15:15
	f.apply(book("z", "cut", "bob", tue(9, 0)), now0)
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}
	slots := MustAvailability(t, f.s, q, tue(9, 1))
	type row struct {
		at  string
		res string
	}
	var got []row
	for _, sl := range slots {
		got = append(got, row{sl.Start.Format("15:04"), strings.Join(sl.Resources, ",")})
		if sl.Seats != len(sl.Resources) {
			t.Errorf("slot %s seats = %d, want %d", sl.Start, sl.Seats, len(sl.Resources))
		}
	}
	var want []row
	for m := 9*60 + 30; m+30 <= 17*60; m += 30 {
		at := fmt.Sprintf("%02d:%02d", m/60, m%60)
		res := "alice,bob"
		switch {
		case at == "09:30":
			res = "bob"
		case m >= 13*60+30 && m < 15*60+15:
			res = "bob"
		}
		want = append(want, row{at, res})
	}
	if !slices.Equal(got, want) {
		t.Errorf("Availability(%+v) at 09:01 =\n%v\nwant\n%v", q, got, want)
	}
	// The viewer's zone bounds the dates: Tuesday in Tokyo is Monday 15:00Z
	// to Tuesday 15:00Z.
	q.TimeZone = "Asia/Tokyo"
	slots = MustAvailability(t, f.s, q, now0)
	if len(slots) == 0 || !slots[0].Start.Equal(utc(2026, 6, 1, 15, 0)) || !slots[len(slots)-1].Start.Equal(tue(14, 30)) {
		t.Errorf("Availability in Tokyo = %s, want Monday 15:00Z to Tuesday 14:30Z", describeSlots(slots))
	}
	// Notice and horizon.
	q = engine.AvailabilityQuery{ServiceID: "vip", From: "2026-06-01", To: "2026-06-10", TimeZone: "UTC"}
	slots = MustAvailability(t, f.s, q, utc(2026, 6, 2, 7, 1))
	// At 07:01 the notice rules out 09:00; the horizon ends Tuesday 07:01 a
	// week on, so the last slot is the Monday before at 16:30.
	if first, last := slots[0].Start, slots[len(slots)-1].Start; !first.Equal(tue(9, 30)) || !last.Equal(utc(2026, 6, 8, 16, 30)) {
		t.Errorf("vip availability at 07:01 spans %s–%s, want Tuesday 09:30 to Monday 16:30", first, last)
	}
}

func TestEventsRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.apply(engine.UpsertResource{Resource: engine.Resource{ID: "carol", Kind: "staff", TimeZone: "Pacific/Chatham", Capacity: 2, Weekly: weekdays(rng("08:00", "12:00"))}}, now0)
	f.apply(engine.UpsertService{Service: engine.Service{ID: "color", DurationMin: 90, BufferAfterMin: 10, Resources: []string{"carol", "bob"}}}, now0)
	f.apply(engine.SetOverride{ResourceID: "bob", Date: "2026-06-06", Open: []engine.Range{rng("10:00", "12:00")}}, now0)
	f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", Start: tue(9, 0), IdempotencyKey: "hk"}, now0)
	f.apply(engine.PlaceHold{HoldID: "h2", ServiceID: "cut", Start: tue(9, 30)}, now0)
	f.apply(engine.PlaceHold{HoldID: "h3", ServiceID: "class", Start: tue(9, 0), TTL: 10 * time.Second}, now0)
	f.apply(engine.ReleaseHold{HoldID: "h2"}, now0)
	f.apply(engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada, IdempotencyKey: "bk"}, now0)
	f.apply(book("b2", "cut", "bob", tue(11, 0)), now0)
	f.apply(engine.Reschedule{BookingID: "b2", Start: tue(12, 0), IdempotencyKey: "rk"}, now0)
	f.apply(engine.Cancel{BookingID: "b2", Reason: "moved away — ünïcödé", IdempotencyKey: "ck"}, now0)
	f.apply(engine.ImportBusy{ResourceID: "alice", Source: "gcal", Blocks: []engine.Interval{{Start: tue(13, 0), End: tue(14, 0)}}}, now0)
	f.apply(engine.ExpireHolds{}, now0.Add(time.Minute))
	f.apply(engine.Book{BookingID: "b3", ServiceID: "cut", ResourceID: "bob", Start: tue(14, 0), Customer: engine.Customer{Name: "Grace", Email: "grace@example.com", Subject: "s-grace"}}, now0)
	f.apply(engine.EraseSubject{Subject: "s-grace"}, now0)
	seen := map[string]bool{}
	for _, e := range f.events {
		seen[e.Type] = true
		b, err := engine.EncodeEvent(e)
		if err != nil {
			t.Fatalf("EncodeEvent(%s) = %v", e.Type, err)
		}
		d, err := engine.DecodeEvent(b)
		if err != nil {
			t.Fatalf("DecodeEvent(%s) = %v", b, err)
		}
		b2, err := engine.EncodeEvent(d)
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("EncodeEvent(DecodeEvent(%s)) = %s, %v; want the same bytes", b, b2, err)
		}
		if d.Type != e.Type || !d.At.Equal(e.At) {
			t.Errorf("DecodeEvent(%s) = type %s at %v, want %s at %v", b, d.Type, d.At, e.Type, e.At)
		}
	}
	all := []string{engine.EvConfigured, engine.EvResourceUpserted, engine.EvServiceUpserted, engine.EvOverrideSet,
		engine.EvHoldPlaced, engine.EvHoldReleased, engine.EvHoldExpired, engine.EvBookingConfirmed,
		engine.EvBookingCancelled, engine.EvBookingRescheduled, engine.EvBusyImported, engine.EvSubjectErased}
	for _, typ := range all {
		if !seen[typ] {
			t.Errorf("scenario emitted no %s event", typ)
		}
	}
	live, replayed := MustSnapshot(t, f.s), MustSnapshot(t, MustReplay(t, "acme", f.events))
	if !bytes.Equal(live, replayed) {
		t.Errorf("replay differs:\nlive   %s\nreplay %s", live, replayed)
	}
	if restored := MustSnapshot(t, MustRestore(t, f.s)); !bytes.Equal(live, restored) {
		t.Errorf("restore differs:\nlive     %s\nrestored %s", live, restored)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	tests := []string{
		`{"type":"booking_exploded"}`,
		`{"type":""}`,
		`{}`,
		`{"type":"BOOKING_CONFIRMED"}`,
		`{"type":1}`,
		`{"type":"booking_confirmed","at":"yesterday"}`,
		`{"type":"booking_confirmed","booking":[]}`,
		`not json`,
		``,
		`null`,
	}
	for _, in := range tests {
		if e, err := engine.DecodeEvent([]byte(in)); err == nil {
			t.Errorf("DecodeEvent(%s) = %+v, want an error", in, e)
		}
	}
}

func TestEvolveRejectsCorruptEvents(t *testing.T) {
	f := newFixture(t)
	f.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
	b := engine.Booking{ID: "b2", ResourceID: "zed", Start: tue(10, 0), End: tue(10, 30), BlockStart: tue(10, 0), BlockEnd: tue(10, 30), Status: engine.StatusConfirmed}
	tests := []struct {
		name string
		e    engine.Event
	}{
		{"unknown type", engine.Event{Type: "nope"}},
		{"configured without config", engine.Event{Type: engine.EvConfigured}},
		{"configured with invalid config", engine.Event{Type: engine.EvConfigured, Config: &engine.TenantConfig{TimeZone: "Local"}}},
		{"resource without payload", engine.Event{Type: engine.EvResourceUpserted}},
		{"service without payload", engine.Event{Type: engine.EvServiceUpserted}},
		{"override for unknown resource", engine.Event{Type: engine.EvOverrideSet, Override: &engine.SetOverrideArg{ResourceID: "zed", Date: "2026-06-02"}}},
		{"hold without payload", engine.Event{Type: engine.EvHoldPlaced}},
		{"hold on unknown resource", engine.Event{Type: engine.EvHoldPlaced, Hold: &engine.Hold{ID: "h", ResourceID: "zed"}}},
		{"booking on unknown resource", engine.Event{Type: engine.EvBookingConfirmed, Booking: &b}},
		{"cancel of unknown booking", engine.Event{Type: engine.EvBookingCancelled, BookingID: "nope"}},
		{"reschedule of unknown booking", engine.Event{Type: engine.EvBookingRescheduled, Booking: &engine.Booking{ID: "nope", ResourceID: "alice"}}},
		{"busy on unknown resource", engine.Event{Type: engine.EvBusyImported, Busy: &engine.BusyArg{ResourceID: "zed", Source: "x"}}},
		{"busy without payload", engine.Event{Type: engine.EvBusyImported}},
		{"erasure without subject", engine.Event{Type: engine.EvSubjectErased, BookingIDs: []string{"b1"}}},
		{"erasure of an unknown booking", engine.Event{Type: engine.EvSubjectErased, Subject: "s1", BookingIDs: []string{"b1", "nope"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := MustSnapshot(t, f.s)
			if err := f.s.Evolve(tt.e); err == nil {
				t.Errorf("Evolve(%+v) = nil, want an error", tt.e)
			}
			if after := MustSnapshot(t, f.s); !bytes.Equal(before, after) {
				t.Errorf("Evolve(%s) failed but changed the state", tt.name)
			}
		})
	}
	// Before configuration, events that need it are refused.
	s := engine.NewState("acme")
	for _, e := range []engine.Event{
		{Type: engine.EvResourceUpserted, Resource: &engine.Resource{ID: "r", Kind: "room", TimeZone: "UTC", Capacity: 1}},
		{Type: engine.EvHoldPlaced, Hold: &engine.Hold{ID: "h", ResourceID: "r"}},
		{Type: engine.EvBookingConfirmed, Booking: &b},
	} {
		if err := s.Evolve(e); err == nil {
			t.Errorf("Evolve(%s) on an unconfigured state = nil, want an error", e.Type)
		}
	}
}

func TestRestoreStateRejects(t *testing.T) {
	f := newFixture(t)
	snap := MustSnapshot(t, f.s)
	var m map[string]any
	if err := json.Unmarshal(snap, &m); err != nil {
		t.Fatal(err)
	}
	m["v"] = 2
	v2, _ := json.Marshal(m)
	m["v"] = 1
	m["config"].(map[string]any)["time_zone"] = "Local"
	badCfg, _ := json.Marshal(m)
	tests := []struct {
		name   string
		tenant string
		data   []byte
	}{
		{"other tenant", "globex", snap},
		{"future version", "acme", v2},
		{"invalid config", "acme", badCfg},
		{"not json", "acme", []byte("{")},
		{"empty", "acme", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := engine.RestoreState(tt.tenant, tt.data); err == nil {
				t.Errorf("RestoreState(%s, %.40s) = %v, nil; want an error", tt.tenant, tt.data, s)
			}
		})
	}
	empty := engine.NewState("new")
	r := MustRestore(t, empty)
	if r.Configured() || r.Tenant() != "new" {
		t.Errorf("RestoreState(empty) = configured %v tenant %q", r.Configured(), r.Tenant())
	}
}

func TestSnapshotDeterministic(t *testing.T) {
	// Two tenants that reach the same state by different routes (and map
	// iteration orders) give the same bytes.
	a, b := newFixture(t), newFixture(t)
	cmds := []engine.Command{
		book("b1", "cut", "alice", tue(10, 0)), book("b2", "cut", "bob", tue(10, 0)), book("b3", "class", "room", tue(10, 0)),
		engine.ImportBusy{ResourceID: "bob", Source: "z", Blocks: []engine.Interval{{Start: tue(15, 0), End: tue(16, 0)}}},
		engine.ImportBusy{ResourceID: "alice", Source: "a", Blocks: []engine.Interval{{Start: tue(15, 0), End: tue(16, 0)}}},
		engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: tue(11, 0), IdempotencyKey: "k1"},
		engine.PlaceHold{HoldID: "h2", ServiceID: "cut", ResourceID: "bob", Start: tue(11, 0), IdempotencyKey: "k2"},
	}
	for _, c := range cmds {
		a.apply(c, now0)
	}
	for _, c := range slices.Backward(cmds) {
		b.apply(c, now0)
	}
	if x, y := MustSnapshot(t, a.s), MustSnapshot(t, b.s); !bytes.Equal(x, y) {
		t.Errorf("same state, different snapshots:\n%s\n%s", x, y)
	}
}

func TestErrorCodes(t *testing.T) {
	seen := map[engine.Code]bool{}
	for _, c := range engine.AllCodes() {
		if c == "" || seen[c] || strings.ToLower(string(c)) != string(c) || strings.ContainsAny(string(c), " -") {
			t.Errorf("AllCodes() has %q: codes are unique lower_snake_case", c)
		}
		seen[c] = true
	}
	err := fmt.Errorf("apply: %w", engine.Errorf(engine.CodeSlotTaken, "%s is taken", "10:00"))
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.CodeSlotTaken || ee.Error() != "slot_taken: 10:00 is taken" {
		t.Errorf("errors.As(%v) = %+v, want slot_taken", err, ee)
	}
}

func TestCommandNames(t *testing.T) {
	cmds := []engine.Command{engine.Configure{}, engine.UpsertResource{}, engine.UpsertService{}, engine.SetOverride{},
		engine.PlaceHold{}, engine.ReleaseHold{}, engine.Book{}, engine.Cancel{}, engine.Reschedule{}, engine.ImportBusy{}, engine.ExpireHolds{},
		engine.EraseSubject{}}
	seen := map[string]bool{}
	for _, c := range cmds {
		n := engine.CommandName(c)
		if n == "" || seen[n] {
			t.Errorf("CommandName(%T) = %q, want a unique name", c, n)
		}
		seen[n] = true
	}
}

func TestDecideDoesNotChangeState(t *testing.T) {
	f := newFixture(t)
	f.apply(book("b1", "cut", "alice", tue(10, 0)), now0)
	before := MustSnapshot(t, f.s)
	for _, c := range []engine.Command{
		book("b2", "cut", "", tue(10, 0)), engine.Cancel{BookingID: "b1"}, engine.Reschedule{BookingID: "b1", Start: tue(11, 0)},
		engine.PlaceHold{HoldID: "h", ServiceID: "cut", Start: tue(12, 0)}, engine.Configure{Config: baseConfig()},
	} {
		res, err := engine.Decide(f.s, c, now0)
		if err != nil || len(res.Events) == 0 {
			t.Errorf("Decide(%s) = %+v, %v; want events", engine.CommandName(c), res, err)
		}
	}
	if after := MustSnapshot(t, f.s); !bytes.Equal(before, after) {
		t.Errorf("Decide changed the state")
	}
	// Event times are now, in UTC, to the microsecond.
	now := time.Date(2026, 6, 1, 8, 0, 0, 123456789, time.FixedZone("X", 3600))
	res, _ := engine.Decide(f.s, book("b2", "cut", "", tue(10, 0)), now)
	if at := res.Events[0].At; !at.Equal(now.Truncate(time.Microsecond)) || at.Location() != time.UTC {
		t.Errorf("event At = %v, want %v in UTC", at, now.Truncate(time.Microsecond))
	}
}

func TestRemovedAndReaddedResource(t *testing.T) {
	// alice has a (finished) booking on Tuesday morning, is removed, and
	// comes back the same morning. A live state, a restored one and a
	// replayed one must then decide alike.
	f := newFixture(t)
	f.apply(book("early", "cut", "alice", tue(9, 0)), now0)
	cfg := baseConfig()
	cfg.Resources = slices.DeleteFunc(cfg.Resources, func(r engine.Resource) bool { return r.ID == "alice" })
	cfg.Services = []engine.Service{
		{ID: "cut", Name: "Haircut", DurationMin: 30, Resources: []string{"bob"}},
		{ID: "class", Name: "Yoga", DurationMin: 60, Resources: []string{"room"}},
	}
	f.fail(engine.Configure{Config: cfg}, tue(9, 29), engine.CodeInUse)
	f.apply(engine.Configure{Config: cfg}, tue(9, 30))
	f.apply(engine.Configure{Config: baseConfig()}, tue(9, 31))

	states := map[string]*engine.State{"live": f.s, "restored": MustRestore(t, f.s), "replayed": MustReplay(t, "acme", f.events)}
	got := map[string]string{}
	for name, s := range states {
		res, err := engine.Decide(s, book("next", "cut", "", tue(10, 0)), tue(9, 31))
		if err != nil {
			t.Fatalf("%s: Book(any, 10:00) = %v", name, err)
		}
		got[name] = res.Booking.ResourceID
	}
	// alice's confirmed booking that day still counts: bob is chosen.
	for name, r := range got {
		if r != "bob" {
			t.Errorf("%s state: Book(any, 10:00) chose %s, want bob (alice already has a booking that day); all: %v", name, r, got)
		}
	}
}

func TestAvailabilityAgreesWithDecideAtSubMicrosecondNow(t *testing.T) {
	// Decide works at now truncated to the microsecond; Availability must
	// use the same now, or at the last instants of a hold whose TTL has a
	// sub-microsecond part it offers a slot that Book refuses.
	f := newFixture(t)
	h := f.apply(engine.PlaceHold{HoldID: "h", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), TTL: 10*time.Second + 500*time.Nanosecond}, now0).Hold
	q := engine.AvailabilityQuery{ServiceID: "cut", ResourceID: "alice", From: "2026-06-02", To: "2026-06-03", TimeZone: "UTC"}
	for _, at := range []time.Time{h.ExpiresAt.Add(-time.Nanosecond), h.ExpiresAt, h.ExpiresAt.Add(499 * time.Nanosecond), h.ExpiresAt.Add(500 * time.Nanosecond)} {
		offered := false
		for _, sl := range MustAvailability(t, f.s, q, at) {
			offered = offered || sl.Start.Equal(tue(10, 0))
		}
		_, err := engine.Decide(f.s, book("b", "cut", "alice", tue(10, 0)), at)
		if offered != (err == nil) {
			t.Errorf("at %s: Availability offers 10:00 = %v, but Book = %v", at.Format(time.RFC3339Nano), offered, err)
		}
	}
}

func TestIdempotentHoldAfterItsIDIsReused(t *testing.T) {
	// A hold's id is free again once the hold ends. A retry of the keyed
	// command that placed the first hold must not be answered with the
	// second, unrelated hold.
	f := newFixture(t)
	first := engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: tue(10, 0), IdempotencyKey: "k"}
	f.apply(first, now0)
	f.apply(engine.ReleaseHold{HoldID: "h1"}, now0)
	f.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(15, 0)}, now0)
	f.fail(first, now0.Add(time.Second), engine.CodeHoldExpired)
	// The same with a key on the second hold too.
	g := newFixture(t)
	g.apply(first, now0)
	g.apply(engine.Book{BookingID: "b1", HoldID: "h1", Customer: ada}, now0)
	g.apply(engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: tue(15, 0), IdempotencyKey: "k2"}, now0)
	g.fail(first, now0.Add(time.Second), engine.CodeHoldExpired)
}

// TestImportBusyYearsInUTC checks that a block whose UTC end is past year
// 9999 is refused up front: its event could not be stored.
func TestImportBusyYearsInUTC(t *testing.T) {
	f := newFixture(t)
	end := time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("-02", -2*3600)) // 10000-01-01T01:00Z
	_, err := engine.Apply(f.s, engine.ImportBusy{ResourceID: "alice", Source: "gcal",
		Blocks: []engine.Interval{{Start: end.Add(-time.Hour), End: end}}}, now0)
	if got := codeOf(err); got != engine.CodeInvalid {
		t.Fatalf("Apply(ImportBusy ending %s) = %v, want %s", end.UTC(), err, engine.CodeInvalid)
	}
}
