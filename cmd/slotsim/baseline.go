package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The baseline (bench/baseline) is the design a team would otherwise build:
// one PostgreSQL transaction per booking guarded by an exclusion
// constraint, availability by polling. After the run against slotd, slotsim
// runs the same booking workload — tenants and their configuration, slot
// grid and choice, seed, rate or closed loop, duration — against it over
// HTTP, checks it the same way, and compares acknowledged bookings/s and
// the book p99.

// baselineResult is the JSON "baseline" field.
type baselineResult struct {
	Target   string `json:"target"`
	Spawned  bool   `json:"spawned"`
	Workload string `json:"workload"`
	Tenants  int    `json:"tenants"`
	Conns    int    `json:"http_concurrency"`

	Seconds        float64          `json:"seconds"`
	BookRate       float64          `json:"book_arrivals_per_sec,omitempty"`
	BookingsAcked  int64            `json:"bookings_acked"`
	BookingsPerSec float64          `json:"bookings_acked_per_sec"`
	Book           latency          `json:"book_latency"`
	Refused        int64            `json:"books_refused"`
	Errors         map[string]int64 `json:"errors_by_code"`
	Unknown        int64            `json:"unknown_outcome"`
	Pollers        int              `json:"pollers"`
	PollEvery      string           `json:"poll_every"`
	Polls          int64            `json:"polls"`
	PollsPerSec    float64          `json:"polls_per_sec"`
	Poll           latency          `json:"poll_latency"`
	Check          checkReport      `json:"check"`
	LoadAtStart    float64          `json:"load_avg_at_start"`
	LoadAtEnd      float64          `json:"load_avg_at_end"`

	Compare baselineComparison `json:"comparison"`
}

// baselineComparison is slotd against the baseline.
type baselineComparison struct {
	SlotdBookingsPerSec    float64 `json:"slotd_bookings_per_sec"`
	BaselineBookingsPerSec float64 `json:"baseline_bookings_per_sec"`
	Ratio                  float64 `json:"ratio"` // slotd / baseline bookings/s
	SlotdP50               float64 `json:"slotd_book_p50_ms"`
	BaselineP50            float64 `json:"baseline_book_p50_ms"`
	SlotdP99               float64 `json:"slotd_book_p99_ms"`
	BaselineP99            float64 `json:"baseline_book_p99_ms"`
	P99EqualOrBetter       bool    `json:"slotd_p99_equal_or_better"`
	TargetMet              bool    `json:"five_x_at_equal_or_better_p99"`
	Note                   string  `json:"note,omitempty"`
}

// baselineTarget is a spawned bench/baseline binary.
type baselineTarget struct {
	cmd  *exec.Cmd
	exit chan struct{}
	base string
	log  *os.File
}

func spawnBaseline(ctx context.Context, bin, args string) (*baselineTarget, error) {
	argv := append([]string{"-addr", "127.0.0.1:0"}, strings.Fields(args)...)
	cmd := exec.Command(bin, argv...)
	logf, err := os.CreateTemp("", "slotsim-baseline-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start baseline: %w", err)
	}
	bt := &baselineTarget{cmd: cmd, exit: make(chan struct{}), log: logf}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "baseline listening on "); ok {
				lines <- u
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		_ = cmd.Wait()
		close(bt.exit)
	}()
	select {
	case u := <-lines:
		bt.base = strings.TrimSpace(u)
		return bt, nil
	case <-bt.exit:
	case <-time.After(2 * time.Minute):
		bt.close()
	case <-ctx.Done():
		bt.close()
	}
	b, _ := os.ReadFile(logf.Name())
	bt.close()
	return nil, fmt.Errorf("baseline %s did not start:\n%s", bin, b)
}

func (b *baselineTarget) close() {
	if b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exit:
		case <-time.After(20 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exit
		}
	}
	if b.log != nil {
		b.log.Close()
		_ = os.Remove(b.log.Name())
		b.log = nil
	}
}

// bookingReq is the baseline's book request.
type bookingReq struct {
	t        *tenantRun
	svc      string
	resource string
	start    time.Time
	customer string
	key      string
	intended time.Time
}

// runBaseline runs the workload against the baseline and fills
// s.res.Baseline. It returns an error only when the run could not be set up.
func (s *sim) runBaseline(ctx context.Context) (*baselineResult, error) {
	o := &s.o
	base := o.baselineURL
	br := &baselineResult{}
	if o.baselineSpawn != "" {
		s.prog.phase("starting the baseline")
		bt, err := spawnBaseline(ctx, o.baselineSpawn, o.baselineArgs)
		if err != nil {
			return nil, err
		}
		defer bt.close()
		base, br.Spawned = bt.base, true
	} else if _, err := checkLoopback(base, o.allowNonLoopback); err != nil {
		return nil, fmt.Errorf("-baseline: %w", err)
	}
	a := newAPI(base, "")
	br.Target = a.base
	// At most -baseline-conns connections (a closed loop with more clients
	// waits for one, and that wait is latency): a web tier's keep-alive
	// pool, not a new TCP connection per request.
	if tr, ok := a.hc.Transport.(*http.Transport); ok {
		tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = o.baselineConns, o.baselineConns
	}

	// Tenants: the same configuration as slotd's, fresh ids.
	tenants := make([]*tenantRun, o.tenants)
	for i := range tenants {
		tenants[i] = newTenantRun(i, fmt.Sprintf("bl-%s-%d", s.runID, i))
	}
	br.Tenants = len(tenants)
	s.prog.phase(fmt.Sprintf("baseline: setting up %d tenants", len(tenants)))
	err := parallel(ctx, len(tenants), o.setupConc, func(ctx context.Context, i int) error {
		cfg := s.tenantConfigFor(i)
		v, err := a.createTenant(ctx, tenants[i].id, cfg)
		if err != nil {
			return fmt.Errorf("baseline tenant %s: %w", tenants[i].id, err)
		}
		v.Config = &cfg
		s.shapeTenant(tenants[i], v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Traffic goes to the tenants slotd's clients were bound to.
	active := tenants[:min(len(tenants), max(o.clients, 1))]
	cdf := zipfCDF(len(active), o.zipf)

	var (
		mu       sync.Mutex
		bookH    = newHist()
		pollH    = newHist()
		errs     = map[string]int64{}
		acked    atomic.Int64
		refused  atomic.Int64
		unknown  atomic.Int64
		polls    atomic.Int64
		interval time.Duration
	)
	bookShare := o.mix.weights[opBook] / o.mix.total
	if !o.closed {
		br.BookRate = o.rate * bookShare
		if br.BookRate <= 0 {
			return nil, errors.New("-baseline: the -mix has no books")
		}
		interval = time.Duration(float64(time.Second) / br.BookRate)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	book := func(rq bookingReq) {
		body := map[string]any{"service": rq.svc, "resource": rq.resource, "any_resource": rq.resource == "",
			"start": rq.start, "customer": rq.customer, "idempotency_key": rq.key}
		var out struct {
			Booking *booking `json:"booking"`
		}
		err := a.do(runCtx, http.MethodPost, "/v1/tenants/"+url.PathEscape(rq.t.id)+"/bookings", body, &out)
		d := time.Since(rq.intended)
		var ae *apiError
		code := ""
		switch {
		case err == nil && out.Booking != nil:
			rq.t.booked(out.Booking)
			acked.Add(1)
		case errors.As(err, &ae) && ae.Status < 500:
			code = ae.Code
			refused.Add(1)
		case errors.As(err, &ae):
			code = ae.Code
			unknown.Add(1)
			rq.t.unknownBook(rq.key)
		default:
			code = "x_conn_lost"
			unknown.Add(1)
			rq.t.unknownBook(rq.key)
		}
		mu.Lock()
		recordDur(bookH, d)
		if code != "" {
			errs[code]++
		}
		mu.Unlock()
	}
	newReq := func(rng *rand.Rand, t *tenantRun, intended time.Time) bookingReq {
		svc, res, start := s.pickSlot(t, rng)
		return bookingReq{t: t, svc: svc.id, resource: res, start: start, customer: "sim " + fmt.Sprint(rng.IntN(1_000_000)),
			key: "bl-" + s.newKey(), intended: intended}
	}

	// Pollers: each viewer polls its tenant's availability.
	br.Pollers, br.PollEvery = o.viewers, o.baselinePoll.String()
	var pollWG sync.WaitGroup
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	for i := 0; i < o.viewers; i++ {
		t := tenants[i%len(tenants)]
		pollWG.Add(1)
		go func() {
			defer pollWG.Done()
			offset := time.Duration(rand.Int64N(int64(o.baselinePoll)))
			next := time.Now().Add(offset)
			for {
				select {
				case <-pollCtx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				_, _, err := a.publicAvailability(pollCtx, t.link, t.viewQuery)
				if err == nil {
					polls.Add(1)
					mu.Lock()
					recordDur(pollH, time.Since(next))
					mu.Unlock()
				}
				next = next.Add(o.baselinePoll)
			}
		}()
	}

	conns := o.baselineConns // open loop: workers
	if o.closed {
		conns = o.clients // closed loop: one per client, over at most -baseline-conns connections
	}
	br.Conns = o.baselineConns
	mode := fmt.Sprintf("open loop, %.0f book arrivals/s", br.BookRate)
	if o.closed {
		mode = fmt.Sprintf("closed loop, %d clients, think %s", o.clients, o.think)
	}
	br.Workload = fmt.Sprintf("books only (%s), %d tenants × %d resources × %d services, %d pollers every %s, seed %d",
		mode, len(tenants), o.resources, o.services, o.viewers, o.baselinePoll, o.seed)
	s.prog.phase("baseline: running " + mode + " for " + o.duration.String())
	arrivalsCtx, stopArrivals := context.WithTimeout(ctx, o.duration)
	defer stopArrivals()
	var wg sync.WaitGroup
	br.LoadAtStart = loadAvg()
	start := time.Now()
	if o.closed {
		// Clients are bound to tenants as slotd's were (Zipf-weighted extras).
		owners := s.assignClients(conns)
		for c := 0; c < conns; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(c)))
				t := tenants[owners[c].idx]
				for arrivalsCtx.Err() == nil {
					book(newReq(rng, t, time.Now()))
					if o.think > 0 {
						select {
						case <-time.After(o.think):
						case <-arrivalsCtx.Done():
						}
					}
				}
			}()
		}
		wg.Wait()
	} else {
		queue := make(chan bookingReq, 1<<16)
		for c := 0; c < conns; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for rq := range queue {
					book(rq)
				}
			}()
		}
		rng := rand.New(rand.NewPCG(uint64(o.seed), 0x5107))
		var issued int64
		tick := time.NewTicker(time.Millisecond)
	loop:
		for {
			select {
			case <-arrivalsCtx.Done():
				break loop
			case now := <-tick.C:
				due := int64(now.Sub(start)/interval) + 1
				for ; issued < due; issued++ {
					t := active[pickRank(rng, len(active), cdf)]
					select { // a full queue blocks arrivals, never past the window
					case queue <- newReq(rng, t, start.Add(time.Duration(issued)*interval)):
					case <-arrivalsCtx.Done():
						break loop
					}
				}
			}
		}
		tick.Stop()
		close(queue)
		el := time.Since(start)
		booked := acked.Load()
		drained := make(chan struct{})
		go func() { wg.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(o.drain):
			s.prog.logf("baseline drain: answers still due after %s; they count as in flight", o.drain)
			cancelRun()
			<-drained
		}
		br.Seconds = el.Seconds()
		br.BookingsAcked = booked
	}
	if o.closed {
		br.Seconds = time.Since(start).Seconds()
		br.BookingsAcked = acked.Load()
	}
	br.LoadAtEnd = loadAvg()
	stopPolls()
	pollWG.Wait()
	br.BookingsPerSec = float64(br.BookingsAcked) / br.Seconds
	br.Book, br.Poll = summarize(bookH), summarize(pollH)
	br.Errors, br.Refused, br.Unknown = errs, refused.Load(), unknown.Load()
	br.Polls = polls.Load()
	br.PollsPerSec = float64(br.Polls) / br.Seconds

	// The same check as slotd's: every acknowledged booking present as
	// told, none unacknowledged, no overlap.
	if o.check {
		s.prog.phase("baseline: checking")
		in := make([]tenantCheck, len(tenants))
		var failed []violation
		var fmu sync.Mutex
		_ = parallel(context.WithoutCancel(ctx), len(tenants), o.setupConc, func(ctx context.Context, i int) error {
			t := tenants[i]
			bs, _, err := a.bookings(ctx, t.id)
			if err != nil {
				fmu.Lock()
				failed = append(failed, violation{vCheckFailed, t.id, err.Error()})
				fmu.Unlock()
				return nil
			}
			in[i] = baselineTenantCheck(t, bs)
			return nil
		})
		rep := checkBookings(in)
		rep.Violations = append(rep.Violations, failed...)
		rep.Passed = len(rep.Violations) == 0
		listed, _ := summarizeViolations(rep.Violations)
		rep.Violations = listed
		if rep.Violations == nil {
			rep.Violations = []violation{}
		}
		br.Check = rep
	} else {
		br.Check.Passed = true
	}
	br.Compare = compareBaseline(&s.res, br)
	return br, nil
}

func baselineTenantCheck(t *tenantRun, bs []booking) tenantCheck {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := tenantCheck{ID: t.id, Capacity: t.capacity, Acked: map[string][]bookingState{}, UnknownKeys: map[string]bool{},
		Ignore: t.preexisting, Server: bs}
	for id, e := range t.ledger {
		tc.Acked[id] = append([]bookingState(nil), e.Expect...)
	}
	for k := range t.unknownBooks {
		tc.UnknownKeys[k] = true
	}
	return tc
}

// compareBaseline puts slotd's figures next to the baseline's.
func compareBaseline(r *result, br *baselineResult) baselineComparison {
	c := baselineComparison{SlotdBookingsPerSec: r.Run.BookingsPerSec, BaselineBookingsPerSec: br.BookingsPerSec,
		SlotdP50: r.Ops["book"].Latency.P50, BaselineP50: br.Book.P50, SlotdP99: r.Ops["book"].Latency.P99, BaselineP99: br.Book.P99}
	if c.BaselineBookingsPerSec > 0 {
		c.Ratio = c.SlotdBookingsPerSec / c.BaselineBookingsPerSec
	}
	c.P99EqualOrBetter = c.SlotdP99 > 0 && c.SlotdP99 <= c.BaselineP99
	c.TargetMet = c.Ratio >= 5 && c.P99EqualOrBetter
	if w := r.Params["mix"]; w != nil && fmt.Sprint(w) != "book=100" {
		c.Note = fmt.Sprintf("slotd ran the mix %v, the baseline its books only; compare with -mix book=100 for the same work", w)
	}
	return c
}

// writeBaselineTable prints the comparison.
func writeBaselineTable(w io.Writer, br *baselineResult) {
	c := br.Compare
	fmt.Fprintf(w, "\nbaseline (bench/baseline: PostgreSQL, one transaction per booking, EXCLUDE USING gist; availability by polling)\n")
	fmt.Fprintf(w, "  workload: %s; %d HTTP requests in flight at most\n", br.Workload, br.Conns)
	fmt.Fprintf(w, "  %-10s %14s %10s %10s\n", "", "bookings/s", "p50 ms", "p99 ms")
	fmt.Fprintf(w, "  %-10s %14.1f %10.2f %10.2f\n", "slotd", c.SlotdBookingsPerSec, c.SlotdP50, c.SlotdP99)
	fmt.Fprintf(w, "  %-10s %14.1f %10.2f %10.2f\n", "baseline", c.BaselineBookingsPerSec, c.BaselineP50, c.BaselineP99)
	fmt.Fprintf(w, "  ratio (slotd/baseline bookings/s): %.2f×; slotd p99 equal or better: %v; target ≥ 5× at equal or better p99: %v\n",
		c.Ratio, c.P99EqualOrBetter, c.TargetMet)
	fmt.Fprintf(w, "  baseline: %d acked, %d refused (%s), %d unknown; %d polls (%.0f/s, p99 %.2f ms)\n",
		br.BookingsAcked, br.Refused, codes(br.Errors), br.Unknown, br.Polls, br.PollsPerSec, br.Poll.P99)
	verdict := "PASSED"
	if !br.Check.Passed {
		verdict = fmt.Sprintf("FAILED (%d violations)", len(br.Check.Violations))
	}
	fmt.Fprintf(w, "  machine: load average %.1f at the baseline's start, %.1f at its end\n", br.LoadAtStart, br.LoadAtEnd)
	fmt.Fprintf(w, "  baseline check: %s — %d acked checked, %d bookings in the server\n", verdict, br.Check.AckedChecked, br.Check.ServerBookings)
	if c.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", c.Note)
	}
}

// setBaseline records the baseline's run in the result and its target.
func (s *sim) setBaseline(br *baselineResult) {
	s.res.baseline = br
	if b, err := json.Marshal(br); err == nil {
		s.res.Baseline = b
	}
	c := br.Compare
	s.res.Targets = append(s.res.Targets, targetEval{Name: "bookings/s vs the PostgreSQL baseline, at equal or better p99",
		Want: "≥ 5×", Got: c.Ratio, Unit: "×", Pass: c.TargetMet,
		Note: fmt.Sprintf("slotd %.0f/s p99 %.2f ms; baseline %.0f/s p99 %.2f ms", c.SlotdBookingsPerSec, c.SlotdP99,
			c.BaselineBookingsPerSec, c.BaselineP99)})
}
