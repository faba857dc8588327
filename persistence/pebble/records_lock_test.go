package pebble

import (
	"context"
	"errors"
	"testing"
)

// TestRecordWaitRespectsContext checks that a record write queued behind
// another write of the same tenant gives up when its context ends, and
// that another tenant's record writes are not held up meanwhile.
func TestRecordWaitRespectsContext(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer s.Close()
	lock := s.tenant("busy").recordLock
	lock <- struct{}{} // another record write of "busy" is in flight

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 3)
	go func() {
		_, err := s.PutRecord(ctx, "busy", "session", "k", []byte("x"), 0)
		done <- err
	}()
	go func() { done <- s.DeleteRecord(ctx, "busy", "session", "k", 1) }()
	go func() { done <- s.DeleteTenantRecords(ctx, "busy", "") }()
	if got, err := s.PutRecord(t.Context(), "idle", "session", "k", []byte("y"), 0); err != nil || got != 1 {
		t.Fatalf("PutRecord(idle) while busy is locked = %d, %v; want 1, nil", got, err)
	}
	// Reads take no lock.
	if _, err := s.GetRecord(t.Context(), "busy", "session", "k"); err == nil {
		t.Fatal("GetRecord(busy) = nil error, want ErrNotFound")
	}
	cancel()
	for range 3 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("record write of busy, canceled while waiting = %v, want context.Canceled", err)
		}
	}
	<-lock
	if got, err := s.PutRecord(t.Context(), "busy", "session", "k", []byte("x"), 0); err != nil || got != 1 {
		t.Fatalf("PutRecord(busy) after unlock = %d, %v; want 1, nil", got, err)
	}
}
