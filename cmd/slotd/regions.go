package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
	"github.com/slotd/slotd/persistence/regional"
)

// openRegions opens one PostgreSQL store per region of -regions
// (SLOTD_REGIONS="us=postgres://…,eu=postgres://…") and the regional store
// over them: each tenant's journal, snapshots, projections and records go
// to its home region's database only; the directory (tenant ids, booking
// links, home regions, creation times: no personal data) lives in the
// default region's database. Home regions are preloaded from the
// directory. where describes the databases for the banner, without
// credentials.
func openRegions(ctx context.Context, o options, log *slog.Logger) (store persistence.Store, where string, err error) {
	list, err := regional.ParseRegions(o.regions)
	if err != nil {
		return nil, "", fmt.Errorf("-regions: %w", err)
	}
	def := o.defaultRegion
	if def == "" {
		def = list[0].Name
	}
	if !slices.ContainsFunc(list, func(r regional.Region) bool { return r.Name == def }) {
		return nil, "", fmt.Errorf("-default-region %q is not one of the regions of -regions", def)
	}
	stores := map[string]persistence.Store{}
	closeAll := func() {
		for _, st := range stores {
			st.Close()
		}
	}
	var desc []string
	for _, r := range list {
		region := r.Name
		pg, err := postgres.Open(ctx, r.DSN, postgres.Options{Logger: log.With("component", "postgres", "region", region),
			NoNotify: !o.notify, HomeRegion: func(string) string { return region }})
		switch {
		case errors.Is(err, postgres.ErrSchemaTooOld):
			err = fmt.Errorf("%w\nrun `slotd migrate -database-owner-url URL -app-role ROLE` on this region's database first", err)
		case errors.Is(err, postgres.ErrPrivilegedRole):
			err = fmt.Errorf("%w\nconnect as slotd's application role, not as the tables' owner or a superuser", err)
		}
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("region %s: %w", region, err)
		}
		stores[region] = pg
		d := region + "=" + describeDatabase(r.DSN)
		if region == def {
			d += " (directory)"
		}
		desc = append(desc, d)
	}
	rs, err := regional.New(regional.Config{Regions: stores, Default: def, Directory: stores[def]})
	if err != nil {
		closeAll()
		return nil, "", err
	}
	n, err := rs.Preload(ctx)
	if err != nil {
		rs.Close()
		return nil, "", err
	}
	log.Info("regions", "default", def, "regions", rs.Regions(), "tenants_placed", n)
	return rs, strings.Join(desc, ", "), nil
}

// tenantRegions returns the store as the gateway's Regions when it places
// tenants in regions, else nil (a nil interface, not a nil pointer).
func tenantRegions(store persistence.Store) gateway.Regions {
	if rs, ok := store.(*regional.Store); ok {
		return rs
	}
	return nil
}

// checkStoreFlags refuses -database-url with -regions: with regions, every
// database is named in -regions and the directory is in the default one.
func checkStoreFlags(o options) error {
	if o.regions != "" && o.databaseURL != "" {
		return errors.New("-database-url and -regions (SLOTD_DATABASE_URL and SLOTD_REGIONS) exclude each other: with regions, name every database in -regions; the directory lives in the default region's")
	}
	if o.regions == "" && o.defaultRegion != "" {
		return errors.New("-default-region (SLOTD_DEFAULT_REGION) needs -regions (SLOTD_REGIONS)")
	}
	return nil
}
