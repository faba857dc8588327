package engine

import (
	"slices"
	"sort"
	"time"
)

// Limits on configuration, so that one tenant cannot make availability
// computation or memory unbounded.
const (
	MaxResources      = 500
	MaxServices       = 500
	MaxCapacity       = 10000
	MaxRangesPerDay   = 12
	MaxOverrides      = 1000
	MaxHolidays       = 1000
	MaxDurationMin    = 24 * 60
	MaxBufferMin      = 12 * 60
	MaxHorizonDays    = 731
	MaxHoldTTLSec     = 3600
	DefaultHoldTTLSec = 300
	MaxNameLen        = 200
)

// ValidID reports whether s can name a resource, service, booking or hold:
// 1–64 letters, digits, '_', '.', '-', starting with a letter or digit
// (the regular expression ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, which the
// tests hold it to; a loop, since every command checks several ids).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if i == 0 || !(c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// TenantConfig is the whole published set-up of a tenant.
type TenantConfig struct {
	Name       string     `json:"name"`
	TimeZone   string     `json:"time_zone"` // default display zone
	HoldTTLSec int        `json:"hold_ttl_sec,omitempty"`
	Resources  []Resource `json:"resources"`
	Services   []Service  `json:"services"`
	Holidays   []Holiday  `json:"holidays,omitempty"`
}

// Resource is something booked: a member of staff or a room. Capacity is how
// many bookings it takes at once (1 for a person, more for seats in a class).
type Resource struct {
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	Kind      string             `json:"kind"` // "staff" or "room"
	TimeZone  string             `json:"time_zone"`
	Capacity  int                `json:"capacity"`
	Weekly    map[string][]Range `json:"weekly"`              // "mon".."sun" → open ranges
	Overrides map[string][]Range `json:"overrides,omitempty"` // "2006-01-02" → ranges; empty = closed
}

// Range is a wall-clock opening range "HH:MM"–"HH:MM" within one local day;
// End may be "24:00".
type Range struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Service is something bookable: how long it takes, buffers around it, how
// slots are laid out, how soon and how far ahead it can be booked, and
// which resources deliver it.
type Service struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	DurationMin     int      `json:"duration_min"`
	BufferBeforeMin int      `json:"buffer_before_min,omitempty"`
	BufferAfterMin  int      `json:"buffer_after_min,omitempty"`
	StepMin         int      `json:"step_min,omitempty"`       // default: DurationMin
	MinNoticeMin    int      `json:"min_notice_min,omitempty"` // default 0
	HorizonDays     int      `json:"horizon_days,omitempty"`   // default 60
	Resources       []string `json:"resources"`
}

// Holiday closes every resource on a local date unless a resource has an
// override for that date.
type Holiday struct {
	Date string `json:"date"`
	Name string `json:"name,omitempty"`
}

var weekdayKeys = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// minRange is a Range in minutes since local midnight.
type minRange struct{ start, end int }

// resource is the compiled form of a Resource plus its occupancy.
type resource struct {
	cfg       Resource
	loc       *time.Location
	weekly    [7][]minRange
	overrides map[Date][]minRange
	occ       occupancy
	busy      map[string][]Interval // source → sorted, merged blocks; nil until the first
}

// setBusy sets the blocks imported from source.
func (r *resource) setBusy(source string, blocks []Interval) {
	if r.busy == nil {
		r.busy = map[string][]Interval{}
	}
	r.busy[source] = blocks
}

type service struct {
	cfg                      Service
	dur, before, after, step time.Duration
	notice, horizon          time.Duration
	resources                []string // sorted
}

// delivers reports whether r is one of the service's resources.
func (svc *service) delivers(r string) bool {
	i := sort.SearchStrings(svc.resources, r)
	return i < len(svc.resources) && svc.resources[i] == r
}

// clockTexts is "00:00" to "24:00", five bytes a minute, one string that
// every configuration kept in memory shares (clockText).
var clockTexts = func() string {
	b := make([]byte, 0, 5*(24*60+1))
	for m := range 24*60 + 1 {
		h, mi := m/60, m%60
		b = append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10))
	}
	return string(b)
}()

// clockText is "HH:MM" for m minutes after midnight (0–1440), a slice of
// clockTexts: no string of its own.
func clockText(m int) string { return clockTexts[5*m : 5*m+5] }

// canonicalRanges returns a copy of rs, already checked by compileRanges,
// whose times are clockText's strings: equal text, no string of its own.
func canonicalRanges(rs []Range) []Range {
	out := make([]Range, len(rs))
	for i, r := range rs {
		s, _ := parseClock(r.Start)
		e, _ := parseClock(r.End)
		out[i] = Range{Start: clockText(s), End: clockText(e)}
	}
	return out
}

func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	for _, c := range []byte{s[0], s[1], s[3], s[4]} {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

func compileRanges(what string, rs []Range) ([]minRange, *Error) {
	if len(rs) > MaxRangesPerDay {
		return nil, Errorf(CodeInvalid, "%s: at most %d ranges per day", what, MaxRangesPerDay)
	}
	out := make([]minRange, 0, len(rs))
	for _, r := range rs {
		s, ok1 := parseClock(r.Start)
		e, ok2 := parseClock(r.End)
		if !ok1 || !ok2 {
			return nil, Errorf(CodeInvalid, "%s: range %q–%q: times must be HH:MM (00:00–24:00)", what, r.Start, r.End)
		}
		if e <= s {
			return nil, Errorf(CodeInvalid, "%s: range %s–%s ends before it starts", what, r.Start, r.End)
		}
		out = append(out, minRange{s, e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	for i := 1; i < len(out); i++ {
		if out[i].start < out[i-1].end {
			return nil, Errorf(CodeInvalid, "%s: ranges overlap", what)
		}
	}
	return out, nil
}

func checkName(what, s string) *Error {
	if len(s) > MaxNameLen {
		return Errorf(CodeInvalid, "%s: name longer than %d bytes", what, MaxNameLen)
	}
	return nil
}

// LoadZone loads an IANA zone through ZoneSource, refusing the empty name
// and "Local" so that results never depend on the machine slotd runs on.
func LoadZone(name string) (*time.Location, *Error) {
	if name == "" || name == "Local" {
		return nil, Errorf(CodeInvalid, "time zone %q: give an IANA zone such as Europe/Rome", name)
	}
	loc, err := ZoneSource(name)
	if err != nil {
		return nil, Errorf(CodeInvalid, "time zone %q: unknown IANA zone", name)
	}
	return loc, nil
}

// ZoneSource loads the zones LoadZone returns: time.LoadLocation unless the
// host sets another before using the engine. time.LoadLocation reads and
// parses the zone's tzdata file on every call, and every resource of every
// tenant names a zone: slotd sets a process-wide cache here
// (internal/zonecache), so that tenants share one *time.Location per zone
// (immutable and safe for concurrent use) instead of several KB each. The
// engine keeps none itself: it holds no goroutine plumbing. A ZoneSource
// must be safe for concurrent use and give equal zones for equal names.
var ZoneSource = time.LoadLocation

func compileResource(r Resource) (*resource, *Error) {
	if !ValidID(r.ID) {
		return nil, Errorf(CodeInvalid, "resource id %q: 1–64 letters, digits, '_', '.', '-'", r.ID)
	}
	if err := checkName("resource "+r.ID, r.Name); err != nil {
		return nil, err
	}
	if r.Kind != "staff" && r.Kind != "room" {
		return nil, Errorf(CodeInvalid, "resource %s: kind must be \"staff\" or \"room\"", r.ID)
	}
	if r.Capacity < 1 || r.Capacity > MaxCapacity {
		return nil, Errorf(CodeInvalid, "resource %s: capacity must be 1–%d", r.ID, MaxCapacity)
	}
	loc, err := LoadZone(r.TimeZone)
	if err != nil {
		return nil, Errorf(CodeInvalid, "resource %s: %s", r.ID, err.Message)
	}
	c := &resource{cfg: r, loc: loc}
	for k := range r.Weekly {
		found := false
		for _, w := range weekdayKeys {
			found = found || k == w
		}
		if !found {
			return nil, Errorf(CodeInvalid, "resource %s: weekly key %q is not one of mon,tue,wed,thu,fri,sat,sun", r.ID, k)
		}
	}
	// Days with the same hours share one slice, in the compiled form and
	// in the configuration kept (canonicalRanges): most weeks repeat a day
	// or two, and every tenant's resources are held in memory.
	type day struct {
		raw []Range
		min []minRange
	}
	var seen []day
	var week map[string][]Range
	if r.Weekly != nil {
		week = make(map[string][]Range, len(r.Weekly))
	}
	for i, k := range weekdayKeys {
		raw, present := r.Weekly[k]
		j := slices.IndexFunc(seen, func(d day) bool { return slices.Equal(d.raw, raw) })
		if j < 0 || len(raw) == 0 {
			rs, err := compileRanges("resource "+r.ID+" "+k, raw)
			if err != nil {
				return nil, err
			}
			if len(raw) > 0 {
				raw = canonicalRanges(raw)
			}
			seen = append(seen, day{raw, rs})
			j = len(seen) - 1
		}
		c.weekly[i] = seen[j].min
		if present {
			if len(raw) > 0 {
				raw = seen[j].raw
			}
			week[k] = raw
		}
	}
	c.cfg.Weekly = week
	if len(r.Overrides) > MaxOverrides {
		return nil, Errorf(CodeInvalid, "resource %s: at most %d overrides", r.ID, MaxOverrides)
	}
	for ds, rs := range r.Overrides {
		d, ok := ParseDate(ds)
		if !ok {
			return nil, Errorf(CodeInvalid, "resource %s: override date %q must be YYYY-MM-DD", r.ID, ds)
		}
		mr, err := compileRanges("resource "+r.ID+" "+ds, rs)
		if err != nil {
			return nil, err
		}
		if c.overrides == nil {
			c.overrides = map[Date][]minRange{}
		}
		c.overrides[d] = mr
	}
	return c, nil
}

func compileService(s Service, resources map[string]*resource) (*service, *Error) {
	if !ValidID(s.ID) {
		return nil, Errorf(CodeInvalid, "service id %q: 1–64 letters, digits, '_', '.', '-'", s.ID)
	}
	if err := checkName("service "+s.ID, s.Name); err != nil {
		return nil, err
	}
	if s.DurationMin < 1 || s.DurationMin > MaxDurationMin {
		return nil, Errorf(CodeInvalid, "service %s: duration_min must be 1–%d", s.ID, MaxDurationMin)
	}
	if s.BufferBeforeMin < 0 || s.BufferBeforeMin > MaxBufferMin || s.BufferAfterMin < 0 || s.BufferAfterMin > MaxBufferMin {
		return nil, Errorf(CodeInvalid, "service %s: buffers must be 0–%d minutes", s.ID, MaxBufferMin)
	}
	if s.StepMin == 0 {
		s.StepMin = s.DurationMin
	}
	if s.StepMin < 5 || s.StepMin > MaxDurationMin {
		return nil, Errorf(CodeInvalid, "service %s: step_min must be 5–%d", s.ID, MaxDurationMin)
	}
	if s.MinNoticeMin < 0 || s.MinNoticeMin > MaxHorizonDays*24*60 {
		return nil, Errorf(CodeInvalid, "service %s: min_notice_min out of range", s.ID)
	}
	if s.HorizonDays == 0 {
		s.HorizonDays = 60
	}
	if s.HorizonDays < 1 || s.HorizonDays > MaxHorizonDays {
		return nil, Errorf(CodeInvalid, "service %s: horizon_days must be 1–%d", s.ID, MaxHorizonDays)
	}
	if len(s.Resources) == 0 {
		return nil, Errorf(CodeInvalid, "service %s: needs at least one resource", s.ID)
	}
	rs := append([]string(nil), s.Resources...)
	sort.Strings(rs)
	for i, id := range rs {
		if _, ok := resources[id]; !ok {
			return nil, Errorf(CodeInvalid, "service %s: resource %q does not exist", s.ID, id)
		}
		if i > 0 && rs[i-1] == id {
			return nil, Errorf(CodeInvalid, "service %s: resource %q listed twice", s.ID, id)
		}
	}
	s.Resources = rs
	m := time.Minute
	return &service{cfg: s, dur: time.Duration(s.DurationMin) * m, before: time.Duration(s.BufferBeforeMin) * m,
		after: time.Duration(s.BufferAfterMin) * m, step: time.Duration(s.StepMin) * m,
		notice: time.Duration(s.MinNoticeMin) * m, horizon: time.Duration(s.HorizonDays) * 24 * time.Hour,
		resources: rs}, nil
}

// compiled is a validated TenantConfig.
type compiled struct {
	cfg       TenantConfig
	resources map[string]*resource
	services  map[string]*service
	holidays  map[Date]bool
	holdTTL   time.Duration
}

func compileConfig(c TenantConfig) (*compiled, *Error) {
	if err := checkName("tenant", c.Name); err != nil {
		return nil, err
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if _, err := LoadZone(c.TimeZone); err != nil {
		return nil, err
	}
	if c.HoldTTLSec == 0 {
		c.HoldTTLSec = DefaultHoldTTLSec
	}
	if c.HoldTTLSec < 10 || c.HoldTTLSec > MaxHoldTTLSec {
		return nil, Errorf(CodeInvalid, "hold_ttl_sec must be 10–%d", MaxHoldTTLSec)
	}
	if len(c.Resources) > MaxResources || len(c.Services) > MaxServices || len(c.Holidays) > MaxHolidays {
		return nil, Errorf(CodeInvalid, "at most %d resources, %d services and %d holidays", MaxResources, MaxServices, MaxHolidays)
	}
	out := &compiled{resources: map[string]*resource{}, services: map[string]*service{}, holidays: map[Date]bool{},
		holdTTL: time.Duration(c.HoldTTLSec) * time.Second}
	for _, r := range c.Resources {
		cr, err := compileResource(r)
		if err != nil {
			return nil, err
		}
		if _, dup := out.resources[r.ID]; dup {
			return nil, Errorf(CodeInvalid, "resource id %q used twice", r.ID)
		}
		out.resources[r.ID] = cr
	}
	for _, s := range c.Services {
		cs, err := compileService(s, out.resources)
		if err != nil {
			return nil, err
		}
		if _, dup := out.services[s.ID]; dup {
			return nil, Errorf(CodeInvalid, "service id %q used twice", s.ID)
		}
		out.services[s.ID] = cs
	}
	for _, h := range c.Holidays {
		d, ok := ParseDate(h.Date)
		if !ok {
			return nil, Errorf(CodeInvalid, "holiday date %q must be YYYY-MM-DD", h.Date)
		}
		if err := checkName("holiday", h.Name); err != nil {
			return nil, err
		}
		out.holidays[d] = true
	}
	// Canonical order so that equal configurations compare equal.
	c.Resources = make([]Resource, 0, len(out.resources))
	for _, id := range sortedKeys(out.resources) {
		c.Resources = append(c.Resources, out.resources[id].cfg)
	}
	c.Services = make([]Service, 0, len(out.services))
	for _, id := range sortedKeys(out.services) {
		c.Services = append(c.Services, out.services[id].cfg)
	}
	c.Holidays = append([]Holiday(nil), c.Holidays...) // do not reorder the caller's slice
	sort.Slice(c.Holidays, func(i, j int) bool { return c.Holidays[i].Date < c.Holidays[j].Date })
	out.cfg = c
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
