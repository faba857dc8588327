package regional

import (
	"fmt"
	"regexp"
	"strings"
)

// Region is one entry of a region list: a region name and the DSN of its
// database.
type Region struct {
	Name string
	DSN  string
}

// entryStart matches the start of a list entry: a region name and "=".
var entryStart = regexp.MustCompile(`^\s*([a-z][a-z0-9-]{0,31})=`)

// ParseRegions parses a region list such as SLOTD_REGIONS:
//
//	us=postgres://slotd@db.us.example/slotd,eu=postgres://slotd@db.eu.example/slotd
//
// Entries are name=DSN separated by commas. A DSN may itself contain
// commas (a multi-host PostgreSQL URL, "postgres://a:5432,b:5432/slotd"):
// a comma starts a new entry only when what follows it is a region name
// and "=", which no host of a URL or libpq key=value DSN can be. Names are
// 1–32 lowercase letters, digits or hyphens, starting with a letter, and
// appear once each. Spaces around entries are ignored.
func ParseRegions(list string) ([]Region, error) {
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("region list is empty")
	}
	parts := strings.Split(list, ",")
	var entries []string
	for i, p := range parts {
		if i == 0 || entryStart.MatchString(p) {
			entries = append(entries, p)
			continue
		}
		entries[len(entries)-1] += "," + p
	}
	var out []Region
	seen := map[string]bool{}
	for _, e := range entries {
		m := entryStart.FindStringSubmatch(e)
		if m == nil {
			// Only the first entry can get here; its text is not quoted, as
			// a DSN may hold a password.
			return nil, fmt.Errorf("region list: want name=DSN,… with names of lowercase letters, digits or hyphens")
		}
		name := m[1]
		dsn := strings.TrimSpace(e[len(m[0]):])
		if dsn == "" {
			return nil, fmt.Errorf("region %q has an empty DSN", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("region %q appears twice", name)
		}
		seen[name] = true
		out = append(out, Region{Name: name, DSN: dsn})
	}
	return out, nil
}
