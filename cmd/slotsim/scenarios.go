package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// lifetimes of the connections: viewers outlive the booking clients, for
// the convergence check.
type lifetimes struct {
	clients, viewers         context.Context
	stopClients, stopViewers context.CancelFunc
	clientWG, viewerWG       sync.WaitGroup
	stopSampler              context.CancelFunc
	samplerDone              chan struct{}
}

func (s *sim) begin() *lifetimes {
	l := &lifetimes{samplerDone: make(chan struct{})}
	l.clients, l.stopClients = context.WithCancel(context.Background())
	l.viewers, l.stopViewers = context.WithCancel(context.Background())
	var sctx context.Context
	sctx, l.stopSampler = context.WithCancel(context.Background())
	go s.sampler(sctx, l.samplerDone)
	return l
}

// end stops everything still running.
func (l *lifetimes) end() {
	l.stopClients()
	l.clientWG.Wait()
	l.stopViewers()
	l.viewerWG.Wait()
	l.stopSampler()
	<-l.samplerDone
}

// runLoad is smoke, steady and soak: clients and viewers, then the load.
func (s *sim) runLoad(ctx context.Context) error {
	l := s.begin()
	defer l.end()
	if err := s.connectClients(ctx, s.o.clients); err != nil {
		return err
	}
	startConns(l.clients, &l.clientWG, s.clients)
	if err := s.connectViewersAndRun(ctx, l, s.o.viewers); err != nil {
		return err
	}
	return s.loadPhase(ctx, l)
}

func (s *sim) connectViewersAndRun(ctx context.Context, l *lifetimes, n int) error {
	if n == 0 {
		return nil
	}
	if err := s.connectViewers(ctx, n); err != nil {
		return err
	}
	startConns(l.viewers, &l.viewerWG, s.viewerConns())
	return s.waitSubscribed(ctx)
}

func (s *sim) waitSubscribed(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for _, v := range s.viewers {
			if _, ok := v.view(); ok {
				ready++
			}
		}
		if ready == len(s.viewers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d viewers subscribed within 60 s", ready, len(s.viewers))
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loadPhase issues arrivals for -duration (with chaos if asked), drains,
// waits for quiet and checks.
func (s *sim) loadPhase(ctx context.Context, l *lifetimes) error {
	o := &s.o
	s.running.Store(true)
	loopCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var bg sync.WaitGroup
	if o.chaosEvery > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.chaos(loopCtx)
		}()
	}
	if o.pprofURL != "" {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.fetchProfiles(loopCtx, o.duration/4, max(1, min(int(o.duration.Seconds()/2), 30)))
		}()
	}
	if !o.closed && len(s.clients) > 0 {
		if capacity := float64(len(s.clients)) * o.connRate; o.rate > 0.8*capacity {
			s.prog.logf("warning: -rate %.0f is more than 80%% of what %d clients may send at -conn-rate %.0f (%.0f/s): "+
				"requests will queue in slotsim and count as latency; use at least %.0f clients",
				o.rate, len(s.clients), o.connRate, capacity, math.Ceil(o.rate/(0.8*o.connRate)))
		}
	}
	mode := fmt.Sprintf("open loop, %.0f arrivals/s", o.rate)
	if o.closed {
		mode = "closed loop"
	}
	s.prog.phase(fmt.Sprintf("running %s for %s (%s)", o.scenario, o.duration, mode))
	start := time.Now()
	s.res.Run.StartT = start.Sub(s.rec.start).Seconds()
	if o.closed {
		s.closedLoop(loopCtx)
	} else {
		s.openLoop(loopCtx, start)
	}
	el := time.Since(start)
	booked := s.rec.bookings.Load()
	s.running.Store(false)
	bg.Wait()
	s.res.Run.Seconds = el.Seconds()
	s.res.Run.EndT = time.Since(s.rec.start).Seconds()
	s.res.Run.BookingsAcked = booked
	s.res.Run.BookingsPerSec = float64(booked) / el.Seconds()
	if ctx.Err() != nil {
		s.prog.logf("interrupted: checking what was done so far")
	}
	s.prog.phase("draining")
	s.drainClients()
	l.stopClients()
	l.clientWG.Wait()
	return s.endPhase(ctx)
}

// endPhase waits for quiet and runs the invariant check.
func (s *sim) endPhase(ctx context.Context) error {
	if !s.o.check {
		return nil
	}
	time.Sleep(s.o.quiet)
	s.prog.phase("checking invariants")
	return s.finalCheck(context.WithoutCancel(ctx))
}

// runFanout measures the server's memory per idle connection, then the
// delivery latency of every change to every viewer.
func (s *sim) runFanout(ctx context.Context) error {
	l := s.begin()
	defer l.end()
	fr := &fanoutResult{Viewers: s.o.viewers}
	s.res.Fanout = fr
	time.Sleep(1500 * time.Millisecond)
	m0, err := s.api.metrics(ctx)
	if err != nil {
		return fmt.Errorf("fanout needs the server's /metrics: %w", err)
	}
	if err := s.connectViewersAndRun(ctx, l, s.o.viewers); err != nil {
		return err
	}
	s.prog.phase("idle: measuring memory per connection")
	time.Sleep(5 * time.Second)
	m1, err := s.api.metrics(ctx)
	if err != nil {
		return err
	}
	n := float64(s.o.viewers)
	fr.Idle = idleMemory{RSSBeforeMiB: m0.RSS / (1 << 20), RSSAfterMiB: m1.RSS / (1 << 20),
		RSSPerConnKiB: (m1.RSS - m0.RSS) / n / 1024, HeapPerConnKiB: (m1.HeapInuse - m0.HeapInuse) / n / 1024,
		GoroutinesPerConn: (m1.Goroutines - m0.Goroutines) / n, ServerConns: m1.Conns}
	s.prog.logf("idle: %.1f KiB RSS, %.1f KiB heap, %.1f goroutines per viewer connection",
		fr.Idle.RSSPerConnKiB, fr.Idle.HeapPerConnKiB, fr.Idle.GoroutinesPerConn)
	if err := s.connectClients(ctx, s.o.clients); err != nil {
		return err
	}
	startConns(l.clients, &l.clientWG, s.clients)
	return s.loadPhase(ctx, l)
}

// runRush has every client book (or hold, then book) the same few slots at
// the same instant, for several rounds.
func (s *sim) runRush(ctx context.Context) error {
	o := &s.o
	l := s.begin()
	defer l.end()
	if err := s.connectClients(ctx, o.clients); err != nil {
		return err
	}
	startConns(l.clients, &l.clientWG, s.clients)
	if err := s.connectViewersAndRun(ctx, l, o.viewers); err != nil {
		return err
	}
	t := s.tenants[0]
	svc := &t.services[0]
	seats := 0
	for _, r := range t.resources {
		seats += t.capacity[r]
	}
	if o.rounds*o.rushSlots > svc.slots {
		return fmt.Errorf("rush: %d rounds × %d slots exceed the %d slots of %d day(s)", o.rounds, o.rushSlots, svc.slots, o.days)
	}
	rr := &rushResult{Clients: len(s.clients), SlotsPerRound: o.rushSlots, SeatsPerSlot: seats, Op: o.rushOp}
	s.res.Rush = rr
	s.running.Store(true)
	var bg sync.WaitGroup
	if o.pprofURL != "" {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.fetchProfiles(ctx, 0, o.rounds*2+1)
		}()
	}
	runStart := time.Now()
	s.res.Run.StartT = runStart.Sub(s.rec.start).Seconds()
	for round := 0; round < o.rounds && ctx.Err() == nil; round++ {
		s.prog.phase(fmt.Sprintf("rush round %d of %d: %d clients on %d slot(s)", round+1, o.rounds, len(s.clients), o.rushSlots))
		rr.Rounds = append(rr.Rounds, s.rushRound(ctx, t, svc, round, seats))
		time.Sleep(time.Second)
	}
	el := time.Since(runStart)
	s.running.Store(false)
	bg.Wait()
	s.res.Run.Seconds = el.Seconds()
	s.res.Run.EndT = time.Since(s.rec.start).Seconds()
	s.res.Run.BookingsAcked = s.rec.bookings.Load()
	s.res.Run.BookingsPerSec = float64(s.res.Run.BookingsAcked) / el.Seconds()
	all := newHist()
	for _, r := range rr.Rounds {
		all.Merge(r.hist)
	}
	rr.Answer = summarize(all)
	s.drainClients()
	l.stopClients()
	l.clientWG.Wait()
	return s.endPhase(ctx)
}

func (s *sim) rushRound(ctx context.Context, t *tenantRun, svc *svcShape, round, seats int) rushRound {
	o := &s.o
	starts := make([]time.Time, o.rushSlots)
	for j := range starts {
		k := round*o.rushSlots + j
		starts[j] = s.day0.AddDate(0, 0, k/svc.perDay).Add(time.Duration(k%svc.perDay) * svc.step)
	}
	var (
		mu     sync.Mutex // guards h, codes and closed
		h      = newHist()
		closed bool
		codes  = map[string]int{}
		wins   = make([]atomic.Int64, o.rushSlots)
		wg     sync.WaitGroup
	)
	t0 := time.Now().Add(500 * time.Millisecond)
	for i, c := range s.clients {
		j := i % o.rushSlots
		kind, typ := opBook, "book"
		if o.rushOp == "hold" {
			kind, typ = opHold, "hold"
		}
		cl := &call{kind: kind, intended: t0, conn: c, data: &opData{t: t, noFollow: true},
			req: request{Type: typ, Service: svc.id, Start: starts[j], Idem: s.newKey()}}
		if kind == opBook {
			cl.req.Customer = "rush " + strconv.Itoa(i)
		}
		wg.Add(1)
		cl.done = func(cl *call, f *frame, oc outcome) {
			defer wg.Done()
			s.opDone(cl, f, oc)
			code := codeOf(f, oc)
			if cl.kind == opHold && code == "" && f.Hold != nil {
				// Book the hold at once, on the same connection.
				wg.Add(1)
				cl.conn.enqueue(&call{kind: opHoldBook, intended: time.Now(), conn: cl.conn, data: cl.data, done: cl.done,
					req: request{Type: "book", HoldID: f.Hold.ID, Customer: "rush " + strconv.Itoa(i), Idem: s.newKey()}})
			}
			mu.Lock()
			defer mu.Unlock()
			if closed {
				return
			}
			if cl.kind != opHoldBook && oc == answered {
				recordDur(h, time.Since(cl.intended)) // the answer that decides who gets the seat
			}
			if code == "" {
				code = "ok"
			}
			switch {
			case cl.kind != opHold:
				codes[code]++
				if code == "ok" {
					wins[j].Add(1)
				}
			case code != "ok":
				codes["hold "+code]++
			}
		}
		c.enqueue(cl)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	closed = true
	rd := rushRound{Round: round + 1, Codes: map[string]int{}, hist: h, Answer: summarize(h)}
	for k, v := range codes {
		rd.Codes[k] = v
	}
	for j := range wins {
		rd.Successes = append(rd.Successes, int(wins[j].Load()))
	}
	s.prog.logf("round %d: successes per slot %v (seats %d); answers p50 %.1f ms p99 %.1f ms max %.1f ms; %v",
		round+1, rd.Successes, seats, rd.Answer.P50, rd.Answer.P99, rd.Answer.Max, rd.Codes)
	return rd
}

// finalCheck reads the server's final state and compares it with the
// ledger and with every viewer.
func (s *sim) finalCheck(ctx context.Context) error {
	o := &s.o
	in := make([]tenantCheck, len(s.tenants))
	var failed []violation
	var fmu sync.Mutex
	_ = parallel(ctx, len(s.tenants), o.setupConc, func(ctx context.Context, i int) error {
		t := s.tenants[i]
		var (
			bs  []booking
			err error
		)
		for attempt := 0; attempt < 5; attempt++ {
			if bs, _, err = s.api.bookings(ctx, t.id); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			fmu.Lock()
			failed = append(failed, violation{vCheckFailed, t.id, fmt.Sprintf("could not read bookings: %v", err)})
			fmu.Unlock()
			return nil
		}
		t.mu.Lock()
		tc := tenantCheck{ID: t.id, Capacity: t.capacity, Acked: map[string][]bookingState{}, UnknownKeys: map[string]bool{},
			Ignore: t.preexisting, Server: bs}
		for id, e := range t.ledger {
			tc.Acked[id] = append([]bookingState(nil), e.Expect...)
		}
		for k := range t.unknownBooks {
			tc.UnknownKeys[k] = true
		}
		t.mu.Unlock()
		in[i] = tc
		return nil
	})
	rep := checkBookings(in)
	rep.Violations = append(rep.Violations, failed...)
	if s.res.Rush != nil {
		for _, r := range s.res.Rush.Rounds {
			for j, n := range r.Successes {
				if n != s.res.Rush.SeatsPerSlot {
					rep.Violations = append(rep.Violations, violation{vRush, s.tenants[0].id,
						fmt.Sprintf("round %d slot %d: %d successes for %d seats", r.Round, j, n, s.res.Rush.SeatsPerSlot)})
				}
			}
		}
	}
	s.checkViewers(ctx, &rep)
	rep.Passed = len(rep.Violations) == 0
	s.res.Check = rep
	return nil
}

// checkViewers compares each viewer with the server's availability for its
// query, re-reading until they agree or -converge passes: a hold may
// expire, and its delta may still be on its way, at the moment of a read.
func (s *sim) checkViewers(ctx context.Context, rep *checkReport) {
	if len(s.viewers) == 0 {
		return
	}
	pending := append([]*viewer(nil), s.viewers...)
	deadline := time.Now().Add(s.o.converge)
	why := map[*viewer]string{}
	for round := 0; len(pending) > 0; round++ {
		rep.ViewerRetries = round + 1
		type key struct {
			t *tenantRun
			q availQuery
		}
		server := map[key][]slot{}
		errs := map[key]error{}
		var keys []key
		for _, v := range pending {
			k := key{v.t, v.q}
			if _, ok := server[k]; !ok {
				server[k] = nil
				keys = append(keys, k)
			}
		}
		var mu sync.Mutex
		_ = parallel(ctx, len(keys), s.o.setupConc, func(ctx context.Context, i int) error {
			sl, _, err := s.api.publicAvailability(ctx, keys[i].t.link, keys[i].q)
			mu.Lock()
			server[keys[i]], errs[keys[i]] = sl, err
			mu.Unlock()
			return nil
		})
		var still []*viewer
		for _, v := range pending {
			k := key{v.t, v.q}
			if err := errs[k]; err != nil {
				why[v] = fmt.Sprintf("could not read the server's availability: %v", err)
				still = append(still, v)
				continue
			}
			view, ok := v.view()
			if !ok {
				why[v] = "not subscribed at the end of the run"
				still = append(still, v)
				continue
			}
			if eq, diff := slotsEqual(view, server[k]); !eq {
				why[v] = diff
				still = append(still, v)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	rep.ViewersChecked = len(s.viewers)
	sort.Slice(pending, func(i, j int) bool { return pending[i].idx < pending[j].idx })
	for _, v := range pending {
		rep.Violations = append(rep.Violations, violation{vViewer, v.t.id,
			fmt.Sprintf("viewer %d (%s %s–%s) did not converge within %s: %s", v.idx, v.q.Service, v.q.From, v.q.To, s.o.converge, why[v])})
	}
}

// fanoutResult is the fanout scenario's own figures.
type fanoutResult struct {
	Viewers int        `json:"viewers"`
	Idle    idleMemory `json:"idle"`
}

type idleMemory struct {
	RSSBeforeMiB      float64 `json:"rss_before_mib"`
	RSSAfterMiB       float64 `json:"rss_after_mib"`
	RSSPerConnKiB     float64 `json:"rss_per_conn_kib"`
	HeapPerConnKiB    float64 `json:"heap_inuse_per_conn_kib"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	ServerConns       float64 `json:"server_conns"`
}

// rushResult is the rush scenario's own figures.
type rushResult struct {
	Clients       int         `json:"clients"`
	SlotsPerRound int         `json:"slots_per_round"`
	SeatsPerSlot  int         `json:"seats_per_slot"`
	Op            string      `json:"op"`
	Rounds        []rushRound `json:"rounds"`
	Answer        latency     `json:"answer_latency"`
}

type rushRound struct {
	Round     int            `json:"round"`
	Successes []int          `json:"successes_per_slot"`
	Codes     map[string]int `json:"answers_by_code"`
	Answer    latency        `json:"answer_latency"`
	hist      *hdr.Histogram
}
