package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// buildCharts draws the plots of a result.
func buildCharts(r *result) []*chart {
	var markers []marker
	if r.Run.Seconds > 0 {
		markers = append(markers, marker{X: r.Run.StartT, Label: "load starts"}, marker{X: r.Run.EndT, Label: "load ends"})
	}
	for _, e := range r.Events {
		markers = append(markers, marker{X: e.T, Label: e.What})
	}
	col := func(f func(second) float64) (xs, ys []float64) {
		for _, p := range r.Series {
			xs = append(xs, p.T)
			ys = append(ys, f(p))
		}
		return xs, ys
	}
	nan := func(v float64) float64 {
		if v == 0 {
			return math.NaN()
		}
		return v
	}
	var charts []*chart

	lat := &chart{File: "latency", Title: "Answer latency per second (from intended send time)", XLabel: "seconds since start",
		YLabel: "ms (log)", LogY: true, YFloor: 0.1, Markers: markers}
	x, y := col(func(p second) float64 { return nan(p.P50Ms) })
	lat.Series = append(lat.Series, series{Name: "p50, all ops", X: x, Y: y})
	x, y = col(func(p second) float64 { return nan(p.P99Ms) })
	lat.Series = append(lat.Series, series{Name: "p99, all ops", X: x, Y: y})
	x, y = col(func(p second) float64 { return nan(p.MaxMs) })
	lat.Series = append(lat.Series, series{Name: "max", X: x, Y: y, Dash: true, Color: "#aaa"})
	if r.Delivery != nil {
		x, y = col(func(p second) float64 { return nan(p.FanP50Ms) })
		lat.Series = append(lat.Series, series{Name: "fan-out p50 (ack → delta)", X: x, Y: y, Color: "#2ca02c"})
		x, y = col(func(p second) float64 { return nan(p.FanP99Ms) })
		lat.Series = append(lat.Series, series{Name: "fan-out p99 (ack → delta)", X: x, Y: y, Color: "#ff7f0e"})
	}
	charts = append(charts, lat)

	dist := &chart{File: "distribution", Title: "Latency distribution", XLabel: "percentile", YLabel: "ms (log)", LogY: true, YFloor: 0.1,
		XTicks: [][2]string{{"0", "0%"}, {"1", "90%"}, {"2", "99%"}, {"3", "99.9%"}, {"4", "99.99%"}, {"5", "99.999%"}}}
	addCurve := func(name string, l latency) {
		if l.Count == 0 {
			return
		}
		var xs, ys []float64
		for _, pt := range l.Curve {
			p := pt[0]
			if p >= 100 {
				p = 99.999
			}
			q := -math.Log10(1 - p/100)
			if len(xs) > 0 && q <= xs[len(xs)-1] {
				continue
			}
			xs, ys = append(xs, q), append(ys, pt[1])
		}
		dist.Series = append(dist.Series, series{Name: fmt.Sprintf("%s (n=%d)", name, l.Count), X: xs, Y: ys})
	}
	for _, name := range opOrder {
		if op, ok := r.Ops[name]; ok && name != "unsubscribe" {
			addCurve(name, op.Latency)
		}
	}
	if r.Delivery != nil {
		addCurve("fan-out ack → delta", r.Delivery.FromAck)
	}
	if r.Rush != nil {
		addCurve("rush answer", r.Rush.Answer)
	}
	charts = append(charts, dist)

	tp := &chart{File: "throughput", Title: "Throughput per second", XLabel: "seconds since start", YLabel: "per second", Markers: markers}
	x, y = col(func(p second) float64 { return p.OpsPerSec })
	tp.Series = append(tp.Series, series{Name: "answered ops/s", X: x, Y: y})
	x, y = col(func(p second) float64 { return p.BooksPerS })
	tp.Series = append(tp.Series, series{Name: "acknowledged bookings/s", X: x, Y: y, Color: "#2ca02c"})
	x, y = col(func(p second) float64 { return p.ErrsPerSec })
	tp.Series = append(tp.Series, series{Name: "errors/s (incl. slot_taken)", X: x, Y: y, Color: "#d62728"})
	charts = append(charts, tp)

	if r.Delivery != nil {
		fo := &chart{File: "deliveries", Title: "Availability deltas delivered to viewers per second", XLabel: "seconds since start",
			YLabel: "deltas/s", Markers: markers}
		x, y = col(func(p second) float64 { return p.FanPerSec })
		fo.Series = append(fo.Series, series{Name: "deltas received (all viewers)", X: x, Y: y, Color: "#2ca02c"})
		charts = append(charts, fo)
	}

	cm := &chart{File: "commits", Title: "slotd durable appends (slotd_commit_seconds, slotd_batch_size)", XLabel: "seconds since start",
		YLabel: "ms / commands (log)", LogY: true, Markers: markers}
	x, y = col(func(p second) float64 { return nan(p.CommitMs) })
	cm.Series = append(cm.Series, series{Name: "mean append latency, ms", X: x, Y: y})
	x, y = col(func(p second) float64 { return nan(p.BatchMean) })
	cm.Series = append(cm.Series, series{Name: "commands per group commit", X: x, Y: y, Color: "#2ca02c"})
	charts = append(charts, cm)

	mem := &chart{File: "memory", Title: "slotd memory (from /metrics)", XLabel: "seconds since start", YLabel: "MiB", Markers: markers}
	x, y = col(func(p second) float64 { return nan(p.ServerRSS) })
	mem.Series = append(mem.Series, series{Name: "resident (process_resident_memory_bytes)", X: x, Y: y})
	x, y = col(func(p second) float64 { return nan(p.ServerHeap) })
	mem.Series = append(mem.Series, series{Name: "Go heap in use", X: x, Y: y, Dash: true})
	charts = append(charts, mem)

	cpu := &chart{File: "cpu", Title: "CPU (2-core machine shared by slotd and slotsim)", XLabel: "seconds since start", YLabel: "cores", Markers: markers}
	x, y = col(func(p second) float64 { return p.ServerCPU })
	cpu.Series = append(cpu.Series, series{Name: "slotd", X: x, Y: y})
	x, y = col(func(p second) float64 { return p.ClientCPU })
	cpu.Series = append(cpu.Series, series{Name: "slotsim", X: x, Y: y, Color: "#9467bd"})
	x, y = col(func(p second) float64 { return p.SoftIRQ })
	cpu.Series = append(cpu.Series, series{Name: "softirq (loopback network)", X: x, Y: y, Color: "#17becf", Dash: true})
	x, y = col(func(p second) float64 { return math.Max(0, p.MachineCPU-p.SoftIRQ-p.ServerCPU-p.ClientCPU) })
	cpu.Series = append(cpu.Series, series{Name: "other processes", X: x, Y: y, Color: "#aaa", Dash: true})
	x, y = col(func(p second) float64 { return p.IOWait })
	cpu.Series = append(cpu.Series, series{Name: "I/O wait", X: x, Y: y, Color: "#8c564b", Dash: true})
	charts = append(charts, cpu)
	return charts
}

// htmlReport is one self-contained page: the summary and the plots.
func htmlReport(r *result, charts []*chart) string {
	var tbl bytes.Buffer
	writeTable(&tbl, r)
	var b strings.Builder
	fmt.Fprintf(&b, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slotsim %s</title>
<style>
body{font-family:sans-serif;margin:24px;max-width:1000px;color:#222}
pre{background:#f6f6f6;padding:12px;overflow-x:auto;font-size:12px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.pass{color:#196c2e;font-weight:bold}.fail{color:#b3261e;font-weight:bold}
figure{margin:18px 0}
</style></head><body>
`, esc(r.Scenario))
	fmt.Fprintf(&b, "<h1>slotsim %s</h1>\n<p>%s — target %s — %s</p>\n", esc(r.Scenario), esc(r.Started.Format("2006-01-02 15:04 MST")),
		esc(r.Target), esc(r.Machine.Summary))
	fmt.Fprintf(&b, "<p>Command: <code>%s</code></p>\n", esc(r.Command))
	status, cls := "PASSED", "pass"
	if !r.Check.Passed {
		status, cls = "FAILED", "fail"
	}
	fmt.Fprintf(&b, "<p>Invariant check: <span class=%q>%s</span></p>\n", cls, status)
	if len(r.Targets) > 0 {
		b.WriteString("<table><tr><th>target</th><th>want</th><th>got</th><th></th><th>note</th></tr>\n")
		for _, t := range r.Targets {
			mark, c := "MISS", "fail"
			if t.Pass {
				mark, c = "ok", "pass"
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%.2f %s</td><td class=%q>%s</td><td>%s</td></tr>\n",
				esc(t.Name), esc(t.Want), t.Got, esc(t.Unit), c, mark, esc(t.Note))
		}
		b.WriteString("</table>\n")
	}
	fmt.Fprintf(&b, "<h2>Summary</h2>\n<pre>%s</pre>\n", esc(tbl.String()))
	b.WriteString("<h2>Plots</h2>\n")
	for _, c := range charts {
		fmt.Fprintf(&b, "<figure>%s</figure>\n", c.SVG())
	}
	b.WriteString("<h2>Parameters</h2>\n<table>\n")
	for _, k := range sortedKeys(r.Params) {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%v</td></tr>\n", esc(k), esc(fmt.Sprint(r.Params[k])))
	}
	b.WriteString("</table>\n<p>Latency is measured from each request's intended send time (open loop), so queueing inside slotsim or slotd counts. " +
		"The JSON result (<code>-json</code>) holds every figure shown here.</p>\n</body></html>\n")
	return b.String()
}
