package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// result is everything a run measured; it is the -json file.
type result struct {
	Scenario string         `json:"scenario"`
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Machine  machineInfo    `json:"machine"`
	Target   string         `json:"target"`
	Spawned  bool           `json:"spawned"`
	Params   map[string]any `json:"params"`

	Setup struct {
		Tenants        int            `json:"tenants"`
		TenantSeconds  float64        `json:"tenant_setup_seconds"`
		TenantsPerSec  float64        `json:"tenants_per_sec"`
		Connects       []connectStats `json:"connects"`
		ConnectLatency latency        `json:"connect_latency"`
	} `json:"setup"`

	Run struct {
		StartT         float64          `json:"start_t"`
		EndT           float64          `json:"end_t"`
		Seconds        float64          `json:"seconds"`
		BookingsAcked  int64            `json:"bookings_acked"`
		BookingsPerSec float64          `json:"bookings_acked_per_sec"`
		OpsAnswered    int64            `json:"ops_answered"`
		OpsPerSec      float64          `json:"ops_answered_per_sec"`
		Unknown        int64            `json:"unknown_outcome"`
		Errors         map[string]int64 `json:"errors_by_code"`
		Stray          map[string]int64 `json:"error_frames_without_id,omitempty"`
		DialErrors     int64            `json:"redial_failures"`
		Reconnects     int64            `json:"reconnects"`
	} `json:"run"`

	Ops map[string]opResult `json:"ops"`

	Delivery *deliveryResult `json:"delivery,omitempty"`

	Fanout *fanoutResult `json:"fanout,omitempty"`
	Rush   *rushResult   `json:"rush,omitempty"`

	Server struct {
		PeakRSSMiB   float64 `json:"peak_rss_mib"`
		EndRSSMiB    float64 `json:"end_rss_mib"`
		AvgCPUCores  float64 `json:"avg_cpu_cores_during_run"`
		SubsDropped  float64 `json:"subscribers_dropped"`
		EndConns     float64 `json:"end_conns"`
		MetricsError string  `json:"metrics_error,omitempty"`
	} `json:"server"`
	Client struct {
		AvgCPUCores float64 `json:"avg_cpu_cores_during_run"`
	} `json:"slotsim"`
	// Others is what the rest of the machine did during the run: busy
	// cores beyond slotd and slotsim (other processes), and the load
	// average. A busy machine makes the figures worse than slotd's own.
	Others struct {
		AvgOtherCores  float64 `json:"avg_other_busy_cores"`
		AvgIOWaitCores float64 `json:"avg_iowait_cores"`
		AvgSoftIRQ     float64 `json:"avg_softirq_cores"`
		LoadAtStart    float64 `json:"load_avg_at_start"`
		MaxLoad        float64 `json:"max_load_avg"`
	} `json:"machine_during_run"`
	Chaos struct {
		Every          string    `json:"every,omitempty"`
		Kills          int       `json:"kills"`
		RestartSeconds []float64 `json:"restart_seconds,omitempty"`
	} `json:"chaos"`

	Series []second `json:"series"`
	Events []event  `json:"events,omitempty"`

	Check           checkReport    `json:"check"`
	ViolationCounts map[string]int `json:"violation_counts,omitempty"`
	Targets         []targetEval   `json:"targets,omitempty"`
	// Baseline is the PostgreSQL baseline's run (bench/baseline, with
	// -baseline or -baseline-spawn): the same booking workload against one
	// transaction per booking guarded by an exclusion constraint, and the
	// ratio to slotd (a baselineResult); null without one.
	Baseline json.RawMessage `json:"baseline"`
	baseline *baselineResult
}

// deliveryResult is what viewers received: availability deltas, and the
// latency from the acknowledgement of the change to its arrival.
type deliveryResult struct {
	Deltas    int64   `json:"deltas_received"`
	Matched   int64   `json:"deltas_matched_to_an_ack"`
	BeforeAck int64   `json:"deltas_before_ack"`
	Unmatched int     `json:"deltas_unmatched"`
	Resyncs   int64   `json:"resyncs"`
	SubsEnded int64   `json:"subscriptions_ended"`
	FromAck   latency `json:"ack_to_delta"`
	FromSend  latency `json:"intended_send_to_delta"`
	PerSec    float64 `json:"deliveries_per_sec"`
}

type connectStats struct {
	What      string  `json:"what"`
	Count     int     `json:"count"`
	Seconds   float64 `json:"seconds"`
	PerSec    float64 `json:"per_sec"`
	Retries   int64   `json:"retries"`
	LastError string  `json:"last_error,omitempty"`
}

// targetEval is one of the targets, as measured.
type targetEval struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Pass bool    `json:"pass"`
	Note string  `json:"note,omitempty"`
}

type machineInfo struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	MemGiB  int    `json:"mem_gib"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	Summary string `json:"summary"`
}

func machine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemGiB = (kb + 512*1024) / (1024 * 1024)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Summary = fmt.Sprintf("%d cores (%s), %d GiB RAM, %s, %s", m.Cores, m.CPU, m.MemGiB, m.Kernel, m.Go)
	return m
}

func paramsOf(o *options) map[string]any {
	p := map[string]any{
		"tenants": o.tenants, "resources": o.resources, "services": o.services, "capacity": o.capacity,
		"service_min": o.durationMin, "buffer_min": o.bufferMin, "days": o.days, "view_days": o.viewDays,
		"clients": o.clients, "viewers": o.viewers, "rate": o.rate, "closed": o.closed, "mix": o.mix.String(),
		"zipf": o.zipf, "zipf_slot": o.zipfSlot, "think": o.think.String(), "duration": o.duration.String(),
		"seed": o.seed, "any_resource": o.anyResource, "hold_book": o.holdBook, "conn_rate": o.connRate,
	}
	if o.existing != "" {
		p["existing"] = o.existing
	}
	if o.scenario == "rush" {
		p["rounds"], p["rush_slots"], p["rush_op"] = o.rounds, o.rushSlots, o.rushOp
	}
	if o.chaosEvery > 0 {
		p["chaos_kill_every"] = o.chaosEvery.String()
	}
	return p
}

// finish turns the recorder's state into the result.
func (s *sim) finish() {
	r := &s.res
	el := time.Duration(r.Run.Seconds * float64(time.Second))
	r.Ops = s.rec.opResults(el)
	r.Run.Errors = map[string]int64{}
	for name, op := range r.Ops {
		if name == opView.String() || name == opUnsubscribe.String() {
			continue
		}
		r.Run.OpsAnswered += op.OK
		for c, n := range op.Errors {
			r.Run.Errors[c] += n
			if !strings.HasPrefix(c, "x_") {
				r.Run.OpsAnswered += n
			}
		}
	}
	if el > 0 {
		r.Run.OpsPerSec = float64(r.Run.OpsAnswered) / el.Seconds()
	}
	r.Run.Unknown = s.rec.unknown.Load()
	r.Run.Stray = s.rec.strays()
	r.Run.DialErrors = s.rec.dialErrors.Load()
	r.Run.Reconnects = s.rec.reconnects.Load()
	r.Setup.ConnectLatency = summarize(s.rec.connect.merged(false))
	if s.rec.fanDeltas.Load() > 0 {
		unmatched := 0
		for _, t := range s.tenants {
			unmatched += t.unmatchedDeltas()
		}
		d := &deliveryResult{Deltas: s.rec.fanDeltas.Load(), Matched: s.rec.fanMatched.Load(), BeforeAck: s.rec.fanBefore.Load(),
			Unmatched: unmatched, Resyncs: s.rec.resyncs.Load(), SubsEnded: s.rec.subsEnded.Load(),
			FromAck: summarize(s.rec.fanAck.merged(false)), FromSend: summarize(s.rec.fanSend.merged(false))}
		if el > 0 {
			d.PerSec = float64(d.Deltas) / el.Seconds()
		}
		r.Delivery = d
	}
	s.seriesMu.Lock()
	r.Series = append([]second(nil), s.series...)
	r.Events = append([]event(nil), s.events...)
	m := s.lastM
	peak := s.peakRSS
	s.seriesMu.Unlock()
	r.Server.PeakRSSMiB = peak / (1 << 20)
	r.Server.EndRSSMiB = m.RSS / (1 << 20)
	r.Server.SubsDropped = m.Dropped
	r.Server.EndConns = m.Conns
	var cpuS, cliS, other, iow, sirq float64
	var n, nOther int
	for _, p := range r.Series {
		r.Others.MaxLoad = math.Max(r.Others.MaxLoad, p.Load)
		if p.T >= r.Run.StartT && p.T <= r.Run.EndT+0.5 {
			cliS += p.ClientCPU
			if p.ServerRSS > 0 { // the server's CPU is known for this point
				other += math.Max(0, p.MachineCPU-p.SoftIRQ-p.ServerCPU-p.ClientCPU)
				cpuS += p.ServerCPU
				nOther++
			}
			iow += p.IOWait
			sirq += p.SoftIRQ
			n++
		}
	}
	if n > 0 {
		r.Client.AvgCPUCores = cliS / float64(n)
		r.Others.AvgIOWaitCores, r.Others.AvgSoftIRQ = iow/float64(n), sirq/float64(n)
	}
	if nOther > 0 { // only samples where slotd's /metrics answered
		r.Others.AvgOtherCores, r.Server.AvgCPUCores = other/float64(nOther), cpuS/float64(nOther)
	}
	if s.o.chaosEvery > 0 {
		r.Chaos.Every = s.o.chaosEvery.String()
	}
	listed, counts := summarizeViolations(r.Check.Violations)
	r.Check.Violations, r.ViolationCounts = listed, counts
	if r.Check.Violations == nil {
		r.Check.Violations = []violation{}
	}
	r.Baseline = json.RawMessage("null")
	r.Targets = s.targets()
}

// targets evaluates the targets for this scenario.
func (s *sim) targets() []targetEval {
	r := &s.res
	o := &s.o
	var out []targetEval
	switch o.scenario {
	case "steady":
		note := ""
		if len(s.tenants) != 10000 {
			note = fmt.Sprintf("target assumes 10,000 tenants; this run had %d", len(s.tenants))
		}
		out = append(out, targetEval{Name: "acknowledged bookings/s", Want: "≥ 20000", Got: r.Run.BookingsPerSec, Unit: "/s",
			Pass: r.Run.BookingsPerSec >= 20000, Note: note})
		p99 := r.Ops["book"].Latency.P99
		out = append(out, targetEval{Name: "book p99 ack latency", Want: "≤ 20 ms", Got: p99, Unit: "ms", Pass: p99 > 0 && p99 <= 20, Note: note})
	case "rush":
		if r.Rush == nil {
			break
		}
		exact := true
		for _, rd := range r.Rush.Rounds {
			for _, n := range rd.Successes {
				exact = exact && n == r.Rush.SeatsPerSlot
			}
		}
		got := 0.0
		if exact {
			got = 1
		}
		note := ""
		if r.Rush.Clients != 5000 {
			note = fmt.Sprintf("target assumes 5,000 clients; this run had %d", r.Rush.Clients)
		}
		out = append(out, targetEval{Name: "exactly one success per seat", Want: "yes", Got: got, Unit: "bool", Pass: exact, Note: note})
		out = append(out, targetEval{Name: "rush p99 answer latency", Want: "≤ 50 ms", Got: r.Rush.Answer.P99, Unit: "ms",
			Pass: r.Rush.Answer.P99 > 0 && r.Rush.Answer.P99 <= 50, Note: note})
	case "fanout":
		note := ""
		if o.viewers != 10000 {
			note = fmt.Sprintf("target assumes 10,000 viewers; this run had %d", o.viewers)
		}
		if r.Delivery != nil {
			p99 := r.Delivery.FromAck.P99
			out = append(out, targetEval{Name: "fan-out p99 delivery (ack → delta)", Want: "≤ 100 ms", Got: p99, Unit: "ms",
				Pass: p99 <= 100, Note: note})
		} else {
			out = append(out, targetEval{Name: "fan-out p99 delivery (ack → delta)", Want: "≤ 100 ms", Unit: "ms", Note: "no deltas received"})
		}
		if r.Fanout != nil {
			kib := r.Fanout.Idle.RSSPerConnKiB
			out = append(out, targetEval{Name: "server memory per idle connection (RSS)", Want: "≤ 20 KiB", Got: kib, Unit: "KiB",
				Pass: kib <= 20, Note: note})
		}
	}
	return out
}

// output prints the table and writes the files asked for.
func (s *sim) output() error {
	s.prog.done()
	writeTable(s.stdout, &s.res)
	if s.o.jsonPath != "" {
		b, err := json.MarshalIndent(&s.res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(s.o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write -json: %w", err)
		}
	}
	charts := buildCharts(&s.res)
	if s.o.reportPath != "" {
		if err := os.WriteFile(s.o.reportPath, []byte(htmlReport(&s.res, charts)), 0o644); err != nil {
			return fmt.Errorf("write -report: %w", err)
		}
	}
	if s.o.svgDir != "" {
		if err := os.MkdirAll(s.o.svgDir, 0o755); err != nil {
			return err
		}
		for _, c := range charts {
			p := filepath.Join(s.o.svgDir, s.o.svgPrefix+"-"+c.File+".svg")
			if err := os.WriteFile(p, []byte(c.SVG()), 0o644); err != nil {
				return fmt.Errorf("write -svg-dir: %w", err)
			}
		}
	}
	return nil
}

var opOrder = []string{"book", "hold", "hold_book", "release", "cancel", "reschedule", "browse", "unsubscribe", "view"}

// writeTable prints the human summary.
func writeTable(w io.Writer, r *result) {
	if r.baseline != nil {
		defer writeBaselineTable(w, r.baseline)
	}
	p := r.Params
	fmt.Fprintf(w, "\nslotsim %s — %.1f s; %v tenants × %v resources × %v services; %v clients, %v viewers; ",
		r.Scenario, r.Run.Seconds, r.Setup.Tenants, p["resources"], p["services"], p["clients"], p["viewers"])
	if p["closed"] == true {
		fmt.Fprintf(w, "closed loop")
	} else if r.Scenario != "rush" {
		fmt.Fprintf(w, "open loop %v/s", p["rate"])
	} else {
		fmt.Fprintf(w, "%v rounds × %v slot(s), %v", p["rounds"], p["rush_slots"], p["rush_op"])
	}
	fmt.Fprintf(w, "; mix %v\n", p["mix"])
	spawned := ""
	if r.Spawned {
		spawned = " (spawned)"
	}
	fmt.Fprintf(w, "target %s%s; machine %s\n", r.Target, spawned, r.Machine.Summary)
	fmt.Fprintf(w, "set-up: %d tenants in %.1f s (%.0f/s)", r.Setup.Tenants, r.Setup.TenantSeconds, r.Setup.TenantsPerSec)
	for _, c := range r.Setup.Connects {
		fmt.Fprintf(w, "; %d %s connected in %.1f s (%.0f/s)", c.Count, c.What, c.Seconds, c.PerSec)
	}
	if r.Setup.ConnectLatency.Count > 0 {
		fmt.Fprintf(w, "; handshake p50 %.1f ms p99 %.1f ms", r.Setup.ConnectLatency.P50, r.Setup.ConnectLatency.P99)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tok\tok/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, name := range opOrder {
		op, ok := r.Ops[name]
		if !ok {
			continue
		}
		l := op.Latency
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n", name, op.OK, op.PerSec, l.P50, l.P90, l.P99, l.P999, l.Max, codes(op.Errors))
	}
	if d := r.Delivery; d != nil {
		l := d.FromAck
		fmt.Fprintf(tw, "fan-out (ack→delta)\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n", l.Count, d.PerSec, l.P50, l.P90, l.P99, l.P999, l.Max,
			fmt.Sprintf("unmatched=%d before_ack=%d resyncs=%d", d.Unmatched, d.BeforeAck, d.Resyncs))
	}
	if rr := r.Rush; rr != nil {
		l := rr.Answer
		fmt.Fprintf(tw, "rush answer\t%d\t\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\t\n", l.Count, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "acknowledged bookings: %d (%.0f/s); answered ops %.0f/s; unknown outcome (connection lost, or no answer by the end): %d\n",
		r.Run.BookingsAcked, r.Run.BookingsPerSec, r.Run.OpsPerSec, r.Run.Unknown)
	if len(r.Run.Errors) > 0 {
		fmt.Fprintf(w, "errors by code: %s\n", codes(r.Run.Errors))
	}
	if len(r.Run.Stray) > 0 {
		fmt.Fprintf(w, "error frames without a request id: %s\n", codes(r.Run.Stray))
	}
	if f := r.Fanout; f != nil {
		fmt.Fprintf(w, "idle viewers: RSS %.0f → %.0f MiB for %d connections: %.1f KiB RSS, %.1f KiB heap, %.2f goroutines per connection\n",
			f.Idle.RSSBeforeMiB, f.Idle.RSSAfterMiB, f.Viewers, f.Idle.RSSPerConnKiB, f.Idle.HeapPerConnKiB, f.Idle.GoroutinesPerConn)
	}
	if rr := r.Rush; rr != nil {
		for _, rd := range rr.Rounds {
			fmt.Fprintf(w, "rush round %d: successes per slot %v (seats %d); answers %s\n", rd.Round, rd.Successes, rr.SeatsPerSlot, codesInt(rd.Codes))
		}
	}
	fmt.Fprintf(w, "server: peak RSS %.0f MiB, CPU %.2f cores on average during the run; slotsim CPU %.2f cores\n",
		r.Server.PeakRSSMiB, r.Server.AvgCPUCores, r.Client.AvgCPUCores)
	fmt.Fprintf(w, "machine: other processes %.2f cores, softirq (loopback network) %.2f cores, I/O wait %.2f cores on average during the run; load average %.1f at start, %.1f at most\n",
		r.Others.AvgOtherCores, r.Others.AvgSoftIRQ, r.Others.AvgIOWaitCores, r.Others.LoadAtStart, r.Others.MaxLoad)
	if r.Chaos.Kills > 0 {
		fmt.Fprintf(w, "chaos: %d kill -9 + restart (every %s); %d reconnects\n", r.Chaos.Kills, r.Chaos.Every, r.Run.Reconnects)
	}
	c := r.Check
	status := "PASSED"
	if !c.Passed {
		status = "FAILED"
	}
	if c.TenantsChecked == 0 && c.ViewersChecked == 0 {
		status = "not run"
	}
	fmt.Fprintf(w, "invariant check: %s — %d tenants, %d acknowledged bookings, %d bookings in the server (%d confirmed); "+
		"%d books with unknown outcome (%d exist); %d bookings with an ambiguous last operation; %d viewers compared\n",
		status, c.TenantsChecked, c.AckedChecked, c.ServerBookings, c.ServerConfirmed, c.InFlight, c.InFlightBooked, c.InFlightAmbiguous, c.ViewersChecked)
	for k, n := range r.ViolationCounts {
		fmt.Fprintf(w, "  %d × %s\n", n, k)
	}
	for _, v := range c.Violations {
		fmt.Fprintf(w, "  %s [%s] %s\n", v.Kind, v.Tenant, v.Detail)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "targets:")
		for _, t := range r.Targets {
			mark := "MISS"
			if t.Pass {
				mark = "ok"
			}
			note := ""
			if t.Note != "" {
				note = " (" + t.Note + ")"
			}
			fmt.Fprintf(w, "  %-42s want %-9s got %10.2f %-4s %s%s\n", t.Name, t.Want, t.Got, t.Unit, mark, note)
		}
	}
}

func codes(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func codesInt(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
