package gateway

import (
	"bytes"
	"hash/maphash"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

// TestSnapshotSharedSameBytes checks that a subscribed frame assembled
// from a cached snapshot is byte for byte the frame encoded for the
// subscriber, and that the cache is used only for equal slots.
func TestSnapshotSharedSameBytes(t *testing.T) {
	at := time.Date(2026, 3, 28, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	slots := []engine.Slot{
		{Start: at, End: at.Add(30 * time.Minute), Resources: []string{"ana"}, Seats: 1},
		{Start: at.Add(time.Hour), End: at.Add(90 * time.Minute), Resources: []string{"ana", "bo"}, Seats: 2},
	}
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2026-03-28", To: "2026-03-29", TimeZone: "Europe/Rome"}
	sc := &snapshotCache{seed: maphash.MakeSeed()}
	tests := []struct {
		name    string
		version uint64
		slots   []engine.Slot
		id, sub string
	}{
		{"slots", 7, slots, "r1", "s1"},
		{"no request id", 7, slots, "", "s2"},
		{"ids to escape", 7, slots, `<"\>&`, "s3"},
		{"no slots", 8, nil, "r2", "s4"},
		{"other version", 9, slots[:1], "r3", "s5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := sc.get("salon", q, tt.version, tt.slots)
			if snap == nil {
				t.Fatal("get = nil")
			}
			v := tt.version
			want := encodeFrame(Frame{V: ProtocolVersion, ID: tt.id, Type: TypeSubscribed, Sub: tt.sub, Version: &v, Slots: tt.slots})
			if got := snap.appendFrame([]byte("x"), tt.id, tt.sub); !bytes.Equal(got, append([]byte("x"), want...)) {
				t.Errorf("appendFrame =\n%s\nwant\n%s", got[1:], want)
			}
		})
	}
	first := sc.get("salon", q, 7, slots)
	if again := sc.get("salon", q, 7, append([]engine.Slot(nil), slots...)); again != first {
		t.Errorf("equal slots at the same version: not shared")
	}
	other := append([]engine.Slot(nil), slots...)
	other[1].Seats = 1
	if got := sc.get("salon", q, 7, other); got == first || !bytes.Contains(got.body, []byte(`"seats":1}]`)) {
		t.Errorf("different slots at the same version: shared %s", got.body)
	}
	if got := sc.get("acme", q, 7, slots); got == first {
		t.Errorf("another tenant's snapshot shared")
	}
}
