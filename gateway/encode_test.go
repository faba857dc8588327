package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
)

// encodeFrames are frames of every shape a connection writes, with text
// that JSON must escape (HTML characters, quotes, control and non-ASCII
// characters, invalid UTF-8).
func encodeFrames() []Frame {
	v := uint64(7)
	at := time.Date(2026, 3, 28, 9, 0, 0, 0, time.UTC)
	b := &engine.Booking{ID: "bk_1", ServiceID: "cut", ResourceID: "ana", Start: at, End: at.Add(30 * time.Minute),
		BlockStart: at, BlockEnd: at.Add(40 * time.Minute), Status: engine.StatusConfirmed, CreatedAt: at, UpdatedAt: at,
		Customer: engine.Customer{Name: `<script>"Zoë" & \ Ada` + "\u2028\x01", Email: "ada@example.com", Phone: "+44 \xff 1", Subject: "s-1"}}
	slot := engine.Slot{Start: at, End: at.Add(30 * time.Minute), Resources: []string{"ana"}, Seats: 1}
	return []Frame{
		{V: ProtocolVersion, ID: "r1", Type: TypeBooked, Version: &v, Booking: b},
		{V: ProtocolVersion, ID: "r<2>", Type: TypeSubscribed, Sub: "s1", Version: &v},
		{V: ProtocolVersion, Type: TypeAvailability, Sub: "s1", Version: &v, Resync: true},
		{V: ProtocolVersion, Type: TypeAvailability, Sub: "s1", Version: &v, Upserted: []engine.Slot{slot}, Removed: []time.Time{at}},
		{V: ProtocolVersion, ID: "r3", Type: TypeBookingsSubscribed, Sub: "s2", Version: &v},
		{V: ProtocolVersion, Type: TypeBookingEvents, Sub: "s2", Version: &v, Events: []engine.Event{{Type: engine.EvBookingConfirmed, At: at, Booking: b}}},
		errFrame("r4", engine.Errorf(engine.CodeSlotTaken, "slot <%s> & taken", "09:00")),
	}
}

// TestEncodeFrameIsJSONMarshal: encodeFrame, which calls Frame.MarshalJSON
// directly, writes exactly what json.Marshal of the frame writes.
func TestEncodeFrameIsJSONMarshal(t *testing.T) {
	for _, f := range encodeFrames() {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeFrame(f); !bytes.Equal(got, want) {
			t.Errorf("encodeFrame(%s) =\n%s\nwant (json.Marshal)\n%s", f.Type, got, want)
		}
	}
}

// BenchmarkEncodeBookedFrame is what encoding a booking's reply costs.
//
//	go test -run '^$' -bench EncodeBookedFrame -benchmem ./gateway/
func BenchmarkEncodeBookedFrame(b *testing.B) {
	f := encodeFrames()[0]
	b.ReportAllocs()
	for b.Loop() {
		encodeFrame(f)
	}
}
