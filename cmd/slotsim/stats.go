package main

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, with three
// significant digits.
const (
	histMin = 1
	histMax = int64(5 * time.Minute / time.Microsecond)
	histSig = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histSig) }

func recordDur(h *hdr.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us)
}

// shardedHist spreads concurrent recording (thousands of viewers receiving
// the same delta at once) over several locks.
type shardedHist struct {
	shards [16]struct {
		mu sync.Mutex
		h  *hdr.Histogram
		_  [40]byte
	}
}

func newShardedHist() *shardedHist {
	s := &shardedHist{}
	for i := range s.shards {
		s.shards[i].h = newHist()
	}
	return s
}

func (s *shardedHist) record(shard int, d time.Duration) {
	sh := &s.shards[uint(shard)%uint(len(s.shards))]
	sh.mu.Lock()
	recordDur(sh.h, d)
	sh.mu.Unlock()
}

// merged returns the union of the shards; reset empties them.
func (s *shardedHist) merged(reset bool) *hdr.Histogram {
	out := newHist()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		if reset {
			sh.h.Reset()
		}
		sh.mu.Unlock()
	}
	return out
}

// recorder collects every measurement of a run.
type recorder struct {
	start time.Time

	mu     sync.Mutex // guards the fields below
	ops    [nOps]*hdr.Histogram
	ok     [nOps]int64
	errs   [nOps]map[string]int64
	window *hdr.Histogram // all answered ops of the current second
	winOK  int64
	winErr int64
	winBk  int64

	bookings atomic.Int64 // acknowledged bookings (book and hold_book)
	unknown  atomic.Int64 // requests whose outcome is unknown (connection lost)

	connect     *shardedHist // WebSocket handshake latency
	fanAck      *shardedHist // booking ack → delta at a viewer
	fanSend     *shardedHist // request intended time → delta at a viewer
	fanWindow   *shardedHist
	fanBefore   atomic.Int64 // deltas that arrived before the ack
	fanMatched  atomic.Int64
	fanDeltas   atomic.Int64
	resyncs     atomic.Int64
	subsEnded   atomic.Int64
	strayErrors sync.Map // code → *atomic.Int64: error frames without a request id
	dialErrors  atomic.Int64
	reconnects  atomic.Int64
}

func newRecorder() *recorder {
	r := &recorder{window: newHist(), connect: newShardedHist(), fanAck: newShardedHist(),
		fanSend: newShardedHist(), fanWindow: newShardedHist()}
	for k := range r.ops {
		r.ops[k] = newHist()
		r.errs[k] = map[string]int64{}
	}
	return r
}

// answered records one request's outcome: code "" for success, the
// server's error code, or an "x_…" code when no answer came. Latency d
// (from the intended send time) is recorded for every answer, success or
// refusal: a refusal is an answer too.
func (r *recorder) answered(k opKind, d time.Duration, code string) {
	answer := !strings.HasPrefix(code, "x_") // x_…: no answer came (client-side outcome)
	r.mu.Lock()
	if code == "" {
		r.ok[k]++
		r.winOK++
		if k == opBook || k == opHoldBook {
			r.winBk++
		}
	} else {
		r.errs[k][code]++
		r.winErr++
	}
	if answer {
		recordDur(r.ops[k], d)
		if k != opUnsubscribe {
			recordDur(r.window, d)
		}
	}
	r.mu.Unlock()
	if code == "" && (k == opBook || k == opHoldBook) {
		r.bookings.Add(1)
	}
}

func (r *recorder) stray(code string) {
	v, _ := r.strayErrors.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// second is one point of the time series.
type second struct {
	T          float64 `json:"t"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	BooksPerS  float64 `json:"bookings_per_sec"`
	ErrsPerSec float64 `json:"errors_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	FanP50Ms   float64 `json:"fanout_p50_ms,omitempty"`
	FanP99Ms   float64 `json:"fanout_p99_ms,omitempty"`
	FanPerSec  float64 `json:"fanout_deliveries_per_sec,omitempty"`
	ServerRSS  float64 `json:"server_rss_mib,omitempty"`
	ServerCPU  float64 `json:"server_cpu_cores,omitempty"`
	ServerHeap float64 `json:"server_heap_mib,omitempty"`
	ClientCPU  float64 `json:"client_cpu_cores,omitempty"`
	Conns      float64 `json:"server_conns,omitempty"`
	CommitMs   float64 `json:"server_commit_mean_ms,omitempty"` // mean durable append latency
	CommitsPS  float64 `json:"server_commits_per_sec,omitempty"`
	BatchMean  float64 `json:"server_commands_per_commit,omitempty"`
	MachineCPU float64 `json:"machine_busy_cores"` // everything on the machine, slotd and slotsim included
	IOWait     float64 `json:"machine_iowait_cores"`
	SoftIRQ    float64 `json:"machine_softirq_cores"`
	Load       float64 `json:"load_avg_1m"`
}

// tick closes the current window: what was answered since the last tick.
func (r *recorder) tick(now time.Time, dt time.Duration) second {
	r.mu.Lock()
	w := r.window
	r.window = newHist()
	ok, bad, bk := r.winOK, r.winErr, r.winBk
	r.winOK, r.winErr, r.winBk = 0, 0, 0
	r.mu.Unlock()
	fw := r.fanWindow.merged(true)
	sec := dt.Seconds()
	s := second{T: now.Sub(r.start).Seconds(), OpsPerSec: float64(ok+bad) / sec, BooksPerS: float64(bk) / sec,
		ErrsPerSec: float64(bad) / sec}
	if w.TotalCount() > 0 {
		s.P50Ms, s.P99Ms, s.MaxMs = ms(w.ValueAtQuantile(50)), ms(w.ValueAtQuantile(99)), ms(w.Max())
	}
	if fw.TotalCount() > 0 {
		s.FanP50Ms, s.FanP99Ms, s.FanPerSec = ms(fw.ValueAtQuantile(50)), ms(fw.ValueAtQuantile(99)), float64(fw.TotalCount())/sec
	}
	return s
}

func ms(us int64) float64 { return float64(us) / 1000 }

// latency is a histogram's summary in milliseconds, with the percentile
// curve for the distribution plot.
type latency struct {
	Count int64        `json:"count"`
	Mean  float64      `json:"mean_ms"`
	P50   float64      `json:"p50_ms"`
	P90   float64      `json:"p90_ms"`
	P99   float64      `json:"p99_ms"`
	P999  float64      `json:"p99_9_ms"`
	Max   float64      `json:"max_ms"`
	Curve [][2]float64 `json:"curve,omitempty"` // [percentile, ms]
}

var curvePercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

func summarize(h *hdr.Histogram) latency {
	if h.TotalCount() == 0 {
		return latency{}
	}
	l := latency{Count: h.TotalCount(), Mean: h.Mean() / 1000, P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
	for _, p := range curvePercentiles {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		l.Curve = append(l.Curve, [2]float64{p, ms(v)})
	}
	return l
}

// opResult is one operation's figures.
type opResult struct {
	OK       int64            `json:"ok"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	PerSec   float64          `json:"ok_per_sec"`
	Latency  latency          `json:"latency"`
	ErrTotal int64            `json:"error_total"`
}

func (r *recorder) opResults(elapsed time.Duration) map[string]opResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]opResult{}
	for k := opKind(0); k < nOps; k++ {
		if r.ok[k] == 0 && len(r.errs[k]) == 0 {
			continue
		}
		res := opResult{OK: r.ok[k], Latency: summarize(r.ops[k]), Errors: map[string]int64{}}
		for c, n := range r.errs[k] {
			res.Errors[c] = n
			res.ErrTotal += n
		}
		if elapsed > 0 {
			res.PerSec = float64(r.ok[k]) / elapsed.Seconds()
		}
		out[k.String()] = res
	}
	return out
}

func (r *recorder) strays() map[string]int64 {
	out := map[string]int64{}
	r.strayErrors.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
