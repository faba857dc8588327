// Package demo holds slotd's demo tenant: created on first start with an
// empty data directory, and used by tests and the protocol examples so they
// exercise what a new user sees.
package demo

import "github.com/slotd/slotd/engine"

// Tenant is the demo tenant's id.
const Tenant = "demo"

// Config is a small salon-and-studio with staff in three zones (Rome, New
// York, Sydney), a group room, and three services, so a viewer anywhere
// sees slots in their own time.
func Config() engine.TenantConfig {
	week := func(from, to string, sat bool) map[string][]engine.Range {
		m := map[string][]engine.Range{}
		for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
			m[d] = []engine.Range{{Start: from, End: "12:30"}, {Start: "13:30", End: to}}
		}
		if sat {
			m["sat"] = []engine.Range{{Start: "10:00", End: "14:00"}}
		}
		return m
	}
	return engine.TenantConfig{
		Name:       "Demo Studio",
		TimeZone:   "Europe/Rome",
		HoldTTLSec: 300,
		Resources: []engine.Resource{
			{ID: "ana", Name: "Ana (Rome)", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1, Weekly: week("09:00", "18:00", true)},
			{ID: "ben", Name: "Ben (New York)", Kind: "staff", TimeZone: "America/New_York", Capacity: 1, Weekly: week("08:00", "17:00", false)},
			{ID: "chloe", Name: "Chloe (Sydney)", Kind: "staff", TimeZone: "Australia/Sydney", Capacity: 1, Weekly: week("09:00", "17:00", true)},
			{ID: "studio", Name: "Studio", Kind: "room", TimeZone: "Europe/Rome", Capacity: 6,
				Weekly: map[string][]engine.Range{"mon": {{Start: "07:00", End: "21:00"}}, "wed": {{Start: "07:00", End: "21:00"}},
					"fri": {{Start: "07:00", End: "21:00"}}, "sat": {{Start: "09:00", End: "13:00"}}}},
		},
		Services: []engine.Service{
			{ID: "haircut", Name: "Haircut", DurationMin: 30, BufferAfterMin: 10, StepMin: 20, MinNoticeMin: 60, HorizonDays: 60, Resources: []string{"ana", "ben", "chloe"}},
			{ID: "consultation", Name: "Consultation", DurationMin: 60, StepMin: 60, MinNoticeMin: 120, HorizonDays: 90, Resources: []string{"ana", "ben"}},
			{ID: "yoga", Name: "Yoga class (group)", DurationMin: 60, StepMin: 120, HorizonDays: 30, Resources: []string{"studio"}},
		},
	}
}
