package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store { return memstore.New() })
}

func TestFailHooks(t *testing.T) {
	errDisk := errors.New("disk on fire")
	s := memstore.New()
	defer s.Close()
	s.FailAppend = func(tenant string) error {
		if tenant == "broken" {
			return errDisk
		}
		return nil
	}
	s.FailSaveSnapshot = func(string) error { return errDisk }
	s.FailLoad = func(tenant string) error {
		if tenant == "broken" {
			return errDisk
		}
		return nil
	}
	ctx := t.Context()
	if _, err := s.Append(ctx, "broken", 0, [][]byte{[]byte("x")}); !errors.Is(err, errDisk) {
		t.Fatalf("Append(broken) = %v, want %v", err, errDisk)
	}
	if got, err := s.Append(ctx, "fine", 0, [][]byte{[]byte("x")}); err != nil || got != 1 {
		t.Fatalf("Append(fine) = %d, %v; want 1, nil", got, err)
	}
	if err := s.SaveSnapshot(ctx, "fine", persistence.Snapshot{Seq: 1}); !errors.Is(err, errDisk) {
		t.Fatalf("SaveSnapshot(fine) = %v, want %v", err, errDisk)
	}
	if _, _, err := s.Load(ctx, "broken"); !errors.Is(err, errDisk) {
		t.Fatalf("Load(broken) = %v, want %v", err, errDisk)
	}
	if _, err := s.ReadFrom(ctx, "broken", 0, 0); !errors.Is(err, errDisk) {
		t.Fatalf("ReadFrom(broken) = %v, want %v", err, errDisk)
	}
	s.FailAppend = nil
	s.FailLoad = nil
	// The failed append wrote nothing: broken's head is still 0.
	if got, err := s.Append(ctx, "broken", 0, [][]byte{[]byte("y")}); err != nil || got != 1 {
		t.Fatalf("Append(broken) after hook removed = %d, %v; want 1, nil", got, err)
	}
	snap, entries, err := s.Load(ctx, "fine")
	if err != nil || snap.Seq != 0 || len(entries) != 1 {
		t.Fatalf("Load(fine) = snapshot %d, %d entries, %v; want 0, 1, nil", snap.Seq, len(entries), err)
	}
}

// ExampleStore shows the conditional append an actor relies on.
func ExampleStore() {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	head, _ := s.Append(ctx, "acme", 0, [][]byte{[]byte("booked")})
	_, err := s.Append(ctx, "acme", 0, [][]byte{[]byte("booked again")})
	fmt.Println(head, errors.Is(err, persistence.ErrConflict))
	// Output: 1 true
}
