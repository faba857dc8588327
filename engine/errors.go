package engine

import "fmt"

// Code is a stable, machine-readable error code. Codes are only ever added,
// never renamed or removed: clients switch on them.
type Code string

// Error codes. Keep docs/protocol.md in step with this list.
const (
	CodeInvalid      Code = "invalid"           // malformed or impossible input
	CodeNotFound     Code = "not_found"         // unknown tenant, service, resource or booking
	CodeSlotTaken    Code = "slot_taken"        // capacity exhausted for that time
	CodeOutsideHours Code = "outside_hours"     // not within the resource's opening hours
	CodeOffGrid      Code = "off_grid"          // start not on the service's slot grid
	CodeTooSoon      Code = "too_soon"          // within the minimum notice, or in the past
	CodeTooFar       Code = "too_far"           // beyond the booking horizon
	CodeHoldExpired  Code = "hold_expired"      // the hold expired, was released, or is unknown
	CodeAlreadyDone  Code = "already_cancelled" // booking already cancelled
	CodeInUse        Code = "in_use"            // configuration change would strand bookings
	CodeIdemReused   Code = "idempotency_key_reused"
	CodeForbidden    Code = "forbidden"
	CodeUnauthorized Code = "unauthorized"
	CodeOverloaded   Code = "overloaded"
	CodeRateLimited  Code = "rate_limited"
	CodeUnavailable  Code = "unavailable"
	CodeConflict     Code = "conflict"
	CodeTooLarge     Code = "too_large"
	CodeUnknownType  Code = "unknown_type"
	CodeBadVersion   Code = "unsupported_version"
	CodeInternal     Code = "internal"
)

// Error is the one error type the engine returns: a stable code and a human
// message. Use errors.As to get it back out of wrapped errors.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AllCodes lists every code, for documentation tests.
func AllCodes() []Code {
	return []Code{CodeInvalid, CodeNotFound, CodeSlotTaken, CodeOutsideHours, CodeOffGrid,
		CodeTooSoon, CodeTooFar, CodeHoldExpired, CodeAlreadyDone, CodeInUse, CodeIdemReused,
		CodeForbidden, CodeUnauthorized, CodeOverloaded, CodeRateLimited, CodeUnavailable,
		CodeConflict, CodeTooLarge, CodeUnknownType, CodeBadVersion, CodeInternal}
}
