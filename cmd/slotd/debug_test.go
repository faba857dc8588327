package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	oklogrun "github.com/oklog/run"
)

func TestDebugAddrLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"":               true,
		"127.0.0.1:6060": true,
		"127.0.0.9:0":    true,
		"[::1]:6060":     true,
		"localhost:6060": true,
		":6060":          false, // every interface
		"0.0.0.0:6060":   false,
		"10.0.0.1:6060":  false,
		"example.com:80": false,
		"127.0.0.1":      false, // no port
	} {
		_, err := parseFlags([]string{"-debug-addr", addr}, envOf(nil), io.Discard)
		if (err == nil) != ok {
			t.Errorf("parseFlags(-debug-addr %q) = %v, want ok=%v", addr, err, ok)
		}
	}
	if _, err := parseFlags(nil, envOf(map[string]string{"SLOTD_DEBUG_ADDR": "0.0.0.0:1"}), io.Discard); err == nil {
		t.Error("SLOTD_DEBUG_ADDR=0.0.0.0:1 accepted")
	}
}

func TestDebugListenerServesProfiles(t *testing.T) {
	var g oklogrun.Group
	addr, err := addDebug(&g, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	g.Add(func() error { <-stop; return errors.New("stopped") }, func(error) {})
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	defer func() { close(stop); <-done }()

	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine profile: status %d, body %.200q", resp.StatusCode, body)
	}
}
