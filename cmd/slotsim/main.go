// Command slotsim is slotd's load simulator, invariant checker and
// benchmark recorder. It drives a running slotd — or one it starts itself on
// a throwaway embedded store — the way booking pages and staff apps do, over
// the public HTTP and WebSocket protocol only (docs/protocol.md): it imports
// nothing of slotd, so what it measures is what any client would see.
//
//	            ┌──────────── slotsim ─────────────┐
//	arrivals ──►│ booking clients (1 WebSocket each,│──► slotd  (-target URL, or
//	(open loop, │  bound to one tenant, paced)      │    -spawn BINARY on a temp
//	or closed)  │ viewers (subscribed availability) │◄── store; -chaos kill -9s it)
//	            │ recorder: HDR histograms, series  │
//	            │ ledger: what each client was told │──► invariant check, report
//	            └───────────────────────────────────┘
//
// Latency is measured from each request's intended send time (open loop), so
// a stalled server is charged for every request it held up rather than only
// the one it was serving (no coordinated omission). After the run slotsim
// compares what clients were told with the server's final state and exits
// non-zero if a booking was lost, invented or double-booked, or if a viewer's
// live availability did not converge. See docs/slotsim.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
