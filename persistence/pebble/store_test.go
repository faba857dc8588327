package pebble_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/persistence/storetest"
)

// MustOpen opens a store in dir and closes it when tb ends, unless the test
// closed it first.
func MustOpen(tb testing.TB, dir string) *pebble.Store {
	tb.Helper()
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		tb.Fatalf("Open(%s) = %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	var dirs sync.Map // *pebble.Store → its directory
	openIn := func(t *testing.T, dir string) persistence.Store {
		t.Helper()
		s, err := pebble.Open(dir, pebble.Options{})
		if err != nil {
			t.Fatalf("Open(%s) = %v", dir, err)
		}
		dirs.Store(s, dir)
		return s
	}
	storetest.RunOpener(t, storetest.Opener{
		Open: func(t *testing.T) persistence.Store {
			return openIn(t, t.TempDir())
		},
		Reopen: func(t *testing.T, old persistence.Store) persistence.Store {
			dir, ok := dirs.Load(old)
			if !ok {
				t.Fatalf("Reopen: unknown store %p", old)
			}
			return openIn(t, dir.(string))
		},
	})
}

// TestCloseTwice checks Close is idempotent, so a deferred Close after an
// explicit one is harmless.
func TestCloseTwice(t *testing.T) {
	s, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close() = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if _, err := s.Append(t.Context(), "a", 0, nil); !errors.Is(err, pebble.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

// TestRefusesForeignDatabase opens a Pebble directory some other program
// wrote: slotd must not treat its keys as journals.
func TestRefusesForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	db, err := pebbledb.Open(dir, &pebbledb.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("pebble.Open = %v", err)
	}
	if err := db.Set([]byte("ta\x00h"), []byte("junk"), pebbledb.Sync); err != nil {
		t.Fatalf("Set = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open(foreign database) = nil error, want an error")
	}
	if !strings.Contains(err.Error(), "layout") {
		t.Errorf("Open(foreign database) = %v, want a layout error", err)
	}
}

// TestLogger checks Pebble's chatter reaches the slog logger at debug level
// only, and nothing is logged at info or above during normal operation.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug})
	dir := t.TempDir()
	for i := range 2 { // the second open replays the WAL
		s, err := pebble.Open(dir, pebble.Options{Logger: slog.New(h)})
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		if _, err := s.Append(t.Context(), "log", uint64(i), [][]byte{[]byte("x")}); err != nil {
			t.Fatalf("Append = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for line := range strings.Lines(buf.String()) {
		if !strings.Contains(line, "level=DEBUG") {
			t.Errorf("unexpected log line above debug: %s", line)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
