package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNoSlotdImports keeps slotsim a client of the public protocol only.
func TestNoSlotdImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/slotd/slotd") && p != "github.com/slotd/slotd/cmd/slotsim" {
			t.Errorf("slotsim depends on %s: it may use slotd's public protocol only", p)
		}
	}
}

var (
	slotdOnce sync.Once
	slotdBin  string
	slotdErr  error
)

// mustSlotd builds slotd once per test binary.
func mustSlotd(tb testing.TB) string {
	tb.Helper()
	slotdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slotsim-test-")
		if err != nil {
			slotdErr = err
			return
		}
		slotdBin = filepath.Join(dir, "slotd")
		out, err := exec.Command("go", "build", "-o", slotdBin, "github.com/slotd/slotd/cmd/slotd").CombinedOutput()
		if err != nil {
			slotdErr = err
			tb.Logf("go build slotd: %s", out)
		}
	})
	if slotdErr != nil {
		tb.Fatalf("build slotd: %v", slotdErr)
	}
	return slotdBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if slotdBin != "" {
		os.RemoveAll(filepath.Dir(slotdBin))
	}
	os.Exit(code)
}

// runSmoke runs slotsim in-process against a slotd it spawns and returns
// the exit code and the JSON result.
func runSmoke(t *testing.T, extra ...string) (code int, res result, out, dir string) {
	t.Helper()
	bin := mustSlotd(t)
	dir = t.TempDir()
	jsonPath := filepath.Join(dir, "out.json")
	args := append([]string{"smoke", "-spawn", bin, "-json", jsonPath, "-report", filepath.Join(dir, "out.html"),
		"-svg-dir", dir, "-progress", "off"}, extra...)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	if b, err := os.ReadFile(jsonPath); err == nil {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("result JSON: %v", err)
		}
	}
	return code, res, stdout.String() + stderr.String(), dir
}

func TestSmokeAgainstSpawnedSlotd(t *testing.T) {
	code, res, out, dir := runSmoke(t)
	if code != exitOK {
		t.Fatalf("slotsim smoke exited %d, want 0:\n%s", code, out)
	}
	if !res.Check.Passed || res.Check.TenantsChecked != 3 || res.Check.ViewersChecked != 6 {
		t.Errorf("check = %+v, want passed over 3 tenants and 6 viewers", res.Check)
	}
	if res.Run.BookingsAcked == 0 || res.Check.AckedChecked == 0 {
		t.Errorf("no booking was acknowledged and checked:\n%s", out)
	}
	if res.Ops["book"].Latency.Count == 0 || len(res.Series) == 0 {
		t.Errorf("no latency recorded or no time series:\n%s", out)
	}
	if !strings.Contains(out, "invariant check: PASSED") {
		t.Errorf("table does not report the check:\n%s", out)
	}
	for _, f := range []string{"out.html", "slotsim-smoke-latency.svg", "slotsim-smoke-distribution.svg", "slotsim-smoke-throughput.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s: %v, or no SVG in it", f, err)
		}
	}
}

// TestSmokeWithChaos kills slotd with SIGKILL twice during the run: clients
// reconnect, and the check still passes, with what was in flight reported
// apart.
func TestSmokeWithChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts slotd; skipped with -short")
	}
	code, res, out, _ := runSmoke(t, "-duration", "5s", "-chaos-kill-every", "2s", "-rate", "80")
	if code != exitOK {
		t.Fatalf("slotsim smoke with chaos exited %d, want 0:\n%s", code, out)
	}
	if res.Chaos.Kills < 1 {
		t.Errorf("chaos kills = %d, want at least 1:\n%s", res.Chaos.Kills, out)
	}
	if !res.Check.Passed {
		t.Errorf("check failed after chaos:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{},
		{"nope"},
		{"smoke"}, // no target
		{"smoke", "-target", "http://10.1.2.3:80", "-token", "x"}, // not loopback
		{"smoke", "-target", "http://127.0.0.1:1", "-chaos-kill-every", "1s"},
		{"smoke", "-spawn", "/nonexistent/slotd", "-mix", "fly=1"},
		{"smoke", "-spawn", "/nonexistent/slotd", "-conn-rate", "25"},
		{"smoke", "-spawn", "/nonexistent/slotd", "-baseline", "postgres://"},                                 // not a baseline URL
		{"smoke", "-spawn", "/nonexistent/slotd", "-baseline-spawn", "/x", "-baseline", "http://127.0.0.1:1"}, // both
		{"rush", "-spawn", "/nonexistent/slotd", "-baseline-spawn", "/x"},                                     // not a throughput scenario
	}
	for _, args := range tests {
		var out bytes.Buffer
		if code := run(context.Background(), args, func(string) string { return "" }, &out, &out); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d\n%s", args, code, exitUsage, out.String())
		}
	}
}
