// Package testenv helps tests that need real external components: the
// headless Chromium and Node.js harness under tests/browser.
//
// scripts/test.sh installs those components and exports SLOTD_CHROMIUM and
// SLOTD_BROWSER_TESTS_DIR. When a component is missing, the helpers skip the
// test with a hint to run scripts/test.sh, except under CI (CI=true), where a
// missing component is a failure: CI must never pass by skipping.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// DefaultChromium is where Debian's chromium package puts the browser.
	DefaultChromium = "/usr/bin/chromium"

	// ChromiumEnv names the variable that overrides DefaultChromium.
	ChromiumEnv = "SLOTD_CHROMIUM"

	// BrowserDirEnv names the variable holding the absolute path of
	// tests/browser; without it the directory is found from the module root.
	BrowserDirEnv = "SLOTD_BROWSER_TESTS_DIR"

	// NodeTimeout bounds one RunNode call.
	NodeTimeout = 3 * time.Minute

	// waitDelay bounds how long RunNode waits for output pipes after the
	// node process has exited or been killed (a leftover child such as a
	// browser may hold them open).
	waitDelay = 10 * time.Second
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// missing fails the test under CI and skips it otherwise.
func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		tb.Fatalf("%s (CI=true: a missing test dependency is a failure; scripts/test.sh installs it)", msg)
	}
	tb.Skipf("%s; run scripts/test.sh to install test dependencies and run the whole suite", msg)
}

// Chromium returns the path of the chromium binary: $SLOTD_CHROMIUM, or
// /usr/bin/chromium when unset.
func Chromium(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv(ChromiumEnv)
	if path == "" {
		path = DefaultChromium
	}
	fi, err := os.Stat(path)
	if err != nil {
		missing(tb, "chromium not found at %s: %v", path, err)
		return ""
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		missing(tb, "chromium at %s is not an executable file", path)
		return ""
	}
	return path
}

// Node returns the path of the node binary found in PATH.
func Node(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		missing(tb, "node not found in PATH: %v", err)
		return ""
	}
	return path
}

// BrowserDir returns the absolute path of tests/browser, checking that its
// npm dependencies are installed (node_modules/playwright-core).
func BrowserDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(BrowserDirEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			missing(tb, "cannot locate tests/browser (%s unset): %v", BrowserDirEnv, err)
			return ""
		}
		dir = filepath.Join(root, "tests", "browser")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatalf("testenv: %s: %v", dir, err)
	}
	pkg := filepath.Join(abs, "node_modules", "playwright-core", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		missing(tb, "browser test dependencies not installed in %s (no node_modules/playwright-core; run npm ci there)", abs)
		return ""
	}
	return abs
}

// moduleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RunNode runs `node script args...` in dir, with env (KEY=VALUE entries)
// added to the test process's environment, and returns its combined stdout
// and stderr. The run is bounded by NodeTimeout and by the test's deadline.
// A non-zero exit, a failure to start or a timeout fails the test with the
// output. Under `go test -v` the output is also logged line by line as it
// arrives.
func RunNode(tb testing.TB, dir, script string, env []string, args ...string) (output string) {
	tb.Helper()
	node := Node(tb)

	ctx, cancel := context.WithTimeout(context.Background(), NodeTimeout)
	defer cancel()
	if d, ok := deadline(tb); ok {
		// Leave a little time to report the failure before go test's own
		// timeout panics.
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, d.Add(-5*time.Second))
		defer c2()
	}

	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.WaitDelay = waitDelay
	out := &logWriter{tb: tb, stream: testing.Verbose()}
	cmd.Stdout = out
	cmd.Stderr = out

	start := time.Now()
	err := cmd.Run()
	out.flush()
	elapsed := time.Since(start).Round(time.Millisecond)
	output = out.String()

	if err != nil {
		reason := err.Error()
		if ctx.Err() != nil {
			reason = fmt.Sprintf("timed out after %v (%v)", elapsed, err)
		}
		shown := output
		if out.stream {
			shown = "(logged above)"
		}
		tb.Fatalf("node %s %s in %s: %s\n--- output ---\n%s", script, strings.Join(args, " "), dir, reason, shown)
	}
	return output
}

// deadline returns the test's deadline when tb is a *testing.T.
func deadline(tb testing.TB) (time.Time, bool) {
	if t, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		return t.Deadline()
	}
	return time.Time{}, false
}

// logWriter collects a child's output and, when stream is set, logs each
// complete line as it arrives. exec.Cmd may write to it from two goroutines.
type logWriter struct {
	tb     testing.TB
	stream bool

	mu      sync.Mutex
	all     bytes.Buffer
	pending []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if !w.stream {
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.tb.Logf("node: %s", w.pending[:i])
		w.pending = w.pending[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stream && len(w.pending) > 0 {
		w.tb.Logf("node: %s", w.pending)
		w.pending = nil
	}
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}
