package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/demo"
	"github.com/slotd/slotd/persistence"
)

// ensureDemo creates the demo tenant when the store has no tenants at all,
// and returns the demo's booking link whenever the demo tenant exists.
func ensureDemo(ctx context.Context, gw *gateway.Server, dir persistence.Store) (link string, created bool, err error) {
	ids, err := dir.ListDirectory(ctx, gateway.KindTenant)
	if err != nil {
		return "", false, err
	}
	if len(ids) == 0 {
		rec, err := gw.CreateTenant(ctx, demo.Tenant, demo.Config())
		if err != nil {
			return "", false, err
		}
		return rec.Link, true, nil
	}
	b, err := dir.GetDirectory(ctx, gateway.KindTenant, demo.Tenant)
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
