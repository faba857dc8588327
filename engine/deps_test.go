package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDependencies keeps the engine pure, as the style guide asks: it may
// use the standard library only, and nothing there that does I/O on its
// behalf (network, processes, databases, the operating system), keeps
// time or randomness of its own, or embeds data the rest of slotd should
// choose (tzdata). Transitive use of os and syscall through fmt and time is
// unavoidable and allowed; the engine's own imports may not name them.
func TestDependencies(t *testing.T) {
	goTool := findGo(t)
	list := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(goTool, append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.Fields(string(out))
	}
	const self = "github.com/slotd/slotd/engine"

	// Everything the engine pulls in, however indirectly.
	deps := list("-deps", ".")
	if !slices.Contains(deps, self) {
		t.Fatalf("go list -deps . does not list %s: is the test running in engine/? got %v", self, deps)
	}
	forbiddenDeps := []string{
		"net", "net/*", "os/exec", "os/signal", "os/user", "plugin", "database/*",
		"crypto/tls", "crypto/x509", "log/syslog", "syscall/js", "runtime/cgo",
		"time/tzdata", // tests may embed zone data; the engine leaves it to its host
	}
	for _, p := range deps {
		if p == self {
			continue
		}
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
			t.Errorf("engine depends on %s, which is not in the standard library", p)
		}
		if matchAny(p, forbiddenDeps) {
			t.Errorf("engine depends on %s, which it must not (no I/O, no clock, no embedded data)", p)
		}
	}
	// Only standard packages, by the go command's own account.
	for _, line := range list("-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".") {
		if line != self {
			t.Errorf("engine depends on non-standard package %s", line)
		}
	}

	// What the engine's own files import.
	forbiddenImports := []string{
		"os", "os/*", "io/fs", "io/ioutil", "log", "log/*", "syscall", "unsafe", "runtime", "runtime/*",
		"math/rand", "math/rand/v2", "crypto/rand", "sync", "sync/*", "embed",
	}
	for _, p := range list("-f", `{{join .Imports "\n"}}`, ".") {
		if matchAny(p, forbiddenImports) {
			t.Errorf("engine imports %s: keep I/O, randomness, goroutine plumbing and unsafe code out of the domain", p)
		}
		if strings.HasPrefix(p, "github.com/slotd/slotd/") {
			t.Errorf("engine imports %s: the domain sits at the bottom and imports no other slotd package", p)
		}
	}
}

// matchAny reports whether pkg is one of patterns, where "x/*" matches
// every package under x.
func matchAny(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "/*"); ok {
			if strings.HasPrefix(pkg, pre+"/") {
				return true
			}
		} else if pkg == p {
			return true
		}
	}
	return false
}

// findGo returns the go command: from PATH, else from $GOROOT/bin.
func findGo(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no go command in PATH or $GOROOT/bin")
	}
	t.Skip("no go command in PATH or $GOROOT/bin")
	return ""
}
