package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTimes is the machine's CPU time from /proc/stat: busy (user, nice,
// system, irq, softirq, steal), softirq alone (loopback TCP between slotd
// and slotsim is processed there, charged to neither process), and waiting
// for I/O. slotd and slotsim
// share the machine; what is busy beyond both is someone else, and a run
// measured next to a compiler is not a benchmark. The report says so.
type cpuTimes struct {
	busy, iowait, softirq time.Duration
	ok                    bool
}

func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	v := make([]int64, len(f))
	for i := 1; i < len(f); i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	const tick = time.Second / 100 // USER_HZ
	busy := v[1] + v[2] + v[3] + v[6] + v[7] + v[8]
	return cpuTimes{busy: time.Duration(busy) * tick, iowait: time.Duration(v[5]) * tick, softirq: time.Duration(v[7]) * tick, ok: true}
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// processCPU is slotsim's own CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
