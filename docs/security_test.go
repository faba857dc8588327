package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocReferencesExist checks that every test, fuzz target,
// benchmark and source file that docs/security.md names as enforcing or
// proving a promise exists, so the table cannot drift into claims that no
// code backs.
func TestSecurityDocReferencesExist(t *testing.T) {
	doc, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			tests.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := tests.String()
	for _, m := range regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)(\\*?)`").FindAllStringSubmatch(string(doc), -1) {
		name, prefix := m[1], m[2] == "*"
		pat := "func " + name
		if !prefix {
			pat += "("
		}
		if !strings.Contains(all, pat) {
			t.Errorf("security.md names %s%s, but no test function matches", name, m[2])
		}
	}
	for _, m := range regexp.MustCompile("`([a-z][a-z0-9_/]*\\.go)`").FindAllStringSubmatch(string(doc), -1) {
		if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
			t.Errorf("security.md names %s, which does not exist", m[1])
		}
	}
}
