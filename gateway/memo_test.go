package gateway

import (
	"bytes"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
)

// TestDeltaEncodedOnceSameBytes checks that a delta encoded once for all
// subscribers and given each one's id is byte for byte the frame encoded
// per subscriber, and that the shared encoding is computed once.
func TestDeltaEncodedOnceSameBytes(t *testing.T) {
	at := time.Date(2026, 3, 28, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	slot := engine.Slot{Start: at, End: at.Add(30 * time.Minute), Resources: []string{"ana"}, Seats: 1}
	updates := []*actors.Update{
		{Kind: actors.UpdateDelta, Version: 7, Removed: []time.Time{at}},
		{Kind: actors.UpdateDelta, Version: 8, Upserted: []engine.Slot{slot}},
		{Kind: actors.UpdateDelta, Version: 9, Upserted: []engine.Slot{slot}, Removed: []time.Time{at.Add(time.Hour)}},
		{Kind: actors.UpdateDelta, Version: 10},
	}
	for _, u := range updates {
		calls := 0
		for _, id := range []string{"s1", "s42", `s"odd\`, "s<1>&", "sé\u2028", "s\x01"} {
			got := appendWithSub(nil, u.Memo(func(u *actors.Update) []byte { calls++; return encodeDelta(u) }), id)
			v := u.Version
			want := encodeFrame(Frame{V: ProtocolVersion, Type: TypeAvailability, Sub: id, Version: &v, Upserted: u.Upserted, Removed: u.Removed})
			if !bytes.Equal(got, want) {
				t.Errorf("appendWithSub(Memo(encodeDelta), %q) =\n%s\nwant\n%s", id, got, want)
			}
		}
		if calls != 1 {
			t.Errorf("update %d encoded %d times for 6 subscribers, want 1", u.Version, calls)
		}
	}
}
