package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK        = 0
	exitViolation = 1 // the invariant check failed
	exitUsage     = 2 // bad flags, or the run could not be set up
)

var scenarios = []string{"smoke", "steady", "rush", "fanout", "soak"}

// options are every knob of a run. A scenario sets the defaults; flags
// override them.
type options struct {
	scenario string
	set      map[string]bool // the flags given on the command line

	// target
	target, token    string
	spawn, spawnArgs string
	keepData         bool
	allowNonLoopback bool
	existing         string

	// tenants
	tenants, resources, services, capacity int
	durationMin, bufferMin, holdTTLSec     int
	startDay, days, viewDays               int

	// workload
	clients, viewers int
	rate             float64
	closed           bool
	mixSpec          string
	mix              mix
	zipf, zipfSlot   float64
	think            time.Duration
	duration         time.Duration
	seed             int64
	anyResource      float64
	holdBook         float64
	connRate         float64
	dialConc         int
	setupConc        int

	// rush
	rounds, rushSlots int
	rushOp            string

	// end of run
	drain, quiet, converge time.Duration
	check                  bool

	// chaos
	chaosEvery time.Duration

	// output
	sampleEvery time.Duration
	jsonPath    string
	reportPath  string
	svgDir      string
	svgPrefix   string
	progress    string
	pprofURL    string
	profileDir  string
	selfProfile string // slotsim's own CPU profile

	// baseline (bench/baseline: PostgreSQL + EXCLUDE), run after slotd
	baselineURL   string        // a running baseline
	baselineSpawn string        // or a baseline binary to start
	baselineArgs  string        // its flags (default -pgtest)
	baselineConns int           // open loop: HTTP requests in flight at most
	baselinePoll  time.Duration // each viewer polls availability this often
}

// preset returns the defaults of a scenario.
func preset(name string) (options, error) {
	o := options{
		scenario: name, resources: 3, services: 2, capacity: 1, durationMin: 30, holdTTLSec: 30,
		startDay: 2, days: 7, viewDays: 1, mixSpec: "book=70,hold=10,cancel=10,reschedule=5,browse=5",
		think: 200 * time.Millisecond, seed: 1, anyResource: 0.3, holdBook: 0.6, connRate: 15,
		dialConc: 128, setupConc: 32, rounds: 3, rushSlots: 1, rushOp: "book",
		drain: 20 * time.Second, quiet: 2 * time.Second, converge: 15 * time.Second, check: true,
		sampleEvery: time.Second, progress: "auto",
		baselineArgs: "-pgtest", baselineConns: 64, baselinePoll: time.Second,
	}
	switch name {
	case "smoke":
		o.tenants, o.clients, o.viewers, o.rate, o.duration = 3, 12, 6, 60, 3*time.Second
		o.quiet = time.Second
	case "steady":
		o.tenants, o.clients, o.viewers, o.rate, o.duration = 10000, 10000, 500, 20000, 30*time.Second
		o.mixSpec = "book=80,hold=5,cancel=10,reschedule=3,browse=2"
	case "rush":
		o.tenants, o.resources, o.services, o.clients, o.viewers = 1, 1, 1, 5000, 0
		o.days, o.mixSpec, o.duration = 1, "book=100", 0
	case "fanout":
		o.tenants, o.resources, o.services, o.clients, o.viewers, o.rate, o.duration = 1, 10, 1, 8, 10000, 10, 30*time.Second
		o.days, o.viewDays, o.mixSpec = 1, 1, "book=60,cancel=40"
	case "soak":
		o.tenants, o.clients, o.viewers, o.rate, o.duration = 1000, 1000, 200, 2000, 10*time.Minute
		o.days, o.mixSpec = 30, "book=50,hold=10,cancel=35,reschedule=3,browse=2"
	default:
		return o, fmt.Errorf("unknown scenario %q: want one of %s", name, strings.Join(scenarios, ", "))
	}
	return o, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: slotsim SCENARIO [flags]
       slotsim capacity [flags] -- SCENARIO [flags]

scenarios:
  smoke   a few tenants for a few seconds; what the tests run
  steady  many tenants at a moderate, open-loop rate
  rush    thousands of clients race for a few slots of one tenant
  fanout  thousands of viewers of one tenant; delivery latency of each change
  soak    long and steady; server memory and CPU over time

capacity runs smoke, steady or soak once per rate, ascending, and reports the
highest acknowledged bookings/s slotd (and the baseline) sustain at a book p99
bound.

Run "slotsim SCENARIO -h" for the flags with that scenario's defaults,
"slotsim capacity -h" for capacity's.
`)
}

// parseArgs reads "SCENARIO [flags]".
func parseArgs(args []string, stderr io.Writer) (options, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return options{}, flag.ErrHelp
		}
		return options{}, errors.New("name a scenario first")
	}
	o, err := preset(args[0])
	if err != nil {
		usage(stderr)
		return o, err
	}
	fs := flag.NewFlagSet("slotsim "+o.scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// target
	fs.StringVar(&o.target, "target", "", "base URL of a running slotd, e.g. http://127.0.0.1:8080 (loopback only)")
	fs.StringVar(&o.token, "token", "", "operator token of -target (default $SLOTD_ADMIN_TOKEN)")
	fs.StringVar(&o.spawn, "spawn", "", "path of a slotd binary to start on a temporary data directory (instead of -target)")
	fs.StringVar(&o.spawnArgs, "spawn-args", "", "extra flags for the spawned slotd, space-separated")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the spawned slotd's data directory and log")
	fs.BoolVar(&o.allowNonLoopback, "allow-nonloopback", false, "allow a -target outside 127.0.0.0/8 and ::1 (this project only ever uses loopback)")
	fs.StringVar(&o.existing, "existing", "", "comma-separated ids of existing tenants to drive instead of creating -tenants new ones")
	// tenants
	fs.IntVar(&o.tenants, "tenants", o.tenants, "tenants to create")
	fs.IntVar(&o.resources, "resources", o.resources, "resources per tenant (open 00:00–24:00 every day, UTC)")
	fs.IntVar(&o.services, "services", o.services, "services per tenant (each delivered by every resource)")
	fs.IntVar(&o.capacity, "capacity", o.capacity, "capacity of each resource")
	fs.IntVar(&o.durationMin, "service-min", o.durationMin, "service duration and slot step in minutes")
	fs.IntVar(&o.bufferMin, "buffer-min", o.bufferMin, "buffer after each service in minutes")
	fs.IntVar(&o.holdTTLSec, "hold-ttl", o.holdTTLSec, "tenants' hold TTL in seconds (10–3600)")
	fs.IntVar(&o.startDay, "start-day", o.startDay, "first bookable day, in days after today (UTC)")
	fs.IntVar(&o.days, "days", o.days, "days of slots clients book in")
	fs.IntVar(&o.viewDays, "view-days", o.viewDays, "days of availability each viewer subscribes to (from -start-day)")
	// workload
	fs.IntVar(&o.clients, "clients", o.clients, "booking clients: one WebSocket each, bound to one tenant")
	fs.IntVar(&o.viewers, "viewers", o.viewers, "viewers: one public WebSocket each, subscribed to a tenant's availability")
	fs.Float64Var(&o.rate, "rate", o.rate, "open-loop arrivals per second across all clients")
	fs.BoolVar(&o.closed, "closed", o.closed, "closed loop: each client sends, waits for the answer, thinks, repeats (ignores -rate)")
	fs.StringVar(&o.mixSpec, "mix", o.mixSpec, "operation mix, weights of book, hold, cancel, reschedule, browse")
	fs.Float64Var(&o.zipf, "zipf", o.zipf, "Zipf exponent of tenant choice (0: uniform; 1.1: one hot tenant)")
	fs.Float64Var(&o.zipfSlot, "zipf-slot", o.zipfSlot, "Zipf exponent of slot choice within a tenant (0: uniform)")
	fs.DurationVar(&o.think, "think", o.think, "think time: between a hold and its book or release; between closed-loop requests")
	fs.DurationVar(&o.duration, "duration", o.duration, "how long arrivals run")
	fs.Int64Var(&o.seed, "seed", o.seed, "random seed (tenant ids also vary per run)")
	fs.Float64Var(&o.anyResource, "any-resource", o.anyResource, "share of books and holds that let slotd pick the resource")
	fs.Float64Var(&o.holdBook, "hold-book", o.holdBook, "share of holds followed by a book (the rest are released)")
	fs.Float64Var(&o.connRate, "conn-rate", o.connRate, "messages per second each connection sends at most (slotd allows 20, burst 40)")
	fs.IntVar(&o.dialConc, "dial-concurrency", o.dialConc, "WebSocket handshakes in flight while connecting")
	fs.IntVar(&o.setupConc, "setup-concurrency", o.setupConc, "HTTP requests in flight during set-up and the final check")
	// rush
	fs.IntVar(&o.rounds, "rounds", o.rounds, "rush: rounds, each on fresh slots")
	fs.IntVar(&o.rushSlots, "rush-slots", o.rushSlots, "rush: slots raced for per round")
	fs.StringVar(&o.rushOp, "rush-op", o.rushOp, "rush: book, or hold (then book the hold)")
	// end of run
	fs.DurationVar(&o.drain, "drain", o.drain, "after arrivals stop, how long to wait for answers still due")
	fs.DurationVar(&o.quiet, "quiet", o.quiet, "quiet period before comparing viewers with the server")
	fs.DurationVar(&o.converge, "converge", o.converge, "how long viewers may take to converge to the server's availability")
	fs.BoolVar(&o.check, "check", o.check, "run the invariant check at the end")
	// chaos
	fs.DurationVar(&o.chaosEvery, "chaos-kill-every", 0, "with -spawn: kill -9 and restart slotd this often during the run")
	// output
	fs.DurationVar(&o.sampleEvery, "sample-every", o.sampleEvery, "how often to sample the server's /metrics")
	fs.StringVar(&o.jsonPath, "json", "", "write the result as JSON to this file")
	fs.StringVar(&o.reportPath, "report", "", "write a self-contained HTML report with SVG plots to this file")
	fs.StringVar(&o.svgDir, "svg-dir", "", "also write each plot as an SVG file into this directory")
	fs.StringVar(&o.svgPrefix, "svg-prefix", "", "file name prefix of -svg-dir plots (default slotsim-SCENARIO)")
	fs.StringVar(&o.progress, "progress", o.progress, "live progress on stderr: auto (a line that redraws on a terminal, every 5 s otherwise), on (every sample when not a terminal), off")
	fs.StringVar(&o.pprofURL, "pprof", "", "base URL of the target's net/http/pprof (loopback), e.g. http://127.0.0.1:6060/debug/pprof; fetches CPU and alloc profiles")
	fs.StringVar(&o.profileDir, "profile-dir", ".", "where -pprof profiles are written")
	fs.StringVar(&o.selfProfile, "cpuprofile", "", "write slotsim's own CPU profile to this file (to see what the simulator costs)")
	// baseline
	fs.StringVar(&o.baselineURL, "baseline", "", "base URL of a running bench/baseline (loopback) to run the same booking workload against after slotd")
	fs.StringVar(&o.baselineSpawn, "baseline-spawn", "", "path of a bench/baseline binary to start (with -baseline-args) instead of -baseline URL")
	fs.StringVar(&o.baselineArgs, "baseline-args", o.baselineArgs, "flags of the spawned baseline, space-separated: -pgtest (a throwaway cluster) or -database-url URL, -pool N")
	fs.IntVar(&o.baselineConns, "baseline-conns", o.baselineConns, "open loop: baseline HTTP requests in flight at most (closed loop: one per client)")
	fs.DurationVar(&o.baselinePoll, "baseline-poll", o.baselinePoll, "each viewer polls the baseline's availability this often (it has no push)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: slotsim %s [flags]\n\nflags (defaults are those of %s):\n", o.scenario, o.scenario)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var err error
	if o.mix, err = parseMix(o.mixSpec); err != nil {
		return err
	}
	if (o.target == "") == (o.spawn == "") {
		return errors.New("give exactly one of -target URL or -spawn BINARY")
	}
	if o.chaosEvery > 0 && o.spawn == "" {
		return errors.New("-chaos-kill-every needs -spawn: slotsim only kills a slotd it started")
	}
	if o.baselineURL != "" || o.baselineSpawn != "" {
		switch {
		case o.baselineURL != "" && o.baselineSpawn != "":
			return errors.New("give at most one of -baseline URL and -baseline-spawn BINARY")
		case o.baselineURL != "" && !strings.HasPrefix(o.baselineURL, "http://") && !strings.HasPrefix(o.baselineURL, "https://"):
			return errors.New("-baseline wants the http:// URL of a running bench/baseline (or use -baseline-spawn)")
		case o.scenario == "rush" || o.scenario == "fanout":
			return errors.New("-baseline compares booking throughput: use it with smoke, steady or soak")
		case o.existing != "":
			return errors.New("-baseline creates its own tenants: it does not go with -existing")
		case o.capacity != 1:
			return errors.New("-baseline models capacity 1 (one exclusion constraint per resource)")
		case o.baselineConns < 1 || o.baselinePoll <= 0:
			return errors.New("-baseline-conns must be at least 1 and -baseline-poll positive")
		}
	}
	switch {
	case o.existing == "" && o.tenants < 1:
		return errors.New("-tenants must be at least 1")
	case o.resources < 1 || o.resources > 500, o.services < 1 || o.services > 500:
		return errors.New("-resources and -services must be 1–500")
	case o.capacity < 1:
		return errors.New("-capacity must be at least 1")
	case o.durationMin < 5 || o.durationMin > 24*60:
		return errors.New("-service-min must be 5–1440")
	case o.holdTTLSec < 10 || o.holdTTLSec > 3600:
		return errors.New("-hold-ttl must be 10–3600")
	case o.startDay < 1 || o.days < 1 || o.startDay+o.days > 58:
		return errors.New("-start-day ≥ 1, -days ≥ 1, and start-day+days ≤ 58 (the services' 60-day horizon)")
	case o.viewDays < 1 || o.viewDays > 31:
		return errors.New("-view-days must be 1–31")
	case o.clients < 1 && o.scenario != "fanout":
		return errors.New("-clients must be at least 1")
	case o.viewers < 0:
		return errors.New("-viewers must not be negative")
	case !o.closed && o.rate <= 0 && o.scenario != "rush":
		return errors.New("-rate must be positive (or use -closed)")
	case o.connRate <= 0 || o.connRate > 20:
		return errors.New("-conn-rate must be in (0, 20]: slotd closes connections that keep exceeding 20 messages/s")
	case o.dialConc < 1 || o.setupConc < 1:
		return errors.New("-dial-concurrency and -setup-concurrency must be at least 1")
	case o.zipf < 0 || o.zipfSlot < 0:
		return errors.New("-zipf and -zipf-slot must not be negative")
	case o.rushOp != "book" && o.rushOp != "hold":
		return errors.New("-rush-op must be book or hold")
	case o.rounds < 1 || o.rushSlots < 1:
		return errors.New("-rounds and -rush-slots must be at least 1")
	case o.progress != "auto" && o.progress != "on" && o.progress != "off":
		return errors.New("-progress must be auto, on or off")
	}
	if o.scenario != "rush" && o.duration <= 0 {
		return errors.New("-duration must be positive")
	}
	if o.svgPrefix == "" {
		o.svgPrefix = "slotsim-" + o.scenario
	}
	return nil
}

// opKind is one kind of request slotsim sends.
type opKind int

const (
	opBook opKind = iota
	opHold
	opHoldBook // book of a hold placed earlier
	opRelease
	opCancel
	opReschedule
	opBrowse // subscribe to availability (the snapshot is the answer)
	opUnsubscribe
	opView // a viewer's subscribe
	nOps
)

var opNames = [nOps]string{"book", "hold", "hold_book", "release", "cancel", "reschedule", "browse", "unsubscribe", "view"}

func (k opKind) String() string { return opNames[k] }

// mix is the weight of each operation an arrival may start.
type mix struct {
	weights [nOps]float64
	total   float64
}

var mixable = map[string]opKind{"book": opBook, "hold": opHold, "cancel": opCancel, "reschedule": opReschedule, "browse": opBrowse}

func parseMix(s string) (mix, error) {
	var m mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		k, known := mixable[strings.TrimSpace(name)]
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || !known || err != nil || w < 0 {
			names := make([]string, 0, len(mixable))
			for n := range mixable {
				names = append(names, n)
			}
			sort.Strings(names)
			return m, fmt.Errorf("-mix %q: want NAME=WEIGHT,… with NAME one of %s", s, strings.Join(names, ", "))
		}
		m.weights[k] += w
		m.total += w
	}
	if m.total <= 0 {
		return m, fmt.Errorf("-mix %q: no positive weight", s)
	}
	return m, nil
}

// pick maps u in [0,1) to an operation.
func (m mix) pick(u float64) opKind {
	x := u * m.total
	for k := opKind(0); k < nOps; k++ {
		if x < m.weights[k] {
			return k
		}
		x -= m.weights[k]
	}
	return opBook
}

func (m mix) String() string {
	var parts []string
	for k := opKind(0); k < nOps; k++ {
		if m.weights[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g", k, m.weights[k]))
		}
	}
	return strings.Join(parts, ",")
}
