package regional_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/regional"
	"github.com/slotd/slotd/persistence/storetest"
)

// hashHome places every tenant id in one of regions by a hash of the id:
// the conformance suite invents tenants without creating them.
func hashHome(regions ...string) func(context.Context, string) (string, error) {
	return func(_ context.Context, tenant string) (string, error) {
		h := fnv.New32a()
		h.Write([]byte(tenant))
		return regions[h.Sum32()%uint32(len(regions))], nil
	}
}

// TestConformanceMemstore runs the conformance suite over two in-memory
// regions, tenants spread over both by a hash of their id, the directory
// in the first.
func TestConformanceMemstore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store {
		us, eu := memstore.New(), memstore.New()
		s, err := regional.New(regional.Config{
			Regions:   map[string]persistence.Store{"us": us, "eu": eu},
			Default:   "us",
			Directory: us,
			Lookup:    hashHome("us", "eu"),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestRecordsMemstore runs the records suite over two in-memory regions.
func TestRecordsMemstore(t *testing.T) {
	storetest.RunRecords(t, func(t *testing.T) persistence.RecordStore {
		us, eu := memstore.New(), memstore.New()
		s, err := regional.New(regional.Config{
			Regions:   map[string]persistence.Store{"us": us, "eu": eu},
			Default:   "us",
			Directory: us,
			Lookup:    hashHome("us", "eu"),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// regions is a regional store over two memstores, us (with the directory)
// and eu, with slotd's own lookup: the home region recorded in the
// directory.
type regions struct {
	*regional.Store
	us, eu *memstore.Store
}

func newRegions(t *testing.T) regions {
	t.Helper()
	r := regions{us: memstore.New(), eu: memstore.New()}
	s, err := regional.New(regional.Config{
		Regions:   map[string]persistence.Store{"us": r.us, "eu": r.eu},
		Default:   "us",
		Directory: r.us,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r.Store = s
	return r
}

// journal reads tenant's journal from one region's store directly.
func journal(t *testing.T, st persistence.Store, tenant string) []persistence.Entry {
	t.Helper()
	entries, err := st.ReadFrom(t.Context(), tenant, 0, 0)
	if err != nil {
		t.Fatalf("ReadFrom(%s) on a region's store = %v", tenant, err)
	}
	return entries
}

// TestRoutesToHomeRegion: every tenant-scoped call reaches the home
// region's store and no other.
func TestRoutesToHomeRegion(t *testing.T) {
	r := newRegions(t)
	ctx := t.Context()
	for tenant, region := range map[string]string{"berlin": "eu", "boston": "us"} {
		if err := r.Place(ctx, tenant, region); err != nil {
			t.Fatalf("Place(%s, %s) = %v", tenant, region, err)
		}
		if _, err := r.Append(ctx, tenant, 0, [][]byte{[]byte(tenant + "-1"), []byte(tenant + "-2")}); err != nil {
			t.Fatalf("Append(%s) = %v", tenant, err)
		}
		if err := r.SaveSnapshot(ctx, tenant, persistence.Snapshot{Seq: 1, Data: []byte(tenant + "-snap")}); err != nil {
			t.Fatalf("SaveSnapshot(%s) = %v", tenant, err)
		}
		if _, err := r.PutRecord(ctx, tenant, "audit", "1", []byte(tenant+"-audit"), 0); err != nil {
			t.Fatalf("PutRecord(%s) = %v", tenant, err)
		}
	}
	for _, tt := range []struct {
		tenant      string
		home, other *memstore.Store
	}{
		{"berlin", r.eu, r.us},
		{"boston", r.us, r.eu},
	} {
		if got := journal(t, tt.home, tt.tenant); len(got) != 2 {
			t.Errorf("%s: home region holds %d entries, want 2", tt.tenant, len(got))
		}
		if got := journal(t, tt.other, tt.tenant); len(got) != 0 {
			t.Errorf("%s: other region holds %d entries, want none", tt.tenant, len(got))
		}
		snap, tail, err := tt.other.Load(t.Context(), tt.tenant)
		if err != nil || snap.Seq != 0 || len(tail) != 0 {
			t.Errorf("%s: other region Load = snapshot %d, %d entries, %v; want nothing", tt.tenant, snap.Seq, len(tail), err)
		}
		snap, tail, err = r.Load(t.Context(), tt.tenant)
		if err != nil || snap.Seq != 1 || string(snap.Data) != tt.tenant+"-snap" || len(tail) != 1 {
			t.Errorf("Load(%s) = snapshot {%d %q}, %d entries, %v; want the home region's", tt.tenant, snap.Seq, snap.Data, len(tail), err)
		}
		if _, err := tt.other.GetRecord(t.Context(), tt.tenant, "audit", "1"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("%s: other region GetRecord = %v, want ErrNotFound", tt.tenant, err)
		}
		if rec, err := tt.home.GetRecord(t.Context(), tt.tenant, "audit", "1"); err != nil || string(rec.Value) != tt.tenant+"-audit" {
			t.Errorf("%s: home region GetRecord = %q, %v; want its record", tt.tenant, rec.Value, err)
		}
		if tail, err := r.ReadFrom(t.Context(), tt.tenant, 1, 0); err != nil || len(tail) != 1 || string(tail[0].Data) != tt.tenant+"-2" {
			t.Errorf("ReadFrom(%s, 1) = %v, %v; want its second entry", tt.tenant, tail, err)
		}
	}
	// The directory, home regions included, is in the directory store (us).
	if v, err := r.us.GetDirectory(ctx, regional.KindHome, "berlin"); err != nil || string(v) != "eu" {
		t.Errorf("us directory home/berlin = %q, %v; want eu", v, err)
	}
	if keys, err := r.eu.ListDirectory(ctx, regional.KindHome); err != nil || len(keys) != 0 {
		t.Errorf("eu directory home = %q, %v; want empty", keys, err)
	}
}

// TestFailsClosed: a tenant without a home region, with a home region not
// configured here, or whose home region cannot be read, gets an error from
// every tenant-scoped call, and nothing reaches any region.
func TestFailsClosed(t *testing.T) {
	r := newRegions(t)
	ctx := t.Context()
	if err := r.us.PutDirectory(ctx, regional.KindHome, "sydney", []byte("au")); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("directory unreachable")
	flaky, err := regional.New(regional.Config{
		Regions:   map[string]persistence.Store{"us": memstore.New(), "eu": memstore.New()},
		Default:   "us",
		Directory: memstore.New(),
		Lookup:    func(context.Context, string) (string, error) { return "", broken },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flaky.Close() })
	for _, tt := range []struct {
		name   string
		s      persistence.Store
		tenant string
		want   error
	}{
		{"never placed", r, "nowhere", regional.ErrNoHome},
		{"region not configured", r, "sydney", regional.ErrUnknownRegion},
		{"lookup fails", flaky, "anyone", broken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := map[string]func() error{
				"Append": func() error {
					_, err := tt.s.Append(ctx, tt.tenant, 0, [][]byte{[]byte("x")})
					return err
				},
				"Load": func() error { _, _, err := tt.s.Load(ctx, tt.tenant); return err },
				"ReadFrom": func() error {
					_, err := tt.s.ReadFrom(ctx, tt.tenant, 0, 0)
					return err
				},
				"SaveSnapshot": func() error {
					return tt.s.SaveSnapshot(ctx, tt.tenant, persistence.Snapshot{})
				},
				"PutRecord": func() error {
					_, err := tt.s.(persistence.RecordStore).PutRecord(ctx, tt.tenant, "audit", "1", []byte("x"), 0)
					return err
				},
				"ListRecords": func() error {
					_, err := tt.s.(persistence.RecordStore).ListRecords(ctx, tt.tenant, "audit", "", "", 0)
					return err
				},
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, tt.want) {
					t.Errorf("%s(%s) = %v, want %v", name, tt.tenant, err, tt.want)
				}
			}
		})
	}
	for _, st := range []*memstore.Store{r.us, r.eu} {
		for _, tenant := range []string{"nowhere", "sydney"} {
			if got := journal(t, st, tenant); len(got) != 0 {
				t.Errorf("a region holds %d entries of %s, want none", len(got), tenant)
			}
			if recs, err := st.ListRecords(t.Context(), tenant, "audit", "", "", 0); err != nil || len(recs) != 0 {
				t.Errorf("a region holds records %v of %s (%v), want none", recs, tenant, err)
			}
		}
	}
}

// TestPlace: home regions are validated, recorded in the directory and
// never change.
func TestPlace(t *testing.T) {
	r := newRegions(t)
	ctx := t.Context()
	if err := r.Place(ctx, "berlin", "mars"); !errors.Is(err, regional.ErrUnknownRegion) || !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("Place(berlin, mars) = %v, want ErrUnknownRegion (ErrInvalid)", err)
	}
	if err := r.Place(ctx, "Berlin", "eu"); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("Place(Berlin, eu) = %v, want ErrInvalid", err)
	}
	if err := r.Place(ctx, "berlin", "eu"); err != nil {
		t.Fatalf("Place(berlin, eu) = %v", err)
	}
	if err := r.Place(ctx, "berlin", "eu"); err != nil {
		t.Errorf("Place(berlin, eu) again = %v, want nil", err)
	}
	if err := r.Place(ctx, "berlin", "us"); !errors.Is(err, regional.ErrMoved) || !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("Place(berlin, us) = %v, want ErrMoved (ErrConflict)", err)
	}
	if home, err := r.Home(ctx, "berlin"); err != nil || home != "eu" {
		t.Errorf("Home(berlin) = %q, %v; want eu", home, err)
	}

	// A second process on the same directory (a restart, another slotd
	// instance) sees the placement and refuses to move the tenant too.
	other, err := regional.New(regional.Config{
		Regions: map[string]persistence.Store{"us": memstore.New(), "eu": memstore.New()}, Default: "us", Directory: r.us,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Place(ctx, "berlin", "us"); !errors.Is(err, regional.ErrMoved) {
		t.Errorf("other instance: Place(berlin, us) = %v, want ErrMoved", err)
	}
	if home, err := other.Home(ctx, "berlin"); err != nil || home != "eu" {
		t.Errorf("other instance: Home(berlin) = %q, %v; want eu", home, err)
	}
}

// countingDir counts directory reads.
type countingDir struct {
	*memstore.Store
	gets atomic.Int64
}

func (c *countingDir) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.GetDirectory(ctx, kind, key)
}

// TestPreloadAndCache: Preload reads every home region once; after it, or
// after a tenant's first lookup, routing reads nothing from the directory.
func TestPreloadAndCache(t *testing.T) {
	dir := &countingDir{Store: memstore.New()}
	ctx := t.Context()
	for i := range 10 {
		region := []string{"us", "eu"}[i%2]
		if err := dir.PutDirectory(ctx, regional.KindHome, fmt.Sprintf("t%d", i), []byte(region)); err != nil {
			t.Fatal(err)
		}
	}
	newStore := func() *regional.Store {
		s, err := regional.New(regional.Config{
			Regions: map[string]persistence.Store{"us": memstore.New(), "eu": memstore.New()}, Default: "us", Directory: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newStore()
	if n, err := s.Preload(ctx); err != nil || n != 10 {
		t.Fatalf("Preload() = %d, %v; want 10, nil", n, err)
	}
	before := dir.gets.Load()
	for i := range 10 {
		if _, err := s.Append(ctx, fmt.Sprintf("t%d", i), 0, [][]byte{[]byte("x")}); err != nil {
			t.Fatalf("Append(t%d) = %v", i, err)
		}
	}
	if n := dir.gets.Load() - before; n != 0 {
		t.Errorf("routing preloaded tenants read the directory %d times, want 0", n)
	}

	s = newStore() // no Preload: each tenant is looked up once
	before = dir.gets.Load()
	for range 3 {
		if _, _, err := s.Load(ctx, "t3"); err != nil {
			t.Fatalf("Load(t3) = %v", err)
		}
	}
	if n := dir.gets.Load() - before; n != 1 {
		t.Errorf("three calls for one tenant read the directory %d times, want 1", n)
	}
	// A tenant with no home is not cached as such: it may be placed later,
	// by another instance.
	if _, _, err := s.Load(ctx, "late"); !errors.Is(err, regional.ErrNoHome) {
		t.Fatalf("Load(late) = %v, want ErrNoHome", err)
	}
	if err := dir.PutDirectory(ctx, regional.KindHome, "late", []byte("eu")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, "late"); err != nil {
		t.Fatalf("Load(late) after another instance placed it = %v", err)
	}
}

// closeCounter counts Close calls.
type closeCounter struct {
	*memstore.Store
	closes atomic.Int64
}

func (c *closeCounter) Close() error {
	c.closes.Add(1)
	return c.Store.Close()
}

// TestClose closes every store once, the directory too when it is not a
// region's store.
func TestClose(t *testing.T) {
	us, eu, dir := &closeCounter{Store: memstore.New()}, &closeCounter{Store: memstore.New()}, &closeCounter{Store: memstore.New()}
	for _, tt := range []struct {
		name string
		dir  *closeCounter
	}{{"directory in a region", us}, {"separate directory", dir}} {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []*closeCounter{us, eu, dir} {
				c.closes.Store(0)
			}
			s, err := regional.New(regional.Config{Regions: map[string]persistence.Store{"us": us, "eu": eu}, Default: "us", Directory: tt.dir})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.Close(); err != nil {
					t.Fatalf("Close() = %v", err)
				}
			}
			for name, c := range map[string]*closeCounter{"us": us, "eu": eu} {
				if n := c.closes.Load(); n != 1 {
					t.Errorf("%s closed %d times, want 1", name, n)
				}
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.dir == dir]; dir.closes.Load() != want {
				t.Errorf("separate directory closed %d times, want %d", dir.closes.Load(), want)
			}
			if err := s.Place(t.Context(), "late", "us"); !errors.Is(err, regional.ErrClosed) {
				t.Errorf("Place after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	a, b := memstore.New(), memstore.New()
	for _, tt := range []struct {
		name string
		cfg  regional.Config
		want string
	}{
		{"no regions", regional.Config{Default: "us", Directory: a}, "no regions"},
		{"bad name", regional.Config{Regions: map[string]persistence.Store{"US": a}, Default: "US", Directory: a}, "region name"},
		{"nil store", regional.Config{Regions: map[string]persistence.Store{"us": nil}, Default: "us", Directory: a}, "no store"},
		{"shared store", regional.Config{Regions: map[string]persistence.Store{"us": a, "eu": a}, Default: "us", Directory: a}, "share one store"},
		{"default not configured", regional.Config{Regions: map[string]persistence.Store{"us": a, "eu": b}, Default: "au", Directory: a}, "default region"},
		{"no directory", regional.Config{Regions: map[string]persistence.Store{"us": a}, Default: "us"}, "no directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := regional.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFollowUnsupported(t *testing.T) {
	r := newRegions(t)
	if err := r.Follow(t.Context(), func(string) {}); !errors.Is(err, regional.ErrFollowUnsupported) {
		t.Errorf("Follow over memstores = %v, want ErrFollowUnsupported", err)
	}
}

func TestParseRegions(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []regional.Region
		err  string
	}{
		{in: "us=postgres://u@us.example/slotd", want: []regional.Region{{"us", "postgres://u@us.example/slotd"}}},
		{
			in:   "us=postgres://u@us.example/slotd, eu=postgres://u@eu.example/slotd?sslmode=require",
			want: []regional.Region{{"us", "postgres://u@us.example/slotd"}, {"eu", "postgres://u@eu.example/slotd?sslmode=require"}},
		},
		{ // multi-host URLs keep their commas
			in: "us=postgres://u@a:5432,b:5432/slotd?target_session_attrs=read-write,eu=postgres://u@c,d/slotd",
			want: []regional.Region{
				{"us", "postgres://u@a:5432,b:5432/slotd?target_session_attrs=read-write"},
				{"eu", "postgres://u@c,d/slotd"},
			},
		},
		{ // libpq key=value DSNs with host lists
			in:   "au-east=host=a,b port=5432 dbname=slotd,us=host=c dbname=slotd",
			want: []regional.Region{{"au-east", "host=a,b port=5432 dbname=slotd"}, {"us", "host=c dbname=slotd"}},
		},
		{in: "", err: "empty"},
		{in: "postgres://u:secret@h/slotd", err: "want name=DSN"},
		{in: "us=", err: "empty DSN"},
		{in: "us=a,us=b", err: "twice"},
		{in: "US=postgres://h/db", err: "want name=DSN"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := regional.ParseRegions(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRegions(%q) = %v, %v; want an error mentioning %q", tt.in, got, err, tt.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("ParseRegions(%q) error %q quotes the password", tt.in, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseRegions(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
