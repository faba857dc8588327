package password

import (
	_ "embed"
	"strings"
	"sync"
)

// blocklistText is the bundled list of common passwords: one per line, lowercased, deduplicated.
// BLOCKLIST_SOURCE.md says where it comes from and under which license.
//
//go:embed blocklist.txt
var blocklistText string

// blocklist is the set form of blocklistText, built once on first use. It is never modified.
var blocklist = sync.OnceValue(func() map[string]struct{} {
	lines := strings.Split(blocklistText, "\n")
	set := make(map[string]struct{}, len(lines))
	for _, l := range lines {
		if l = strings.TrimRight(l, "\r"); l != "" {
			set[l] = struct{}{}
		}
	}
	return set
})

// BlocklistLen returns the number of passwords on the bundled blocklist.
func BlocklistLen() int { return len(blocklist()) }
