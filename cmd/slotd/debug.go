package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	oklogrun "github.com/oklog/run"
)

// checkDebugAddr accepts an empty address (no debug listener) or a loopback
// one: the profiles show request contents in memory and cost CPU, so they
// are never served beyond the machine.
func checkDebugAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-debug-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-debug-addr %q: want a loopback address such as 127.0.0.1:6060", addr)
	}
	return nil
}

// debugMux serves Go's runtime profiles under /debug/pprof/.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// addDebug adds the -debug-addr listener to g, and turns on the mutex
// profile, sampled at 1 in 1000 contention events. The block profile stays
// off: recording the stack of every blocking channel operation cost 14% of
// slotd's CPU under load (measured with slotsim steady). It returns the
// address listened on ("" when addr is empty).
func addDebug(g *oklogrun.Group, addr string, log *slog.Logger) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("debug listener: %w", err)
	}
	runtime.SetMutexProfileFraction(1000)
	srv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("profiles served", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("debug listener: %w", err)
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}
