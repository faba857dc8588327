// Command slotd runs the scheduling engine: HTTP + WebSocket gateway,
// tenant actors, and the embedded store.
//
//	browsers, apps ──► gateway (HTTP, WebSocket) ──► actors.Registry ──► persistence/pebble
//	                        ▲                          │ tenant actor: mailbox → engine.Apply →
//	                        └──── availability deltas ─┘ group commit (fsync) → ack → publish
//
// Each long-lived part is one oklog/run group: the HTTP server, the actor
// registry and the signal handler. Stopping any of them stops all: the
// gateway closes WebSockets with "going away", the actors finish their
// mailboxes and snapshot, and the store is closed last.
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
