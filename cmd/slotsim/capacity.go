package main

// slotsim capacity: the highest acknowledged bookings/s slotd — and, with
// -baseline-spawn or -baseline, the PostgreSQL baseline — sustains while its
// book p99 stays at or under a bound. Comparing two systems at one offered
// rate cannot show "≥ 5× the baseline's bookings/s at an equal or better
// p99": while both keep up the ratio is 1 by construction. So this runs the
// scenario once per rate, in ascending order, and takes for each system the
// best rate at which it still met the bound.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// capMinServed is the share of the offered books a system must answer with
// a booking or a slot_taken (a correct refusal: the slot was gone) for a
// step to hold. Below it the system is shedding load (overloaded, errors),
// whatever its latency.
const capMinServed = 0.9

// capDefaultRates is the default ladder of offered rates (arrivals/s).
const capDefaultRates = "500,1000,2000,3000,4000,6000,8000"

// capOptions are capacity's own flags and the scenario it drives.
type capOptions struct {
	bound     time.Duration
	rates     []float64
	jsonPath  string
	svgDir    string
	svgPrefix string
	stepsDir  string
	repeat    int      // runs per rate
	scenario  []string // SCENARIO [flags], without -rate
	o         options  // the scenario's options, parsed once to refuse nonsense early
}

// capSystem is one system's figures at one step.
type capSystem struct {
	OfferedBookRate float64          `json:"offered_book_arrivals_per_sec"`
	BookingsPerSec  float64          `json:"bookings_acked_per_sec"`
	SlotTaken       int64            `json:"books_slot_taken"`
	Served          float64          `json:"served_share"` // (booked + slot_taken) / offered books
	P50             float64          `json:"book_p50_ms"`
	P99             float64          `json:"book_p99_ms"`
	Errors          int64            `json:"book_errors"` // book answers other than a booking or slot_taken
	ErrorsByCode    map[string]int64 `json:"book_errors_by_code,omitempty"`
	Unknown         int64            `json:"unknown_outcome"`
	CheckPassed     bool             `json:"check_passed"`
	Violations      int              `json:"violations"`
	Holds           bool             `json:"holds"`
	WhyNot          []string         `json:"why_not,omitempty"`
	// With -repeat: every run's book p99 (ms, in run order) and how many
	// runs held. The figures above are then the median run's (by p99),
	// and Holds says whether more than half of the runs held.
	P99Runs  []float64 `json:"book_p99_runs_ms,omitempty"`
	RunsHeld *int      `json:"runs_held,omitempty"` // set only with several runs, 0 included
}

// capStep is one rate of the sweep.
type capStep struct {
	Rate     float64    `json:"offered_rate"`
	Seconds  float64    `json:"seconds"` // wall time of the whole step (set-up, run, check)
	Exit     int        `json:"exit_code"`
	Error    string     `json:"error,omitempty"`
	Load     float64    `json:"load_avg_at_start"`
	Slotd    capSystem  `json:"slotd"`
	Baseline *capSystem `json:"baseline"`
}

// checkFailed reports whether the run ended and a system's invariant
// check failed.
func (r *capStep) checkFailed() bool {
	return r.Error == "" && (!r.Slotd.CheckPassed || (r.Baseline != nil && !r.Baseline.CheckPassed))
}

// capValue is one system's capacity.
type capValue struct {
	BookingsPerSec float64 `json:"bookings_acked_per_sec"` // 0: no step held
	AtRate         float64 `json:"at_offered_rate,omitempty"`
	P99            float64 `json:"book_p99_ms,omitempty"`
	// LowerBound: the system still held at the highest rate run, so its
	// capacity may be higher.
	LowerBound bool `json:"lower_bound"`
}

// capConclusion is what the sweep found.
type capConclusion struct {
	Slotd     capValue  `json:"slotd"`
	Baseline  *capValue `json:"baseline"`
	Ratio     float64   `json:"ratio"` // slotd / baseline capacity; 0 when there is none
	TargetMet bool      `json:"five_x_at_the_p99_bound"`
	Verdict   string    `json:"verdict"`
}

// capacityResult is the -json file.
type capacityResult struct {
	Command      string        `json:"command"`
	Started      time.Time     `json:"started"`
	Machine      machineInfo   `json:"machine"`
	Scenario     []string      `json:"scenario_args"`
	P99BoundMs   float64       `json:"p99_bound_ms"`
	MinServed    float64       `json:"min_served_share"`
	Rates        []float64     `json:"rates"`
	Repeat       int           `json:"repeat"` // runs per rate
	Steps        []capStep     `json:"steps"`
	Stopped      string        `json:"stopped,omitempty"` // why the sweep ended before the last rate
	Seconds      float64       `json:"seconds"`
	Conclusion   capConclusion `json:"conclusion"`
	ChecksPassed bool          `json:"checks_passed"`
}

func capUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `usage: slotsim capacity [flags] -- SCENARIO [scenario flags]

Runs SCENARIO (smoke, steady or soak; with -spawn, a fresh slotd per run)
once per rate (-repeat times with -repeat), in ascending order, and
reports the highest acknowledged bookings/s slotd — and with
-baseline-spawn/-baseline the PostgreSQL baseline — sustains while its
book p99 ≤ -p99. A step holds for a system
when its book p99 ≤ the bound, it answered ≥ 90%% of the books offered to it
with a booking or slot_taken, no outcome was left unknown and its invariant
check passed; with -repeat, when more than half of its runs held, the
median run (by book p99) giving the figures, and never when a check
failed. The sweep stops once every system failed two steps in a row.

flags:
`)
	fs.PrintDefaults()
}

// parseCapacity reads "capacity [flags] -- SCENARIO [flags]".
func parseCapacity(args []string, stderr io.Writer) (capOptions, error) {
	var c capOptions
	var rates string
	fs := flag.NewFlagSet("slotsim capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.bound, "p99", 20*time.Millisecond, "bound on the book p99 (from intended send time)")
	fs.StringVar(&rates, "rates", capDefaultRates, "offered arrival rates per second, ascending, comma-separated")
	fs.StringVar(&c.jsonPath, "json", "", "write the steps and the conclusion as JSON to this file")
	fs.StringVar(&c.svgDir, "svg-dir", "", "write the plots (p99 and bookings/s against offered rate) into this directory")
	fs.StringVar(&c.svgPrefix, "svg-prefix", "slotsim-capacity", "file name prefix of -svg-dir plots")
	fs.StringVar(&c.stepsDir, "steps-dir", "", "keep each step's table (.txt) and JSON result here")
	fs.IntVar(&c.repeat, "repeat", 1, "runs per rate, each on a fresh instance (1–9): a rate holds for a system when more than half of its runs hold, and the median run (by book p99) gives its figures")
	fs.Usage = func() { capUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.scenario = fs.Args()
	if len(c.scenario) == 0 {
		fs.Usage()
		return c, errors.New("capacity: name a scenario after --, e.g. -- steady -spawn /tmp/slotd")
	}
	if c.bound <= 0 {
		return c, errors.New("capacity: -p99 must be positive")
	}
	if c.repeat < 1 || c.repeat > 9 {
		return c, fmt.Errorf("capacity: -repeat %d: between 1 and 9 runs per rate", c.repeat)
	}
	var err error
	if c.rates, err = parseRates(rates); err != nil {
		return c, err
	}
	switch c.scenario[0] {
	case "smoke", "steady", "soak":
	default:
		return c, fmt.Errorf("capacity drives smoke, steady or soak (an open-loop booking workload), not %q", c.scenario[0])
	}
	o, err := parseArgs(c.scenario, stderr)
	if err != nil {
		return c, fmt.Errorf("capacity: scenario: %w", err)
	}
	for _, f := range []struct{ name, why string }{
		{"rate", "capacity sets -rate itself, from -rates"},
		{"closed", "capacity offers open-loop rates; a closed loop ignores them"},
		{"json", "use capacity's own -json (and -steps-dir for each step's JSON)"},
		{"report", "each step would overwrite it; use -steps-dir for each step's JSON"},
		{"svg-dir", "use capacity's own -svg-dir"},
		{"svg-prefix", "use capacity's own -svg-prefix"},
	} {
		if o.set[f.name] {
			return c, fmt.Errorf("capacity: -%s inside the scenario: %s", f.name, f.why)
		}
	}
	if !o.check {
		return c, errors.New("capacity: -check=false inside the scenario: capacity counts only steps whose invariant check passed")
	}
	if o.mix.weights[opBook] <= 0 {
		return c, fmt.Errorf("capacity: the -mix %s has no books to measure", o.mix)
	}
	if top := c.rates[len(c.rates)-1]; o.clients > 0 && top > 0.8*float64(o.clients)*o.connRate {
		return c, fmt.Errorf("capacity: -rates up to %g/s need at least %.0f clients at -conn-rate %g (this scenario has %d): "+
			"beyond 80%% of what the clients may send, requests queue in slotsim", top, math.Ceil(top/(0.8*o.connRate)), o.connRate, o.clients)
	}
	c.o = o
	return c, nil
}

// parseRates reads "500,1000,2000": positive and strictly ascending.
func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		r, err := strconv.ParseFloat(part, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return nil, fmt.Errorf("capacity: -rates %q: %q is not a positive number", s, part)
		}
		if len(out) > 0 && r <= out[len(out)-1] {
			return nil, fmt.Errorf("capacity: -rates %q must be strictly ascending", s)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("capacity: -rates %q: no rate", s)
	}
	return out, nil
}

// judge decides whether a step holds for one system: book p99 within the
// bound, at least capMinServed of the offered books answered with a booking
// or slot_taken, no outcome unknown, the invariant check passed.
func (s *capSystem) judge(bound time.Duration) {
	boundMs := float64(bound) / float64(time.Millisecond)
	s.WhyNot = nil
	switch {
	case s.P99 <= 0:
		s.WhyNot = append(s.WhyNot, "no book answered")
	case s.P99 > boundMs:
		s.WhyNot = append(s.WhyNot, fmt.Sprintf("p99 %.2f ms > %.2f ms", s.P99, boundMs))
	}
	if !(s.Served >= capMinServed) { // also when NaN
		s.WhyNot = append(s.WhyNot, fmt.Sprintf("served %.0f%% of the books offered (< %.0f%%)", 100*s.Served, 100*capMinServed))
	}
	if s.Unknown > 0 {
		s.WhyNot = append(s.WhyNot, fmt.Sprintf("%d outcomes unknown", s.Unknown))
	}
	if !s.CheckPassed {
		s.WhyNot = append(s.WhyNot, "invariant check failed")
	}
	s.Holds = len(s.WhyNot) == 0
}

// served is (booked + slot_taken) / offered, over a run of the given seconds.
func served(booked, slotTaken int64, offeredRate, seconds float64) float64 {
	if offeredRate <= 0 || seconds <= 0 {
		return 0
	}
	return float64(booked+slotTaken) / (offeredRate * seconds)
}

// slotdSystem extracts slotd's figures from a step's result.
func slotdSystem(r *result, offeredBookRate float64) capSystem {
	book := r.Ops["book"]
	s := capSystem{OfferedBookRate: offeredBookRate, BookingsPerSec: r.Run.BookingsPerSec, SlotTaken: book.Errors["slot_taken"],
		P50: book.Latency.P50, P99: book.Latency.P99, Unknown: r.Run.Unknown, CheckPassed: r.Check.Passed,
		Violations: len(r.Check.Violations)}
	s.ErrorsByCode = otherErrors(book.Errors, &s.Errors)
	// Books answered in the run (book.OK also counts answers during the
	// drain, which is fine: an answer is an answer; latency judges lateness).
	s.Served = served(book.OK, s.SlotTaken, s.OfferedBookRate, r.Run.Seconds)
	return s
}

// baselineSystem extracts the baseline's figures.
func baselineSystem(br *baselineResult) capSystem {
	s := capSystem{OfferedBookRate: br.BookRate, BookingsPerSec: br.BookingsPerSec, SlotTaken: br.Errors["slot_taken"],
		P50: br.Book.P50, P99: br.Book.P99, Unknown: br.Unknown, CheckPassed: br.Check.Passed, Violations: len(br.Check.Violations)}
	s.ErrorsByCode = otherErrors(br.Errors, &s.Errors)
	s.Served = served(br.BookingsAcked, s.SlotTaken, s.OfferedBookRate, br.Seconds)
	return s
}

// otherErrors is errs without slot_taken, and their total.
func otherErrors(errs map[string]int64, total *int64) map[string]int64 {
	var out map[string]int64
	for code, n := range errs {
		if code == "slot_taken" || n == 0 {
			continue
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[code] = n
		*total += n
	}
	return out
}

// capShouldStop: every system failed the last two steps, so higher rates
// would only fail too.
func capShouldStop(steps []capStep, withBaseline bool) bool {
	n := len(steps)
	if n < 2 {
		return false
	}
	for _, st := range steps[n-2:] {
		if st.Slotd.Holds || (withBaseline && st.Baseline != nil && st.Baseline.Holds) {
			return false
		}
	}
	return true
}

// capConclude takes each system's capacity — the highest acknowledged
// bookings/s among the steps that held for it — and their ratio.
func capConclude(steps []capStep, withBaseline bool, bound time.Duration) capConclusion {
	pick := func(get func(*capStep) *capSystem) capValue {
		var v capValue
		for i := range steps {
			s := get(&steps[i])
			if s == nil || !s.Holds {
				continue
			}
			if s.BookingsPerSec > v.BookingsPerSec {
				v = capValue{BookingsPerSec: s.BookingsPerSec, AtRate: steps[i].Rate, P99: s.P99}
			}
		}
		if n := len(steps); n > 0 {
			if s := get(&steps[n-1]); s != nil && s.Holds {
				v.LowerBound = true
			}
		}
		return v
	}
	c := capConclusion{Slotd: pick(func(s *capStep) *capSystem { return &s.Slotd })}
	if !withBaseline {
		c.Verdict = "no baseline in this sweep: slotd's capacity only"
		return c
	}
	b := pick(func(s *capStep) *capSystem { return s.Baseline })
	c.Baseline = &b
	target := fmt.Sprintf("≥ 5× the baseline's bookings/s at book p99 ≤ %s", bound)
	switch {
	case b.BookingsPerSec <= 0 && c.Slotd.BookingsPerSec <= 0:
		c.Verdict = "inconclusive: neither system held at any rate tried; try lower -rates or a larger -p99"
		return c
	case b.BookingsPerSec <= 0:
		c.Verdict = "inconclusive: the baseline held at no rate tried (slotd did); add lower -rates to measure it"
		return c
	}
	c.Ratio = c.Slotd.BookingsPerSec / b.BookingsPerSec
	switch {
	case c.Slotd.LowerBound && b.LowerBound:
		c.Verdict = "inconclusive: both systems still held at the highest rate tried; add higher -rates"
	case c.Ratio >= 5 && b.LowerBound:
		c.Verdict = "inconclusive: the baseline still held at the highest rate, so the ratio may be lower; add higher -rates"
	case c.Ratio >= 5:
		c.TargetMet = true
		c.Verdict = "met: " + target
	case c.Slotd.LowerBound:
		c.Verdict = "inconclusive: slotd still held at the highest rate, so the ratio may be higher; add higher -rates"
	default:
		c.Verdict = "not met: " + target
	}
	return c
}

// prefixWriter prefixes each line written to w (a step's own messages).
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	mid    bool // inside a line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if !p.mid {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.mid = c != '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// runCapacity is "slotsim capacity".
func runCapacity(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseCapacity(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "slotsim:", err)
		return exitUsage
	}
	withBaseline := c.o.baselineURL != "" || c.o.baselineSpawn != ""
	bookShare := c.o.mix.weights[opBook] / c.o.mix.total
	dir := c.stepsDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "slotsim-capacity-"); err != nil {
			fmt.Fprintln(stderr, "slotsim:", err)
			return exitUsage
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "slotsim:", err)
		return exitUsage
	}
	res := capacityResult{Command: commandLine(), Started: time.Now().UTC(), Machine: machine(), Scenario: c.scenario,
		P99BoundMs: float64(c.bound) / float64(time.Millisecond), MinServed: capMinServed, Rates: c.rates, Repeat: c.repeat, Steps: []capStep{}}
	t0 := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "slotsim capacity [+%4.0fs]: %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, a...))
	}
	code := exitOK
	violated := false // some run's invariant check failed
	for i, rate := range c.rates {
		if ctx.Err() != nil {
			res.Stopped = "interrupted"
			break
		}
		tag := fmt.Sprintf("%d/%d %s/s", i+1, len(c.rates), fmtRate(rate))
		st := capStep{Rate: rate, Load: loadAvg()}
		began := time.Now()
		var runs []capStep
		for k := range c.repeat {
			runTag := tag
			name := fmt.Sprintf("step-%02d-%s", i+1, fmtRate(rate))
			if c.repeat > 1 {
				runTag = fmt.Sprintf("%s run %d/%d", tag, k+1, c.repeat)
				name += fmt.Sprintf("-run%d", k+1)
			}
			logf("step %s: starting", runTag)
			r, err := c.runStep(ctx, dir, name, rate, bookShare, withBaseline, getenv, stderr)
			if err != nil {
				fmt.Fprintln(stderr, "slotsim:", err)
				return exitUsage
			}
			if c.repeat > 1 && r.Error == "" {
				logf("step %s: %s (%.0f s)", runTag, stepSummary(&r), r.Seconds)
			}
			runs = append(runs, r)
			if r.Error != "" || ctx.Err() != nil {
				break
			}
		}
		for _, r := range runs {
			if r.checkFailed() {
				violated = true
			}
		}
		if c.repeat > 1 && len(runs) < c.repeat && runs[len(runs)-1].Error == "" {
			res.Stopped = fmt.Sprintf("interrupted during step %s after %d of %d runs (the step is left out)", tag, len(runs), c.repeat)
			break
		}
		combineRuns(&st, runs, c.bound)
		st.Seconds = time.Since(began).Seconds()
		res.Steps = append(res.Steps, st)
		logf("step %s: %s (%.0f s)", tag, stepSummary(&st), st.Seconds)
		if st.Error != "" {
			res.Stopped = "step " + tag + ": " + st.Error
			code = exitUsage
			break
		}
		if i < len(c.rates)-1 && capShouldStop(res.Steps, withBaseline) {
			res.Stopped = "every system failed two steps in a row"
			logf("stopping: %s", res.Stopped)
			break
		}
	}
	if res.Stopped == "" && ctx.Err() != nil {
		res.Stopped = "interrupted"
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Conclusion = capConclude(res.Steps, withBaseline, c.bound)
	// A violation outranks a step that could not be set up afterwards.
	res.ChecksPassed = !violated
	if violated {
		code = exitViolation
	}
	writeCapacityTable(stdout, &res, withBaseline)
	if err := writeCapacityFiles(&c, &res, withBaseline); err != nil {
		fmt.Fprintln(stderr, "slotsim:", err)
		return exitUsage
	}
	return code
}

// runStep runs the scenario once at rate and reads its result, judged.
func (c *capOptions) runStep(ctx context.Context, dir, name string, rate, bookShare float64, withBaseline bool,
	getenv func(string) string, stderr io.Writer) (capStep, error) {
	jsonPath := filepath.Join(dir, name+".json")
	stepArgs := append(append([]string(nil), c.scenario...), "-rate", fmtRate(rate), "-json", jsonPath)
	if !c.o.set["progress"] {
		stepArgs = append(stepArgs, "-progress", "off")
	}
	var out io.Writer = io.Discard
	if c.stepsDir != "" {
		f, err := os.Create(filepath.Join(dir, name+".txt"))
		if err != nil {
			return capStep{}, err
		}
		defer f.Close()
		out = f
	}
	st := capStep{Rate: rate, Load: loadAvg()}
	began := time.Now()
	st.Exit = run(ctx, stepArgs, getenv, out, &prefixWriter{w: stderr, prefix: "  | "})
	st.Seconds = time.Since(began).Seconds()
	if st.Exit == exitUsage {
		st.Error = "the run could not be set up or failed (exit 2); see its messages above"
	} else if err := readStep(jsonPath, &st, bookShare, withBaseline); err != nil {
		st.Error = err.Error()
	}
	if st.Error == "" {
		st.Slotd.judge(c.bound)
		if st.Baseline != nil {
			st.Baseline.judge(c.bound)
		}
	}
	return st, nil
}

// combineRuns makes st, one rate of the sweep, from its runs (each judged).
// One run is the step. With several, a system holds when more than half of
// its runs held, and its figures are those of its median run by book p99
// (among the runs that held, if it holds; the worse of the two middle runs
// for an even count); a failed invariant check in any run fails the step, whatever the
// others did: violations are never outvoted. A run that errored makes the
// step an error.
func combineRuns(st *capStep, runs []capStep, bound time.Duration) {
	for _, r := range runs {
		st.Exit = max(st.Exit, r.Exit)
		if r.Error != "" {
			st.Error = r.Error
		}
	}
	if st.Error != "" {
		// Keep an earlier run's failed check in the figures.
		for _, r := range runs {
			if r.checkFailed() {
				st.Slotd, st.Baseline = r.Slotd, r.Baseline
				break
			}
		}
		return
	}
	if len(runs) == 1 {
		st.Slotd, st.Baseline = runs[0].Slotd, runs[0].Baseline
		return
	}
	pick := func(get func(*capStep) *capSystem) *capSystem {
		all := make([]*capSystem, 0, len(runs))
		for i := range runs {
			if s := get(&runs[i]); s != nil {
				all = append(all, s)
			}
		}
		if len(all) == 0 {
			return nil
		}
		p99s := make([]float64, len(all))
		held, checked, violations := 0, true, 0
		for i, s := range all {
			p99s[i] = s.P99
			if s.Holds {
				held++
			}
			if !s.CheckPassed {
				checked = false
				violations += s.Violations
			}
		}
		// The median is taken among the runs that held when most did
		// (its figures are then a holding run's), else among all.
		holds := 2*held > len(all)
		var pool []*capSystem
		for _, s := range all {
			if s.Holds || !holds {
				pool = append(pool, s)
			}
		}
		key := func(s *capSystem) float64 { // no book answered sorts last
			if s.P99 <= 0 {
				return math.Inf(1)
			}
			return s.P99
		}
		sort.SliceStable(pool, func(i, j int) bool { return key(pool[i]) < key(pool[j]) })
		out := *pool[len(pool)/2] // for an even count the upper (worse) of the two middle runs
		out.P99Runs, out.RunsHeld, out.Holds = p99s, &held, holds
		out.WhyNot = nil
		if !out.Holds {
			out.WhyNot = []string{fmt.Sprintf("%d of %d runs held (median p99 %.2f ms, bound %.2f ms)", held, len(all), out.P99,
				float64(bound)/float64(time.Millisecond))}
		}
		if !checked {
			out.CheckPassed, out.Violations, out.Holds = false, violations, false
			out.WhyNot = append(out.WhyNot, "invariant check failed")
		}
		return &out
	}
	st.Slotd = *pick(func(r *capStep) *capSystem { return &r.Slotd })
	st.Baseline = pick(func(r *capStep) *capSystem { return r.Baseline })
}

// readStep reads a step's JSON result into st.
func readStep(path string, st *capStep, bookShare float64, withBaseline bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("no result: %w", err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("result JSON: %w", err)
	}
	st.Slotd = slotdSystem(&r, st.Rate*bookShare)
	if withBaseline {
		var br *baselineResult
		if len(r.Baseline) > 0 {
			if err := json.Unmarshal(r.Baseline, &br); err != nil {
				return fmt.Errorf("baseline JSON: %w", err)
			}
		}
		if br == nil {
			return errors.New("the result has no baseline run")
		}
		s := baselineSystem(br)
		st.Baseline = &s
	}
	return nil
}

func holdsWord(s *capSystem) string {
	if s.Holds {
		return "holds"
	}
	return "fails (" + strings.Join(s.WhyNot, "; ") + ")"
}

func stepSummary(st *capStep) string {
	if st.Error != "" {
		return "error: " + st.Error
	}
	s := fmt.Sprintf("slotd %.0f bookings/s, p99 %.2f ms, %s", st.Slotd.BookingsPerSec, st.Slotd.P99, holdsWord(&st.Slotd))
	if b := st.Baseline; b != nil {
		s += fmt.Sprintf("; baseline %.0f bookings/s, p99 %.2f ms, %s", b.BookingsPerSec, b.P99, holdsWord(b))
	}
	return s
}

// shortWhy is the table's one-word reason.
func shortWhy(s *capSystem) string {
	if s.Holds {
		if s.RunsHeld != nil {
			return fmt.Sprintf("yes %d/%d", *s.RunsHeld, len(s.P99Runs))
		}
		return "yes"
	}
	var w []string
	for _, r := range s.WhyNot {
		switch {
		case strings.HasPrefix(r, "p99"), strings.HasPrefix(r, "no book"):
			w = append(w, "p99")
		case strings.HasPrefix(r, "served"):
			w = append(w, "shed")
		case strings.Contains(r, "unknown"):
			w = append(w, "unknown")
		case strings.Contains(r, "check"):
			w = append(w, "CHECK")
		case strings.Contains(r, "runs held"):
			w = append(w, fmt.Sprintf("%d/%d runs", *s.RunsHeld, len(s.P99Runs)))
		}
	}
	return "no: " + strings.Join(w, ",")
}

// p99Cell is the table's p99: with several runs, the median run's and the
// range over all of them.
func p99Cell(s *capSystem) string {
	if len(s.P99Runs) < 2 {
		return fmt.Sprintf("%.2f", s.P99)
	}
	lo, hi := s.P99Runs[0], s.P99Runs[0]
	for _, p := range s.P99Runs {
		lo, hi = min(lo, p), max(hi, p)
	}
	return fmt.Sprintf("%.2f (%.1f–%.1f)", s.P99, lo, hi)
}

func checkWord(s *capSystem) string {
	if s.CheckPassed {
		return "ok"
	}
	return fmt.Sprintf("FAILED(%d)", s.Violations)
}

func capValueString(v *capValue) string {
	if v.BookingsPerSec <= 0 {
		return "none (held at no rate tried)"
	}
	ge := ""
	if v.LowerBound {
		ge = "≥ "
	}
	return fmt.Sprintf("%s%.0f bookings/s (at %s/s offered, book p99 %.2f ms)", ge, v.BookingsPerSec, fmtRate(v.AtRate), v.P99)
}

// writeCapacityTable prints the steps and the conclusion.
func writeCapacityTable(w io.Writer, res *capacityResult, withBaseline bool) {
	fmt.Fprintf(w, "\nslotsim capacity — %s\n", strings.Join(res.Scenario, " "))
	fmt.Fprintf(w, "a step holds when book p99 ≤ %.4g ms, ≥ %.0f%% of the offered books are answered with a booking or slot_taken, "+
		"no outcome is unknown and the check passes\n", res.P99BoundMs, 100*res.MinServed)
	if res.Repeat > 1 {
		fmt.Fprintf(w, "%d runs per rate: a rate holds for a system when more than half of its runs hold (and every check passes); "+
			"the figures are its median run's by p99, with the p99 range over the runs in brackets\n", res.Repeat)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "rate/s\t|\tslotd bookings/s\tp50 ms\tp99 ms\tserved\terrors\tunknown\tcheck\tholds\t"
	if withBaseline {
		head += "|\tbaseline bookings/s\tp50 ms\tp99 ms\tserved\terrors\tunknown\tcheck\tholds\t"
	}
	fmt.Fprintln(tw, head)
	for i := range res.Steps {
		st := &res.Steps[i]
		if st.Error != "" {
			fmt.Fprintf(tw, "%s\t|\terror: %s\t\n", fmtRate(st.Rate), st.Error)
			continue
		}
		s := &st.Slotd
		line := fmt.Sprintf("%s\t|\t%.0f\t%.2f\t%s\t%.0f%%\t%d\t%d\t%s\t%s\t", fmtRate(st.Rate), s.BookingsPerSec, s.P50, p99Cell(s),
			100*s.Served, s.Errors, s.Unknown, checkWord(s), shortWhy(s))
		if b := st.Baseline; b != nil {
			line += fmt.Sprintf("|\t%.0f\t%.2f\t%s\t%.0f%%\t%d\t%d\t%s\t%s\t", b.BookingsPerSec, b.P50, p99Cell(b), 100*b.Served, b.Errors, b.Unknown,
				checkWord(b), shortWhy(b))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if res.Stopped != "" {
		fmt.Fprintf(w, "stopped: %s\n", res.Stopped)
	}
	c := &res.Conclusion
	fmt.Fprintf(w, "\ncapacity at book p99 ≤ %.4g ms (highest acknowledged bookings/s among the steps that hold):\n", res.P99BoundMs)
	fmt.Fprintf(w, "  slotd     %s\n", capValueString(&c.Slotd))
	if c.Baseline != nil {
		fmt.Fprintf(w, "  baseline  %s\n", capValueString(c.Baseline))
		if c.Ratio > 0 {
			fmt.Fprintf(w, "  ratio slotd/baseline: %.2f×\n", c.Ratio)
		}
	}
	fmt.Fprintf(w, "target ≥ 5× the baseline: %s\n", c.Verdict)
	if !res.ChecksPassed {
		fmt.Fprintln(w, "INVARIANT CHECK FAILED in at least one step (see the check column)")
	}
}

// writeCapacityFiles writes -json and the -svg-dir plots.
func writeCapacityFiles(c *capOptions, res *capacityResult, withBaseline bool) error {
	if c.jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write -json: %w", err)
		}
	}
	if c.svgDir == "" {
		return nil
	}
	if err := os.MkdirAll(c.svgDir, 0o755); err != nil {
		return err
	}
	for _, ch := range capacityCharts(res, withBaseline) {
		p := filepath.Join(c.svgDir, c.svgPrefix+"-"+ch.File+".svg")
		if err := os.WriteFile(p, []byte(ch.SVG()), 0o644); err != nil {
			return fmt.Errorf("write -svg-dir: %w", err)
		}
	}
	return nil
}

// capacityCharts plots book p99 and acknowledged bookings/s against the
// offered rate.
func capacityCharts(res *capacityResult, withBaseline bool) []*chart {
	nan := func(v float64) float64 {
		if v <= 0 {
			return math.NaN()
		}
		return v
	}
	col := func(get func(*capStep) *capSystem, f func(*capSystem) float64) (xs, ys []float64) {
		for i := range res.Steps {
			if s := get(&res.Steps[i]); s != nil && res.Steps[i].Error == "" {
				xs, ys = append(xs, res.Steps[i].Rate), append(ys, f(s))
			}
		}
		return xs, ys
	}
	slotd := func(st *capStep) *capSystem { return &st.Slotd }
	base := func(st *capStep) *capSystem { return st.Baseline }
	p99 := &chart{File: "p99", Title: fmt.Sprintf("Book p99 against offered rate (bound %.4g ms)", res.P99BoundMs),
		XLabel: "offered arrivals per second", YLabel: "book p99, ms (log)", LogY: true, YFloor: 0.1}
	x, y := col(slotd, func(s *capSystem) float64 { return nan(s.P99) })
	p99.Series = append(p99.Series, series{Name: "slotd", X: x, Y: y, Color: palette[0]})
	if withBaseline {
		x, y = col(base, func(s *capSystem) float64 { return nan(s.P99) })
		p99.Series = append(p99.Series, series{Name: "baseline (PostgreSQL)", X: x, Y: y, Color: palette[1]})
	}
	if n := len(res.Rates); n > 0 {
		p99.Series = append(p99.Series, series{Name: "p99 bound", X: []float64{res.Rates[0], res.Rates[n-1]},
			Y: []float64{res.P99BoundMs, res.P99BoundMs}, Dash: true, Color: "#888"})
	}
	bk := &chart{File: "bookings", Title: "Acknowledged bookings per second against offered rate",
		XLabel: "offered arrivals per second", YLabel: "bookings per second"}
	x, y = col(slotd, func(s *capSystem) float64 { return s.BookingsPerSec })
	bk.Series = append(bk.Series, series{Name: "slotd", X: x, Y: y, Color: palette[0]})
	if withBaseline {
		x, y = col(base, func(s *capSystem) float64 { return s.BookingsPerSec })
		bk.Series = append(bk.Series, series{Name: "baseline (PostgreSQL)", X: x, Y: y, Color: palette[1]})
	}
	x, y = col(slotd, func(s *capSystem) float64 { return s.OfferedBookRate })
	bk.Series = append(bk.Series, series{Name: "books offered", X: x, Y: y, Dash: true, Color: "#888"})
	return []*chart{p99, bk}
}
