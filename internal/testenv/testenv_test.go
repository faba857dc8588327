package testenv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slotd/slotd/internal/testenv"
)

// TestBrowserSmoke runs tests/browser/smoke.mjs: headless chromium driven by
// playwright-core clicks a button. It proves the browser harness works on
// this machine (and fails, rather than skips, under CI).
func TestBrowserSmoke(t *testing.T) {
	chromium := testenv.Chromium(t)
	dir := testenv.BrowserDir(t)

	out := testenv.RunNode(t, dir, "smoke.mjs", []string{testenv.ChromiumEnv + "=" + chromium})
	if !hasLine(out, "ok") {
		t.Fatalf("smoke.mjs exited 0 but did not print ok; output:\n%s", out)
	}
}

// TestRunNodeOutput checks that RunNode returns the combined output of a
// script that writes to both stdout and stderr.
func TestRunNodeOutput(t *testing.T) {
	testenv.Node(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "echo.mjs")
	writeFile(t, script, `console.log("out " + process.env.SLOTD_TESTENV_X + " " + process.argv.slice(2).join(","));
console.error("err line");
`)
	out := testenv.RunNode(t, dir, "echo.mjs", []string{"SLOTD_TESTENV_X=42"}, "a", "b")
	if !hasLine(out, "out 42 a,b") || !hasLine(out, "err line") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

func hasLine(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
