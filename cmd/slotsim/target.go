package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// checkLoopback refuses a base URL whose host is not on this machine's
// loopback (127.0.0.0/8, ::1 or "localhost") unless allowed. slotsim sends
// real load: it must never be pointed at somebody else's server by a typo.
func checkLoopback(raw string, allow bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want http://HOST:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return u, nil
	}
	if allow {
		return u, nil
	}
	return nil, fmt.Errorf("target %q is not a loopback address (127.0.0.0/8, ::1, localhost); slotsim refuses it without -allow-nonloopback", raw)
}

// target is the slotd under test: its base URL, operator token, and — when
// slotsim started it — the process, which chaos may kill and restart.
type target struct {
	base  string // http://127.0.0.1:PORT
	token string

	// spawned only
	bin     string
	args    []string
	env     []string
	dataDir string
	logPath string
	logf    *os.File

	mu   sync.Mutex // guards cmd and exited
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
}

var (
	listenRE = regexp.MustCompile(`slotd listening on (\S+)`)
	tokenRE  = regexp.MustCompile(`operator token: (\S+)`)
)

// spawnTarget starts bin on a fresh data directory and a free loopback port
// and waits until it prints its URL and token. The port is kept for
// restarts so that clients reconnect to the same address.
func spawnTarget(ctx context.Context, bin, extra string, tenants int) (*target, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() {
		return nil, fmt.Errorf("-spawn %s: not a file (build it with: go build -o /tmp/slotd ./cmd/slotd)", bin)
	}
	dir, err := os.MkdirTemp("", "slotsim-data-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	t := &target{bin: abs, dataDir: dir, token: "sk_sim_" + hex.EncodeToString(tok[:]), logPath: filepath.Join(dir, "slotd.log")}
	t.args = []string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-data", filepath.Join(dir, "data"), "-demo=false", "-log-level", "warn"}
	if tenants > 9000 {
		// Keep every simulated tenant live: passivation would measure
		// reactivation, not steady state.
		t.args = append(t.args, "-max-live-tenants", strconv.Itoa(tenants+100))
	}
	t.args = append(t.args, strings.Fields(extra)...)
	t.env = append(os.Environ(), "SLOTD_ADMIN_TOKEN="+t.token)
	if t.logf, err = os.Create(t.logPath); err != nil {
		return nil, err
	}
	if err := t.start(ctx); err != nil {
		t.close(false)
		return nil, err
	}
	return t, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs the binary and waits for its "listening" and "token" lines.
func (t *target) start(ctx context.Context) error {
	cmd := exec.Command(t.bin, t.args...)
	cmd.Env = t.env
	cmd.Stderr = t.logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slotd: %w", err)
	}
	exit := make(chan struct{})
	t.mu.Lock()
	t.cmd, t.exit = cmd, exit
	t.mu.Unlock()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	var base, token string
	for base == "" || token == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				return fmt.Errorf("slotd exited before it was ready; see %s", t.logPath)
			}
			if m := listenRE.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
			if m := tokenRE.FindStringSubmatch(l); m != nil {
				token = m[1]
			}
		case <-deadline.C:
			t.kill()
			return fmt.Errorf("slotd did not print its URL and token within 60 s; see %s", t.logPath)
		case <-ctx.Done():
			t.kill()
			return ctx.Err()
		}
	}
	// slotd prints "localhost" for a loopback listener; dial the address it
	// was given so that no resolver picks ::1.
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("slotd printed URL %q: %w", base, err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	t.base = "http://127.0.0.1:" + port
	if token != t.token {
		return fmt.Errorf("slotd reports operator token %q, want the one slotsim set", token)
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (t *target) kill() {
	t.mu.Lock()
	cmd, exit := t.cmd, t.exit
	t.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exit
}

// restart kills slotd with SIGKILL and starts it again on the same data
// directory and port.
func (t *target) restart(ctx context.Context) error {
	t.kill()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = t.start(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond) // the port may linger for an instant
	}
	return err
}

// close stops a spawned slotd gracefully (SIGTERM, then SIGKILL after 20 s)
// and removes its data unless keep.
func (t *target) close(keep bool) {
	t.mu.Lock()
	cmd, exit := t.cmd, t.exit
	t.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exit:
		case <-time.After(20 * time.Second):
			t.kill()
		}
	}
	if t.logf != nil {
		_ = t.logf.Close()
	}
	if !keep && t.dataDir != "" {
		_ = os.RemoveAll(t.dataDir)
	}
}

// logTail returns the last lines of the spawned slotd's log, for errors.
func (t *target) logTail(n int) string {
	if t.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(t.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
