// Package pgtest starts throwaway PostgreSQL clusters for tests: Debian's
// server binaries (/usr/lib/postgresql/<version>/bin, the newest version
// installed), a fresh data directory in a temp dir, a free port on
// 127.0.0.1, everything removed when the test ends. No database mocks: the
// SQL backend's tests run against the real server.
//
// A cluster is laid out the way slotd runs in production: a database
// (DefaultDatabase) owned by an owner role (OwnerRole), which runs the
// migrations, and an application role (AppRole) that neither owns the tables
// nor has BYPASSRLS, so row-level security applies to it. Authentication is
// trust on 127.0.0.1 and the cluster's own unix socket: the cluster lives for
// one test run and listens on loopback only.
//
// The server runs with fsync and synchronous_commit on, like production,
// because tests kill it (Kill) and check that committed data survives. Only
// initdb and pg_basebackup skip their final fsync of the files they create:
// a test can lose the machine's page cache only by losing the machine.
//
// The postgres server process is a child of the test process, not a daemon
// started by pg_ctl: the test reaps it, can SIGKILL it (Kill) and restart it
// into crash recovery (Restart), and the kernel stops it (SIGQUIT, the
// immediate-shutdown signal) if the test process dies without cleaning up.
//
// When the binaries are missing a test using Start is skipped with a hint to
// run scripts/test.sh, which installs them, except under CI (CI=true), where
// missing PostgreSQL is a failure.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/internal/testenv"
)

const (
	// Superuser is the bootstrap superuser initdb creates.
	Superuser = "postgres"
	// OwnerRole owns DefaultDatabase and every database CreateDatabase
	// makes: it runs migrations and owns the tables.
	OwnerRole = "slotd_owner"
	// AppRole is the role slotd connects as: LOGIN only, no SUPERUSER,
	// CREATEDB, CREATEROLE or BYPASSRLS, owning nothing. Migrations grant it
	// what it needs.
	AppRole = "slotd_app"
	// DefaultDatabase is created at Start, owned by OwnerRole.
	DefaultDatabase = "slotd"

	// BinEnv names the variable that overrides the binaries directory
	// (default: the newest /usr/lib/postgresql/*/bin).
	BinEnv = "SLOTD_PG_BIN"

	// startTimeout bounds waiting for a server to accept connections
	// (crash recovery included).
	startTimeout = 60 * time.Second
	// stopTimeout bounds a fast shutdown before Close falls back to SIGKILL.
	stopTimeout = 60 * time.Second
)

// binGlob is where Debian's postgresql-NN packages put the server binaries.
const binGlob = "/usr/lib/postgresql/*/bin"

// ErrNotInstalled is wrapped by New's error when the PostgreSQL server
// binaries (or, when running as root, the postgres user) are missing.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL server binaries not installed")

// baseSettings are written to every cluster's postgresql.conf. They favour a fast
// start and a small footprint but keep every durability setting at its
// production value.
var baseSettings = []string{
	"listen_addresses=127.0.0.1",
	"shared_buffers=16MB",
	"max_connections=200",
	"fsync=on",
	"synchronous_commit=on",
	"full_page_writes=on",
	"autovacuum=off",
	"wal_level=replica",
	"max_wal_senders=10",
	"max_replication_slots=10",
	"hot_standby=on",
	"max_wal_size=1GB",
	"logging_collector=off",
	"log_min_messages=warning",
	"log_checkpoints=off",
	"timezone=UTC",
}

// Option configures a cluster.
type Option func(*config)

type config struct {
	settings []string
}

// WithSetting sets name=value in the cluster's postgresql.conf, after the
// defaults so it overrides them; for example WithSetting("max_connections",
// "500"). Configure changes settings of a running cluster.
func WithSetting(name, value string) Option {
	return func(c *config) { c.settings = append(c.settings, name+"="+value) }
}

// Cluster is one running (or stopped) PostgreSQL cluster.
type Cluster struct {
	bin      string // directory holding initdb, postgres, pg_basebackup
	dir      string // temp dir: data/, the unix socket, server.log
	dataDir  string
	logPath  string
	port     int
	cred     *syscall.Credential // nil unless running as root
	settings []string            // name=value: baseSettings, then options
	dbSeq    atomic.Int64        // names databases made by CreateDatabase

	mu     sync.Mutex    // guards the fields below
	cmd    *exec.Cmd     // the running postmaster; nil when stopped
	exited chan struct{} // closed when cmd has exited and been reaped
	closed bool
}

// Database is a database made by CreateDatabase.
type Database struct {
	Name     string
	OwnerDSN string // connects as OwnerRole: for migrations
	AppDSN   string // connects as AppRole: what slotd uses
}

// Start starts a fresh cluster with DefaultDatabase, OwnerRole and AppRole,
// and removes it when tb ends. When the server binaries are missing it skips
// tb (fails it under CI=true).
func Start(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	c, err := New(opts...)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) {
			missing(tb, err)
		}
		tb.Fatalf("pgtest: %v", err)
	}
	c.cleanupWith(tb)
	return c
}

// New starts a cluster like Start but without a testing.TB, for a TestMain
// that shares one cluster between tests (see Shared). The caller must Close
// it. A missing installation is an error wrapping ErrNotInstalled.
func New(opts ...Option) (*Cluster, error) {
	c, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := c.initdb(); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.startFreshPort(); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.bootstrap(); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// prepare finds the binaries and makes the cluster's temp dir.
func prepare(opts []Option) (*Cluster, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// A short name under the system temp dir keeps the unix socket path
	// below the kernel's 108-byte limit (t.TempDir paths can be long).
	dir, err := os.MkdirTemp("", "slotd-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: chown %s to postgres: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return &Cluster{
		bin:      bin,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		logPath:  filepath.Join(dir, "server.log"),
		cred:     cred,
		settings: append(slices.Clone(baseSettings), cfg.settings...),
	}, nil
}

// findBin returns $SLOTD_PG_BIN or the newest /usr/lib/postgresql/*/bin
// holding initdb, postgres and pg_basebackup.
func findBin() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if err := checkBin(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinEnv, dir, err)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob(binGlob)
	best, bestVersion := "", -1.0
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || v <= bestVersion || checkBin(dir) != nil {
			continue
		}
		best, bestVersion = dir, v
	}
	if best == "" {
		return "", fmt.Errorf("no initdb, postgres and pg_basebackup in %s (apt-get install postgresql postgresql-contrib): %w", binGlob, ErrNotInstalled)
	}
	return best, nil
}

func checkBin(dir string) error {
	for _, name := range []string{"initdb", "postgres", "pg_basebackup"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s missing or not executable: %w", filepath.Join(dir, name), ErrNotInstalled)
		}
	}
	return nil
}

// serverCredential returns the postgres user's credential when running as
// root (PostgreSQL refuses to run as root), nil otherwise (the server runs
// as the current user).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run the server (%v): %w", err, ErrNotInstalled)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// command returns a command running one of the PostgreSQL binaries as the
// server's user, with PG* variables removed from its environment so that
// only the arguments given here decide where it connects.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

// run runs a short-lived binary and returns its error with its output.
func (c *Cluster) run(name string, args ...string) error {
	cmd := c.command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) initdb() error {
	return c.run("initdb", "-D", c.dataDir, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
}

// startFreshPort starts the server on a free port, retrying with another
// port if the one picked was taken in the meantime.
func (c *Cluster) startFreshPort() error {
	var err error
	for range 5 {
		c.port, err = freePort()
		if err != nil {
			return err
		}
		if err := c.writeSettings(); err != nil {
			return err
		}
		if err = c.start(); err == nil {
			return nil
		}
		if !strings.Contains(c.logTail(20), "could not bind") && !strings.Contains(c.logTail(20), "could not create any TCP/IP sockets") {
			return err
		}
	}
	return err
}

// writeSettings appends the cluster's settings to postgresql.conf, where
// later lines override earlier ones (a standby's copy of the primary's
// file included) and ALTER SYSTEM (Configure) overrides them all.
func (c *Cluster) writeSettings() error {
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	settings := append([]string{"port=" + strconv.Itoa(c.port), "unix_socket_directories=" + c.dir}, c.settings...)
	for _, s := range settings {
		name, value, _ := strings.Cut(s, "=")
		fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(value, "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the postmaster and waits until it accepts connections.
func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("pgtest: cluster closed")
	}
	if c.cmd != nil {
		return errors.New("pgtest: server already running")
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	cmd := c.command("postgres", "-D", c.dataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a terminal's ^C reaches the test first; and
	// SIGQUIT (immediate shutdown) if the test process dies.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	err = cmd.Start()
	logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited

	if err := c.waitReady(exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		c.cmd = nil
		return err
	}
	return nil
}

// waitReady polls until the server accepts a connection, the process exits
// or startTimeout passes.
func (c *Cluster) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.DSN(Superuser, "postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited during start-up:\n%s", c.logTail(30))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not accepting connections after %v (last error: %v):\n%s", startTimeout, err, c.logTail(30))
		}
	}
}

// bootstrap creates the roles and DefaultDatabase.
func (c *Cluster) bootstrap() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperuserDSN())
	if err != nil {
		return fmt.Errorf("pgtest: connect as superuser: %w", err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		"CREATE ROLE " + OwnerRole + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
		"CREATE ROLE " + AppRole + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
		"CREATE DATABASE " + DefaultDatabase + " OWNER " + OwnerRole,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("pgtest: %s: %w", stmt, err)
		}
	}
	return nil
}

// DSN returns a URL connecting to database as user over TCP.
func (c *Cluster) DSN(user, database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.port, database)
}

// SuperuserDSN connects to the postgres database as the superuser: for test
// set-up and inspection only.
func (c *Cluster) SuperuserDSN() string { return c.DSN(Superuser, "postgres") }

// OwnerDSN connects to DefaultDatabase as OwnerRole.
func (c *Cluster) OwnerDSN() string { return c.DSN(OwnerRole, DefaultDatabase) }

// AppDSN connects to DefaultDatabase as AppRole.
func (c *Cluster) AppDSN() string { return c.DSN(AppRole, DefaultDatabase) }

// Port returns the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// Log returns the server log so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

func (c *Cluster) logTail(lines int) string {
	all := strings.Split(strings.TrimRight(c.Log(), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// CreateDatabase creates a fresh, empty database owned by OwnerRole (from
// template0, the quickest copy), for tests that share a cluster but want
// isolation. It is left for Close to remove with the cluster.
func (c *Cluster) CreateDatabase(tb testing.TB) Database {
	tb.Helper()
	return c.CloneDatabase(tb, "template0")
}

// CloneDatabase creates a database owned by OwnerRole as a copy of
// template, which no session may be connected to: for example a database
// migrated once and cloned for each test, quicker than migrating each.
func (c *Cluster) CloneDatabase(tb testing.TB, template string) Database {
	tb.Helper()
	name := fmt.Sprintf("%s_%d", DefaultDatabase, c.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperuserDSN())
	if err != nil {
		tb.Fatalf("pgtest: connect as superuser: %v", err)
	}
	defer conn.Close(ctx)
	stmt := "CREATE DATABASE " + name + " OWNER " + OwnerRole + " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	if _, err := conn.Exec(ctx, stmt); err != nil {
		tb.Fatalf("pgtest: %s: %v", stmt, err)
	}
	return Database{Name: name, OwnerDSN: c.DSN(OwnerRole, name), AppDSN: c.DSN(AppRole, name)}
}

// Stop shuts the server down cleanly (fast shutdown: sessions are
// disconnected, a shutdown checkpoint is written). Restart starts it again.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	if err := c.stop(); err != nil {
		tb.Fatal(err)
	}
}

// Kill simulates a crash of the database server: SIGKILL to the postmaster
// and then to every process of the cluster, with no shutdown checkpoint.
// Committed transactions are in the fsynced WAL; Restart replays it.
func (c *Cluster) Kill(tb testing.TB) {
	tb.Helper()
	if err := c.kill(); err != nil {
		tb.Fatal(err)
	}
}

// Restart starts the server again on the same port and data directory
// after Stop or Kill (after Kill it runs crash recovery first). If the
// server is running it is stopped first.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	if err := c.stop(); err != nil {
		tb.Fatal(err)
	}
	if err := c.start(); err != nil {
		tb.Fatal(err)
	}
}

// running returns the postmaster and its exit channel, or nil.
func (c *Cluster) running() (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd, c.exited
}

func (c *Cluster) stop() error {
	cmd, exited := c.running()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		if err := c.kill(); err != nil {
			return err
		}
		return fmt.Errorf("pgtest: fast shutdown took over %v; killed:\n%s", stopTimeout, c.logTail(30))
	}
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	return nil
}

func (c *Cluster) kill() error {
	cmd, exited := c.running()
	if cmd == nil {
		return nil
	}
	// The postmaster first, so that it cannot notice a dead child and
	// restart the others; then every process still working in the data
	// directory (backends, checkpointer, WAL writer...). Each child calls
	// setsid, so a process group does not catch them: their working
	// directory, the data directory, does. Until they are gone a new
	// postmaster would refuse to start ("shared memory block still in use").
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := c.processes()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: processes %v of the killed cluster do not exit", pids)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	return nil
}

// processes lists the live processes whose working directory is the data
// directory (zombies have none).
func (c *Cluster) processes() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == c.dataDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Close stops the server (SIGKILL if a fast shutdown fails) and removes the
// cluster's directory. Start registers it with tb.Cleanup.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	err := c.stop()
	if err != nil {
		err = errors.Join(err, c.kill())
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return errors.Join(err, c.removeDir())
}

func (c *Cluster) removeDir() error {
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("pgtest: remove %s: %w", c.dir, err)
	}
	return nil
}

// cleanupWith closes c when tb ends, logging the server log's tail first
// if tb failed.
func (c *Cluster) cleanupWith(tb testing.TB) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pgtest: server log of %s (tail):\n%s", c.dir, c.logTail(40))
		}
		if err := c.Close(); err != nil {
			tb.Errorf("pgtest: close: %v", err)
		}
	})
}

// StartStandby starts a streaming-replication standby of c: a base backup
// (pg_basebackup -R, WAL streamed) in a new temp dir, started on its own
// port with hot_standby, removed when tb ends. Promote turns it into a
// primary. For synchronous replication, once the standby runs:
// c.Configure(tb, "synchronous_standby_names", "*").
func (c *Cluster) StartStandby(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	s, err := prepare(opts)
	if err != nil {
		tb.Fatalf("pgtest: standby: %v", err)
	}
	if err := s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", Superuser,
		"-D", s.dataDir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		s.removeDir()
		tb.Fatalf("pgtest: standby: %v", err)
	}
	if err := s.startFreshPort(); err != nil {
		s.removeDir()
		tb.Fatalf("pgtest: standby: %v", err)
	}
	s.cleanupWith(tb)
	return s
}

// Configure sets a server setting with ALTER SYSTEM and reloads the
// configuration: for settings that take effect on reload, such as
// synchronous_standby_names. It persists across Restart.
func (c *Cluster) Configure(tb testing.TB, name, value string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperuserDSN())
	if err != nil {
		tb.Fatalf("pgtest: configure: connect: %v", err)
	}
	defer conn.Close(ctx)
	// ALTER SYSTEM takes no parameters; quote the value as a literal.
	lit := "'" + strings.ReplaceAll(value, "'", "''") + "'"
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET "+pgx.Identifier{name}.Sanitize()+" = "+lit); err != nil {
		tb.Fatalf("pgtest: ALTER SYSTEM SET %s: %v", name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		tb.Fatalf("pgtest: pg_reload_conf: %v", err)
	}
}

// Promote ends recovery on a standby and waits until it accepts writes.
func (c *Cluster) Promote(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperuserDSN())
	if err != nil {
		tb.Fatalf("pgtest: promote: connect: %v", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
		tb.Fatalf("pgtest: pg_promote() = %v, %v; want true, nil\n%s", ok, err, c.logTail(20))
	}
}

// Shared is one cluster shared by a package's tests, started on first use
// and closed by TestMain:
//
//	var shared pgtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		shared.Close()
//		os.Exit(code)
//	}
//
// Tests call shared.Cluster(t), usually followed by CreateDatabase.
type Shared struct {
	// Options configure the cluster; set them before the first Cluster call.
	Options []Option

	once sync.Once
	c    *Cluster
	err  error
}

// Cluster starts the shared cluster on first use and returns it. Like
// Start, it skips tb when PostgreSQL is not installed (fails under CI).
func (s *Shared) Cluster(tb testing.TB) *Cluster {
	tb.Helper()
	s.once.Do(func() { s.c, s.err = New(s.Options...) })
	if s.err != nil {
		if errors.Is(s.err, ErrNotInstalled) {
			missing(tb, s.err)
		}
		tb.Fatalf("pgtest: shared cluster: %v", s.err)
	}
	return s.c
}

// Close closes the shared cluster if it was started. Call it after m.Run.
func (s *Shared) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}

// missing fails tb under CI and skips it otherwise.
func missing(tb testing.TB, err error) {
	tb.Helper()
	if testenv.InCI() {
		tb.Fatalf("%v (CI=true: a missing test dependency is a failure; scripts/test.sh installs it)", err)
	}
	tb.Skipf("%v; run scripts/test.sh to install test dependencies and run the whole suite", err)
}
