package pebble

import (
	"context"
	"errors"
	"testing"
)

// TestAppendWaitRespectsContext checks that an Append queued behind another
// writer of the same tenant gives up when its context ends, and that
// another tenant is not held up meanwhile.
func TestAppendWaitRespectsContext(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer s.Close()
	lock := s.tenant("busy").appendLock
	lock <- struct{}{} // another append of "busy" is in flight

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "busy", 0, [][]byte{[]byte("x")})
		done <- err
	}()
	if got, err := s.Append(t.Context(), "idle", 0, [][]byte{[]byte("y")}); err != nil || got != 1 {
		t.Fatalf("Append(idle) while busy is locked = %d, %v; want 1, nil", got, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(busy, canceled while waiting) = %v, want context.Canceled", err)
	}
	<-lock
	if got, err := s.Append(t.Context(), "busy", 0, [][]byte{[]byte("x")}); err != nil || got != 1 {
		t.Fatalf("Append(busy) after unlock = %d, %v; want 1, nil", got, err)
	}
}
