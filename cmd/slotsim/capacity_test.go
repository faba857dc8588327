package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sys is a synthetic step result of one system that holds at a 20 ms bound.
func sys(bookingsPerSec, p99 float64) capSystem {
	return capSystem{OfferedBookRate: bookingsPerSec, BookingsPerSec: bookingsPerSec, Served: 1, P50: p99 / 4, P99: p99, CheckPassed: true}
}

func TestCapacityJudge(t *testing.T) {
	const bound = 20 * time.Millisecond
	tests := []struct {
		name  string
		edit  func(*capSystem)
		holds bool
	}{
		{"within the bound", func(*capSystem) {}, true},
		{"p99 exactly at the bound", func(s *capSystem) { s.P99 = 20 }, true},
		{"served exactly 90%", func(s *capSystem) { s.Served = 0.9 }, true},
		{"p99 over the bound", func(s *capSystem) { s.P99 = 20.01 }, false},
		{"no book answered", func(s *capSystem) { s.P99, s.P50 = 0, 0 }, false},
		{"shedding load: 85% served", func(s *capSystem) { s.Served = 0.85 }, false},
		{"served unknown (NaN)", func(s *capSystem) { s.Served = math.NaN() }, false},
		{"an outcome left unknown", func(s *capSystem) { s.Unknown = 1 }, false},
		{"invariant check failed", func(s *capSystem) { s.CheckPassed = false }, false},
	}
	for _, tc := range tests {
		s := sys(1000, 10)
		tc.edit(&s)
		s.judge(bound)
		if s.Holds != tc.holds {
			t.Errorf("%s: holds = %v (%v), want %v", tc.name, s.Holds, s.WhyNot, tc.holds)
		}
		if !s.Holds && len(s.WhyNot) == 0 {
			t.Errorf("%s: fails without a reason", tc.name)
		}
	}
}

func TestCapacityServed(t *testing.T) {
	// slot_taken is a correct answer: 80 booked + 15 taken of 100 offered.
	if got := served(80, 15, 100, 1); math.Abs(got-0.95) > 1e-9 {
		t.Errorf("served(80, 15, 100/s, 1 s) = %v, want 0.95", got)
	}
	if got := served(500, 0, 100, 10); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("served(500, 0, 100/s, 10 s) = %v, want 0.5", got)
	}
	if got := served(10, 0, 0, 1); got != 0 {
		t.Errorf("served with nothing offered = %v, want 0", got)
	}
	// Other errors are shedding, not serving.
	var n int64
	other := otherErrors(map[string]int64{"slot_taken": 7, "overloaded": 3, "x_conn_lost": 2}, &n)
	if n != 5 || other["slot_taken"] != 0 || other["overloaded"] != 3 {
		t.Errorf("otherErrors = %v (%d), want overloaded and x_conn_lost only, 5", other, n)
	}
}

// steps builds a sweep: per rate, slotd's and the baseline's (bookings/s,
// p99); a p99 of 0 for the baseline means no baseline run.
func steps(rows ...[5]float64) []capStep {
	var out []capStep
	for _, r := range rows {
		st := capStep{Rate: r[0], Slotd: sys(r[1], r[2])}
		st.Slotd.judge(20 * time.Millisecond)
		if r[4] > 0 {
			b := sys(r[3], r[4])
			b.judge(20 * time.Millisecond)
			st.Baseline = &b
		}
		out = append(out, st)
	}
	return out
}

func TestCapacityStop(t *testing.T) {
	tests := []struct {
		name     string
		steps    []capStep
		baseline bool
		stop     bool
	}{
		{"one step", steps([5]float64{500, 500, 90, 0, 0}), false, false},
		{"slotd only, failed once", steps([5]float64{500, 500, 5, 0, 0}, [5]float64{1000, 900, 90, 0, 0}), false, false},
		{"slotd only, failed twice", steps([5]float64{500, 500, 50, 0, 0}, [5]float64{1000, 900, 90, 0, 0}), false, true},
		{"slotd only, failed, held again", steps([5]float64{500, 500, 50, 0, 0}, [5]float64{1000, 1000, 9, 0, 0}), false, false},
		{"slotd failed twice, baseline still holds", steps(
			[5]float64{500, 500, 50, 500, 5}, [5]float64{1000, 900, 90, 1000, 5}), true, false},
		{"both failed twice", steps(
			[5]float64{500, 500, 50, 500, 50}, [5]float64{1000, 900, 90, 900, 90}), true, true},
		{"both failed, not in the same two steps", steps(
			[5]float64{500, 500, 50, 500, 5}, [5]float64{1000, 900, 90, 900, 90}, [5]float64{2000, 900, 90, 2000, 9}), true, false},
	}
	for _, tc := range tests {
		if got := capShouldStop(tc.steps, tc.baseline); got != tc.stop {
			t.Errorf("%s: stop = %v, want %v", tc.name, got, tc.stop)
		}
	}
}

func TestCapacityConclude(t *testing.T) {
	const bound = 20 * time.Millisecond
	t.Run("met", func(t *testing.T) {
		c := capConclude(steps(
			[5]float64{500, 495, 3, 490, 5},
			[5]float64{1000, 990, 4, 950, 40}, // the baseline misses the bound
			[5]float64{3000, 2970, 8, 1200, 900},
			[5]float64{6000, 5000, 30, 1300, 2000}, // slotd misses it too
		), true, bound)
		if c.Slotd.BookingsPerSec != 2970 || c.Slotd.AtRate != 3000 || c.Slotd.LowerBound {
			t.Errorf("slotd capacity = %+v, want 2970/s at 3000/s, bounded", c.Slotd)
		}
		if c.Baseline == nil || c.Baseline.BookingsPerSec != 490 || c.Baseline.LowerBound {
			t.Errorf("baseline capacity = %+v, want 490/s, bounded", c.Baseline)
		}
		if math.Abs(c.Ratio-2970.0/490) > 1e-9 || !c.TargetMet || !strings.HasPrefix(c.Verdict, "met") {
			t.Errorf("conclusion = %+v, want ratio 6.06 and met", c)
		}
	})
	t.Run("not met", func(t *testing.T) {
		c := capConclude(steps(
			[5]float64{500, 495, 3, 490, 5},
			[5]float64{1000, 990, 25, 980, 8},
			[5]float64{2000, 1500, 90, 1900, 15},
			[5]float64{3000, 1600, 900, 2100, 60},
		), true, bound)
		if c.Slotd.BookingsPerSec != 495 || c.Baseline.BookingsPerSec != 1900 || c.TargetMet ||
			!strings.HasPrefix(c.Verdict, "not met") || c.Ratio >= 1 {
			t.Errorf("conclusion = %+v (baseline %+v), want 495 vs 1900, not met", c, c.Baseline)
		}
	})
	t.Run("the highest holding step counts, not the last one", func(t *testing.T) {
		c := capConclude(steps(
			[5]float64{500, 495, 3, 0, 0},
			[5]float64{1000, 990, 30, 0, 0}, // a noisy miss
			[5]float64{2000, 1980, 12, 0, 0},
			[5]float64{3000, 2500, 80, 0, 0}, // more bookings/s, but over the bound
		), false, bound)
		if c.Slotd.BookingsPerSec != 1980 || c.Baseline != nil || c.TargetMet || c.Ratio != 0 {
			t.Errorf("conclusion = %+v, want slotd 1980/s and no comparison", c)
		}
	})
	t.Run("a shedding step does not count", func(t *testing.T) {
		st := steps([5]float64{500, 495, 3, 0, 0}, [5]float64{1000, 700, 5, 0, 0})
		st[1].Slotd.Served = 0.7 // 300/s refused as overloaded, fast
		st[1].Slotd.judge(bound)
		if c := capConclude(st, false, bound); c.Slotd.BookingsPerSec != 495 {
			t.Errorf("capacity = %+v, want 495 (the shedding step excluded)", c.Slotd)
		}
	})
	t.Run("ratio high but the baseline never saturated", func(t *testing.T) {
		// 6.7× — but the baseline still held at the highest rate run.
		c := capConclude(steps([5]float64{100, 100, 3, 100, 5}, [5]float64{1000, 1000, 4, 150, 5}), true, bound)
		if c.Ratio < 5 {
			t.Fatalf("ratio = %v, want ≥ 5", c.Ratio)
		}
		if c.TargetMet || !strings.HasPrefix(c.Verdict, "inconclusive") || !c.Baseline.LowerBound {
			t.Errorf("conclusion = %+v, want inconclusive: the baseline held at the last rate", c)
		}
	})
	t.Run("ratio low but slotd never saturated", func(t *testing.T) {
		c := capConclude(steps([5]float64{100, 100, 3, 100, 5}, [5]float64{200, 200, 4, 200, 50}), true, bound)
		if c.TargetMet || !strings.HasPrefix(c.Verdict, "inconclusive") || !c.Slotd.LowerBound || c.Baseline.LowerBound {
			t.Errorf("conclusion = %+v, want inconclusive: slotd held at the last rate", c)
		}
	})
	t.Run("the baseline held nowhere", func(t *testing.T) {
		c := capConclude(steps([5]float64{100, 100, 3, 100, 50}, [5]float64{200, 200, 4, 200, 90}), true, bound)
		if c.TargetMet || c.Ratio != 0 || c.Baseline.BookingsPerSec != 0 || !strings.HasPrefix(c.Verdict, "inconclusive") {
			t.Errorf("conclusion = %+v, want no ratio and inconclusive", c)
		}
	})
	t.Run("nothing held", func(t *testing.T) {
		c := capConclude(steps([5]float64{100, 100, 30, 100, 50}), true, bound)
		if c.TargetMet || c.Ratio != 0 || c.Slotd.BookingsPerSec != 0 || !strings.HasPrefix(c.Verdict, "inconclusive") {
			t.Errorf("conclusion = %+v, want nothing and inconclusive", c)
		}
	})
}

// TestCapacityCombineRuns: with -repeat a rate holds for a system when
// more than half of its runs hold; its figures are the median run's by p99;
// a failed check in any run fails the rate; an errored run errs the step.
func TestCapacityCombineRuns(t *testing.T) {
	const bound = 20 * time.Millisecond
	run := func(slotdP99, baselineP99 float64) capStep {
		st := steps([5]float64{1000, 990, slotdP99, 900, baselineP99})[0]
		st.Slotd.BookingsPerSec = 1000 - slotdP99 // tells the runs apart
		return st
	}
	t.Run("majority holds, median figures", func(t *testing.T) {
		var st capStep
		combineRuns(&st, []capStep{run(12, 25), run(30, 15), run(15, 30)}, bound)
		s := st.Slotd
		if !s.Holds || s.RunsHeld == nil || *s.RunsHeld != 2 || s.P99 != 15 || s.BookingsPerSec != 985 || !slices.Equal(s.P99Runs, []float64{12, 30, 15}) {
			t.Errorf("slotd = %+v, want held 2 of 3 with the figures of the worse middle run of the two that held (15 ms)", s)
		}
		b := st.Baseline
		if b == nil || b.Holds || b.RunsHeld == nil || *b.RunsHeld != 1 || b.P99 != 25 || shortWhy(b) != "no: 1/3 runs" {
			t.Errorf("baseline = %+v (%s), want held 1 of 3 with the 25 ms run's figures", b, shortWhy(b))
		}
		if got := p99Cell(&s); got != "15.00 (12.0–30.0)" {
			t.Errorf("p99 cell = %q", got)
		}
		if got := shortWhy(&s); got != "yes 2/3" {
			t.Errorf("holds cell = %q", got)
		}
	})
	t.Run("the median of a holding majority is a run that held", func(t *testing.T) {
		runs := []capStep{run(10, 0), run(12, 0), run(11, 0)}
		runs[2].Slotd.Served = 0.5 // fast, but shedding: does not hold
		runs[2].Slotd.judge(bound)
		var st capStep
		combineRuns(&st, runs, bound)
		if !st.Slotd.Holds || st.Slotd.Served != 1 || st.Slotd.P99 != 12 {
			t.Errorf("slotd = %+v, want held 2 of 3 with a holding run's figures (12 ms, all served)", st.Slotd)
		}
	})
	t.Run("a run that answered no book sorts last", func(t *testing.T) {
		runs := []capStep{run(30, 0), run(40, 0), run(0, 0)}
		var st capStep
		combineRuns(&st, runs, bound)
		if st.Slotd.P99 != 40 || st.Slotd.Holds || *st.Slotd.RunsHeld != 0 {
			t.Errorf("slotd = %+v, want the median 40 ms (0 = no answer, last) and 0 runs held", st.Slotd)
		}
		b, err := json.Marshal(st.Slotd)
		if err != nil || !strings.Contains(string(b), `"runs_held":0`) {
			t.Errorf("JSON %s, %v: want runs_held 0 written", b, err)
		}
	})
	t.Run("an error keeps an earlier run's failed check", func(t *testing.T) {
		runs := []capStep{run(5, 0), run(6, 0)}
		runs[0].Slotd.CheckPassed, runs[0].Slotd.Violations = false, 1
		runs[0].Slotd.judge(bound)
		runs[1].Error, runs[1].Exit = "set-up failed", exitUsage
		var st capStep
		combineRuns(&st, runs, bound)
		if st.Error == "" || st.Slotd.CheckPassed || st.Slotd.Violations != 1 {
			t.Errorf("step = %+v, want the error and run 1's failed check", st)
		}
	})
	t.Run("a failed check is not outvoted", func(t *testing.T) {
		runs := []capStep{run(5, 0), run(6, 0), run(7, 0)}
		runs[2].Slotd.CheckPassed, runs[2].Slotd.Violations = false, 3
		runs[2].Slotd.judge(bound)
		var st capStep
		combineRuns(&st, runs, bound)
		if st.Slotd.Holds || st.Slotd.CheckPassed || st.Slotd.Violations != 3 || st.Baseline != nil {
			t.Errorf("slotd = %+v, baseline %+v; want failed with 3 violations and no baseline", st.Slotd, st.Baseline)
		}
	})
	t.Run("an even count needs more than half", func(t *testing.T) {
		var st capStep
		combineRuns(&st, []capStep{run(5, 0), run(50, 0)}, bound)
		if st.Slotd.Holds || st.Slotd.P99 != 50 {
			t.Errorf("slotd = %+v, want not held (1 of 2), the worse middle run 50 ms", st.Slotd)
		}
	})
	t.Run("an errored run errs the step", func(t *testing.T) {
		bad := run(5, 0)
		bad.Error, bad.Exit = "boom", exitUsage
		var st capStep
		combineRuns(&st, []capStep{run(5, 0), bad}, bound)
		if st.Error != "boom" || st.Exit != exitUsage {
			t.Errorf("step = %+v, want the run's error", st)
		}
	})
	t.Run("one run is the step", func(t *testing.T) {
		var st capStep
		one := run(30, 0)
		combineRuns(&st, []capStep{one}, bound)
		if st.Slotd.Holds || st.Slotd.P99Runs != nil || st.Slotd.P99 != 30 {
			t.Errorf("slotd = %+v, want the run itself", st.Slotd)
		}
	})
}

func TestCapacityTableMarksAFailedCheck(t *testing.T) {
	st := steps([5]float64{100, 100, 3, 100, 5}, [5]float64{200, 200, 4, 200, 50})
	st[1].Baseline.CheckPassed, st[1].Baseline.Violations = false, 2
	st[1].Baseline.judge(20 * time.Millisecond)
	res := capacityResult{Scenario: []string{"smoke"}, P99BoundMs: 20, MinServed: capMinServed, Rates: []float64{100, 200}, Steps: st,
		ChecksPassed: false}
	res.Conclusion = capConclude(st, true, 20*time.Millisecond)
	var b bytes.Buffer
	writeCapacityTable(&b, &res, true)
	for _, want := range []string{"baseline bookings/s", "FAILED(2)", "no: p99,CHECK", "ratio slotd/baseline: 2.00×", "INVARIANT CHECK FAILED"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	charts := capacityCharts(&res, true)
	if len(charts) != 2 || !strings.Contains(charts[0].SVG(), "p99 bound") || !strings.Contains(charts[1].SVG(), "baseline") {
		t.Errorf("charts: want p99 (with the bound) and bookings/s, both with the baseline")
	}
}

func TestCapacityUsageErrors(t *testing.T) {
	sc := []string{"smoke", "-spawn", "/nonexistent/slotd"}
	tests := [][]string{
		{},                   // no scenario
		{"-p99", "20ms"},     // no scenario
		{"-p99", "0s", "--"}, // p99 not positive, and no scenario
		append([]string{"-p99", "0s", "--"}, sc...),
		append([]string{"-p99", "-5ms", "--"}, sc...),
		append([]string{"-rates", "", "--"}, sc...),
		append([]string{"-rates", "500,400", "--"}, sc...),
		append([]string{"-rates", "20,20", "--"}, sc...),
		append([]string{"-rates", "0,20", "--"}, sc...),
		append([]string{"-rates", "-20,20", "--"}, sc...),
		append([]string{"-rates", "20,abc", "--"}, sc...),
		append([]string{"-rates", "20,,40", "--"}, sc...),
		append([]string{"-rates", "20,NaN", "--"}, sc...),
		append([]string{"-repeat", "0", "--"}, sc...),
		append([]string{"-repeat", "10", "--"}, sc...),
		append([]string{"-rates", "20,40", "--"}, append(sc, "-rate", "30")...),
		append([]string{"-rates", "20,40", "--"}, append(sc, "-closed")...),
		append([]string{"-rates", "20,40", "--"}, append(sc, "-json", "x.json")...),
		append([]string{"-rates", "20,40", "--"}, append(sc, "-check=false")...),
		append([]string{"-rates", "20,40", "--"}, append(sc, "-mix", "browse=1")...),
		append([]string{"-rates", "20,1000", "--"}, sc...), // 12 smoke clients cannot send 1000/s
		{"-rates", "20,40", "--", "rush", "-spawn", "/nonexistent/slotd"},
		{"-rates", "20,40", "--", "capacity", "--", "smoke", "-spawn", "/nonexistent/slotd"},
		{"-rates", "20,40", "--", "smoke"}, // no target
		{"-rates", "20,40", "--", "smoke", "-spawn", "/x", "-nope"},
	}
	for _, args := range tests {
		var out bytes.Buffer
		args = append([]string{"capacity"}, args...)
		if code := run(context.Background(), args, func(string) string { return "" }, &out, &out); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d\n%s", args, code, exitUsage, out.String())
		}
	}
}

// TestCapacityAgainstSpawnedSlotd sweeps two tiny rates against a spawned
// slotd (a fresh one per step).
func TestCapacityAgainstSpawnedSlotd(t *testing.T) {
	bin := mustSlotd(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "capacity.json")
	res, out := mustCapacity(t, jsonPath, "-p99", "250ms", "-rates", "20,40", "-json", jsonPath, "-svg-dir", dir, "-steps-dir", filepath.Join(dir, "steps"),
		"--", "smoke", "-spawn", bin, "-duration", "2s", "-mix", "book=100")
	if len(res.Steps) != 2 || res.Steps[0].Rate != 20 || res.Steps[1].Rate != 40 {
		t.Fatalf("steps = %+v, want 20/s and 40/s\n%s", res.Steps, out)
	}
	for _, st := range res.Steps {
		if st.Exit != exitOK || !st.Slotd.CheckPassed || st.Slotd.BookingsPerSec <= 0 || st.Slotd.P99 <= 0 || st.Baseline != nil {
			t.Errorf("step %v: %+v", st.Rate, st)
		}
	}
	if c := res.Conclusion; c.Slotd.BookingsPerSec <= 0 || c.Baseline != nil || !res.ChecksPassed {
		t.Errorf("conclusion = %+v, want a positive slotd capacity and no baseline\n%s", c, out)
	}
	for _, want := range []string{"slotd bookings/s", "capacity at book p99 ≤ 250 ms", "step 2/2 40/s: starting"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"slotsim-capacity-p99.svg", "slotsim-capacity-bookings.svg", "steps/step-01-20.json", "steps/step-02-40.txt"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v, or empty", f, err)
		}
	}
}

// TestCapacityRepeatAgainstSpawnedSlotd: -repeat 2 runs the rate twice, on
// two fresh slotd, and reports both runs' p99.
func TestCapacityRepeatAgainstSpawnedSlotd(t *testing.T) {
	bin := mustSlotd(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "capacity.json")
	res, out := mustCapacity(t, jsonPath, "-p99", "250ms", "-rates", "20", "-repeat", "2", "-json", jsonPath, "-steps-dir", dir,
		"--", "smoke", "-spawn", bin, "-duration", "1s", "-mix", "book=100")
	if res.Repeat != 2 || len(res.Steps) != 1 {
		t.Fatalf("repeat %d, %d steps; want 2 and 1\n%s", res.Repeat, len(res.Steps), out)
	}
	s := res.Steps[0].Slotd
	if len(s.P99Runs) != 2 || s.P99Runs[0] <= 0 || s.P99Runs[1] <= 0 || !s.CheckPassed {
		t.Errorf("slotd = %+v, want two runs' p99 and a passed check", s)
	}
	for _, want := range []string{"step 1/1 20/s run 2/2: starting", "2 runs per rate"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"step-01-20-run1.json", "step-01-20-run2.json"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v, or empty", f, err)
		}
	}
}

// mustCapacity runs "slotsim capacity args…", which must exit 0 and write
// its JSON to jsonPath, and returns that result and the output.
func mustCapacity(t *testing.T, jsonPath string, args ...string) (capacityResult, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, append([]string{"capacity"}, args...), func(string) string { return "" }, &stdout, &stderr)
	out := stdout.String() + stderr.String()
	if code != exitOK {
		t.Fatalf("slotsim capacity exited %d, want 0:\n%s", code, out)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res capacityResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("capacity JSON: %v", err)
	}
	return res, out
}
