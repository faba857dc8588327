package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// minMemoryLimit is the smallest -memory-limit accepted: below it the
// collector would run almost continuously for a few thousand tenants.
const minMemoryLimit = 256 << 20

// parseMemoryLimit parses a -memory-limit value: bytes, with an optional
// suffix B, KiB, MiB, GiB or TiB, as GOMEMLIMIT takes them ("6GiB"). The
// empty string is no limit (0).
func parseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("-memory-limit %q: too large", s)
	}
	if err != nil || n <= 0 || num[0] < '0' || num[0] > '9' {
		return 0, fmt.Errorf("-memory-limit %q: want a size such as 6GiB or 512MiB (suffixes B, KiB, MiB, GiB, TiB)", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("-memory-limit %q: too large", s)
	}
	n <<= shift
	if n < minMemoryLimit {
		return 0, fmt.Errorf("-memory-limit %q: want at least 256MiB", s)
	}
	return n, nil
}

// checkMemoryLimit refuses a limit above 90 % of the memory the process may
// use (the cgroup's memory.max when there is one, else the machine's): the
// heap may grow to the limit, and past the real memory that means being
// killed rather than collecting.
func checkMemoryLimit(limit int64, available int64) error {
	if limit <= 0 || available <= 0 {
		return nil
	}
	if limit > available/10*9 {
		return fmt.Errorf("-memory-limit %d bytes: above 90%% of the %d bytes this process may use; the heap grows to the limit", limit, available)
	}
	return nil
}

// availableMemory is the cgroup (v2) memory.max if it is set, else the
// machine's MemTotal; 0 if neither can be read (not Linux).
func availableMemory() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// gcPercentWithLimit is the collector's GOGC under -memory-limit: a
// collection when the heap has grown to five times what the last one left
// live, or as memory nears the limit, whichever comes first.
//
// Measured with slotsim (10,000 tenants, docs/operations.md): with 400 the
// book p90 and p99 are lower than with Go's default (100) and slotd uses a
// little less CPU; the collector off with only the limit gave a lower p99
// but a p99.9 of 0.5 s (its rare collections start late, near the limit,
// and lean on the requests' goroutines to finish).
const gcPercentWithLimit = 400

// applyMemoryLimit gives the Go runtime's memory (heap and goroutine
// stacks) a budget of limit bytes and lets the heap grow to five times its
// live size between collections (gcPercentWithLimit) instead of twice:
// fewer collections, each as long as before, and the budget keeps the
// heap from outgrowing the memory there is. 0 leaves Go's defaults (and
// GOGC, GOMEMLIMIT) alone.
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(gcPercentWithLimit)
	log.Info("memory limit: the garbage collector runs when the heap reaches five times its live size, or nears the limit", "limit_bytes", limit, "gc_percent", gcPercentWithLimit)
}
