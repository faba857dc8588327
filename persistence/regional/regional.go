// Package regional keeps each tenant's data in the database of its home
// region (data residency). A Store is a persistence.Store over one store per
// region: every tenant-scoped call (Append, Load, ReadFrom, SaveSnapshot)
// goes to the store of the tenant's home region and nowhere else, and every
// directory call goes to one designated directory store.
//
// # Home regions
//
// A tenant gets its home region once, at creation, before its first write
// (Place), and keeps it for ever: Place refuses to move a tenant, and the
// per-region PostgreSQL stores record the region on every row and refuse an
// append that claims another (postgres.Options.HomeRegion). The assignment
// is durable in the directory (kind KindHome, key the tenant id, value the
// region name) and cached in memory once read: Preload reads them all at
// start-up, and a tenant missing from the cache is looked up on first use.
//
// Routing fails closed. A tenant with no recorded home region, or whose
// home region has no store in this process's configuration, gets an error
// (ErrNoHome, ErrUnknownRegion) from every tenant-scoped call; the call is
// never sent to another region, the default region included.
//
// # The directory
//
// The directory is global lookup data, read before a tenant is known (a
// public booking link names no tenant), so it cannot live in the tenant's
// region: it lives in one store, Config.Directory (in slotd, the default
// region's database). It holds no personal data, only what routing needs:
//
//	kind    key            value
//	home    tenant id      home region name ("eu")
//	tenant  tenant id      {"id", "link", "region", "created_at"} (gateway.TenantRecord)
//	link    booking link   tenant id
//
// Customers' names, e-mail addresses, bookings, holds, resources, opening
// hours, busy blocks, journals and snapshots are tenant data: they live in
// the home region only.
package regional

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/slotd/slotd/persistence"
)

// KindHome is the directory kind holding each tenant's home region.
const KindHome = "home"

// ErrNoHome is returned by tenant-scoped calls for a tenant with no home
// region recorded: it was never created (or not through Place).
var ErrNoHome = errors.New("regional: tenant has no home region")

// ErrUnknownRegion is returned for a region this process has no store for:
// by Place, and by tenant-scoped calls for a tenant whose home region is not
// configured here. It wraps persistence.ErrInvalid.
var ErrUnknownRegion = fmt.Errorf("regional: unknown region: %w", persistence.ErrInvalid)

// ErrMoved is returned by Place for a tenant whose home region is already
// another one: home regions never change. It wraps persistence.ErrConflict.
var ErrMoved = fmt.Errorf("regional: tenant already has another home region: %w", persistence.ErrConflict)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("regional: closed")

var regionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidRegion reports whether name is an acceptable region name: 1–32
// lowercase letters, digits or hyphens, starting with a letter ("us",
// "eu", "au-east").
func ValidRegion(name string) bool { return regionRE.MatchString(name) }

// Config configures New.
type Config struct {
	// Regions maps each region name to the store holding its tenants' data.
	// The same store must not serve two regions.
	Regions map[string]persistence.Store
	// Default is the home region of tenants created without one; it must be
	// in Regions.
	Default string
	// Directory is the one store that holds the directory (see the package
	// documentation). It may be one of the Regions' stores.
	Directory persistence.Store
	// Lookup returns the home region of a tenant missing from the cache,
	// or an error wrapping persistence.ErrNotFound when it has none. Nil
	// reads KindHome from Directory, which is what slotd uses; tests set it
	// to place tenants without creating them.
	Lookup func(ctx context.Context, tenant string) (string, error)
}

// Store routes each tenant's calls to its home region's store. It is safe
// for concurrent use.
type Store struct {
	regions map[string]persistence.Store
	names   []string // sorted
	dflt    string
	dir     persistence.Store
	lookup  func(ctx context.Context, tenant string) (string, error)
	closed  atomic.Bool

	placeMu sync.Mutex // serializes Place's read, check and write

	mu    sync.RWMutex      // guards homes
	homes map[string]string // tenant → home region, for tenants known to have one
}

var _ persistence.Store = (*Store)(nil)

// New returns a Store over the given stores. It does no I/O; call Preload
// to fill the cache of home regions. Close closes every store given.
func New(cfg Config) (*Store, error) {
	if len(cfg.Regions) == 0 {
		return nil, errors.New("regional: no regions")
	}
	seen := map[persistence.Store]string{}
	for name, st := range cfg.Regions {
		if !ValidRegion(name) {
			return nil, fmt.Errorf("regional: region name %q: want 1-32 lowercase letters, digits or hyphens, starting with a letter", name)
		}
		if st == nil {
			return nil, fmt.Errorf("regional: region %q has no store", name)
		}
		if other, ok := seen[st]; ok {
			return nil, fmt.Errorf("regional: regions %q and %q share one store", min(name, other), max(name, other))
		}
		seen[st] = name
	}
	if _, ok := cfg.Regions[cfg.Default]; !ok {
		return nil, fmt.Errorf("regional: default region %q is not one of %q", cfg.Default, slices.Sorted(maps.Keys(cfg.Regions)))
	}
	if cfg.Directory == nil {
		return nil, errors.New("regional: no directory store")
	}
	s := &Store{
		regions: maps.Clone(cfg.Regions),
		names:   slices.Sorted(maps.Keys(cfg.Regions)),
		dflt:    cfg.Default,
		dir:     cfg.Directory,
		lookup:  cfg.Lookup,
		homes:   map[string]string{},
	}
	if s.lookup == nil {
		s.lookup = s.directoryHome
	}
	return s, nil
}

// Regions returns the configured region names, sorted.
func (s *Store) Regions() []string { return slices.Clone(s.names) }

// DefaultRegion returns the home region of tenants created without one.
func (s *Store) DefaultRegion() string { return s.dflt }

// Region returns the store of a configured region.
func (s *Store) Region(name string) (persistence.Store, bool) {
	st, ok := s.regions[name]
	return st, ok
}

// directoryHome is the default Lookup: the KindHome directory record.
func (s *Store) directoryHome(ctx context.Context, tenant string) (string, error) {
	b, err := s.dir.GetDirectory(ctx, KindHome, tenant)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Place records region as tenant's home region, durably, unless it already
// is: call it before the tenant's first write. It fails with an error
// wrapping ErrUnknownRegion for a region not configured here and ErrMoved
// when the tenant already has another home region.
//
// Place serializes placements within this process. Two processes placing
// one new tenant id in two regions at the same moment can both succeed (the
// directory has no conditional put); slotd's gateway creates a tenant id
// once, and an operator should not create one tenant on two instances at
// once.
func (s *Store) Place(ctx context.Context, tenant, region string) error {
	if err := persistence.CheckTenant(tenant); err != nil {
		return fmt.Errorf("place: %w", err)
	}
	if _, ok := s.regions[region]; !ok {
		return fmt.Errorf("place %s in %q (configured: %q): %w", tenant, region, s.names, ErrUnknownRegion)
	}
	if s.closed.Load() {
		return fmt.Errorf("place %s: %w", tenant, ErrClosed)
	}
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	switch have, err := s.home(ctx, tenant); {
	case err == nil && have == region:
		return nil
	case err == nil:
		return fmt.Errorf("place %s in %q: its home region is %q: %w", tenant, region, have, ErrMoved)
	case !errors.Is(err, ErrNoHome):
		return fmt.Errorf("place %s: %w", tenant, err)
	}
	if err := s.dir.PutDirectory(ctx, KindHome, tenant, []byte(region)); err != nil {
		return fmt.Errorf("place %s in %q: %w", tenant, region, err)
	}
	s.mu.Lock()
	s.homes[tenant] = region
	s.mu.Unlock()
	return nil
}

// Home returns tenant's home region: from the cache, else through Lookup
// (and then cached: home regions never change). A tenant without one is
// ErrNoHome.
func (s *Store) Home(ctx context.Context, tenant string) (string, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return "", err
	}
	return s.home(ctx, tenant)
}

func (s *Store) home(ctx context.Context, tenant string) (string, error) {
	s.mu.RLock()
	region, ok := s.homes[tenant]
	s.mu.RUnlock()
	if ok {
		return region, nil
	}
	region, err := s.lookup(ctx, tenant)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return "", fmt.Errorf("tenant %q: %w", tenant, ErrNoHome)
	case err != nil:
		return "", fmt.Errorf("home region of tenant %q: %w", tenant, err)
	case region == "":
		return "", fmt.Errorf("tenant %q: empty home region: %w", tenant, ErrNoHome)
	}
	s.mu.Lock()
	s.homes[tenant] = region
	s.mu.Unlock()
	return region, nil
}

// Preload reads every recorded home region into the cache, so that routing
// a tenant needs no directory read. It returns how many it read. It is
// optional: a tenant missing from the cache is looked up on first use.
func (s *Store) Preload(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	tenants, err := s.dir.ListDirectory(ctx, KindHome)
	if err != nil {
		return 0, fmt.Errorf("preload home regions: %w", err)
	}
	homes := make(map[string]string, len(tenants))
	for _, tenant := range tenants {
		b, err := s.dir.GetDirectory(ctx, KindHome, tenant)
		if errors.Is(err, persistence.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("preload home region of %q: %w", tenant, err)
		}
		homes[tenant] = string(b)
	}
	s.mu.Lock()
	maps.Copy(s.homes, homes)
	s.mu.Unlock()
	return len(homes), nil
}

// route returns the store of tenant's home region, failing closed.
func (s *Store) route(ctx context.Context, tenant string) (persistence.Store, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	region, err := s.home(ctx, tenant)
	if err != nil {
		return nil, err
	}
	st, ok := s.regions[region]
	if !ok {
		return nil, fmt.Errorf("tenant %q has home region %q, configured here: %q: %w", tenant, region, s.names, ErrUnknownRegion)
	}
	return st, nil
}

// Append implements persistence.Store in the tenant's home region.
func (s *Store) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	st, err := s.route(ctx, tenant)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	return st.Append(ctx, tenant, expectedSeq, events)
}

// Load implements persistence.Store in the tenant's home region.
func (s *Store) Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	st, err := s.route(ctx, tenant)
	if err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	return st.Load(ctx, tenant)
}

// ReadFrom implements persistence.Store in the tenant's home region.
func (s *Store) ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]persistence.Entry, error) {
	st, err := s.route(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("read from: %w", err)
	}
	return st.ReadFrom(ctx, tenant, after, limit)
}

// SaveSnapshot implements persistence.Store in the tenant's home region.
func (s *Store) SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error {
	st, err := s.route(ctx, tenant)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return st.SaveSnapshot(ctx, tenant, snap)
}

// directory returns the directory store unless s is closed.
func (s *Store) directory() (persistence.Store, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.dir, nil
}

// PutDirectory implements persistence.Store on the directory store.
func (s *Store) PutDirectory(ctx context.Context, kind, key string, value []byte) error {
	d, err := s.directory()
	if err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	return d.PutDirectory(ctx, kind, key, value)
}

// GetDirectory implements persistence.Store on the directory store.
func (s *Store) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	d, err := s.directory()
	if err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	return d.GetDirectory(ctx, kind, key)
}

// DeleteDirectory implements persistence.Store on the directory store.
func (s *Store) DeleteDirectory(ctx context.Context, kind, key string) error {
	d, err := s.directory()
	if err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	return d.DeleteDirectory(ctx, kind, key)
}

// ListDirectory implements persistence.Store on the directory store.
func (s *Store) ListDirectory(ctx context.Context, kind string) ([]string, error) {
	d, err := s.directory()
	if err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	return d.ListDirectory(ctx, kind)
}

// ErrNoRecords is returned by the record methods for a tenant whose home
// region's store does not implement persistence.RecordStore.
var ErrNoRecords = errors.New("regional: the home region's store keeps no records")

var _ persistence.RecordStore = (*Store)(nil)

// records returns the record store of tenant's home region, failing closed
// like route.
func (s *Store) records(ctx context.Context, tenant string) (persistence.RecordStore, error) {
	st, err := s.route(ctx, tenant)
	if err != nil {
		return nil, err
	}
	rs, ok := st.(persistence.RecordStore)
	if !ok {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrNoRecords)
	}
	return rs, nil
}

// GetRecord implements persistence.RecordStore in the tenant's home region.
func (s *Store) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	rs, err := s.records(ctx, tenant)
	if err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	return rs.GetRecord(ctx, tenant, kind, key)
}

// PutRecord implements persistence.RecordStore in the tenant's home region.
func (s *Store) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error) {
	rs, err := s.records(ctx, tenant)
	if err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	return rs.PutRecord(ctx, tenant, kind, key, value, expectVersion)
}

// DeleteRecord implements persistence.RecordStore in the tenant's home
// region.
func (s *Store) DeleteRecord(ctx context.Context, tenant, kind, key string, expectVersion uint64) error {
	rs, err := s.records(ctx, tenant)
	if err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	return rs.DeleteRecord(ctx, tenant, kind, key, expectVersion)
}

// ListRecords implements persistence.RecordStore in the tenant's home
// region.
func (s *Store) ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]persistence.Record, error) {
	rs, err := s.records(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return rs.ListRecords(ctx, tenant, kind, prefix, after, limit)
}

// DeleteTenantRecords implements persistence.RecordStore in the tenant's
// home region.
func (s *Store) DeleteTenantRecords(ctx context.Context, tenant, kind string) error {
	rs, err := s.records(ctx, tenant)
	if err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	return rs.DeleteTenantRecords(ctx, tenant, kind)
}

// follower is a store that can wake followers of its appends
// (*postgres.Store).
type follower interface {
	Follow(ctx context.Context, fn func(tenant string)) error
}

// ErrFollowUnsupported is returned by Follow when no region's store can
// follow appends.
var ErrFollowUnsupported = errors.New("regional: no region's store supports Follow")

// Follow runs Follow on every region's store that has one (PostgreSQL),
// calling fn with the tenant of each append committed in any region (and
// with "" after each (re)connection: see postgres.Store.Follow). fn may be
// called from several goroutines at once, one per region. Follow returns
// when ctx is done, the store is closed, or one region's Follow fails (the
// others are then stopped).
func (s *Store) Follow(ctx context.Context, fn func(tenant string)) error {
	var fs []follower
	for _, name := range s.names {
		if f, ok := s.regions[name].(follower); ok {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return ErrFollowUnsupported
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fs))
	for _, f := range fs {
		go func() { errs <- f.Follow(ctx, fn) }()
	}
	err := <-errs
	cancel()
	for range len(fs) - 1 {
		<-errs
	}
	return err
}

// Close closes every region's store and the directory store, once each.
// Later calls of other methods return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, name := range s.names {
		if err := s.regions[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close region %s: %w", name, err))
		}
	}
	if !slices.Contains(slices.Collect(maps.Values(s.regions)), s.dir) {
		if err := s.dir.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close directory: %w", err))
		}
	}
	return errors.Join(errs...)
}
