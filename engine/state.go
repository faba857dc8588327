package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// State is one tenant's calendar. It is not safe for concurrent use: it
// belongs to the tenant's actor. Change it only with Evolve (or Apply).
type State struct {
	tenant   string
	cfg      *compiled // nil until configured
	bookings map[string]*Booking
	holds    map[string]*Hold
	idem     map[string]idemEntry      // idempotency records, compact (idem.go)
	idemOdd  map[string]IdemRecord     // records without that shape, as they came
	erased   map[string]bool           // data subjects erased (EraseSubject)
	zones    map[string]*time.Location // viewer zones seen in queries; a cache

	// What evolve changed since TakeChanges (changes.go). A new state
	// starts with everything changed, which also keeps a replay from
	// tracking blocks nobody takes.
	changedAll bool
	changed    []resourceBlock
}

// maxZoneCache bounds State.zones.
const maxZoneCache = 64

// zone loads a viewer's zone, caching it: whatever the host's ZoneSource,
// a zone is looked up once per tenant, not on every availability refresh.
func (s *State) zone(name string) (*time.Location, *Error) {
	if loc, ok := s.zones[name]; ok {
		return loc, nil
	}
	loc, err := LoadZone(name)
	if err != nil {
		return nil, err
	}
	if s.zones == nil || len(s.zones) >= maxZoneCache {
		s.zones = map[string]*time.Location{}
	}
	s.zones[name] = loc
	return loc, nil
}

// NewState returns the empty state of a tenant.
func NewState(tenant string) *State {
	return &State{tenant: tenant, bookings: map[string]*Booking{}, holds: map[string]*Hold{}, idem: map[string]idemEntry{},
		erased: map[string]bool{}, changedAll: true}
}

// Tenant is the tenant id the state belongs to.
func (s *State) Tenant() string { return s.tenant }

// Configured reports whether the tenant has a configuration.
func (s *State) Configured() bool { return s.cfg != nil }

// Config returns the tenant's configuration (canonical order).
func (s *State) Config() (TenantConfig, bool) {
	if s.cfg == nil {
		return TenantConfig{}, false
	}
	return s.cfg.cfg, true
}

// Booking returns a copy of one booking.
func (s *State) Booking(id string) (Booking, bool) {
	b, ok := s.bookings[id]
	if !ok {
		return Booking{}, false
	}
	return *b, true
}

// Hold returns a copy of one hold.
func (s *State) Hold(id string) (Hold, bool) {
	h, ok := s.holds[id]
	if !ok {
		return Hold{}, false
	}
	return *h, true
}

// Bookings returns the bookings whose appointment overlaps [from, to), both
// confirmed and cancelled, sorted by start then id. Zero bounds are open.
func (s *State) Bookings(from, to time.Time) []Booking {
	out := make([]Booking, 0)
	for _, b := range s.bookings {
		if (!from.IsZero() && !b.End.After(from)) || (!to.IsZero() && !b.Start.Before(to)) {
			continue
		}
		out = append(out, *b)
	}
	sortBookings(out)
	return out
}

// Holds returns every hold still in the state (live or awaiting expiry),
// sorted by id.
func (s *State) Holds() []Hold {
	out := make([]Hold, 0, len(s.holds))
	for _, h := range s.holds {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Busy returns the busy blocks imported for each resource, by resource id
// then source.
func (s *State) Busy() []BusyArg {
	out := []BusyArg{}
	if s.cfg == nil {
		return out
	}
	for _, id := range sortedKeys(s.cfg.resources) {
		r := s.cfg.resources[id]
		for _, src := range sortedKeys(r.busy) {
			out = append(out, BusyArg{ResourceID: id, Source: src, Blocks: append([]Interval(nil), r.busy[src]...)})
		}
	}
	return out
}

// SubjectErased reports whether EraseSubject erased subject.
func (s *State) SubjectErased(subject string) bool { return s.erased[subject] }

// Size is the number of bookings, holds and idempotency records the state
// holds: a measure of what a snapshot of it costs.
func (s *State) Size() int { return len(s.bookings) + len(s.holds) + len(s.idem) + len(s.idemOdd) }

// NextHoldExpiry is the earliest expiry among held slots.
func (s *State) NextHoldExpiry() (time.Time, bool) {
	var next time.Time
	for _, h := range s.holds {
		if next.IsZero() || h.ExpiresAt.Before(next) {
			next = h.ExpiresAt
		}
	}
	return next, !next.IsZero()
}

func sortBookings(bs []Booking) {
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].Start.Equal(bs[j].Start) {
			return bs[i].Start.Before(bs[j].Start)
		}
		return bs[i].ID < bs[j].ID
	})
}

// Evolve applies one event to the state. Events come from Decide or from a
// journal; an event that does not fit the state is a corrupt journal and is
// reported as an error with the state unchanged.
func (s *State) Evolve(e Event) error {
	if err := s.evolve(e); err != nil {
		return fmt.Errorf("evolve %s: %w", e.Type, err)
	}
	if e.Idem != nil {
		s.putIdem(*e.Idem)
	}
	return nil
}

func (s *State) evolve(e Event) error {
	switch e.Type {
	case EvConfigured:
		if e.Config == nil {
			return fmt.Errorf("missing config")
		}
		s.touchedAll()
		return s.setConfig(*e.Config)
	case EvResourceUpserted, EvServiceUpserted, EvOverrideSet:
		if s.cfg == nil {
			return fmt.Errorf("tenant not configured")
		}
		cfg, err := modifiedConfig(s.cfg.cfg, e)
		if err != nil {
			return err
		}
		s.touchedAll()
		return s.setConfig(cfg)
	case EvHoldPlaced:
		h := e.Hold
		if h == nil || s.cfg == nil {
			return fmt.Errorf("missing hold or config")
		}
		r := s.cfg.resources[h.ResourceID]
		if r == nil {
			return fmt.Errorf("unknown resource %q", h.ResourceID)
		}
		hc := *h
		s.holds[h.ID] = &hc
		r.occ.add(h.occ())
		s.touched(h.ResourceID, Interval{h.BlockStart, h.BlockEnd})
	case EvHoldReleased, EvHoldExpired:
		s.dropHold(e.HoldID)
	case EvBookingConfirmed:
		b := e.Booking
		if b == nil || s.cfg == nil {
			return fmt.Errorf("missing booking or config")
		}
		r := s.cfg.resources[b.ResourceID]
		if r == nil {
			return fmt.Errorf("unknown resource %q", b.ResourceID)
		}
		if b.FromHold != "" {
			s.dropHold(b.FromHold)
		}
		bc := *b
		s.bookings[b.ID] = &bc
		r.occ.add(b.occ())
		s.touched(b.ResourceID, Interval{b.BlockStart, b.BlockEnd})
	case EvBookingCancelled:
		b := s.bookings[e.BookingID]
		if b == nil {
			return fmt.Errorf("unknown booking %q", e.BookingID)
		}
		if b.Status == StatusConfirmed {
			if r := s.resource(b.ResourceID); r != nil {
				r.occ.remove(b.ID, b.BlockStart)
			}
			s.touched(b.ResourceID, Interval{b.BlockStart, b.BlockEnd})
		}
		b.Status = StatusCancelled
		b.CancelReason = e.Reason
		b.UpdatedAt = e.At
	case EvBookingRescheduled:
		nb := e.Booking
		if nb == nil || s.cfg == nil {
			return fmt.Errorf("missing booking or config")
		}
		old := s.bookings[nb.ID]
		r := s.cfg.resources[nb.ResourceID]
		if old == nil || r == nil {
			return fmt.Errorf("unknown booking %q or resource %q", nb.ID, nb.ResourceID)
		}
		if or := s.resource(old.ResourceID); or != nil {
			or.occ.remove(old.ID, old.BlockStart)
		}
		s.touched(old.ResourceID, Interval{old.BlockStart, old.BlockEnd})
		bc := *nb
		s.bookings[nb.ID] = &bc
		r.occ.add(nb.occ())
		s.touched(nb.ResourceID, Interval{nb.BlockStart, nb.BlockEnd})
	case EvSubjectErased:
		if e.Subject == "" {
			return fmt.Errorf("missing subject")
		}
		for _, id := range e.BookingIDs {
			if s.bookings[id] == nil {
				return fmt.Errorf("unknown booking %q", id)
			}
		}
		erased := Customer{Subject: e.Subject, Erased: true}
		// The listed bookings are the ones Decide found; matching by
		// subject as well keeps a replay right should a journal codec
		// give an old booking another pseudonym on the way back.
		for _, id := range e.BookingIDs {
			s.bookings[id].Customer = erased
		}
		for _, b := range s.bookings {
			if b.Customer.Subject == e.Subject {
				b.Customer = erased
			}
		}
		s.erased[e.Subject] = true
	case EvBusyImported:
		if e.Busy == nil || s.cfg == nil {
			return fmt.Errorf("missing busy blocks or config")
		}
		r := s.cfg.resources[e.Busy.ResourceID]
		if r == nil {
			return fmt.Errorf("unknown resource %q", e.Busy.ResourceID)
		}
		s.touchedAll() // busy imports are rare and may span months
		if len(e.Busy.Blocks) == 0 {
			delete(r.busy, e.Busy.Source)
		} else {
			r.setBusy(e.Busy.Source, append([]Interval(nil), e.Busy.Blocks...))
		}
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	return nil
}

func (s *State) resource(id string) *resource {
	if s.cfg == nil {
		return nil
	}
	return s.cfg.resources[id]
}

func (s *State) dropHold(id string) {
	h := s.holds[id]
	if h == nil {
		return
	}
	delete(s.holds, id)
	if r := s.resource(h.ResourceID); r != nil {
		r.occ.remove(h.ID, h.BlockStart)
	}
	s.touched(h.ResourceID, Interval{h.BlockStart, h.BlockEnd})
}

// setConfig installs a configuration, carrying each surviving resource's
// occupancy and busy blocks over to its compiled replacement. A resource
// that was removed and comes back gets its bookings and holds back, as
// RestoreState would give it, so live and restored states decide alike.
func (s *State) setConfig(cfg TenantConfig) error {
	c, err := compileConfig(cfg)
	if err != nil {
		return err
	}
	var readded map[string]*resource
	for id, r := range c.resources {
		if old := s.resource(id); old != nil {
			r.occ = old.occ
			r.busy = old.busy
		} else if len(s.bookings)+len(s.holds) > 0 {
			if readded == nil {
				readded = map[string]*resource{}
			}
			readded[id] = r
		}
	}
	for _, b := range s.bookings {
		if r := readded[b.ResourceID]; r != nil && b.Status == StatusConfirmed {
			r.occ.add(b.occ())
		}
	}
	for _, h := range s.holds {
		if r := readded[h.ResourceID]; r != nil {
			r.occ.add(h.occ())
		}
	}
	s.cfg = c
	return nil
}

// modifiedConfig returns cfg with the change an upsert or override event
// describes.
func modifiedConfig(cfg TenantConfig, e Event) (TenantConfig, error) {
	out := cfg
	switch e.Type {
	case EvResourceUpserted:
		if e.Resource == nil {
			return cfg, fmt.Errorf("missing resource")
		}
		out.Resources = replaceByID(cfg.Resources, *e.Resource, func(r Resource) string { return r.ID })
	case EvServiceUpserted:
		if e.Service == nil {
			return cfg, fmt.Errorf("missing service")
		}
		out.Services = replaceByID(cfg.Services, *e.Service, func(s Service) string { return s.ID })
	case EvOverrideSet:
		o := e.Override
		if o == nil {
			return cfg, fmt.Errorf("missing override")
		}
		out.Resources = append([]Resource(nil), cfg.Resources...)
		found := false
		for i := range out.Resources {
			if out.Resources[i].ID != o.ResourceID {
				continue
			}
			found = true
			ov := make(map[string][]Range, len(out.Resources[i].Overrides)+1)
			for k, v := range out.Resources[i].Overrides {
				ov[k] = v
			}
			if o.Clear {
				delete(ov, o.Date)
			} else {
				ov[o.Date] = append([]Range{}, o.Open...)
			}
			if len(ov) == 0 {
				ov = nil
			}
			out.Resources[i].Overrides = ov
		}
		if !found {
			return cfg, fmt.Errorf("unknown resource %q", o.ResourceID)
		}
	}
	return out, nil
}

func replaceByID[T any](xs []T, x T, id func(T) string) []T {
	out := make([]T, 0, len(xs)+1)
	replaced := false
	for _, y := range xs {
		if id(y) == id(x) {
			out = append(out, x)
			replaced = true
		} else {
			out = append(out, y)
		}
	}
	if !replaced {
		out = append(out, x)
	}
	return out
}

// snapshot is the serialized form of a State. Slices are sorted so that two
// equal states serialize to identical bytes.
type snapshot struct {
	V        int           `json:"v"`
	Tenant   string        `json:"tenant"`
	Config   *TenantConfig `json:"config,omitempty"`
	Bookings []Booking     `json:"bookings"`
	Holds    []Hold        `json:"holds"`
	Busy     []BusyArg     `json:"busy"`
	Idem     []IdemRecord  `json:"idem"`
	Erased   []string      `json:"erased,omitempty"`
}

// CustomerFunc maps a booking to the customer to store or restore in its
// place: how a journal codec seals customers in snapshots and opens them.
type CustomerFunc func(b Booking) (Customer, error)

// MarshalSnapshot serializes the whole state deterministically: equal states
// give equal bytes, which is how replay is checked against live state.
func (s *State) MarshalSnapshot() ([]byte, error) { return s.MarshalSnapshotWith(nil) }

// MarshalSnapshotWith is MarshalSnapshot with each booking's customer
// replaced, in the bytes only, by what seal returns for the booking (nil:
// unchanged). A journal codec uses it to encrypt customers at rest.
func (s *State) MarshalSnapshotWith(seal CustomerFunc) ([]byte, error) {
	return s.Snapshot().Marshal(seal)
}

// Snapshot is a state's contents as MarshalSnapshot stores them, copied out
// of the state: it shares nothing the state changes, so it can be sealed
// and marshalled on another goroutine while the state moves on. Taking one
// costs a copy of the bookings; marshalling it, and above all sealing its
// customers, is the expensive part.
type Snapshot struct {
	snap snapshot
}

// Snapshot copies the state's contents.
func (s *State) Snapshot() *Snapshot {
	snap := snapshot{V: 1, Tenant: s.tenant, Bookings: s.Bookings(time.Time{}, time.Time{}), Holds: s.Holds(),
		Busy: s.Busy(), Idem: s.idemRecords(), Erased: sortedKeys(s.erased)}
	if s.cfg != nil {
		// Configurations are replaced, never changed in place (setConfig,
		// modifiedConfig), so sharing this one's slices and maps is safe.
		c := s.cfg.cfg
		snap.Config = &c
	}
	return &Snapshot{snap: snap}
}

// Bookings are the snapshot's bookings, sorted; callers must not change them.
func (sn *Snapshot) Bookings() []Booking { return sn.snap.Bookings }

// Marshal serializes the snapshot as MarshalSnapshotWith serializes its
// state, each booking's customer replaced by what seal returns (nil:
// unchanged). The snapshot itself is not changed.
func (sn *Snapshot) Marshal(seal CustomerFunc) ([]byte, error) {
	snap := sn.snap
	if seal != nil {
		snap.Bookings = make([]Booking, len(sn.snap.Bookings))
		copy(snap.Bookings, sn.snap.Bookings)
		for i := range snap.Bookings {
			c, err := seal(snap.Bookings[i])
			if err != nil {
				return nil, fmt.Errorf("snapshot booking %s: %w", snap.Bookings[i].ID, err)
			}
			snap.Bookings[i].Customer = c
		}
	}
	return json.Marshal(snap)
}

// RestoreState rebuilds a state from MarshalSnapshot's bytes.
func RestoreState(tenant string, data []byte) (*State, error) {
	return RestoreStateWith(tenant, data, nil)
}

// RestoreStateWith rebuilds a state from MarshalSnapshotWith's bytes, each
// booking's customer replaced by what open returns for it (nil: as stored).
func RestoreStateWith(tenant string, data []byte, open CustomerFunc) (*State, error) {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	if snap.V != 1 || snap.Tenant != tenant {
		return nil, fmt.Errorf("restore snapshot: version %d tenant %q, want 1 and %q", snap.V, snap.Tenant, tenant)
	}
	if open != nil {
		for i := range snap.Bookings {
			c, err := open(snap.Bookings[i])
			if err != nil {
				return nil, fmt.Errorf("restore snapshot: booking %s: %w", snap.Bookings[i].ID, err)
			}
			snap.Bookings[i].Customer = c
		}
	}
	s := NewState(tenant)
	if snap.Config != nil {
		if err := s.setConfig(*snap.Config); err != nil {
			return nil, fmt.Errorf("restore snapshot: %w", err)
		}
	}
	for i := range snap.Bookings {
		b := snap.Bookings[i]
		s.bookings[b.ID] = &b
		if b.Status == StatusConfirmed {
			if r := s.resource(b.ResourceID); r != nil {
				r.occ.add(b.occ())
			}
		}
	}
	for i := range snap.Holds {
		h := snap.Holds[i]
		s.holds[h.ID] = &h
		if r := s.resource(h.ResourceID); r != nil {
			r.occ.add(h.occ())
		}
	}
	for _, b := range snap.Busy {
		if r := s.resource(b.ResourceID); r != nil {
			r.setBusy(b.Source, b.Blocks)
		}
	}
	for _, rec := range snap.Idem {
		s.putIdem(rec)
	}
	for _, subject := range snap.Erased {
		s.erased[subject] = true
	}
	return s, nil
}
