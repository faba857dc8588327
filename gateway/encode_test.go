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
		Customer: engine.Customer{Name: `<script>"Zoë" & \ Ada` + "\u2028\u2029\x01", Email: "ada@example.com", Phone: "+44 \xff\xed\xa0\x80 1", Subject: "s-1"}}
	slot := engine.Slot{Start: at, End: at.Add(30 * time.Minute), Resources: []string{"ana"}, Seats: 1}
	hold := &engine.Hold{ID: "hd_1", ServiceID: "cut", ResourceID: "ana", Start: at, End: at.Add(30 * time.Minute),
		BlockStart: at, BlockEnd: at.Add(40 * time.Minute), ExpiresAt: at.Add(5 * time.Minute), IdempotencyKey: "k<1>"}
	return []Frame{
		{V: ProtocolVersion, ID: "a1", Type: TypeAuthed, Principal: &PrincipalInfo{Kind: "staff", Tenant: "acme&co"}, ServerTime: &at},
		{V: ProtocolVersion, ID: "t1", Type: TypeTenantInfo, Tenant: &TenantInfo{ID: "acme", Name: "Salon <b>Zoë</b>", TimeZone: "Europe/Rome"}},
		{V: ProtocolVersion, ID: "h1", Type: TypeHeld, Version: &v, Hold: hold, Duplicate: true},
		{V: ProtocolVersion, ID: "r5", Type: TypeBookingsSubscribed, Sub: "s3", Version: &v, Bookings: []engine.Booking{*b, *b}},
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

// TestEncodeFrameUnencodable: a frame that cannot be marshalled (a time
// outside years 0–9999) is replaced by an internal error frame for its
// request, as before encodeFrame called Frame.MarshalJSON itself.
func TestEncodeFrameUnencodable(t *testing.T) {
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	v := uint64(1)
	for _, f := range []Frame{
		{V: ProtocolVersion, ID: "r1", Type: TypeBooked, Version: &v, Booking: &engine.Booking{ID: "bk", Start: far}},
		{V: ProtocolVersion, ID: "r1", Type: TypeAvailability, Version: &v, Removed: []time.Time{far}},
	} {
		if _, err := json.Marshal(f); err == nil {
			t.Fatalf("json.Marshal of a frame with year 10000 succeeded; the test needs one that fails")
		}
		var got Frame
		if err := json.Unmarshal(encodeFrame(f), &got); err != nil || got.Type != TypeError || got.ID != "r1" || got.Code != string(engine.CodeInternal) {
			t.Errorf("encodeFrame(unencodable %s) = %+v, %v; want an internal error frame for r1", f.Type, got, err)
		}
	}
}

// BenchmarkEncodeBookedFrame is what encoding a booking's reply costs.
//
//	go test -run '^$' -bench EncodeBookedFrame -benchmem ./gateway/
func BenchmarkEncodeBookedFrame(b *testing.B) {
	f := encodeFrames()[4]
	if f.Type != TypeBooked {
		b.Fatalf("frame %s, want %s", f.Type, TypeBooked)
	}
	b.ReportAllocs()
	for b.Loop() {
		encodeFrame(f)
	}
}
