package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/slotd/slotd/internal/demo"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// TestCrashLosesNoAckedBooking is invariant 2 ("acked means durable") and
// invariant 1 ("no double booking") across real crashes: it runs the slotd
// binary as a child process, books from concurrent WebSocket clients, kills
// the process with SIGKILL in the middle of the load, restarts it on the
// same data directory and checks what the store kept:
//
//   - every booking a client was told "booked" is there, unchanged;
//   - every stored booking was asked for by a client (none invented);
//   - no booking id and no idempotency key appears twice;
//   - no resource holds more confirmed bookings than its capacity at any
//     instant, buffers included;
//   - a request that was in flight at the kill, retried with its
//     idempotency key, returns the booking the store already has for it
//     rather than booking twice (invariant 3).
func TestCrashLosesNoAckedBooking(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the slotd binary; skipped in -short mode")
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL semantics")
	}
	const (
		rounds       = 3
		clients      = 20
		acksPerRound = 100
		roundTimeout = 60 * time.Second
	)
	bin := buildSlotd(t)
	dataDir := t.TempDir()
	const token = "sk_crash_test_operator_token"

	cs := newCrashState()
	srv := startChild(t, bin, dataDir, token)
	link := srv.link
	caps, err := capacities(context.Background(), srv.base, token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= rounds; round++ {
		start := time.Now()
		stats := cs.load(t, srv, round, clients, acksPerRound, roundTimeout)
		t.Logf("round %d: killed after %v with %d acks this round (%d in all), %d in flight; replies %v",
			round, time.Since(start).Round(time.Millisecond), stats.acks, cs.ackCount(), stats.inflight, stats.codes)

		start = time.Now()
		srv = startChild(t, bin, dataDir, token)
		if srv.link != link {
			t.Fatalf("round %d: booking link after restart = %q, want %q", round, srv.link, link)
		}
		t.Logf("round %d: restarted in %v", round, time.Since(start).Round(time.Millisecond))
		cs.verify(t, srv, caps, fmt.Sprintf("after kill %d", round))
		cs.retryInflight(t, srv)
		cs.verify(t, srv, caps, fmt.Sprintf("after kill %d and retries", round))
		if t.Failed() {
			return // later rounds would repeat the same complaints
		}
	}
	srv.stop(t)
	if t.Failed() {
		return
	}
	srv = startChild(t, bin, dataDir, token)
	cs.verify(t, srv, caps, "after a clean stop")
}

// buildSlotd builds this package's binary into a temporary directory, with
// the race detector when the test itself runs with it.
func buildSlotd(tb testing.TB) string {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("go tool not in PATH: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "slotd")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	start := time.Now()
	cmd := exec.Command(goTool, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	tb.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return bin
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// child is a slotd process.
type child struct {
	banner
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{} // closed when Wait returns
	err    error         // Wait's result, set before exited closes
}

// startChild starts the binary on dataDir, listening on a free loopback
// port, and waits until it answers /healthz. The process is killed when the
// test ends if it still runs.
func startChild(tb testing.TB, bin, dataDir, token string) *child {
	tb.Helper()
	c := &child{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "-addr", "127.0.0.1:0", "-data", dataDir)
	// The test's own SLOTD_* or PORT settings must not leak into the child.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLOTD_") && !strings.HasPrefix(kv, "PORT=") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	c.cmd.Env = append(c.cmd.Env, "SLOTD_ADMIN_TOKEN="+token, "SLOTD_LOG_LEVEL=warn")
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	tb.Cleanup(func() {
		c.kill(tb)
		if s := c.stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
			tb.Errorf("slotd (pid %d) reported a race or a panic:\n%s", c.cmd.Process.Pid, s)
		}
	})
	checkFor(tb, 60*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-c.exited:
			tb.Fatalf("slotd exited at start: %v\nstdout:\n%s\nstderr:\n%s", c.err, c.stdout, c.stderr)
		default:
		}
		b, ok := parseBanner(c.stdout.String())
		if !ok {
			return fmt.Errorf("no banner yet; stdout:\n%s", c.stdout)
		}
		if b.link == "" {
			return fmt.Errorf("no demo booking page in the banner:\n%s", c.stdout)
		}
		c.banner = b
		return nil
	})
	waitHealthy(tb, c.base)
	return c
}

// kill sends SIGKILL, if the process still runs, and waits for it to exit.
func (c *child) kill(tb testing.TB) {
	tb.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Errorf("kill slotd: %v", err)
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		tb.Fatalf("slotd (pid %d) did not exit within 30s of SIGKILL", c.cmd.Process.Pid)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop(tb testing.TB) {
	tb.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM slotd: %v", err)
	}
	select {
	case <-c.exited:
		if c.err != nil {
			tb.Errorf("slotd exited with %v after SIGTERM; stderr:\n%s", c.err, c.stderr)
		}
	case <-time.After(30 * time.Second):
		tb.Fatalf("slotd did not exit within 30s of SIGTERM; stderr:\n%s", c.stderr)
	}
}

// ack is a booking a client was told about.
type ack struct {
	id, service, resource, idem string
	start                       time.Time
}

// crashState is what the clients were told and what they asked for, across
// rounds.
type crashState struct {
	mu       sync.Mutex                 // guards the fields below
	acked    map[string]ack             // by booking id
	sent     map[string]bool            // every idempotency key sent
	inflight map[string]gateway.Request // sent, unanswered when the connection died, by idempotency key
}

func newCrashState() *crashState {
	return &crashState{acked: map[string]ack{}, sent: map[string]bool{}, inflight: map[string]gateway.Request{}}
}

func (cs *crashState) ackCount() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.acked)
}

// addAck records a "booked" reply; a second reply for the same booking
// must say the same thing.
func (cs *crashState) addAck(tb testing.TB, b *engine.Booking, idem string) {
	tb.Helper()
	a := ack{id: b.ID, service: b.ServiceID, resource: b.ResourceID, idem: idem, start: b.Start}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if prev, ok := cs.acked[b.ID]; ok && (prev.resource != a.resource || !prev.start.Equal(a.start) || prev.idem != a.idem) {
		tb.Errorf("booking %s acked twice differently: %+v, then %+v", b.ID, prev, a)
	}
	cs.acked[b.ID] = a
}

type roundStats struct {
	acks, inflight int
	codes          map[string]int
}

// target is a slot the clients may ask for.
type target struct {
	service string
	slot    engine.Slot
}

// load runs clients concurrent WebSocket clients booking haircuts (staff,
// capacity 1, 10 min buffer after) and yoga (a room of capacity 6) until
// acks bookings are acknowledged in this round, then SIGKILLs the server
// while they are still sending, and waits for them to notice.
func (cs *crashState) load(t *testing.T, srv *child, round, clients, acks int, timeout time.Duration) roundStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var targets []target
	for _, svc := range []string{"haircut", "yoga"} {
		slots, err := availability(ctx, srv.base, srv.link, svc, 28)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range slots {
			targets = append(targets, target{svc, s})
		}
	}
	if len(targets) < 2*acks {
		t.Fatalf("round %d: only %d free slots left, want at least %d", round, len(targets), 2*acks)
	}
	var (
		roundAcks atomic.Int64
		cursor    atomic.Int64
		enough    = make(chan struct{})
		enoughOne sync.Once
		wg        sync.WaitGroup
		codesMu   sync.Mutex
		codes     = map[string]int{}
		dialed    sync.WaitGroup
	)
	dialed.Add(clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			c, err := dialLink(ctx, srv.base, srv.link)
			dialed.Done()
			if err != nil {
				t.Errorf("round %d client %d: %v", round, w, err)
				return
			}
			defer c.c.CloseNow()
			lim := rate.NewLimiter(15, 1) // below the gateway's 20 messages/s per connection
			for n := 0; ; n++ {
				if err := lim.Wait(ctx); err != nil {
					return
				}
				// Half the requests walk the slots four clients at a time, so
				// that several ask for the same start at once; the others pick
				// at random, overlapping neighbours through the buffers.
				var tg target
				if rng.IntN(2) == 0 {
					tg = targets[int(cursor.Add(1)/4)%len(targets)]
				} else {
					tg = targets[rng.IntN(len(targets))]
				}
				req := gateway.Request{Type: gateway.TypeBook, Service: tg.service, Start: tg.slot.Start.Format(time.RFC3339),
					Customer:       &engine.Customer{Name: fmt.Sprintf("Client %d", w), Email: fmt.Sprintf("c%d@example.com", w)},
					IdempotencyKey: fmt.Sprintf("crash-r%d-c%d-n%d", round, w, n)}
				if rng.IntN(2) == 0 {
					req.Resource = tg.slot.Resources[rng.IntN(len(tg.slot.Resources))]
				}
				cs.mu.Lock()
				cs.sent[req.IdempotencyKey] = true
				cs.inflight[req.IdempotencyKey] = req
				cs.mu.Unlock()
				f, err := c.do(ctx, req)
				if err != nil {
					// The server is gone (or the round timed out): whether
					// this request committed is for the restart to tell.
					return
				}
				cs.mu.Lock()
				delete(cs.inflight, req.IdempotencyKey)
				cs.mu.Unlock()
				code := f.Type
				switch f.Type {
				case gateway.TypeBooked:
					if f.Booking == nil {
						t.Errorf("booked frame without booking: %+v", f)
						return
					}
					cs.addAck(t, f.Booking, req.IdempotencyKey)
					if roundAcks.Add(1) >= int64(acks) {
						enoughOne.Do(func() { close(enough) })
					}
				case gateway.TypeError:
					code = f.Code
					switch engine.Code(f.Code) {
					case engine.CodeSlotTaken, engine.CodeTooSoon:
					default:
						t.Errorf("book %+v: unexpected error %s: %s", req, f.Code, f.Message)
					}
				default:
					t.Errorf("book: unexpected reply %+v", f)
				}
				codesMu.Lock()
				codes[code]++
				codesMu.Unlock()
			}
		}()
	}
	dialed.Wait()
	select {
	case <-enough:
	case <-ctx.Done():
		cancel()
		wg.Wait()
		t.Fatalf("round %d: only %d acks in %v (replies %v); stderr:\n%s", round, roundAcks.Load(), timeout, codes, srv.stderr)
	}
	srv.kill(t) // mid-load: the clients are still sending
	wg.Wait()
	cs.mu.Lock()
	inflight := len(cs.inflight)
	cs.mu.Unlock()
	return roundStats{acks: int(roundAcks.Load()), inflight: inflight, codes: codes}
}

// verify checks the stored bookings against what the clients were told.
func (cs *crashState) verify(t *testing.T, srv *child, caps map[string]int, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := listBookings(ctx, srv.base, srv.token, demo.Tenant)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	byID := map[string]engine.Booking{}
	byIdem := map[string]string{}
	for _, b := range list {
		byID[b.ID] = b
		if b.IdempotencyKey == "" || !cs.sent[b.IdempotencyKey] {
			t.Errorf("%s: booking %s (idempotency key %q) was never asked for", when, b.ID, b.IdempotencyKey)
		}
		if prev, ok := byIdem[b.IdempotencyKey]; ok && b.IdempotencyKey != "" {
			t.Errorf("%s: idempotency key %q booked twice: %s and %s", when, b.IdempotencyKey, prev, b.ID)
		}
		byIdem[b.IdempotencyKey] = b.ID
	}
	lost := 0
	for id, a := range cs.acked {
		b, ok := byID[id]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				t.Errorf("%s: acknowledged booking %s (%s on %s at %v) is missing", when, id, a.service, a.resource, a.start)
			}
		case b.Status != engine.StatusConfirmed || b.ResourceID != a.resource || !b.Start.Equal(a.start) ||
			b.ServiceID != a.service || b.IdempotencyKey != a.idem:
			t.Errorf("%s: booking %s stored as %s %s on %s at %v (key %q), acked as %s on %s at %v (key %q)",
				when, id, b.Status, b.ServiceID, b.ResourceID, b.Start, b.IdempotencyKey, a.service, a.resource, a.start, a.idem)
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d of %d acknowledged bookings lost", when, lost, len(cs.acked))
	}
	for _, p := range checkNoOverbooking(list, caps) {
		t.Errorf("%s: %s", when, p)
	}
	t.Logf("%s: %d bookings stored, %d acknowledged", when, len(list), len(cs.acked))
}

// retryInflight resends, with the same idempotency keys, the requests that
// were unanswered when the server died. A request the store already holds
// must come back as that booking (duplicate); one it lacks may book now or
// find its slot taken.
func (cs *crashState) retryInflight(t *testing.T, srv *child) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := listBookings(ctx, srv.base, srv.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]engine.Booking{}
	for _, b := range list {
		stored[b.IdempotencyKey] = b
	}
	cs.mu.Lock()
	reqs := make([]gateway.Request, 0, len(cs.inflight))
	for _, r := range cs.inflight {
		reqs = append(reqs, r)
	}
	cs.inflight = map[string]gateway.Request{}
	cs.mu.Unlock()
	if len(reqs) == 0 {
		return
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].IdempotencyKey < reqs[j].IdempotencyKey })
	c, err := dialLink(ctx, srv.base, srv.link)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	lim := rate.NewLimiter(15, 1)
	var committed, booked, taken int
	for _, req := range reqs {
		if err := lim.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := c.do(ctx, req)
		if err != nil {
			t.Fatalf("retry %s: %v", req.IdempotencyKey, err)
		}
		prev, wasStored := stored[req.IdempotencyKey]
		if wasStored {
			committed++
		}
		switch {
		case f.Type == gateway.TypeBooked && f.Booking != nil:
			if wasStored && (!f.Duplicate || f.Booking.ID != prev.ID) {
				t.Errorf("retry %s: booked %s (duplicate %v), want the stored %s as a duplicate",
					req.IdempotencyKey, f.Booking.ID, f.Duplicate, prev.ID)
			}
			if !wasStored && f.Duplicate {
				t.Errorf("retry %s: duplicate of %s, which the store did not have", req.IdempotencyKey, f.Booking.ID)
			}
			booked++
			cs.addAck(t, f.Booking, req.IdempotencyKey)
		case f.Type == gateway.TypeError && (engine.Code(f.Code) == engine.CodeSlotTaken || engine.Code(f.Code) == engine.CodeTooSoon):
			if wasStored {
				t.Errorf("retry %s: %s, want the stored booking %s", req.IdempotencyKey, f.Code, prev.ID)
			}
			taken++
		default:
			t.Errorf("retry %s: unexpected reply %+v", req.IdempotencyKey, f)
		}
	}
	t.Logf("retried %d in-flight requests: %d had committed before the kill, %d booked, %d slot taken", len(reqs), committed, booked, taken)
}

// TestCheckNoOverbooking makes sure the crash test's capacity check can fail.
func TestCheckNoOverbooking(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2030, 1, 7, h, m, 0, 0, time.UTC) }
	bk := func(id, res string, h, m, mins int) engine.Booking {
		return engine.Booking{ID: id, ResourceID: res, Status: engine.StatusConfirmed, Start: at(h, m), End: at(h, m+mins-10),
			BlockStart: at(h, m), BlockEnd: at(h, m+mins)}
	}
	caps := map[string]int{"ana": 1, "studio": 2}
	tests := []struct {
		name     string
		bookings []engine.Booking
		problems int
	}{
		{"back to back", []engine.Booking{bk("a", "ana", 9, 0, 40), bk("b", "ana", 9, 40, 40)}, 0},
		{"buffers overlap", []engine.Booking{bk("a", "ana", 9, 0, 40), bk("b", "ana", 9, 30, 40)}, 1},
		{"cancelled does not count", func() []engine.Booking {
			b := bk("b", "ana", 9, 0, 40)
			b.Status = engine.StatusCancelled
			return []engine.Booking{bk("a", "ana", 9, 0, 40), b}
		}(), 0},
		{"other resources are separate", []engine.Booking{bk("a", "ana", 9, 0, 40), bk("b", "studio", 9, 0, 40)}, 0},
		{"room within capacity", []engine.Booking{bk("a", "studio", 9, 0, 60), bk("b", "studio", 9, 0, 60), bk("c", "studio", 10, 0, 60)}, 0},
		{"room over capacity", []engine.Booking{bk("a", "studio", 9, 0, 60), bk("b", "studio", 9, 0, 60), bk("c", "studio", 9, 50, 60)}, 1},
		{"same id twice", []engine.Booking{bk("a", "ana", 9, 0, 40), bk("a", "ana", 11, 0, 40)}, 1},
		{"unknown resource", []engine.Booking{bk("a", "bob", 9, 0, 40)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkNoOverbooking(tt.bookings, caps); len(got) != tt.problems {
				t.Errorf("checkNoOverbooking = %q, want %d problems", got, tt.problems)
			}
		})
	}
}
