package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	good := map[string]int64{
		"":           0,
		"6GiB":       6 << 30,
		"512MiB":     512 << 20,
		" 1 TiB ":    1 << 40,
		"268435456":  256 << 20,
		"300000KiB":  300000 << 10,
		"268435456B": 256 << 20,
	}
	for in, want := range good {
		if got, err := parseMemoryLimit(in); err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"6G", "6gb", "-1GiB", "0", "1.5GiB", "GiB", "100MiB", "9999999999TiB", "99999999999999999999", "+1GiB", " +1GiB", "lots"} {
		if got, err := parseMemoryLimit(in); err == nil || !strings.Contains(err.Error(), "-memory-limit") {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want a -memory-limit error", in, got, err)
		}
	}
}

func TestMemoryLimitFlag(t *testing.T) {
	o, err := parseFlags([]string{"-memory-limit", "512MiB"}, envOf(nil), io.Discard)
	if err != nil || o.memoryLimit != 512<<20 {
		t.Fatalf("-memory-limit 512MiB: %d, %v", o.memoryLimit, err)
	}
	o, err = parseFlags(nil, envOf(map[string]string{"SLOTD_MEMORY_LIMIT": "768MiB"}), io.Discard)
	if err != nil || o.memoryLimit != 768<<20 {
		t.Fatalf("SLOTD_MEMORY_LIMIT=768MiB: %d, %v", o.memoryLimit, err)
	}
	if _, err := parseFlags([]string{"-memory-limit", "12"}, envOf(nil), io.Discard); err == nil {
		t.Error("-memory-limit 12 (bytes) accepted")
	}
	if o, err := parseFlags(nil, envOf(nil), io.Discard); err != nil || o.memoryLimit != 0 {
		t.Errorf("no flag: limit %d, %v; want 0 (Go's defaults)", o.memoryLimit, err)
	}
}

// TestApplyMemoryLimit: the runtime gets the budget and the collector
// lets the heap grow five times its live size; no limit changes nothing.
func TestApplyMemoryLimit(t *testing.T) {
	oldLimit, oldPercent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	debug.SetGCPercent(oldPercent)
	t.Cleanup(func() { debug.SetMemoryLimit(oldLimit); debug.SetGCPercent(oldPercent) })
	log := slog.New(slog.DiscardHandler)

	applyMemoryLimit(0, log)
	if got := debug.SetMemoryLimit(-1); got != oldLimit {
		t.Errorf("no limit changed the runtime's to %d", got)
	}
	applyMemoryLimit(3<<30, log)
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("runtime memory limit %d, want 3GiB", got)
	}
	if got := debug.SetGCPercent(oldPercent); got != gcPercentWithLimit {
		t.Errorf("GC percent %d, want %d", got, gcPercentWithLimit)
	}
}

func TestCheckMemoryLimit(t *testing.T) {
	const avail = 8 << 30
	if err := checkMemoryLimit(6<<30, avail); err != nil {
		t.Errorf("6GiB of 8GiB refused: %v", err)
	}
	if err := checkMemoryLimit(int64(7.5*(1<<30)), avail); err == nil {
		t.Error("7.5GiB of 8GiB accepted; the heap grows to the limit")
	}
	if err := checkMemoryLimit(6<<30, 0); err != nil {
		t.Errorf("unknown memory: %v, want no check", err)
	}
	if err := checkMemoryLimit(0, avail); err != nil {
		t.Errorf("no limit: %v", err)
	}
	if n := availableMemory(); n <= 0 {
		t.Logf("availableMemory() = %d: neither memory.max nor /proc/meminfo readable here", n)
	}
}
