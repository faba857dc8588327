package pebble_test

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
)

const crashDirEnv = "SLOTD_PEBBLE_CRASH_DIR"

// crashTenants write concurrently in the helper so acks come from grouped
// fsyncs as well as single ones.
func crashTenants() []string { return []string{"a", "ab", "a-b", "b"} }

// crashEvent is the deterministic payload of tenant's event seq; its length
// varies so torn or misplaced values cannot pass for the right ones.
func crashEvent(tenant string, seq uint64) []byte {
	return fmt.Appendf(nil, "%s/%d/%s", tenant, seq, strings.Repeat("x", int(seq%97)))
}

// TestCrashHelper is not a test: TestCrashDurability runs the test binary
// again with only this function selected and crashDirEnv set. It appends
// forever (well, until a generous bound) and prints "ack <tenant> <head>"
// after every acknowledged Append.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "open: %v\n", err)
		os.Exit(2)
	}
	var mu sync.Mutex // serializes stdout lines
	var wg sync.WaitGroup
	for i, tenant := range crashTenants() {
		wg.Go(func() {
			var head uint64
			for head < 100_000 {
				n := 1 + i%3 // batches of 1, 2 and 3 events
				evs := make([][]byte, n)
				for j := range evs {
					evs[j] = crashEvent(tenant, head+uint64(j)+1)
				}
				got, err := s.Append(t.Context(), tenant, head, evs)
				if err != nil {
					fmt.Fprintf(os.Stderr, "append %s at %d: %v\n", tenant, head, err)
					os.Exit(2)
				}
				head = got
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d\n", tenant, head)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3) // never reached in practice: the parent kills us first
}

// TestCrashDurability kills a writer process with SIGKILL in the middle of
// its appends and checks, after reopening, that every acknowledged event is
// there with the right bytes, and that the journal is dense and holds only
// events the writer actually sent.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	const wantAcks = 200
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("StdoutPipe = %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	acked := make(map[string]uint64)
	record := func(line string) {
		t.Helper()
		var tenant string
		var head uint64
		if !strings.HasPrefix(line, "ack ") {
			return // testing's own output
		}
		if _, err := fmt.Sscanf(line, "ack %s %d", &tenant, &head); err != nil {
			t.Fatalf("helper printed %q: %v", line, err)
		}
		if head <= acked[tenant] {
			t.Fatalf("helper acked %s head %d after %d", tenant, head, acked[tenant])
		}
		acked[tenant] = head
	}
	// The deadline only bounds a hung helper; it asserts nothing about speed.
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for n := 0; n < wantAcks; n++ {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("helper exited after %d acks: %s", n, stderr.String())
			}
			record(line)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("helper printed only %d of %d acks: %s", n, wantAcks, stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		t.Fatalf("kill helper: %v", err)
	}
	// Everything the helper printed before dying was acknowledged too.
	for line := range lines {
		record(line)
	}
	err = cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper exit = %v, want killed; stderr: %s", err, stderr.String())
	}

	s := MustOpen(t, dir)
	for _, tenant := range crashTenants() {
		checkRecovered(t, s, tenant, acked[tenant], crashEvent)
	}
	t.Logf("acked heads at kill: %v", acked)
}

// checkRecovered checks that tenant's journal is dense from 1, reaches at
// least the acknowledged head, holds event(tenant, seq) at every seq, and
// accepts an append at its head.
func checkRecovered(t *testing.T, s persistence.Store, tenant string, acked uint64, event func(string, uint64) []byte) {
	t.Helper()
	entries, err := s.ReadFrom(t.Context(), tenant, 0, 0)
	if err != nil {
		t.Fatalf("ReadFrom(%q) after crash = %v", tenant, err)
	}
	if uint64(len(entries)) < acked {
		t.Fatalf("ReadFrom(%q) after crash has %d entries, but %d were acknowledged", tenant, len(entries), acked)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("%s entry %d has Seq %d, want %d", tenant, i, e.Seq, i+1)
		}
		if want := event(tenant, e.Seq); !bytes.Equal(e.Data, want) {
			t.Fatalf("%s seq %d = %.40q, want %.40q", tenant, e.Seq, e.Data, want)
		}
	}
	head := uint64(len(entries))
	if got, err := s.Append(t.Context(), tenant, head, [][]byte{event(tenant, head+1)}); err != nil || got != head+1 {
		t.Fatalf("Append(%q, %d) after crash = %d, %v; want %d, nil", tenant, head, got, err, head+1)
	}
}

// TestPowerLoss simulates losing the machine, not just the process: the
// clone of a crashable in-memory file system keeps only what was synced. An
// append acknowledged before the crash must survive it, whatever share of
// unsynced writes happen to survive too.
func TestPowerLoss(t *testing.T) {
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			r, atCrash := powerLoss(t, unsynced, 1, func(s *pebble.Store, tenant string, head uint64) (uint64, error) {
				got, err := s.Append(t.Context(), tenant, head, [][]byte{crashEvent(tenant, head+1)})
				if err != nil {
					return 0, fmt.Errorf("Append(%q, %d) = %v", tenant, head, err)
				}
				return got, nil
			})
			for _, tenant := range crashTenants() {
				checkRecovered(t, r, tenant, atCrash[tenant], crashEvent)
			}
		})
	}
}

// powerLoss opens a store on a crashable in-memory file system and runs
// write for every crashTenants tenant, concurrently and over and over:
// write gets the count its tenant has acknowledged so far and returns the
// new count. Once every tenant has 20 acknowledged, while they keep
// writing, the machine loses power: the file system is cloned keeping only
// what was synced and unsynced% of the rest (seed picks which). It stops
// the writers, closes the store, and returns the store reopened on the
// clone (closed at the end of the test) and each tenant's count at the
// crash.
func powerLoss(t *testing.T, unsynced int, seed uint64, write func(s *pebble.Store, tenant string, acked uint64) (uint64, error)) (*pebble.Store, map[string]uint64) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	s, err := pebble.Open("/db", pebble.Options{FS: fs})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	var mu sync.Mutex // guards acked
	acked := make(map[string]uint64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, tenant := range crashTenants() {
		wg.Go(func() {
			var n uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := write(s, tenant, n)
				if err != nil {
					t.Error(err)
					return
				}
				n = got
				mu.Lock()
				acked[tenant] = n
				mu.Unlock()
			}
		})
	}
	var atCrash map[string]uint64
	checkFor(t, 30*time.Second, time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, tenant := range crashTenants() {
			if acked[tenant] < 20 {
				return fmt.Errorf("%s has %d acks", tenant, acked[tenant])
			}
		}
		atCrash = maps.Clone(acked)
		return nil
	})
	crashed := fs.CrashClone(vfs.CrashCloneCfg{
		UnsyncedDataPercent: unsynced,
		RNG:                 rand.New(rand.NewPCG(uint64(unsynced), seed)),
	})
	close(stop)
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	r, err := pebble.Open("/db", pebble.Options{FS: crashed})
	if err != nil {
		t.Fatalf("Open after power loss = %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, atCrash
}

// checkFor polls f every interval until it returns nil, failing t with f's
// last error after timeout.
func checkFor(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}
