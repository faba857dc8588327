package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/slotd/slotd/internal/demo"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence/pebble"
)

// options are slotd's settings: each flag defaults to its SLOTD_*
// environment variable, then to the built-in default.
type options struct {
	addr        string
	dataDir     string
	adminToken  string
	origins     string
	publicURL   string
	maxLive     int
	logLevel    string
	logFormat   string
	demo        bool
	snapshotEvy int
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	envInt := func(k string, def int) int {
		if v, err := strconv.Atoi(getenv(k)); err == nil {
			return v
		}
		return def
	}
	defAddr := ":8080"
	if p := getenv("PORT"); p != "" {
		defAddr = ":" + p
	}
	var o options
	fs := flag.NewFlagSet("slotd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", env("SLOTD_ADDR", defAddr), "listen address (env SLOTD_ADDR; PORT sets :PORT)")
	fs.StringVar(&o.dataDir, "data", env("SLOTD_DATA_DIR", "./data"), "data directory of the embedded store (env SLOTD_DATA_DIR)")
	fs.StringVar(&o.adminToken, "admin-token", env("SLOTD_ADMIN_TOKEN", ""), "operator token; empty: generated once and kept in <data>/admin-token (env SLOTD_ADMIN_TOKEN)")
	fs.StringVar(&o.origins, "allowed-origins", env("SLOTD_ALLOWED_ORIGINS", ""), "extra WebSocket Origin host patterns, comma-separated, e.g. app.example.com,*.example.org (env SLOTD_ALLOWED_ORIGINS)")
	fs.StringVar(&o.publicURL, "public-url", env("SLOTD_PUBLIC_URL", ""), "base URL printed for links; default http://localhost:<port> (env SLOTD_PUBLIC_URL)")
	fs.IntVar(&o.maxLive, "max-live-tenants", envInt("SLOTD_MAX_LIVE_TENANTS", 10000), "tenant actors kept in memory (env SLOTD_MAX_LIVE_TENANTS)")
	fs.StringVar(&o.logLevel, "log-level", env("SLOTD_LOG_LEVEL", "info"), "debug, info, warn or error (env SLOTD_LOG_LEVEL)")
	fs.StringVar(&o.logFormat, "log-format", env("SLOTD_LOG_FORMAT", "text"), "text or json (env SLOTD_LOG_FORMAT)")
	demoDef := env("SLOTD_DEMO", "true") != "false"
	fs.BoolVar(&o.demo, "demo", demoDef, "create a demo tenant when the data directory is empty (env SLOTD_DEMO)")
	fs.IntVar(&o.snapshotEvy, "snapshot-every", envInt("SLOTD_SNAPSHOT_EVERY", 1000), "journal events between tenant snapshots (env SLOTD_SNAPSHOT_EVERY)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", o.logLevel, err)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", o.logFormat)
}

// adminToken returns the configured token, or the one kept in the data
// directory, creating it (0600) on first start.
func adminToken(o options) (token string, created bool, err error) {
	if o.adminToken != "" {
		return o.adminToken, false, nil
	}
	path := filepath.Join(o.dataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	var buf [24]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", false, fmt.Errorf("generate admin token: %w", err)
	}
	token = "sk_" + hex.EncodeToString(buf[:])
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return token, true, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	store, err := pebble.Open(filepath.Join(o.dataDir, "store"), pebble.Options{Logger: log.With("component", "pebble")})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	token, _, err := adminToken(o)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registry := actors.NewRegistry(actors.Config{Store: store, Logger: log.With("component", "actors"),
		Metrics: actors.NewMetrics(reg), MaxLive: o.maxLive, SnapshotEvery: o.snapshotEvy})
	var origins []string
	for _, p := range strings.Split(o.origins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			origins = append(origins, p)
		}
	}
	gw := gateway.New(gateway.Config{
		Tenants: registry, Directory: store, Auth: gateway.NewOperatorToken(token),
		Logger: log.With("component", "gateway"), Metrics: gateway.NewMetrics(reg),
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Ready: func(ctx context.Context) error {
			_, err := store.ListDirectory(ctx, "meta")
			return err
		},
		OriginPatterns: origins,
	})

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := o.publicURL
	if base == "" {
		base = "http://" + displayAddr(ln.Addr())
	}
	base = strings.TrimRight(base, "/")

	if o.demo {
		link, created, err := ensureDemo(ctx, gw, store)
		if err != nil {
			ln.Close()
			registry.Close()
			return fmt.Errorf("demo tenant: %w", err)
		}
		if created {
			log.Info("created demo tenant", "tenant", demo.Tenant)
		}
		if link != "" {
			fmt.Fprintf(stdout, "demo booking page: %s/book/%s\n", base, link)
		}
	}
	fmt.Fprintf(stdout, "slotd listening on %s (data in %s)\n", base, o.dataDir)
	fmt.Fprintf(stdout, "operator token: %s (from %s)\n", token, tokenSource(o))

	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	var g oklogrun.Group
	{
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		}, func(error) {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			gw.Shutdown(sctx)
			_ = srv.Shutdown(sctx)
		})
	}
	{
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return registry.Run(rctx) }, func(error) { cancel() })
	}
	g.Add(oklogrun.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	err = g.Run()
	// A pointer target: SignalError's As method claims a match for a value
	// target without filling it in, which left sig.Signal nil.
	var sig *oklogrun.SignalError
	if errors.As(err, &sig) {
		log.Info("shutting down", "signal", sig.Signal.String())
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func tokenSource(o options) string {
	if o.adminToken != "" {
		return "SLOTD_ADMIN_TOKEN / -admin-token"
	}
	return filepath.Join(o.dataDir, "admin-token")
}

// displayAddr turns a listen address into something a browser can open.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	host := "localhost"
	if !tcp.IP.IsUnspecified() && !tcp.IP.IsLoopback() {
		host = tcp.IP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}
