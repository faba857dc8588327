package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sim is one run.
type sim struct {
	o              options
	stdout, stderr io.Writer
	runID          string
	tgt            *target // nil for -target
	api            *api
	wsHTTP         *http.Client
	rec            *recorder
	pushes         pushCache // decoded push frames, shared by the viewers
	prog           *progress

	tenants   []*tenantRun
	active    []*tenantRun // tenants with booking clients, hottest first
	tenantCDF []float64
	clients   []*wsConn
	viewers   []*viewer
	day0      time.Time // midnight UTC of the first bookable day

	running   atomic.Bool  // arrivals are being issued
	followUps atomic.Int64 // holds' books and releases waiting for their think time
	viewing   atomic.Bool  // viewers resubscribe when ended

	seriesMu sync.Mutex // guards series, events, lastCPU…
	series   []second
	events   []event
	lastM    serverMetrics
	lastMAt  time.Time
	lastCPU  time.Duration
	lastMach cpuTimes
	lastRead time.Time
	peakRSS  float64

	res result
}

// event marks something on the time line (a chaos kill).
type event struct {
	T    float64 `json:"t"`
	What string  `json:"what"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "capacity" {
		return runCapacity(ctx, args[1:], getenv, stdout, stderr)
	}
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "slotsim:", err)
		return exitUsage
	}
	if o.token == "" && o.target != "" {
		o.token = getenv("SLOTD_ADMIN_TOKEN")
	}
	var idb [3]byte
	_, _ = rand.Read(idb[:])
	s := &sim{o: o, stdout: stdout, stderr: stderr, runID: hex.EncodeToString(idb[:]), rec: newRecorder()}
	s.wsHTTP = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: -1}}
	code, err := s.main(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "slotsim:", err)
		if s.tgt != nil {
			if tail := s.tgt.logTail(20); tail != "" {
				fmt.Fprintf(stderr, "slotd log (%s):\n%s\n", s.tgt.logPath, tail)
			}
		}
	}
	if s.tgt != nil {
		s.tgt.close(o.keepData)
		if o.keepData {
			fmt.Fprintf(stderr, "slotsim: kept slotd data and log in %s\n", s.tgt.dataDir)
		}
	}
	return code
}

func (s *sim) main(ctx context.Context) (int, error) {
	o := &s.o
	if o.spawn != "" {
		t, err := spawnTarget(ctx, o.spawn, o.spawnArgs, o.tenants)
		if err != nil {
			return exitUsage, err
		}
		s.tgt = t
		s.api = newAPI(t.base, t.token)
	} else {
		u, err := checkLoopback(o.target, o.allowNonLoopback)
		if err != nil {
			return exitUsage, err
		}
		if o.token == "" {
			return exitUsage, errors.New("-target needs -token (or SLOTD_ADMIN_TOKEN)")
		}
		s.api = newAPI(strings.TrimRight(u.String(), "/"), o.token)
	}
	if o.pprofURL != "" {
		if _, err := checkLoopback(o.pprofURL, o.allowNonLoopback); err != nil {
			return exitUsage, fmt.Errorf("-pprof: %w", err)
		}
	}
	if o.selfProfile != "" {
		f, err := os.Create(o.selfProfile)
		if err != nil {
			return exitUsage, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return exitUsage, err
		}
		defer pprof.StopCPUProfile()
	}
	s.prog = newProgress(s.stderr, o.progress)
	s.rec.start = time.Now()
	s.res = result{Scenario: o.scenario, Command: commandLine(), Started: time.Now().UTC(), Machine: machine(),
		Target: s.api.base, Spawned: s.tgt != nil}
	s.res.Params = paramsOf(o)
	s.res.Others.LoadAtStart = loadAvg()
	s.day0 = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, o.startDay)

	if err := s.setupTenants(ctx); err != nil {
		return exitUsage, err
	}
	var err error
	switch o.scenario {
	case "rush":
		err = s.runRush(ctx)
	case "fanout":
		err = s.runFanout(ctx)
	default:
		err = s.runLoad(ctx)
	}
	if err != nil {
		return exitUsage, err
	}
	s.finish()
	if o.baselineURL != "" || o.baselineSpawn != "" {
		br, err := s.runBaseline(ctx)
		if err != nil {
			return exitUsage, fmt.Errorf("baseline: %w", err)
		}
		s.setBaseline(br)
	}
	if err := s.output(); err != nil {
		return exitUsage, err
	}
	if o.check && !s.res.Check.Passed {
		return exitViolation, nil
	}
	if o.check && s.res.baseline != nil && !s.res.baseline.Check.Passed {
		return exitViolation, nil
	}
	return exitOK, nil
}

func commandLine() string {
	args := make([]string, 0, len(os.Args))
	for _, a := range os.Args {
		if strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// wsURL is the WebSocket endpoint with a query.
func (s *sim) wsURL(query string) string {
	u, _ := url.Parse(s.api.base)
	scheme := "ws"
	if u.Scheme == "https" {
		scheme = "wss"
	}
	return scheme + "://" + u.Host + "/v1/ws?" + query
}

// tenantConfigFor is the configuration of a simulated tenant: every
// resource open round the clock every day (UTC), so every slot on the grid
// is bookable.
func (s *sim) tenantConfigFor(i int) tenantConfig {
	o := &s.o
	week := map[string][]rangeCfg{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []rangeCfg{{Start: "00:00", End: "24:00"}}
	}
	cfg := tenantConfig{Name: fmt.Sprintf("slotsim tenant %d", i), TimeZone: "UTC", HoldTTLSec: o.holdTTLSec}
	var ids []string
	for r := 0; r < o.resources; r++ {
		id := fmt.Sprintf("r%d", r)
		ids = append(ids, id)
		cfg.Resources = append(cfg.Resources, resourceCfg{ID: id, Name: "Resource " + id, Kind: "staff", TimeZone: "UTC",
			Capacity: o.capacity, Weekly: week})
	}
	for v := 0; v < o.services; v++ {
		id := fmt.Sprintf("s%d", v)
		cfg.Services = append(cfg.Services, serviceCfg{ID: id, Name: "Service " + id, DurationMin: o.durationMin,
			BufferAfterMin: o.bufferMin, StepMin: o.durationMin, HorizonDays: 60, Resources: ids})
	}
	return cfg
}

// setupTenants creates the tenants (or reads the existing ones) through
// the public API, with -setup-concurrency requests in flight.
func (s *sim) setupTenants(ctx context.Context) error {
	o := &s.o
	var ids []string
	if o.existing != "" {
		for _, id := range strings.Split(o.existing, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	} else {
		for i := 0; i < o.tenants; i++ {
			ids = append(ids, fmt.Sprintf("sim-%s-%d", s.runID, i))
		}
	}
	s.tenants = make([]*tenantRun, len(ids))
	for i, id := range ids {
		s.tenants[i] = newTenantRun(i, id)
	}
	start := time.Now()
	s.prog.phase(fmt.Sprintf("setting up %d tenants", len(ids)))
	err := parallel(ctx, len(ids), o.setupConc, func(ctx context.Context, i int) error {
		t := s.tenants[i]
		var (
			v   tenantView
			err error
		)
		if o.existing != "" {
			v, err = s.api.tenant(ctx, t.id)
			if err == nil && v.Config == nil {
				err = errors.New("tenant has no configuration")
			}
			if err == nil {
				var bs []booking
				if bs, _, err = s.api.bookings(ctx, t.id); err == nil {
					for _, b := range bs {
						t.preexisting[b.ID] = true
					}
				}
			}
		} else {
			cfg := s.tenantConfigFor(i)
			v, err = s.api.createTenant(ctx, t.id, cfg)
			v.Config = &cfg
		}
		if err != nil {
			return fmt.Errorf("tenant %s: %w", t.id, err)
		}
		s.shapeTenant(t, v)
		return nil
	})
	if err != nil {
		return err
	}
	el := time.Since(start)
	s.res.Setup.Tenants = len(ids)
	s.res.Setup.TenantSeconds = el.Seconds()
	s.res.Setup.TenantsPerSec = float64(len(ids)) / el.Seconds()
	s.prog.logf("set up %d tenants in %.1fs (%.0f/s)", len(ids), el.Seconds(), s.res.Setup.TenantsPerSec)
	return nil
}

// shapeTenant derives the slot grid slotsim books on from a tenant's
// configuration.
func (s *sim) shapeTenant(t *tenantRun, v tenantView) {
	o := &s.o
	t.link = v.Link
	for _, r := range v.Config.Resources {
		t.resources = append(t.resources, r.ID)
		t.capacity[r.ID] = r.Capacity
	}
	for _, sv := range v.Config.Services {
		step := sv.StepMin
		if step == 0 {
			step = sv.DurationMin
		}
		perDay := 24 * 60 / step
		if perDay*step+sv.DurationMin > 24*60 { // the last start must end by midnight
			perDay--
		}
		perDay = max(perDay, 1)
		shape := svcShape{id: sv.ID, resources: sv.Resources, step: time.Duration(step) * time.Minute, perDay: perDay, slots: perDay * o.days}
		if len(shape.resources) == 0 {
			shape.resources = t.resources
		}
		rng := mrand.New(mrand.NewPCG(uint64(o.seed), uint64(t.idx)))
		shape.perm = make([]int32, shape.slots)
		for i, p := range rng.Perm(shape.slots) {
			shape.perm[i] = int32(p)
		}
		shape.zipfCDF = zipfCDF(shape.slots, o.zipfSlot)
		t.services = append(t.services, shape)
	}
	svc := "s0"
	if len(t.services) > 0 {
		svc = t.services[0].id
	}
	t.viewQuery = availQuery{Service: svc, From: s.day0.Format("2006-01-02"),
		To: s.day0.AddDate(0, 0, o.viewDays).Format("2006-01-02"), TZ: "UTC"}
}

// parallel runs fn(0..n-1) with at most conc at once; the first error
// stops it.
func parallel(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	for w := 0; w < min(conc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// assignClients binds booking clients to tenants: one each while they
// last, the rest in proportion to each tenant's Zipf weight, so that a hot
// tenant gets more connections rather than exceeding slotd's per-connection
// message rate.
func (s *sim) assignClients(n int) []*tenantRun {
	T := len(s.tenants)
	out := make([]*tenantRun, 0, n)
	if n <= T {
		if n < T {
			s.prog.logf("warning: %d clients for %d tenants: only the first %d tenants get traffic", n, T, n)
		}
		for i := 0; i < n; i++ {
			out = append(out, s.tenants[i])
		}
		return out
	}
	out = append(out, s.tenants...)
	extra := n - T
	cdf := zipfCDF(T, s.o.zipf)
	prev := 0.0
	given := 0
	for i := 0; i < T && given < extra; i++ {
		w := 1.0 / float64(T)
		if cdf != nil {
			w = cdf[i] - prev
			prev = cdf[i]
		}
		k := int(math.Round(w * float64(extra)))
		for j := 0; j < k && given < extra; j++ {
			out = append(out, s.tenants[i])
			given++
		}
	}
	for i := 0; given < extra; i, given = i+1, given+1 {
		out = append(out, s.tenants[i%T])
	}
	return out
}

// connectClients opens the booking clients' WebSockets (operator token,
// bound to their tenant with ?tenant=).
func (s *sim) connectClients(ctx context.Context, n int) error {
	if n == 0 {
		return nil
	}
	owners := s.assignClients(n)
	hdr := http.Header{"Authorization": {"Bearer " + s.api.token}}
	s.clients = make([]*wsConn, n)
	for i, t := range owners {
		c := s.newConn(i, t, s.wsURL("tenant="+url.QueryEscape(t.id)), hdr)
		s.clients[i] = c
		t.conns = append(t.conns, c)
	}
	seen := map[*tenantRun]bool{}
	s.active = s.active[:0]
	for _, t := range owners {
		if !seen[t] {
			seen[t] = true
			s.active = append(s.active, t)
		}
	}
	s.tenantCDF = zipfCDF(len(s.active), s.o.zipf)
	return s.dialAll(ctx, "clients", s.clients)
}

// connectViewers opens the viewers' public WebSockets (?link=), spread over
// tenants by the same Zipf weights.
func (s *sim) connectViewers(ctx context.Context, n int) error {
	if n == 0 {
		return nil
	}
	rng := mrand.New(mrand.NewPCG(uint64(s.o.seed), 0x71e3))
	cdf := zipfCDF(len(s.tenants), s.o.zipf)
	conns := make([]*wsConn, n)
	for i := 0; i < n; i++ {
		t := s.tenants[i%len(s.tenants)]
		if n < len(s.tenants) || cdf != nil {
			t = s.tenants[pickRank(rng, len(s.tenants), cdf)]
		}
		t.viewers++
		v := s.newViewer(i, t)
		s.viewers = append(s.viewers, v)
		conns[i] = v.c
	}
	s.viewing.Store(true)
	return s.dialAll(ctx, "viewers", conns)
}

// dialAll makes every connection's first handshake with -dial-concurrency
// in flight, measuring handshake latency and rate, then starts them.
func (s *sim) dialAll(ctx context.Context, what string, conns []*wsConn) error {
	s.prog.phase(fmt.Sprintf("connecting %d %s", len(conns), what))
	start := time.Now()
	var failed atomic.Int64
	var lastErr atomic.Value
	err := parallel(ctx, len(conns), s.o.dialConc, func(ctx context.Context, i int) error {
		c := conns[i]
		for attempt := 0; ; attempt++ {
			t0 := time.Now()
			ws, err := c.dial(ctx)
			if err == nil {
				s.rec.connect.record(i, time.Since(t0))
				c.ws = ws
				return nil
			}
			failed.Add(1)
			lastErr.Store(err.Error())
			if attempt >= 4 || ctx.Err() != nil {
				return fmt.Errorf("connect %s %d: %w", what, i, err)
			}
			time.Sleep(100 * time.Millisecond << attempt)
		}
	})
	el := time.Since(start)
	st := connectStats{What: what, Count: len(conns), Seconds: el.Seconds(), PerSec: float64(len(conns)) / el.Seconds(),
		Retries: failed.Load()}
	if e, ok := lastErr.Load().(string); ok {
		st.LastError = e
	}
	s.res.Setup.Connects = append(s.res.Setup.Connects, st)
	s.prog.logf("connected %d %s in %.1fs (%.0f/s, %d retries)", len(conns), what, el.Seconds(), st.PerSec, st.Retries)
	return err
}

// startConns runs each connection until ctx ends.
func startConns(ctx context.Context, wg *sync.WaitGroup, conns []*wsConn) {
	for _, c := range conns {
		wg.Add(1)
		go func(c *wsConn) {
			defer wg.Done()
			c.run(ctx)
		}(c)
	}
}

func (s *sim) viewerConns() []*wsConn {
	out := make([]*wsConn, len(s.viewers))
	for i, v := range s.viewers {
		out[i] = v.c
	}
	return out
}

// sampler records a point of the time series every -sample-every, with the
// server's memory and CPU, and redraws the progress line.
func (s *sim) sampler(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(s.o.sampleEvery)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.sample(ctx, now, now.Sub(last))
			last = now
		}
	}
}

func (s *sim) sample(ctx context.Context, now time.Time, dt time.Duration) {
	pt := s.rec.tick(now, dt)
	// Local CPU counters are read together, and divided by the time
	// between reads (the scrape below may take a while under load).
	cpu, mach, readAt := processCPU(), machineCPU(), time.Now()
	mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	m, err := s.api.metrics(mctx)
	scrapedAt := time.Now()
	cancel()
	s.seriesMu.Lock()
	if !s.lastRead.IsZero() {
		el := readAt.Sub(s.lastRead).Seconds()
		pt.ClientCPU = (cpu - s.lastCPU).Seconds() / el
		if mach.ok && s.lastMach.ok {
			pt.MachineCPU = (mach.busy - s.lastMach.busy).Seconds() / el
			pt.IOWait = (mach.iowait - s.lastMach.iowait).Seconds() / el
			pt.SoftIRQ = (mach.softirq - s.lastMach.softirq).Seconds() / el
		}
	}
	s.lastCPU, s.lastMach, s.lastRead = cpu, mach, readAt
	now = scrapedAt
	pt.Load = loadAvg()
	if err == nil {
		pt.ServerRSS = m.RSS / (1 << 20)
		pt.ServerHeap = m.HeapInuse / (1 << 20)
		pt.Conns = m.Conns
		if !s.lastMAt.IsZero() && m.CPU >= s.lastM.CPU {
			el := now.Sub(s.lastMAt).Seconds()
			pt.ServerCPU = (m.CPU - s.lastM.CPU) / el
			if dn := m.CommitN - s.lastM.CommitN; dn > 0 {
				pt.CommitMs = (m.CommitSum - s.lastM.CommitSum) / dn * 1000
				pt.CommitsPS = dn / el
			}
			if dn := m.BatchN - s.lastM.BatchN; dn > 0 {
				pt.BatchMean = (m.BatchSum - s.lastM.BatchSum) / dn
			}
		}
		s.lastM, s.lastMAt = m, now
		s.peakRSS = math.Max(s.peakRSS, m.RSS)
	} else {
		s.lastMAt = time.Time{}
	}
	s.series = append(s.series, pt)
	s.seriesMu.Unlock()
	s.prog.point(pt, s.rec, s.o.duration)
}

// chaos kills slotd with SIGKILL and restarts it every -chaos-kill-every
// until ctx ends; it returns only with slotd up.
func (s *sim) chaos(ctx context.Context) {
	tick := time.NewTicker(s.o.chaosEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		s.addEvent("kill -9")
		if err := s.tgt.restart(context.Background()); err != nil {
			s.prog.logf("chaos: restart failed: %v", err)
			s.addEvent("restart failed")
			return
		}
		s.res.Chaos.Kills++
		s.res.Chaos.RestartSeconds = append(s.res.Chaos.RestartSeconds, time.Since(t0).Seconds())
		s.prog.logf("chaos: killed and restarted slotd in %.2fs", time.Since(t0).Seconds())
	}
}

func (s *sim) addEvent(what string) {
	s.seriesMu.Lock()
	s.events = append(s.events, event{T: time.Since(s.rec.start).Seconds(), What: what})
	s.seriesMu.Unlock()
}

// drainClients waits until no answer is due or -drain passes.
func (s *sim) drainClients() {
	deadline := time.Now().Add(s.o.drain)
	for time.Now().Before(deadline) {
		busy := s.followUps.Load()
		for _, c := range s.clients {
			busy += c.inflight.Load() // queued, being sent, or awaiting an answer
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.prog.logf("drain: answers still due after %s; they count as in flight", s.o.drain)
}
