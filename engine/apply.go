package engine

import (
	"sort"
	"strings"
	"time"
)

// Result is what one command did: its events, and the booking or hold it
// concerns (after the events). Duplicate is set when an idempotency key
// matched an earlier command: no events, the original result.
type Result struct {
	Events    []Event
	Booking   *Booking
	Hold      *Hold
	Duplicate bool
}

// Apply decides cmd against s at now and, if it succeeds, evolves s by its
// events. It is deterministic: the same state, command and now always give
// the same events.
func Apply(s *State, cmd Command, now time.Time) (Result, error) {
	res, err := Decide(s, cmd, now)
	if err != nil {
		return Result{}, err
	}
	for _, e := range res.Events {
		if err := s.Evolve(e); err != nil {
			// Decide only emits events that fit; this is a bug.
			return Result{}, Errorf(CodeInternal, "apply %s: %v", cmd.commandName(), err)
		}
	}
	if res.Booking != nil {
		if b, ok := s.Booking(res.Booking.ID); ok {
			res.Booking = &b
		}
	}
	return res, nil
}

// Decide works out the events cmd produces against s at now, without
// changing s. A refused command returns an *Error.
func Decide(s *State, cmd Command, now time.Time) (Result, error) {
	now = now.UTC().Truncate(time.Microsecond)
	d := decider{s: s, now: now}
	var (
		res  Result
		derr *Error
	)
	switch c := cmd.(type) {
	case Configure:
		res, derr = d.configure(c.Config)
	case UpsertResource:
		res, derr = d.reconfigure(Event{Type: EvResourceUpserted, Resource: &c.Resource})
	case UpsertService:
		res, derr = d.reconfigure(Event{Type: EvServiceUpserted, Service: &c.Service})
	case SetOverride:
		if _, ok := ParseDate(c.Date); !ok {
			return Result{}, Errorf(CodeInvalid, "override date %q must be YYYY-MM-DD", c.Date)
		}
		res, derr = d.reconfigure(Event{Type: EvOverrideSet, Override: &SetOverrideArg{ResourceID: c.ResourceID, Date: c.Date, Open: c.Open, Clear: c.Clear}})
	case PlaceHold:
		res, derr = d.hold(c)
	case ReleaseHold:
		res, derr = d.release(c)
	case Book:
		res, derr = d.book(c)
	case Cancel:
		res, derr = d.cancel(c)
	case Reschedule:
		res, derr = d.reschedule(c)
	case ImportBusy:
		res, derr = d.importBusy(c)
	case ExpireHolds:
		res = d.expireHolds()
	case EraseSubject:
		res, derr = d.eraseSubject(c)
	default:
		return Result{}, Errorf(CodeInvalid, "unknown command %T", cmd)
	}
	if derr != nil {
		return Result{}, derr
	}
	for i := range res.Events {
		res.Events[i].At = now
	}
	return res, nil
}

type decider struct {
	s   *State
	now time.Time
}

func (d *decider) needConfig() *Error {
	if d.s.cfg == nil {
		return Errorf(CodeNotFound, "tenant %q has no configuration yet", d.s.tenant)
	}
	return nil
}

// configure validates a whole new configuration and refuses one that would
// strand live bookings or holds: a removed resource, or a capacity below
// what is already booked from now on.
func (d *decider) configure(cfg TenantConfig) (Result, *Error) {
	c, err := compileConfig(cfg)
	if err != nil {
		return Result{}, err
	}
	if err := d.checkStranding(c); err != nil {
		return Result{}, err
	}
	canon := c.cfg
	return Result{Events: []Event{{Type: EvConfigured, Config: &canon}}}, nil
}

func (d *decider) reconfigure(e Event) (Result, *Error) {
	if err := d.needConfig(); err != nil {
		return Result{}, err
	}
	cfg, ferr := modifiedConfig(d.s.cfg.cfg, e)
	if ferr != nil {
		return Result{}, Errorf(CodeNotFound, "%v", ferr)
	}
	c, err := compileConfig(cfg)
	if err != nil {
		return Result{}, err
	}
	if err := d.checkStranding(c); err != nil {
		return Result{}, err
	}
	// Store the canonical (defaulted, sorted) form in the event.
	switch {
	case e.Resource != nil:
		r := c.resources[e.Resource.ID].cfg
		e.Resource = &r
	case e.Service != nil:
		sv := c.services[e.Service.ID].cfg
		e.Service = &sv
	}
	return Result{Events: []Event{e}}, nil
}

func (d *decider) checkStranding(c *compiled) *Error {
	if d.s.cfg == nil {
		return nil
	}
	now := d.now.UnixNano()
	for id, old := range d.s.cfg.resources {
		var live []occ
		for _, o := range old.occ.list {
			if o.end > now && o.live(now) {
				live = append(live, o)
			}
		}
		if len(live) == 0 {
			continue
		}
		nr := c.resources[id]
		if nr == nil {
			return Errorf(CodeInUse, "resource %s has %d upcoming bookings or holds; cancel them before removing it", id, len(live))
		}
		if nr.cfg.Capacity < old.cfg.Capacity {
			far := live[0].end
			for _, o := range live {
				far = max(far, o.end)
			}
			if p := old.occ.peakNanos(now, far, now, ""); p > nr.cfg.Capacity {
				return Errorf(CodeInUse, "resource %s already has %d overlapping upcoming bookings; capacity %d is too low", id, p, nr.cfg.Capacity)
			}
		}
	}
	return nil
}

// idemLookup returns the earlier record for key, or an error if the key was
// used for a different request.
func (d *decider) idemLookup(key string, cmd Command) (*IdemRecord, *Error) {
	if key == "" {
		return nil, nil
	}
	if len(key) > 128 {
		return nil, Errorf(CodeInvalid, "idempotency key longer than 128 bytes")
	}
	rec, ok := d.s.idemRecord(key)
	if !ok {
		return nil, nil
	}
	if rec.Fingerprint != fingerprint(cmd) {
		return nil, Errorf(CodeIdemReused, "idempotency key %q was used for a different request", key)
	}
	return &rec, nil
}

// bookingReplay answers a booking command whose idempotency key was seen
// before: the original booking, marked Duplicate (done=true), or the key's
// misuse as an error (done=true). done=false: a new request.
func (d *decider) bookingReplay(key string, cmd Command) (res Result, done bool, err *Error) {
	rec, err := d.idemLookup(key, cmd)
	if err != nil {
		return Result{}, true, err
	}
	if rec == nil {
		return Result{}, false, nil
	}
	b := *d.s.bookings[rec.ID]
	return Result{Booking: &b, Duplicate: true}, true, nil
}

func idemRec(key string, cmd Command, kind, id string) *IdemRecord {
	if key == "" {
		return nil
	}
	return &IdemRecord{Key: key, Fingerprint: fingerprint(cmd), Kind: kind, ID: id}
}

func (d *decider) newID(what, id string) *Error {
	if !ValidID(id) {
		return Errorf(CodeInvalid, "%s id %q: 1–64 letters, digits, '_', '.', '-'", what, id)
	}
	if _, ok := d.s.bookings[id]; ok {
		return Errorf(CodeInvalid, "%s id %q already used", what, id)
	}
	if _, ok := d.s.holds[id]; ok {
		return Errorf(CodeInvalid, "%s id %q already used", what, id)
	}
	return nil
}

// placement is where a slot request landed.
type placement struct {
	r          *resource
	start, end time.Time
	block      Interval
}

// place resolves (service, resource or any, start) to a resource and block,
// or explains why not. ignore is a booking or hold that may be moved or
// converted and so does not count against capacity. checkWindow applies
// minimum notice and horizon.
func (d *decider) place(svc *service, resourceID string, any bool, start time.Time, ignore string, checkWindow bool) (placement, *Error) {
	if start.IsZero() {
		return placement{}, Errorf(CodeInvalid, "start is required")
	}
	start = start.UTC()
	if start.Year() < 1900 || start.Year() > 9999 {
		return placement{}, Errorf(CodeInvalid, "start %s is not a plausible time", start.Format(time.RFC3339))
	}
	if !start.Truncate(time.Minute).Equal(start) {
		return placement{}, Errorf(CodeOffGrid, "start must be a whole minute")
	}
	if checkWindow {
		if start.Before(d.now) {
			return placement{}, Errorf(CodeTooSoon, "start %s is in the past", start.Format(time.RFC3339))
		}
		if start.Before(d.now.Add(svc.notice)) {
			return placement{}, Errorf(CodeTooSoon, "service %s needs %d minutes' notice", svc.cfg.ID, svc.cfg.MinNoticeMin)
		}
		if start.After(d.now.Add(svc.horizon)) {
			return placement{}, Errorf(CodeTooFar, "service %s can be booked at most %d days ahead", svc.cfg.ID, svc.cfg.HorizonDays)
		}
	}
	cands := svc.resources
	if !any {
		if d.s.cfg.resources[resourceID] == nil {
			return placement{}, Errorf(CodeNotFound, "resource %q does not exist", resourceID)
		}
		if !svc.delivers(resourceID) {
			return placement{}, Errorf(CodeInvalid, "resource %s does not deliver service %s", resourceID, svc.cfg.ID)
		}
		cands = []string{resourceID}
	}
	end := start.Add(svc.dur)
	block := Interval{start.Add(-svc.before), end.Add(svc.after)}
	var (
		best                   *resource
		bestLoad               int
		sawOpen, sawOnGridOpen bool
	)
	for _, id := range cands {
		r := d.s.cfg.resources[id]
		iv, ok := d.s.cfg.openingContaining(r, start, svc.dur)
		if !ok {
			continue
		}
		sawOpen = true
		if start.Sub(iv.Start)%svc.step != 0 {
			continue
		}
		sawOnGridOpen = true
		if r.free(block.Start, block.End, d.now, ignore) < 1 {
			continue
		}
		load := r.bookingsOnDay(DateOf(start, r.loc), ignore)
		if best == nil || load < bestLoad { // cands are sorted: ties keep the smaller id
			best, bestLoad = r, load
		}
	}
	switch {
	case best != nil:
		return placement{r: best, start: start, end: end, block: block}, nil
	case sawOnGridOpen:
		return placement{}, Errorf(CodeSlotTaken, "%s is already taken", start.Format(time.RFC3339))
	case sawOpen:
		return placement{}, Errorf(CodeOffGrid, "%s is not on the slot grid of service %s (every %d minutes from opening)", start.Format(time.RFC3339), svc.cfg.ID, svc.cfg.StepMin)
	}
	return placement{}, Errorf(CodeOutsideHours, "%s–%s is outside opening hours", start.Format(time.RFC3339), end.Format(time.RFC3339))
}

// bookingsOnDay counts confirmed bookings (other than ignore, a booking
// being moved) whose occupied block starts on local date day.
func (r *resource) bookingsOnDay(day Date, ignore string) int {
	from := LocalInstant(day, 0, r.loc).UnixNano()
	to := LocalInstant(day.AddDays(1), 0, r.loc).UnixNano()
	lo := sort.Search(len(r.occ.list), func(i int) bool { return r.occ.list[i].start >= from })
	n := 0
	for i := lo; i < len(r.occ.list) && r.occ.list[i].start < to; i++ {
		if o := &r.occ.list[i]; !o.hold && o.id != ignore {
			n++
		}
	}
	return n
}

func (d *decider) service(id string) (*service, *Error) {
	svc := d.s.cfg.services[id]
	if svc == nil {
		return nil, Errorf(CodeNotFound, "service %q does not exist", id)
	}
	return svc, nil
}

func (d *decider) hold(c PlaceHold) (Result, *Error) {
	if err := d.needConfig(); err != nil {
		return Result{}, err
	}
	if rec, err := d.idemLookup(c.IdempotencyKey, c); err != nil || rec != nil {
		if err != nil {
			return Result{}, err
		}
		h, ok := d.s.holds[rec.ID]
		// Hold ids are free again once a hold ends: check that the hold
		// under rec.ID is still the one this key placed.
		if !ok || !h.Live(d.now) || h.IdempotencyKey != rec.Key {
			return Result{}, Errorf(CodeHoldExpired, "hold %s from this idempotency key has ended", rec.ID)
		}
		hc := *h
		return Result{Hold: &hc, Duplicate: true}, nil
	}
	if err := d.newID("hold", c.HoldID); err != nil {
		return Result{}, err
	}
	svc, err := d.service(c.ServiceID)
	if err != nil {
		return Result{}, err
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = d.s.cfg.holdTTL
	}
	if ttl < 10*time.Second || ttl > MaxHoldTTLSec*time.Second {
		return Result{}, Errorf(CodeInvalid, "hold ttl must be 10s–%ds", MaxHoldTTLSec)
	}
	p, err := d.place(svc, c.ResourceID, c.ResourceID == "", c.Start, "", true)
	if err != nil {
		return Result{}, err
	}
	h := &Hold{ID: c.HoldID, ServiceID: svc.cfg.ID, ResourceID: p.r.cfg.ID, Start: p.start, End: p.end,
		BlockStart: p.block.Start, BlockEnd: p.block.End, ExpiresAt: d.now.Add(ttl), IdempotencyKey: c.IdempotencyKey}
	return Result{Hold: h, Events: []Event{{Type: EvHoldPlaced, Hold: h, Idem: idemRec(c.IdempotencyKey, c, "hold", h.ID)}}}, nil
}

func (d *decider) release(c ReleaseHold) (Result, *Error) {
	h, ok := d.s.holds[c.HoldID]
	if !ok || !h.Live(d.now) {
		return Result{}, Errorf(CodeHoldExpired, "hold %q not found or already ended", c.HoldID)
	}
	hc := *h
	return Result{Hold: &hc, Events: []Event{{Type: EvHoldReleased, HoldID: c.HoldID}}}, nil
}

func (d *decider) expireHolds() Result {
	var ids []string
	for id, h := range d.s.holds {
		if !h.Live(d.now) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var res Result
	for _, id := range ids {
		res.Events = append(res.Events, Event{Type: EvHoldExpired, HoldID: id})
	}
	return res
}

func checkCustomer(c Customer) *Error {
	name := strings.TrimSpace(c.Name)
	if name == "" || len(c.Name) > MaxNameLen {
		return Errorf(CodeInvalid, "customer name is required (at most %d bytes)", MaxNameLen)
	}
	if len(c.Email) > 254 || !plausibleEmail(c.Email) {
		return Errorf(CodeInvalid, "customer email %q is not a valid address", c.Email)
	}
	if len(c.Phone) > 32 {
		return Errorf(CodeInvalid, "customer phone longer than 32 bytes")
	}
	if c.Subject != "" && !ValidID(c.Subject) {
		return Errorf(CodeInvalid, "customer subject %q: 1–64 letters, digits, '_', '.', '-'", c.Subject)
	}
	if c.Erased || c.Sealed != "" {
		return Errorf(CodeInvalid, "customer must not be marked erased or sealed")
	}
	for _, s := range []string{c.Name, c.Email, c.Phone} {
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return Errorf(CodeInvalid, "customer details must not contain control characters")
			}
		}
	}
	return nil
}

func plausibleEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>,;") {
		return false
	}
	return strings.Contains(s[at+1:], ".")
}

func (d *decider) book(c Book) (Result, *Error) {
	if err := d.needConfig(); err != nil {
		return Result{}, err
	}
	if res, done, err := d.bookingReplay(c.IdempotencyKey, c); done {
		return res, err
	}
	if err := d.newID("booking", c.BookingID); err != nil {
		return Result{}, err
	}
	if err := checkCustomer(c.Customer); err != nil {
		return Result{}, err
	}
	if d.s.erased[c.Customer.Subject] {
		// The pseudonym was looked up just before its erasure: the host
		// gives the customer a new one on a retry.
		return Result{}, Errorf(CodeConflict, "the customer's records were just erased; retry the booking")
	}
	var (
		p     placement
		svc   *service
		err   *Error
		holdR string
	)
	if c.HoldID != "" {
		h, ok := d.s.holds[c.HoldID]
		if !ok || !h.Live(d.now) {
			return Result{}, Errorf(CodeHoldExpired, "hold %q not found or expired", c.HoldID)
		}
		if (c.ServiceID != "" && c.ServiceID != h.ServiceID) || (c.ResourceID != "" && c.ResourceID != h.ResourceID) ||
			(!c.Start.IsZero() && !c.Start.Equal(h.Start)) {
			return Result{}, Errorf(CodeInvalid, "service, resource and start must match hold %s (or be left out)", h.ID)
		}
		if svc, err = d.service(h.ServiceID); err != nil {
			return Result{}, err
		}
		// Re-check hours and capacity (ignoring the hold itself): hours may
		// have changed or a busy block arrived while the customer typed.
		if p, err = d.place(svc, h.ResourceID, false, h.Start, h.ID, false); err != nil {
			return Result{}, err
		}
		if h.Start.Before(d.now) {
			return Result{}, Errorf(CodeTooSoon, "held slot %s has already started", h.Start.Format(time.RFC3339))
		}
		holdR = h.ID
	} else {
		if svc, err = d.service(c.ServiceID); err != nil {
			return Result{}, err
		}
		if p, err = d.place(svc, c.ResourceID, c.ResourceID == "", c.Start, "", true); err != nil {
			return Result{}, err
		}
	}
	b := &Booking{ID: c.BookingID, ServiceID: svc.cfg.ID, ResourceID: p.r.cfg.ID, Start: p.start, End: p.end,
		BlockStart: p.block.Start, BlockEnd: p.block.End, Customer: c.Customer, Status: StatusConfirmed,
		CreatedAt: d.now, UpdatedAt: d.now, FromHold: holdR, IdempotencyKey: c.IdempotencyKey}
	return Result{Booking: b, Events: []Event{{Type: EvBookingConfirmed, Booking: b, Idem: idemRec(c.IdempotencyKey, c, "booking", b.ID)}}}, nil
}

func (d *decider) cancel(c Cancel) (Result, *Error) {
	if res, done, err := d.bookingReplay(c.IdempotencyKey, c); done {
		return res, err
	}
	b, ok := d.s.bookings[c.BookingID]
	if !ok {
		return Result{}, Errorf(CodeNotFound, "booking %q does not exist", c.BookingID)
	}
	if b.Status == StatusCancelled {
		return Result{}, Errorf(CodeAlreadyDone, "booking %s is already cancelled", b.ID)
	}
	if len(c.Reason) > 500 {
		return Result{}, Errorf(CodeInvalid, "reason longer than 500 bytes")
	}
	bc := *b
	bc.Status, bc.CancelReason, bc.UpdatedAt = StatusCancelled, c.Reason, d.now
	return Result{Booking: &bc, Events: []Event{{Type: EvBookingCancelled, BookingID: b.ID, Reason: c.Reason, Idem: idemRec(c.IdempotencyKey, c, "booking", b.ID)}}}, nil
}

func (d *decider) reschedule(c Reschedule) (Result, *Error) {
	if err := d.needConfig(); err != nil {
		return Result{}, err
	}
	if res, done, err := d.bookingReplay(c.IdempotencyKey, c); done {
		return res, err
	}
	b, ok := d.s.bookings[c.BookingID]
	if !ok {
		return Result{}, Errorf(CodeNotFound, "booking %q does not exist", c.BookingID)
	}
	if b.Status != StatusConfirmed {
		return Result{}, Errorf(CodeAlreadyDone, "booking %s is cancelled and cannot be moved", b.ID)
	}
	svc, err := d.service(b.ServiceID)
	if err != nil {
		return Result{}, err
	}
	resID := c.ResourceID
	if resID == "" {
		resID = b.ResourceID
	}
	p, err := d.place(svc, resID, c.AnyResource, c.Start, b.ID, true)
	if err != nil {
		return Result{}, err
	}
	nb := *b
	nb.ResourceID, nb.Start, nb.End, nb.BlockStart, nb.BlockEnd = p.r.cfg.ID, p.start, p.end, p.block.Start, p.block.End
	nb.UpdatedAt = d.now
	nb.Rescheduled++
	return Result{Booking: &nb, Events: []Event{{Type: EvBookingRescheduled, Booking: &nb, Idem: idemRec(c.IdempotencyKey, c, "booking", b.ID)}}}, nil
}

func (d *decider) eraseSubject(c EraseSubject) (Result, *Error) {
	if !ValidID(c.Subject) {
		return Result{}, Errorf(CodeInvalid, "subject %q: 1–64 letters, digits, '_', '.', '-'", c.Subject)
	}
	var ids []string
	for id, b := range d.s.bookings {
		if b.Customer.Subject == c.Subject && !b.Customer.Erased {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 && d.s.erased[c.Subject] {
		return Result{}, nil
	}
	sort.Strings(ids)
	return Result{Events: []Event{{Type: EvSubjectErased, Subject: c.Subject, BookingIDs: ids}}}, nil
}

// MaxBusyBlocks bounds one import.
const MaxBusyBlocks = 10000

func (d *decider) importBusy(c ImportBusy) (Result, *Error) {
	if err := d.needConfig(); err != nil {
		return Result{}, err
	}
	if d.s.cfg.resources[c.ResourceID] == nil {
		return Result{}, Errorf(CodeNotFound, "resource %q does not exist", c.ResourceID)
	}
	if !ValidID(c.Source) {
		return Result{}, Errorf(CodeInvalid, "source %q: 1–64 letters, digits, '_', '.', '-'", c.Source)
	}
	if len(c.Blocks) > MaxBusyBlocks {
		return Result{}, Errorf(CodeInvalid, "at most %d busy blocks per import", MaxBusyBlocks)
	}
	blocks := make([]Interval, 0, len(c.Blocks))
	for _, b := range c.Blocks {
		// Checked in UTC, the form the event is stored in.
		if b.Start.UTC().Year() < 1900 || b.End.UTC().Year() > 9999 || !b.End.After(b.Start) {
			return Result{}, Errorf(CodeInvalid, "busy block %s–%s: end must be after start", b.Start.Format(time.RFC3339), b.End.Format(time.RFC3339))
		}
		blocks = append(blocks, Interval{b.Start.UTC(), b.End.UTC()})
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].Start.Before(blocks[j].Start) })
	merged := blocks[:0]
	for _, b := range blocks {
		if n := len(merged); n > 0 && !b.Start.After(merged[n-1].End) {
			merged[n-1].End = maxTime(merged[n-1].End, b.End)
			continue
		}
		merged = append(merged, b)
	}
	return Result{Events: []Event{{Type: EvBusyImported, Busy: &BusyArg{ResourceID: c.ResourceID, Source: c.Source, Blocks: merged}}}}, nil
}
