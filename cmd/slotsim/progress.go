package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// progress is the live status on stderr: one line redrawn in place on a
// terminal; otherwise a line every 5 s ("auto") or every sample ("on").
type progress struct {
	w     io.Writer
	on    bool
	tty   bool
	every time.Duration // between lines when not a terminal
	mu    sync.Mutex    // guards the fields below
	last  time.Time
	line  bool // a redrawable line is showing
}

func newProgress(w io.Writer, mode string) *progress {
	p := &progress{w: w, on: mode != "off", every: 5 * time.Second}
	if mode == "on" {
		p.every = 0
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) clearLocked() {
	if p.line {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
}

// logf prints a line that stays.
func (p *progress) logf(format string, args ...any) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, "slotsim: "+format+"\n", args...)
}

func (p *progress) phase(what string) { p.logf("%s", what) }

// point shows the latest second.
func (p *progress) point(s second, rec *recorder, total time.Duration) {
	if !p.on {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%5.0fs] %7.0f ops/s %7.0f bookings/s  p50 %6.1f ms  p99 %7.1f ms  errors %5.0f/s",
		s.T, s.OpsPerSec, s.BooksPerS, s.P50Ms, s.P99Ms, s.ErrsPerSec)
	if s.FanPerSec > 0 {
		fmt.Fprintf(&b, "  fan-out %6.0f/s p99 %6.1f ms", s.FanPerSec, s.FanP99Ms)
	}
	if s.ServerRSS > 0 {
		fmt.Fprintf(&b, "  slotd %4.0f MiB %.2f cpu", s.ServerRSS, s.ServerCPU)
	}
	if s.CommitsPS > 0 {
		fmt.Fprintf(&b, "  commits %5.0f/s %5.1f ms ×%.1f", s.CommitsPS, s.CommitMs, s.BatchMean)
	}
	fmt.Fprintf(&b, "  sim %.2f cpu", s.ClientCPU)
	if n := rec.unknown.Load(); n > 0 {
		fmt.Fprintf(&b, "  unknown %d", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clearLocked()
		fmt.Fprint(p.w, b.String())
		p.line = true
		return
	}
	if time.Since(p.last) >= p.every {
		p.last = time.Now()
		fmt.Fprintln(p.w, "slotsim: "+b.String())
	}
}

// done ends the redrawable line before the final table.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line {
		fmt.Fprintln(p.w)
		p.line = false
	}
}

// fetchProfiles takes a CPU profile of the target for secs seconds after
// delay, then alloc and heap profiles, from a net/http/pprof endpoint (slotd
// has none; a profiling build can add one — see docs/slotsim.md).
func (s *sim) fetchProfiles(ctx context.Context, delay time.Duration, secs int) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	base := strings.TrimRight(s.o.pprofURL, "/")
	get := func(path, file string, timeout time.Duration) {
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.prog.logf("pprof %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.prog.logf("pprof %s: HTTP %d", path, resp.StatusCode)
			return
		}
		name := filepath.Join(s.o.profileDir, fmt.Sprintf("slotd-%s-%s.pprof", s.o.scenario, file))
		f, err := os.Create(name)
		if err != nil {
			s.prog.logf("pprof: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err == nil {
			s.prog.logf("pprof: wrote %s", name)
		}
	}
	get(fmt.Sprintf("/profile?seconds=%d", secs), "cpu", time.Duration(secs+30)*time.Second)
	get("/allocs", "allocs", 30*time.Second)
	get("/heap", "heap", 30*time.Second)
	get("/mutex", "mutex", 30*time.Second) // empty unless the target enables mutex profiling
	get("/block", "block", 30*time.Second)
}
