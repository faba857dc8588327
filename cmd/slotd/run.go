// run wires slotd together: one store, the actor registry, the gateway,
// and one oklog/run group per long-lived part.
//
//	browsers, apps ──► gateway (HTTP, WebSocket) ──► actors.Registry ──► store
//	                        ▲                          │ tenant actor: mailbox → engine.Apply →
//	                        └──── availability deltas ─┤ group commit → ack → publish
//	                                                   │
//	             registry.Notify(tenant) ◄── follow ◄──┤ store: persistence/pebble (-data), or
//	             registry.Notify("")     ◄── poll      │ persistence/postgres (-database-url):
//	                 (other instances' appends:        │ LISTEN slotd_journal, ReadFrom the tail
//	                  the actor reads the tail,        │
//	                  publishes it)                    ▼
//
// Run groups: serve (HTTP), registry (actors), follow (PostgreSQL LISTEN,
// when the store has it), poll (every -follow-poll, with a database) and
// the signal handler. Stopping any of them stops all: the gateway closes
// WebSockets with "going away", the actors finish their mailboxes and
// snapshot, and the store is closed last.
//
// Subcommands: "slotd migrate" (migrate.go), "slotd keys" (keys.go), "slotd audit" (audit.go).

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/slotd/slotd/privacy"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/demo"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/persistence/postgres"
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

	databaseURL string        // PostgreSQL instead of the embedded store
	notify      bool          // PostgreSQL notifications between instances
	followPoll  time.Duration // re-read live tenants' journals this often; 0: never

	regions       string // SLOTD_REGIONS: name=DSN,… (regions.go); excludes databaseURL
	defaultRegion string // home region of tenants created without one; default the first listed

	edge edgeOptions // TLS, HTTPS-only, proxy trust, rate limits (tls.go)

	debugAddr string // loopback listener for Go's profiles (debug.go); empty: none

	memoryLimit int64 // Go heap budget in bytes (memory.go); 0: Go's defaults
}

// snapshotSpread is actors.Config.SnapshotSpread: each tenant's snapshots
// come after 50–100 % of -snapshot-every events, its own share, so that
// tenants started or reloaded together do not all seal their customers at
// once (with the privacy codec a snapshot re-seals every customer: 100
// tenants of 1,000 bookings snapshotting together took ~2 s of CPU and put
// the book p99 near 1 s in slotsim's 100-tenant workload).
const snapshotSpread = 0.5

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
	envDuration := func(k string, def time.Duration) time.Duration {
		if v, err := time.ParseDuration(getenv(k)); err == nil {
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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  slotd [flags]          serve (embedded store in -data, or PostgreSQL with -database-url)
  slotd migrate [flags]  create or upgrade the PostgreSQL schema, then exit (slotd migrate -h)
  slotd keys ...         generate a master key, or rotate every secret to the active one (keys.go)
  slotd audit ...        verify (and prune) the tenants' audit logs; make checkpoint keys (audit.go)

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.addr, "addr", env("SLOTD_ADDR", defAddr), "listen address (env SLOTD_ADDR; PORT sets :PORT)")
	fs.StringVar(&o.dataDir, "data", env("SLOTD_DATA_DIR", "./data"), "data directory: the embedded store, and the generated admin token (env SLOTD_DATA_DIR)")
	fs.StringVar(&o.adminToken, "admin-token", env("SLOTD_ADMIN_TOKEN", ""), "operator token; empty: generated once and kept in <data>/admin-token (env SLOTD_ADMIN_TOKEN)")
	fs.StringVar(&o.origins, "allowed-origins", env("SLOTD_ALLOWED_ORIGINS", ""), "extra WebSocket Origin host patterns, comma-separated, e.g. app.example.com,*.example.org (env SLOTD_ALLOWED_ORIGINS)")
	fs.StringVar(&o.publicURL, "public-url", env("SLOTD_PUBLIC_URL", ""), "base URL printed for links; default http://localhost:<port> (env SLOTD_PUBLIC_URL)")
	fs.IntVar(&o.maxLive, "max-live-tenants", envInt("SLOTD_MAX_LIVE_TENANTS", 10000), "tenant actors kept in memory (env SLOTD_MAX_LIVE_TENANTS)")
	fs.StringVar(&o.logLevel, "log-level", env("SLOTD_LOG_LEVEL", "info"), "debug, info, warn or error (env SLOTD_LOG_LEVEL)")
	fs.StringVar(&o.logFormat, "log-format", env("SLOTD_LOG_FORMAT", "text"), "text or json (env SLOTD_LOG_FORMAT)")
	demoDef := env("SLOTD_DEMO", "true") != "false"
	fs.BoolVar(&o.demo, "demo", demoDef, "create a demo tenant when the store has no tenants (env SLOTD_DEMO)")
	fs.IntVar(&o.snapshotEvy, "snapshot-every", envInt("SLOTD_SNAPSHOT_EVERY", 1000), "journal events between tenant snapshots (each tenant takes its own 50–100 % of it, so that they do not all snapshot at once) (env SLOTD_SNAPSHOT_EVERY)")
	fs.StringVar(&o.databaseURL, "database-url", env("SLOTD_DATABASE_URL", ""), "PostgreSQL (or CockroachDB) URL, connecting as slotd's application role; empty: the embedded store in -data (env SLOTD_DATABASE_URL)")
	fs.BoolVar(&o.notify, "database-notify", env("SLOTD_DATABASE_NOTIFY", "true") != "false", "with -database-url on PostgreSQL: notify other instances of appends and listen for theirs; false: rely on -follow-poll (env SLOTD_DATABASE_NOTIFY)")
	fs.DurationVar(&o.followPoll, "follow-poll", envDuration("SLOTD_FOLLOW_POLL", 2*time.Second), "with -database-url: how often live tenants re-read their journals for other instances' appends, in case a notification was lost or none are sent; 0 disables (env SLOTD_FOLLOW_POLL)")
	fs.StringVar(&o.regions, "regions", env("SLOTD_REGIONS", ""), "data residency: one PostgreSQL database per region, name=URL,… (us=postgres://…,eu=postgres://…); each tenant's data goes to its home region's database only; instead of -database-url (env SLOTD_REGIONS)")
	fs.StringVar(&o.defaultRegion, "default-region", env("SLOTD_DEFAULT_REGION", ""), "with -regions: home region of tenants created without one, and where the directory lives; default the first region listed (env SLOTD_DEFAULT_REGION)")
	fs.StringVar(&o.debugAddr, "debug-addr", env("SLOTD_DEBUG_ADDR", ""), "loopback address serving Go's profiles at /debug/pprof/, e.g. 127.0.0.1:6060; empty: off (env SLOTD_DEBUG_ADDR)")
	memoryLimit := fs.String("memory-limit", env("SLOTD_MEMORY_LIMIT", ""), "budget for the Go runtime's memory (heap and stacks), e.g. 6GiB, at most 90% of the memory available: the garbage collector then runs when the heap reaches five times its live size (GOGC 400) or nears the budget, instead of each time it doubles: fewer collections, a lower latency tail with many tenants, more memory (several times the live heap, go_memstats_heap_inuse_bytes after a collection); empty: Go's defaults (env SLOTD_MEMORY_LIMIT; see docs/operations.md)")
	o.edge.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.memoryLimit, err = parseMemoryLimit(*memoryLimit); err != nil {
		return o, err
	}
	if o.memoryLimit > 0 {
		if err := checkMemoryLimit(o.memoryLimit, availableMemory()); err != nil {
			return o, err
		}
	}
	if err := checkDebugAddr(o.debugAddr); err != nil {
		return o, err
	}
	if err := o.edge.check(); err != nil {
		return o, err
	}
	if err := checkStoreFlags(o); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (subcommands — migrate, keys, audit — come first)", fs.Args())
	}
	if o.followPoll < 0 {
		return o, fmt.Errorf("-follow-poll %v: want 0 (off) or more", o.followPoll)
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
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("data directory: %w", err)
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

// follower is a store that hears other instances' appends (PostgreSQL
// LISTEN/NOTIFY: postgres.Store.Follow).
type follower interface {
	Follow(ctx context.Context, fn func(tenant string)) error
}

// openStore opens the store the options select: PostgreSQL with
// -database-url, else the embedded store in the data directory. where
// describes it for the banner, without credentials.
func openStore(ctx context.Context, o options, log *slog.Logger) (store persistence.Store, where string, err error) {
	if o.regions != "" {
		return openRegions(ctx, o, log)
	}
	if o.databaseURL == "" {
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return nil, "", fmt.Errorf("data directory: %w", err)
		}
		st, err := pebble.Open(filepath.Join(o.dataDir, "store"), pebble.Options{Logger: log.With("component", "pebble")})
		if err != nil {
			return nil, "", fmt.Errorf("open store: %w", err)
		}
		return st, o.dataDir, nil
	}
	st, err := postgres.Open(ctx, o.databaseURL, postgres.Options{Logger: log.With("component", "postgres"), NoNotify: !o.notify})
	switch {
	case errors.Is(err, postgres.ErrSchemaTooOld):
		return nil, "", fmt.Errorf("%w\nrun `slotd migrate -database-owner-url URL -app-role ROLE` (as the role owning the tables) first", err)
	case errors.Is(err, postgres.ErrSchemaTooNew):
		return nil, "", fmt.Errorf("%w\na newer slotd migrated this database: run that version (or newer); `slotd migrate` does not downgrade", err)
	case errors.Is(err, postgres.ErrPrivilegedRole):
		return nil, "", fmt.Errorf("%w\nconnect as slotd's application role (the -app-role given to `slotd migrate`), not as the tables' owner or a superuser", err)
	case err != nil:
		return nil, "", err
	}
	return st, describeDatabase(o.databaseURL), nil
}

// describeDatabase names a database URL's first host and database, never
// its password.
func describeDatabase(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "PostgreSQL"
	}
	return fmt.Sprintf("PostgreSQL %s/%s", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
}

// gatewayHook is the context key of a func(*gateway.Server) that run calls
// with the gateway it built, before serving: the isolation suite
// (isolation_test.go) enumerates the live router through it, so that every
// mounted route, whichever package adds it, needs an isolation case.
type gatewayHook struct{}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return runMigrate(ctx, args[1:], getenv, stdout, stderr)
		case "keys":
			return runKeys(ctx, args[1:], getenv, stdout, stderr)
		case "audit":
			return runAudit(ctx, args[1:], getenv, stdout, stderr)
		}
	}
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
	applyMemoryLimit(o.memoryLimit, log)
	store, where, err := openStore(ctx, o, log)
	if err != nil {
		return err
	}
	defer store.Close()
	token, _, err := adminToken(o)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var gw *gateway.Server
	sec, err := buildSecurity(o, store, getenv, log, &gw)
	if err != nil {
		return fmt.Errorf("security: %w", err)
	}
	// The privacy codec seals every customer's details before they reach the
	// journal or a snapshot, under a key of that customer's own.
	registry := actors.NewRegistry(actors.Config{Store: store, Codec: sec.codec, Logger: log.With("component", "actors"),
		Metrics: actors.NewMetrics(reg), MaxLive: o.maxLive, SnapshotEvery: o.snapshotEvy, SnapshotSpread: snapshotSpread})
	priv, err := privacy.NewService(privacy.Config{Tenants: registry, Codec: sec.codec, Audit: sec.audit,
		Accounts: func(ctx context.Context, t string) (any, error) { return sec.accounts.List(ctx, t) },
		Logger:   log.With("component", "privacy")})
	if err != nil {
		registry.Close()
		return fmt.Errorf("privacy: %w", err)
	}
	var origins []string
	for _, p := range strings.Split(o.origins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			origins = append(origins, p)
		}
	}
	tr, err := openTransport(o.edge, o.addr, o.publicURL)
	if err != nil {
		registry.Close()
		return err
	}
	defer tr.close()
	gw = gateway.New(gateway.Config{
		Tenants: registry, Directory: store, Regions: tenantRegions(store),
		Auth:     gateway.ChainAuth(gateway.NewOperatorToken(token), sec.accounts.WSTokens(), sec.oauth),
		Sessions: sec.accounts,
		Routes:   slices.Concat(sec.accounts.Routes(), sec.oauth.Routes(), priv.Routes()),
		Logger:   log.With("component", "gateway"), Metrics: gateway.NewMetrics(reg),
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Ready: func(ctx context.Context) error {
			_, err := store.ListDirectory(ctx, "meta")
			return err
		},
		OriginPatterns: origins,
		TrustProxy:     o.edge.trustProxy, HTTPSOnly: o.edge.httpsOnly, HTTPSPort: tr.httpsPort(),
		RateLimits: o.edge.rateLimits(),
	})
	sec.accounts.SetGrantCloser(gw)
	if hook, ok := ctx.Value(gatewayHook{}).(func(*gateway.Server)); ok {
		hook(gw)
	}

	base := o.publicURL
	if base == "" {
		base = tr.scheme() + "://" + displayAddr(tr.ln.Addr())
	}
	base = strings.TrimRight(base, "/")

	if o.demo {
		link, created, err := ensureDemo(ctx, gw, store)
		if err != nil {
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
	fmt.Fprintf(stdout, "slotd listening on %s (data in %s)\n", base, where)
	fmt.Fprintf(stdout, "operator token: %s (from %s)\n", token, tokenSource(o))
	tr.printBanner(stdout)

	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	var g oklogrun.Group
	{
		g.Add(func() error {
			if err := tr.serve(srv); !errors.Is(err, http.ErrServerClosed) {
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
	tr.addGroups(&g, gw, log)
	if _, err := addDebug(&g, o.debugAddr, log); err != nil {
		registry.Close()
		return err
	}
	{
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return registry.Run(rctx) }, func(error) { cancel() })
	}
	if o.databaseURL != "" || o.regions != "" {
		addFollowers(&g, o, store, registry, log)
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

// addFollowers adds the run groups that keep live tenants current with
// other instances' appends to a shared database: follow wakes a tenant's
// actor on each PostgreSQL notification (and every live actor after each
// (re)connection), poll wakes every live actor every -follow-poll, in case
// a notification was lost or none are sent (CockroachDB, -database-notify
// false). An actor woken reads the journal tail and publishes it.
func addFollowers(g *oklogrun.Group, o options, store persistence.Store, registry *actors.Registry, log *slog.Logger) {
	f, ok := store.(follower)
	if ok && o.notify {
		fctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			err := f.Follow(fctx, registry.Notify)
			if errors.Is(err, postgres.ErrFollowUnsupported) {
				if o.followPoll == 0 {
					log.Warn("the database sends no notifications and -follow-poll is 0: changes made through other slotd instances reach this one's subscribers only when their tenant is next written here")
				} else {
					log.Info("the database sends no notifications; other instances' changes arrive by polling", "follow_poll", o.followPoll)
				}
				<-fctx.Done()
				return nil
			}
			if fctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow: %w", err)
		}, func(error) { cancel() })
	}
	if o.followPoll == 0 && !(ok && o.notify) {
		log.Warn("-follow-poll 0 without notifications: changes made through other slotd instances reach this one's subscribers only when their tenant is next written here")
	}
	if o.followPoll > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return registry.Poll(pctx, o.followPoll) }, func(error) { cancel() })
	}
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
