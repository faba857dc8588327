// Command baseline is the design a team would otherwise build for slotd's
// job, kept small, honest and tuned, so that slotsim can measure slotd
// against it on the same machine and workload (issue 5):
//
//   - one PostgreSQL transaction per booking: a single INSERT, guarded by
//     EXCLUDE USING gist (tenant WITH =, resource WITH =, during WITH &&)
//     (btree_gist); a violation (SQLSTATE 23P01) is 409 slot_taken;
//   - retries are idempotent: a unique index on (tenant, idempotency_key);
//   - availability by polling: GET computes a day's free slots from the
//     bookings table; there is no push (no WebSocket).
//
// Its HTTP API is a subset of slotd's public shapes (docs/protocol.md), so
// that slotsim drives both with the same workload:
//
//	POST /v1/tenants                           {"id","config"}        → tenant
//	POST /v1/tenants/{id}/bookings             {"service","resource","any_resource","start","customer","idempotency_key"}
//	GET  /v1/tenants/{id}/bookings             → {"version","bookings"}
//	GET  /v1/public/{link}/availability?service=&from=&to=&tz=UTC → {"version","slots"}
//
// Every resource is open 00:00–24:00 UTC every day, capacity 1, on a fixed
// grid of the service's duration (the simple hours model slotsim's tenants
// use). Run it against a database:
//
//	go run ./bench/baseline -database-url postgres://… -addr 127.0.0.1:0
//
// or on a throwaway cluster (internal/pgtest; PostgreSQL installed, run as
// root or the postgres user): go run ./bench/baseline -pgtest. It prints
// "baseline listening on http://ADDR" once it serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/slotd/slotd/internal/pgtest"
)

func main() {
	dsn := flag.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (default $DATABASE_URL)")
	addr := flag.String("addr", "127.0.0.1:8090", "listen address (port 0: any free port)")
	useTmp := flag.Bool("pgtest", false, "start a throwaway PostgreSQL cluster (internal/pgtest) instead of -database-url")
	pool := flag.Int("pool", 0, "pgxpool size (default 4 × cores, at least 8)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dsn, *addr, *useTmp, *pool); err != nil {
		log.Fatalf("baseline: %v", err)
	}
}

func run(ctx context.Context, dsn, addr string, useTmp bool, pool int) error {
	if useTmp {
		c, err := pgtest.New()
		if err != nil {
			return err
		}
		defer c.Close()
		dsn = c.OwnerDSN()
	}
	if dsn == "" {
		return errors.New("give -database-url or -pgtest")
	}
	if pool <= 0 {
		pool = max(8, 4*runtime.NumCPU())
	}
	srv, err := Open(ctx, dsn, pool)
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("baseline listening on http://%s\n", l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
