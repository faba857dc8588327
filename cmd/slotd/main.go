// Command slotd runs the scheduling engine: HTTP + WebSocket gateway,
// tenant actors, and a store: the embedded one (Pebble, in a data
// directory) or PostgreSQL, which several slotd instances can share.
// "slotd migrate" creates or upgrades the PostgreSQL schema.
//
// run.go wires the parts together (its comment draws them); each
// long-lived part is one oklog/run group, and stopping any of them stops
// all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	_ "time/tzdata" // zones work on machines without zoneinfo

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/zonecache"
)

// Every tenant and resource names a zone: load each once per process.
func init() { engine.ZoneSource = zonecache.Load }

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "slotd:", err)
		os.Exit(1)
	}
}

// parseSubcommand parses a subcommand's flags (fs is named "slotd
// <subcommand>"): help reports that -h printed the usage and the command is
// done; positional arguments are refused.
func parseSubcommand(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%s: unexpected arguments %q", strings.TrimPrefix(fs.Name(), "slotd "), fs.Args())
	}
	return false, nil
}
