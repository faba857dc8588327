package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/slotd/slotd/internal/demo"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(o options) string // "" when o is right
	}{
		{"defaults", nil, nil, func(o options) string {
			if o.addr != ":8080" || o.dataDir != "./data" || o.logLevel != "info" || o.logFormat != "text" || !o.demo || o.adminToken != "" {
				return fmt.Sprintf("%+v", o)
			}
			return ""
		}},
		{"PORT when -addr and SLOTD_ADDR are unset", nil, map[string]string{"PORT": "8123"}, wantAddr(":8123")},
		{"SLOTD_ADDR beats PORT", nil, map[string]string{"PORT": "8123", "SLOTD_ADDR": "127.0.0.1:9000"}, wantAddr("127.0.0.1:9000")},
		{"-addr beats SLOTD_ADDR and PORT", []string{"-addr", "127.0.0.1:7000"},
			map[string]string{"PORT": "8123", "SLOTD_ADDR": "127.0.0.1:9000"}, wantAddr("127.0.0.1:7000")},
		{"env settings", nil, map[string]string{"SLOTD_DATA_DIR": "/x", "SLOTD_LOG_LEVEL": "debug", "SLOTD_DEMO": "false",
			"SLOTD_MAX_LIVE_TENANTS": "7", "SLOTD_ADMIN_TOKEN": "tok"}, func(o options) string {
			if o.dataDir != "/x" || o.logLevel != "debug" || o.demo || o.maxLive != 7 || o.adminToken != "tok" {
				return fmt.Sprintf("%+v", o)
			}
			return ""
		}},
		{"flags beat env", []string{"-data", "/y", "-log-level", "warn", "-demo=true", "-max-live-tenants", "9"},
			map[string]string{"SLOTD_DATA_DIR": "/x", "SLOTD_LOG_LEVEL": "debug", "SLOTD_DEMO": "false", "SLOTD_MAX_LIVE_TENANTS": "7"},
			func(o options) string {
				if o.dataDir != "/y" || o.logLevel != "warn" || !o.demo || o.maxLive != 9 {
					return fmt.Sprintf("%+v", o)
				}
				return ""
			}},
		{"bad integer env falls back to the default", nil, map[string]string{"SLOTD_MAX_LIVE_TENANTS": "many"}, func(o options) string {
			if o.maxLive != 10000 {
				return fmt.Sprintf("maxLive %d, want 10000", o.maxLive)
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseFlags(%q) = %v", tt.args, err)
			}
			if msg := tt.want(o); msg != "" {
				t.Errorf("parseFlags(%q) with env %v: %s", tt.args, tt.env, msg)
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var stderr syncBuffer
	if _, err := parseFlags([]string{"-h"}, envOf(nil), &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseFlags(-h) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "SLOTD_ADDR") {
		t.Errorf("usage does not name the environment variables:\n%s", stderr.String())
	}
}

func wantAddr(addr string) func(o options) string {
	return func(o options) string {
		if o.addr != addr {
			return fmt.Sprintf("addr %q, want %q", o.addr, addr)
		}
		return ""
	}
}

// TestRunRefuses checks that run returns at once, without serving, on bad
// settings, and returns nil for -h.
func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" for nil
	}{
		{"help", []string{"-h"}, nil, ""},
		{"bad log level flag", []string{"-log-level", "loud"}, nil, "log level"},
		{"bad log level env", nil, map[string]string{"SLOTD_LOG_LEVEL": "loud"}, "log level"},
		{"bad log format", []string{"-log-format", "xml"}, nil, "log format"},
		{"unknown argument", []string{"serve"}, nil, "unexpected arguments"},
		{"unknown flag", []string{"-nope"}, nil, "nope"},
		{"port in use", nil, nil, "listen"}, // args filled in below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"-addr", "127.0.0.1:0", "-data", dir}, tt.args...)
			if tt.name == "port in use" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				args = append(args, "-addr", ln.Addr().String())
			}
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, envOf(tt.env), &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("run(%q) = %v, want nil", args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("run(%q) = %v, want an error mentioning %q", args, err, tt.wantErr)
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("run(%q) printed %q", args, stdout.String())
			}
			if tt.name == "help" && !strings.Contains(stderr.String(), "-addr") {
				t.Errorf("-h printed no usage; stderr:\n%s", stderr.String())
			}
		})
	}
}

// TestRunHonoursPORT starts slotd with only PORT set, as a platform like
// Heroku or Cloud Run does.
func TestRunHonoursPORT(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // a small race with other processes for this port; acceptable in a test

	s := startSlotd(t, []string{"-data", t.TempDir()}, map[string]string{"PORT": port})
	if want := "http://localhost:" + port; s.base != want {
		t.Errorf("listening on %s, want %s", s.base, want)
	}
	waitHealthy(t, "http://127.0.0.1:"+port)
}

// TestRunFlagBeatsEnv gives SLOTD_ADDR an address slotd cannot listen on
// and -addr a good one: the flag must win.
func TestRunFlagBeatsEnv(t *testing.T) {
	s := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()},
		map[string]string{"SLOTD_ADDR": "256.0.0.1:1", "PORT": "1"})
	if !strings.HasPrefix(s.base, "http://localhost:") || strings.HasSuffix(s.base, ":1") {
		t.Errorf("listening on %s, want a free loopback port", s.base)
	}
}

// TestRestartKeepsTokenAndDemo starts slotd twice on one data directory
// without SLOTD_ADMIN_TOKEN: the second start reuses the generated token
// file and the demo tenant (same booking link) rather than creating new ones.
func TestRestartKeepsTokenAndDemo(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-addr", "127.0.0.1:0", "-data", dir}

	first := startSlotd(t, args, nil)
	tokenFile := filepath.Join(dir, "admin-token")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("no token file after the first start: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %v, want 0600", tokenFile, perm)
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != first.token || !strings.HasPrefix(got, "sk_") {
		t.Errorf("token file holds %q, banner printed %q", got, first.token)
	}
	if !strings.Contains(first.stdout.String(), "(from "+tokenFile+")") {
		t.Errorf("banner does not name the token file:\n%s", first.stdout)
	}
	if !strings.Contains(first.stderr.String(), "created demo tenant") {
		t.Errorf("first start did not log creating the demo tenant; stderr:\n%s", first.stderr)
	}
	if first.link == "" || !strings.HasPrefix(first.book, first.base+"/book/") {
		t.Fatalf("no demo booking page in the banner:\n%s", first.stdout)
	}
	if err := first.stop(t); err != nil {
		t.Fatalf("run = %v after cancel", err)
	}

	second := startSlotd(t, args, nil)
	if second.token != first.token {
		t.Errorf("second start token %q, want the first's %q", second.token, first.token)
	}
	if second.link != first.link {
		t.Errorf("second start booking link %q, want the first's %q", second.link, first.link)
	}
	if strings.Contains(second.stderr.String(), "created demo tenant") {
		t.Errorf("second start created the demo tenant again; stderr:\n%s", second.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list struct {
		Tenants []string `json:"tenants"`
	}
	if err := getJSON(ctx, second.base, "/v1/tenants", second.token, &list); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(list.Tenants, []string{demo.Tenant}) {
		t.Errorf("tenants after restart = %v, want [%s]", list.Tenants, demo.Tenant)
	}
}

// TestRunWithoutDemo checks SLOTD_DEMO=false: no tenant, no booking page line.
func TestRunWithoutDemo(t *testing.T) {
	s := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, map[string]string{"SLOTD_DEMO": "false"})
	if strings.Contains(s.stdout.String(), "demo booking page") {
		t.Errorf("SLOTD_DEMO=false printed a demo page:\n%s", s.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list struct {
		Tenants []string `json:"tenants"`
	}
	if err := getJSON(ctx, s.base, "/v1/tenants", s.token, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Tenants) != 0 {
		t.Errorf("tenants = %v, want none", list.Tenants)
	}
}

// bookFirst books the first free slot of service over ws.
func bookFirst(tb testing.TB, ctx context.Context, s *slotd, c *wsClient, service string) engine.Booking {
	tb.Helper()
	slots, err := availability(ctx, s.base, s.link, service, 14)
	if err != nil {
		tb.Fatal(err)
	}
	if len(slots) == 0 {
		tb.Fatalf("no free %s slot in the next 14 days", service)
	}
	f, err := c.do(ctx, gateway.Request{Type: gateway.TypeBook, Service: service, Start: slots[0].Start.Format(time.RFC3339),
		Customer: &engine.Customer{Name: "Run Test", Email: "run@example.com"}, IdempotencyKey: "run-test-" + service})
	if err != nil {
		tb.Fatal(err)
	}
	if f.Type != gateway.TypeBooked || f.Booking == nil {
		tb.Fatalf("book %s at %v: %+v", service, slots[0].Start, f)
	}
	return *f.Booking
}

// TestShutdownOnCancel cancels the context given to run: run returns nil,
// an open WebSocket is closed with "going away", and a restart on the same
// data directory has the same bookings.
func TestShutdownOnCancel(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-addr", "127.0.0.1:0", "-data", dir}
	s := startSlotd(t, args, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialLink(ctx, s.base, s.link)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.CloseNow()
	booked := []engine.Booking{bookFirst(t, ctx, s, c, "consultation"), bookFirst(t, ctx, s, c, "yoga")}
	before, err := listBookings(ctx, s.base, s.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(booked) {
		t.Fatalf("%d bookings listed, want %d: %+v", len(before), len(booked), before)
	}

	// Read until the server closes: the closing handshake needs a reader.
	closed := make(chan error, 1)
	go func() {
		for {
			if _, err := c.read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	if err := s.stop(t); err != nil {
		t.Fatalf("run = %v after cancel, want nil", err)
	}
	select {
	case err := <-closed:
		if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
			t.Errorf("WebSocket ended with %v (status %v), want StatusGoingAway", err, got)
		}
	case <-ctx.Done():
		t.Fatal("WebSocket still open after run returned")
	}

	s2 := startSlotd(t, args, nil)
	after, err := listBookings(ctx, s2.base, s2.token, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBookings(before, after) {
		t.Errorf("bookings after restart:\n%+v\nwant:\n%+v", after, before)
	}
}

func sameBookings(a, b []engine.Booking) bool {
	return slices.EqualFunc(a, b, func(x, y engine.Booking) bool {
		return x.ID == y.ID && x.ResourceID == y.ResourceID && x.ServiceID == y.ServiceID && x.Status == y.Status &&
			x.Start.Equal(y.Start) && x.End.Equal(y.End) && x.BlockStart.Equal(y.BlockStart) && x.BlockEnd.Equal(y.BlockEnd) &&
			x.Customer == y.Customer && x.IdempotencyKey == y.IdempotencyKey
	})
}

// TestMetrics checks that /metrics exposes the instruments operators
// alert on, with values that reflect one booking on one open WebSocket.
func TestMetrics(t *testing.T) {
	s := startSlotd(t, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialLink(ctx, s.base, s.link)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	bookFirst(t, ctx, s, c, "consultation")

	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	types := map[string]string{}   // metric family → type
	samples := map[string]string{} // series (name{labels}) → value
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); strings.HasPrefix(line, "# TYPE ") && len(f) == 4 {
			types[f[2]] = f[3]
		} else if !strings.HasPrefix(line, "#") && len(f) == 2 {
			samples[f[0]] = f[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{
		"slotd_bookings_total":        "counter",
		"slotd_commands_total":        "counter",
		"slotd_batch_size":            "histogram",
		"slotd_commit_seconds":        "histogram",
		"slotd_mailbox_depth":         "histogram",
		"slotd_live_actors":           "gauge",
		"slotd_websocket_connections": "gauge",
	} {
		if got, ok := types[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		} else if got != typ {
			t.Errorf("/metrics: %s is a %s, want a %s", name, got, typ)
		}
	}
	for series, want := range map[string]float64{
		"slotd_bookings_total":                       1,
		"slotd_live_actors":                          1,
		`slotd_websocket_connections{kind="public"}`: 1,
	} {
		v, err := strconv.ParseFloat(samples[series], 64)
		if err != nil || v != want {
			t.Errorf("/metrics: %s = %q, want %v", series, samples[series], want)
		}
	}
	for _, series := range []string{"slotd_batch_size_count", "slotd_commit_seconds_count"} {
		if v, err := strconv.ParseFloat(samples[series], 64); err != nil || v < 1 {
			t.Errorf("/metrics: %s = %q, want at least 1", series, samples[series])
		}
	}
	if t.Failed() {
		var names []string
		for n := range types {
			if strings.HasPrefix(n, "slotd_") {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		t.Logf("slotd metrics present: %v", names)
	}
}

func TestParseCRDBRegions(t *testing.T) {
	tests := []struct {
		name, primary, homes string
		want                 map[string]string
		wantErr              bool
	}{
		{"pairs", "us-east1", "us=us-east1, eu=europe-west1", map[string]string{"us": "us-east1", "eu": "europe-west1"}, false},
		{"primary only", "us-east1", "", map[string]string{}, false},
		{"no primary", "", "us=us-east1", nil, true},
		{"not a pair", "us-east1", "us", nil, true},
		{"empty side", "us-east1", "us=", nil, true},
		{"duplicate", "us-east1", "us=a,us=b", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr, err := parseCRDBRegions(tt.primary, tt.homes)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCRDBRegions(%q, %q) error = %v, want error %v", tt.primary, tt.homes, err, tt.wantErr)
			}
			if err == nil && (mr.PrimaryRegion != tt.primary || !maps.Equal(mr.Homes, tt.want)) {
				t.Errorf("parseCRDBRegions(%q, %q) = %+v, want primary %q homes %v", tt.primary, tt.homes, mr, tt.primary, tt.want)
			}
		})
	}
}
