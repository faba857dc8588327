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
	"fmt"
	"os"
	_ "time/tzdata" // zones work on machines without zoneinfo
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "slotd:", err)
		os.Exit(1)
	}
}
