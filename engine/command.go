package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Command is a request to change a tenant. The set is closed: only the types
// in this file implement it.
type Command interface{ commandName() string }

// Configure replaces the tenant's whole configuration.
type Configure struct{ Config TenantConfig }

// UpsertResource adds a resource or replaces the one with the same id.
type UpsertResource struct{ Resource Resource }

// UpsertService adds a service or replaces the one with the same id.
type UpsertService struct{ Service Service }

// SetOverride sets the opening ranges of one resource on one local date
// (Open empty: closed that day), or removes the override when Clear is set.
type SetOverride struct {
	ResourceID string
	Date       string
	Open       []Range
	Clear      bool
}

// PlaceHold reserves a slot for TTL (0: the tenant's default). ResourceID ""
// means any resource that delivers the service (see Book for the rule).
type PlaceHold struct {
	HoldID         string
	ServiceID      string
	ResourceID     string
	Start          time.Time
	TTL            time.Duration
	IdempotencyKey string
}

// ReleaseHold gives a held slot back.
type ReleaseHold struct{ HoldID string }

// Book confirms an appointment, either from a live hold (HoldID set; the
// hold's service, resource and start are used) or directly.
//
// With ResourceID "" ("any available staff") the resource is chosen by a
// fixed rule: among the resources that deliver the service and are free for
// the whole block, the one with the fewest confirmed bookings whose block
// starts on the same local date (in its own zone); ties go to the smallest
// resource id.
type Book struct {
	BookingID      string
	HoldID         string
	ServiceID      string
	ResourceID     string
	Start          time.Time
	Customer       Customer
	IdempotencyKey string
}

// Cancel cancels a confirmed booking.
type Cancel struct {
	BookingID      string
	Reason         string
	IdempotencyKey string
}

// Reschedule moves a booking to a new start, atomically: the booking keeps
// its old slot unless the new one is secured. ResourceID "" keeps the
// booking's resource; AnyResource picks by Book's rule.
type Reschedule struct {
	BookingID      string
	Start          time.Time
	ResourceID     string
	AnyResource    bool
	IdempotencyKey string
}

// ImportBusy replaces the busy blocks that one outside calendar (Source)
// reports for a resource. Only start and end are kept.
type ImportBusy struct {
	ResourceID string
	Source     string
	Blocks     []Interval
}

// ExpireHolds ends every hold whose expiry is at or before now. The actor
// issues it from its timer; clients never need to.
type ExpireHolds struct{}

// EraseSubject erases a data subject's personal data (GDPR Art. 17): every
// booking whose customer has this Subject keeps its times, resource, service
// and status, and its customer becomes {Subject, Erased: true}. Later Books
// for the subject are refused, so that an erased pseudonym is never reused.
// Erasing a subject again changes nothing and emits no event.
type EraseSubject struct{ Subject string }

func (Configure) commandName() string      { return "configure" }
func (UpsertResource) commandName() string { return "upsert_resource" }
func (UpsertService) commandName() string  { return "upsert_service" }
func (SetOverride) commandName() string    { return "set_override" }
func (PlaceHold) commandName() string      { return "hold" }
func (ReleaseHold) commandName() string    { return "release" }
func (Book) commandName() string           { return "book" }
func (Cancel) commandName() string         { return "cancel" }
func (Reschedule) commandName() string     { return "reschedule" }
func (ImportBusy) commandName() string     { return "import_busy" }
func (ExpireHolds) commandName() string    { return "expire_holds" }
func (EraseSubject) commandName() string   { return "erase_subject" }

// CommandName is the stable name of a command's kind, for metrics and logs.
func CommandName(c Command) string { return c.commandName() }

// fingerprint identifies what a command asks for, so that a reused
// idempotency key with a different request is detected. It is a SHA-256
// digest: the journal keeps no second copy of customer details in it.
func fingerprint(c Command) string {
	s := describe(c)
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func describe(c Command) string {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	switch c := c.(type) {
	case PlaceHold:
		return fmt.Sprintf("hold|%s|%s|%s", c.ServiceID, c.ResourceID, ts(c.Start))
	case Book:
		if c.Customer.Subject != "" {
			// The pseudonym stands for the customer: a digest of their
			// name, email and phone would let anyone holding the journal
			// confirm a guess of them, even after the subject is erased.
			return fmt.Sprintf("book|%s|%s|%s|%s|subject:%s", c.HoldID, c.ServiceID, c.ResourceID, ts(c.Start), c.Customer.Subject)
		}
		return fmt.Sprintf("book|%s|%s|%s|%s|%q|%q|%q", c.HoldID, c.ServiceID, c.ResourceID, ts(c.Start), c.Customer.Name, c.Customer.Email, c.Customer.Phone)
	case Cancel:
		return "cancel|" + c.BookingID
	case Reschedule:
		return fmt.Sprintf("reschedule|%s|%s|%s|%v", c.BookingID, ts(c.Start), c.ResourceID, c.AnyResource)
	}
	return ""
}
