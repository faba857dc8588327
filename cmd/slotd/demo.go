package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

const demoTenant = "demo"

// demoConfig is a small salon-and-studio with staff in three zones, so a
// viewer anywhere sees slots in their own time.
func demoConfig() engine.TenantConfig {
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

// ensureDemo creates the demo tenant when the store has no tenants at all,
// and returns the demo's booking link whenever the demo tenant exists.
func ensureDemo(ctx context.Context, gw *gateway.Server, dir persistence.Store) (link string, created bool, err error) {
	ids, err := dir.ListDirectory(ctx, gateway.KindTenant)
	if err != nil {
		return "", false, err
	}
	if len(ids) == 0 {
		rec, err := gw.CreateTenant(ctx, demoTenant, demoConfig())
		if err != nil {
			return "", false, err
		}
		return rec.Link, true, nil
	}
	b, err := dir.GetDirectory(ctx, gateway.KindTenant, demoTenant)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var rec gateway.TenantRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", false, fmt.Errorf("decode demo tenant: %w", err)
	}
	return rec.Link, false, nil
}
