// Package engine is slotd's scheduling domain: tenants, resources (staff or
// rooms), services, opening hours, holds, bookings and busy blocks, the
// availability math, and the commands that change them.
//
// It is pure: no I/O, no goroutines, no wall clock. Every decision takes
// `now` as an argument, so the same state, command and time always give the
// same events. State is only ever changed by events (Evolve), which is what
// lets the actors persist events and rebuild a tenant by replaying them.
//
// Time rules, stated once:
//   - Opening hours are wall-clock times in the resource's IANA zone.
//   - A local time that does not exist (inside a spring-forward gap) resolves
//     to the instant the gap ends; a local time that occurs twice (fall-back)
//     resolves to its first occurrence.
//   - Slots are laid out every Step of elapsed time from the opening instant,
//     so an opening that spans a DST switch yields slots of true length.
//   - The appointment [Start, End) must lie inside opening hours; buffers
//     extend the occupied block [Start-BufferBefore, End+BufferAfter) and
//     count against capacity, but may run outside opening hours.
package engine
