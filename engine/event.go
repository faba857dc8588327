package engine

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event types. Stored in journals: only ever add.
const (
	EvConfigured         = "configured"
	EvResourceUpserted   = "resource_upserted"
	EvServiceUpserted    = "service_upserted"
	EvOverrideSet        = "override_set"
	EvHoldPlaced         = "hold_placed"
	EvHoldReleased       = "hold_released"
	EvHoldExpired        = "hold_expired"
	EvBookingConfirmed   = "booking_confirmed"
	EvBookingCancelled   = "booking_cancelled"
	EvBookingRescheduled = "booking_rescheduled"
	EvBusyImported       = "busy_imported"
	EvSubjectErased      = "subject_erased"
)

// Event is one fact about a tenant. Exactly the fields of its Type are set.
type Event struct {
	Type      string          `json:"type"`
	At        time.Time       `json:"at"`
	Config    *TenantConfig   `json:"config,omitempty"`
	Resource  *Resource       `json:"resource,omitempty"`
	Service   *Service        `json:"service,omitempty"`
	Override  *SetOverrideArg `json:"override,omitempty"`
	Hold      *Hold           `json:"hold,omitempty"`
	Booking   *Booking        `json:"booking,omitempty"`
	HoldID    string          `json:"hold_id,omitempty"`
	BookingID string          `json:"booking_id,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Busy      *BusyArg        `json:"busy,omitempty"`
	Idem      *IdemRecord     `json:"idem,omitempty"`
	// Subject and BookingIDs are the payload of subject_erased: the erased
	// subject and the bookings whose customer it anonymised.
	Subject    string   `json:"subject,omitempty"`
	BookingIDs []string `json:"booking_ids,omitempty"`
}

// SetOverrideArg is the payload of override_set.
type SetOverrideArg struct {
	ResourceID string  `json:"resource_id"`
	Date       string  `json:"date"`
	Open       []Range `json:"open"`
	Clear      bool    `json:"clear,omitempty"`
}

// BusyArg is the payload of busy_imported.
type BusyArg struct {
	ResourceID string     `json:"resource_id"`
	Source     string     `json:"source"`
	Blocks     []Interval `json:"blocks"`
}

// IdemRecord ties an idempotency key to what it produced.
type IdemRecord struct {
	Key         string `json:"key"`
	Fingerprint string `json:"fingerprint"`
	Kind        string `json:"kind"` // "hold" or "booking"
	ID          string `json:"id"`
}

// EncodeEvent serializes an event for the journal.
func EncodeEvent(e Event) ([]byte, error) { return json.Marshal(e) }

// DecodeEvent parses a journal record.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	switch e.Type {
	case EvConfigured, EvResourceUpserted, EvServiceUpserted, EvOverrideSet, EvHoldPlaced, EvHoldReleased,
		EvHoldExpired, EvBookingConfirmed, EvBookingCancelled, EvBookingRescheduled, EvBusyImported,
		EvSubjectErased:
		return e, nil
	}
	return Event{}, fmt.Errorf("decode event: unknown type %q", e.Type)
}
