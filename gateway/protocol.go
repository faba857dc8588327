package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
)

// ProtocolVersion is the version of the WebSocket protocol in
// docs/protocol.md. Every frame carries it as "v".
const ProtocolVersion = 1

// Subprotocol may be offered in Sec-WebSocket-Protocol; it is optional.
const Subprotocol = "slotd.v1"

// Request is every client frame. Type selects which other fields apply;
// unknown fields are refused so that typos do not pass silently.
type Request struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Type string `json:"type"`

	Token string `json:"token,omitempty"` // auth

	// subscribe
	Service  string `json:"service,omitempty"`
	Resource string `json:"resource,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	TZ       string `json:"tz,omitempty"`
	Sub      string `json:"sub,omitempty"` // unsubscribe

	// hold, book, reschedule
	Start          string           `json:"start,omitempty"`
	TTLSec         int              `json:"ttl_sec,omitempty"`
	HoldID         string           `json:"hold_id,omitempty"`
	BookingID      string           `json:"booking_id,omitempty"`
	Customer       *engine.Customer `json:"customer,omitempty"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	AnyResource    bool             `json:"any_resource,omitempty"`
	Reason         string           `json:"reason,omitempty"`
}

// Message types a client may send.
const (
	TypeAuth              = "auth"
	TypePing              = "ping"
	TypeTenantInfo        = "tenant_info"
	TypeSubscribe         = "subscribe"
	TypeUnsubscribe       = "unsubscribe"
	TypeHold              = "hold"
	TypeRelease           = "release"
	TypeBook              = "book"
	TypeCancel            = "cancel"
	TypeReschedule        = "reschedule"
	TypeSubscribeBookings = "subscribe_bookings"
)

// RequestTypes lists every client message type, for docs tests.
func RequestTypes() []string {
	return []string{TypeAuth, TypePing, TypeTenantInfo, TypeSubscribe, TypeUnsubscribe, TypeHold, TypeRelease,
		TypeBook, TypeCancel, TypeReschedule, TypeSubscribeBookings}
}

// Server frame types.
const (
	TypeWelcome            = "welcome"
	TypeAuthed             = "authed"
	TypePong               = "pong"
	TypeSubscribed         = "subscribed"
	TypeUnsubscribed       = "unsubscribed"
	TypeAvailability       = "availability"
	TypeHeld               = "held"
	TypeReleased           = "released"
	TypeBooked             = "booked"
	TypeCancelled          = "cancelled"
	TypeRescheduled        = "rescheduled"
	TypeBookingsSubscribed = "bookings_subscribed"
	TypeBookingEvents      = "booking_events"
	TypeSubscriptionEnded  = "subscription_ended"
	TypeError              = "error"
)

// ResponseTypes lists every server frame type, for docs tests.
func ResponseTypes() []string {
	return []string{TypeWelcome, TypeAuthed, TypePong, TypeTenantInfo, TypeSubscribed, TypeUnsubscribed, TypeAvailability,
		TypeHeld, TypeReleased, TypeBooked, TypeCancelled, TypeRescheduled, TypeBookingsSubscribed, TypeBookingEvents,
		TypeSubscriptionEnded, TypeError}
}

// MaxIDLen bounds client request ids.
const MaxIDLen = 64

// DecodeRequest parses one client frame, refusing anything that is not a
// single JSON object of the known shape. It never panics (fuzzed).
func DecodeRequest(data []byte) (Request, *engine.Error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if len(r.ID) > MaxIDLen {
			r.ID = "" // decoded before the error; echoed in the reply
		}
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return r, engine.Errorf(engine.CodeInvalid, "field %q has the wrong type (want %s)", ute.Field, ute.Type)
		case bytes.HasPrefix(bytes.TrimSpace([]byte(err.Error())), []byte("json: unknown field")):
			return r, engine.Errorf(engine.CodeInvalid, "%s", err.Error()[len("json: "):])
		}
		return r, engine.Errorf(engine.CodeInvalid, "frame is not a JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, engine.Errorf(engine.CodeInvalid, "frame has data after the JSON object")
	}
	if len(r.ID) > MaxIDLen {
		r.ID = ""
		return r, engine.Errorf(engine.CodeInvalid, "id longer than %d bytes", MaxIDLen)
	}
	if r.V != ProtocolVersion {
		return r, engine.Errorf(engine.CodeBadVersion, "protocol version %d is not supported; send \"v\": %d", r.V, ProtocolVersion)
	}
	if r.Type == "" {
		return r, engine.Errorf(engine.CodeInvalid, "type is required")
	}
	return r, nil
}

// parseTime parses an RFC 3339 time with an explicit offset.
func parseTime(field, s string) (time.Time, *engine.Error) {
	if s == "" {
		return time.Time{}, engine.Errorf(engine.CodeInvalid, "%s is required (RFC 3339, e.g. 2026-12-01T09:00:00+01:00)", field)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, engine.Errorf(engine.CodeInvalid, "%s %q is not an RFC 3339 time with offset", field, s)
	}
	return t, nil
}

// Frame is what the server sends. Only the fields of its Type are set.
type Frame struct {
	V       int    `json:"v"`
	ID      string `json:"id,omitempty"` // echoes the request id
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`

	Principal  *PrincipalInfo   `json:"principal,omitempty"`
	Tenant     *TenantInfo      `json:"tenant,omitempty"`
	ServerTime *time.Time       `json:"server_time,omitempty"`
	Sub        string           `json:"sub,omitempty"`
	Version    *uint64          `json:"version,omitempty"`
	Resync     bool             `json:"resync,omitempty"`
	Slots      []engine.Slot    `json:"slots,omitempty"`
	Upserted   []engine.Slot    `json:"upserted,omitempty"`
	Removed    []time.Time      `json:"removed,omitempty"`
	Hold       *engine.Hold     `json:"hold,omitempty"`
	Booking    *engine.Booking  `json:"booking,omitempty"`
	Bookings   []engine.Booking `json:"bookings,omitempty"`
	Events     []engine.Event   `json:"events,omitempty"`
	Duplicate  bool             `json:"duplicate,omitempty"`
}

// PrincipalInfo describes the connection's principal to the client.
type PrincipalInfo struct {
	Kind   string `json:"kind"`
	Tenant string `json:"tenant,omitempty"`
}

// TenantInfo is what a booking page needs to know about a tenant.
type TenantInfo struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	TimeZone  string           `json:"time_zone"`
	Services  []PublicService  `json:"services"`
	Resources []PublicResource `json:"resources"`
}

// PublicService is a service as shown to customers.
type PublicService struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	DurationMin int      `json:"duration_min"`
	Resources   []string `json:"resources"`
}

// PublicResource is a resource as shown to customers.
type PublicResource struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	TimeZone string `json:"time_zone"`
}

func publicInfo(tenant string, cfg engine.TenantConfig) *TenantInfo {
	ti := &TenantInfo{ID: tenant, Name: cfg.Name, TimeZone: cfg.TimeZone, Services: []PublicService{}, Resources: []PublicResource{}}
	for _, s := range cfg.Services {
		ti.Services = append(ti.Services, PublicService{ID: s.ID, Name: s.Name, DurationMin: s.DurationMin, Resources: s.Resources})
	}
	for _, r := range cfg.Resources {
		ti.Resources = append(ti.Resources, PublicResource{ID: r.ID, Name: r.Name, Kind: r.Kind, TimeZone: r.TimeZone})
	}
	return ti
}

func errFrame(id string, e *engine.Error) Frame {
	return Frame{V: ProtocolVersion, ID: id, Type: TypeError, Code: string(e.Code), Message: e.Message}
}

// MarshalJSON writes the frame, always including "slots" in subscribed
// frames and availability resyncs, and "bookings" in bookings_subscribed,
// even when empty: those frames state the whole list.
func (f Frame) MarshalJSON() ([]byte, error) {
	type plain Frame
	b, err := json.Marshal(plain(f))
	if err != nil || len(b) < 2 {
		return b, err
	}
	var field string
	switch {
	case (f.Type == TypeSubscribed || (f.Type == TypeAvailability && f.Resync)) && len(f.Slots) == 0:
		field = `,"slots":[]}`
	case f.Type == TypeBookingsSubscribed && len(f.Bookings) == 0:
		field = `,"bookings":[]}`
	default:
		return b, nil
	}
	return append(b[:len(b)-1], field...), nil
}

// publicEvents strips what the journal keeps for itself (idempotency
// records) from events sent to staff clients.
func publicEvents(evs []engine.Event) []engine.Event {
	out := make([]engine.Event, len(evs))
	for i, e := range evs {
		e.Idem = nil
		out[i] = e
	}
	return out
}

// availabilityPrefix starts every availability frame; withSub inserts the
// subscription id right after it, where Frame's field order puts "sub".
const availabilityPrefix = `{"v":1,"type":"availability",`

// encodeDelta encodes an availability delta without its subscription id,
// once for every subscriber of its query (actors.Update.Memo).
func encodeDelta(u *actors.Update) []byte {
	v := u.Version
	return encodeFrame(Frame{V: ProtocolVersion, Type: TypeAvailability, Version: &v, Upserted: u.Upserted, Removed: u.Removed})
}

// appendWithSub appends the shared encoding frame with "sub": id added to
// dst: the same bytes encodeFrame would give with Sub set. An internal
// error frame, which names no subscription, is appended as it is.
func appendWithSub(dst, frame []byte, id string) []byte {
	if !bytes.HasPrefix(frame, []byte(availabilityPrefix)) {
		return append(dst, frame...)
	}
	dst = append(dst, availabilityPrefix...)
	dst = append(dst, `"sub":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, ',')
	return append(dst, frame[len(availabilityPrefix):]...)
}

// appendJSONString appends s as encoding/json writes a string field:
// quoted as it is when nothing in it needs escaping (subscription ids
// such as "s1"), else by encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// encodeFrame marshals f. Frames hold only marshalable values; should one
// not be (a time outside years 0–9999), the client gets an internal error
// frame instead of a broken one.
//
// It calls Frame.MarshalJSON itself: json.Marshal would validate and copy
// the bytes that returns, a second pass and a second copy of every reply,
// for the same bytes (encoding/json escapes HTML characters already).
func encodeFrame(f Frame) []byte {
	b, err := f.MarshalJSON()
	if err != nil {
		b, _ = json.Marshal(errFrame(f.ID, engine.Errorf(engine.CodeInternal, "could not encode reply %s", f.Type)))
	}
	return b
}
