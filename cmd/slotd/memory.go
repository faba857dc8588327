package main

import (
	"fmt"
	"log/slog"
	"math"
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
	if err != nil || n <= 0 {
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

// applyMemoryLimit gives the Go heap a budget of limit bytes and turns the
// proportional collector off, so that the garbage collector runs only as
// the heap approaches the budget instead of each time it doubles. With
// many tenants the heap holds a few hundred MB live, and marking it takes
// 0.2–0.5 s of wall time on two cores; every request that arrives meanwhile
// is slower, which sets the booking p99 (docs/operations.md, "Memory and
// the garbage collector"). With a budget several times the live heap the
// marks are rare. 0 leaves Go's defaults (and GOGC, GOMEMLIMIT) alone.
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(-1)
	log.Info("memory limit: the garbage collector runs as the Go heap approaches it", "limit_bytes", limit)
}
