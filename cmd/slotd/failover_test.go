package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/pgtest"
)

// TestFailover loses slotd's PostgreSQL primary under booking load.
//
// The primary streams to a standby with synchronous_standby_names = '*'
// (a commit, and so an acknowledged booking, is on both), and slotd
// connects with one multi-host URL, target_session_attrs=read-write. HTTP
// clients book in a loop, each on its own desk, retrying a failed request
// with its idempotency key. The test SIGKILLs the primary, promotes the
// standby, and waits for every client to be acknowledged again: slotd
// reconnects by itself. Afterwards every acknowledged booking is in the
// new primary's bookings table (read as its superuser) and served by a
// fresh slotd, exactly once, with no overlap.
//
// It logs the outage window: from the first failed request to the first
// acknowledged one after the promotion (and until every client had one).
// docs/operations.md records a measured value.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a PostgreSQL primary; skipped in -short mode")
	}
	t.Parallel()
	primary := pgtest.Start(t)
	resMigrate(t, primary.OwnerDSN())
	standby := primary.StartStandby(t)
	primary.Configure(t, "synchronous_standby_names", "*")
	waitSync(t, primary)

	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		pgtest.AppRole, primary.Port(), standby.Port(), pgtest.DefaultDatabase)
	const token = "sk_test_operator_failover_0123456789"
	args := []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-database-url", dsn, "-demo=false"}
	env := map[string]string{"SLOTD_ADMIN_TOKEN": token}
	s := startSlotd(t, args, env)

	const tenants, desks = 2, 4 // one client per desk
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	for i := range tenants {
		resCall(t, "POST", s.base+"/v1/tenants", token, gateway.CreateTenantRequest{ID: fmt.Sprintf("fo-%d", i), Config: failoverConfig(desks)}, http.StatusCreated, nil)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &failoverLoad{acked: map[string]engine.Booking{}}
	var wg sync.WaitGroup
	for c := range tenants * desks {
		tenant, desk := fmt.Sprintf("fo-%d", c/desks), fmt.Sprintf("desk-%d", c%desks)
		wg.Go(func() { l.client(ctx, s.base, token, c, tenant, desk, base) })
	}
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if n := l.count(); n < 100 {
			return fmt.Errorf("%d bookings acknowledged before the failover, want 100", n)
		}
		return nil
	})

	primary.Kill(t)
	l.mark(func() { l.killed = time.Now() })
	standby.Promote(t)
	l.mark(func() { l.promoted = time.Now() })
	// Every client is acknowledged again, through the new primary.
	checkFor(t, 60*time.Second, 5*time.Millisecond, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for c := range tenants * desks {
			if l.lastOK[c].Before(l.promoted) {
				return fmt.Errorf("client %d has no acknowledgement since the promotion", c)
			}
		}
		return nil
	})
	cancel()
	wg.Wait()

	l.mu.Lock()
	if l.firstFail.IsZero() {
		t.Fatalf("no request failed: the failover was not observed")
	}
	firstOK := slices.MinFunc(l.recovered, func(a, b time.Time) int { return a.Compare(b) })
	allOK := slices.MaxFunc(l.recovered, func(a, b time.Time) int { return a.Compare(b) })
	t.Logf("failover: %d bookings acknowledged (%d before the kill); pg_promote returned %v after the kill; "+
		"outage window (first failed request -> first acknowledged booking after the promotion) %v; every client acknowledged again %v after the first failure",
		len(l.acked), l.beforeKill, l.promoted.Sub(l.killed).Round(time.Millisecond),
		firstOK.Sub(l.firstFail).Round(time.Millisecond), allOK.Sub(l.firstFail).Round(time.Millisecond))
	acked := l.acked
	l.mu.Unlock()
	if err := s.stop(t); err != nil {
		t.Fatalf("slotd stopped with %v", err)
	}

	// Every acknowledged booking is on the new primary, confirmed, as its
	// superuser reads the bookings projection...
	conn, err := pgx.Connect(t.Context(), standby.DSN(pgtest.Superuser, pgtest.DefaultDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT tenant_id || '/' || booking_id, status FROM bookings")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		stored[id] = status
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for key := range acked {
		if stored[key] != engine.StatusConfirmed {
			t.Errorf("acknowledged booking %s: %q on the new primary, want confirmed", key, stored[key])
		}
	}

	// ...and a fresh slotd (same URL: the old primary's port refuses)
	// serves them all, each once, with no overlap.
	s = startSlotd(t, args, env)
	for i := range tenants {
		tenant := fmt.Sprintf("fo-%d", i)
		list, err := listBookings(t.Context(), s.base, token, tenant)
		if err != nil {
			t.Fatalf("list %s after the failover: %v", tenant, err)
		}
		caps, err := capacities(t.Context(), s.base, token, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if problems := checkNoOverbooking(list, caps); len(problems) > 0 {
			t.Errorf("%s: %v", tenant, problems)
		}
		have := map[string]bool{}
		for _, b := range list {
			have[tenant+"/"+b.ID] = true
		}
		for key := range acked {
			if strings.HasPrefix(key, tenant+"/") && !have[key] {
				t.Errorf("acknowledged booking %s is not served after the failover", key)
			}
		}
	}
}

// failoverConfig is a tenant with desks open round the clock and a
// five-minute visit bookable far ahead: room for every booking the load
// makes.
func failoverConfig(desks int) engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "00:00", End: "24:00"}}
	}
	cfg := engine.TenantConfig{Name: "Failover", TimeZone: "UTC",
		Services: []engine.Service{{ID: "visit", Name: "Visit", DurationMin: 5, StepMin: 5, HorizonDays: engine.MaxHorizonDays}}}
	for i := range desks {
		id := fmt.Sprintf("desk-%d", i)
		cfg.Resources = append(cfg.Resources, engine.Resource{ID: id, Name: id, Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: week})
		cfg.Services[0].Resources = append(cfg.Services[0].Resources, id)
	}
	return cfg
}

// waitSync waits until the primary has a synchronous standby.
func waitSync(t *testing.T, primary *pgtest.Cluster) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), primary.SuperuserDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("no synchronous standby yet")
		}
		return nil
	})
}

// failoverLoad is the booking load and what it observed.
type failoverLoad struct {
	mu         sync.Mutex // guards the fields below
	acked      map[string]engine.Booking
	beforeKill int
	killed     time.Time
	promoted   time.Time
	firstFail  time.Time         // first failed request after the kill
	lastOK     map[int]time.Time // by client
	recovered  []time.Time       // each client's first acknowledgement after its first failure
}

func (l *failoverLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *failoverLoad) mark(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed.IsZero() {
		l.beforeKill = len(l.acked)
	}
	f()
}

// client books slot after slot on its desk until ctx ends. A failed
// request is retried with the same idempotency key until it is answered,
// so a booking whose acknowledgement was lost is not booked twice.
func (l *failoverLoad) client(ctx context.Context, base, token string, c int, tenant, desk string, from time.Time) {
	hc := &http.Client{Timeout: 15 * time.Second}
	failed := false
	for i := 0; ctx.Err() == nil; {
		req := gateway.BookRequest{Service: "visit", Resource: desk, Start: from.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339),
			Customer: engine.Customer{Name: "Load", Email: "load@example.test"}}
		b, ok := l.book(ctx, hc, base, token, tenant, fmt.Sprintf("c%d-%d", c, i), req)
		now := time.Now()
		l.mu.Lock()
		if l.lastOK == nil {
			l.lastOK = map[int]time.Time{}
		}
		if !ok {
			if !l.killed.IsZero() && ctx.Err() == nil && l.firstFail.IsZero() {
				l.firstFail = now
			}
			failed = failed || !l.killed.IsZero()
			l.mu.Unlock()
			select { // back off before retrying
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		l.acked[tenant+"/"+b.ID] = b
		l.lastOK[c] = now
		if failed {
			l.recovered = append(l.recovered, now)
			failed = false
		}
		l.mu.Unlock()
		i++
	}
}

// book sends one booking request; ok means it was acknowledged (created,
// or a duplicate of the first attempt).
func (l *failoverLoad) book(ctx context.Context, hc *http.Client, base, token, tenant, key string, body gateway.BookRequest) (engine.Booking, bool) {
	j, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/tenants/"+tenant+"/bookings", bytes.NewReader(j))
	if err != nil {
		return engine.Booking{}, false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return engine.Booking{}, false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return engine.Booking{}, false
	}
	var out struct {
		Booking engine.Booking `json:"booking"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Booking.ID == "" {
		return engine.Booking{}, false
	}
	return out.Booking, true
}
