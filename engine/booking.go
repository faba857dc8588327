package engine

import (
	"sort"
	"time"
)

// Customer is the person a booking is for (a data subject, not an account).
//
// Subject is a pseudonymous id of that person within the tenant, the same on
// all their bookings; the host assigns it before a Book is applied (the
// engine only checks its shape, and bookings made before subjects existed
// have none). EraseSubject anonymises every booking of a subject: the
// customer becomes {Subject, Erased: true}, with no name, email or phone.
//
// Sealed is for journal codecs only: a codec that encrypts customers at rest
// moves Name, Email and Phone into Sealed (as text, base64 say) when it
// encodes and back when it decodes. A State never holds a sealed customer,
// and Book refuses one.
type Customer struct {
	Name    string `json:"name"`
	Email   string `json:"email"`
	Phone   string `json:"phone,omitempty"`
	Subject string `json:"subject,omitempty"`
	Erased  bool   `json:"erased,omitempty"`
	Sealed  string `json:"sealed,omitempty"`
}

// Booking statuses.
const (
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// Booking is a confirmed (or since cancelled) appointment. Block is the span
// it occupies on its resource: the appointment plus the service's buffers.
type Booking struct {
	ID             string    `json:"id"`
	ServiceID      string    `json:"service_id"`
	ResourceID     string    `json:"resource_id"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	BlockStart     time.Time `json:"block_start"`
	BlockEnd       time.Time `json:"block_end"`
	Customer       Customer  `json:"customer"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	CancelReason   string    `json:"cancel_reason,omitempty"`
	FromHold       string    `json:"from_hold,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Rescheduled    int       `json:"rescheduled,omitempty"` // times moved
}

// Hold reserves capacity for a slot until ExpiresAt, so a customer can fill
// in their details without losing the slot.
type Hold struct {
	ID             string    `json:"id"`
	ServiceID      string    `json:"service_id"`
	ResourceID     string    `json:"resource_id"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	BlockStart     time.Time `json:"block_start"`
	BlockEnd       time.Time `json:"block_end"`
	ExpiresAt      time.Time `json:"expires_at"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
}

// Live reports whether the hold still counts against capacity at now.
func (h *Hold) Live(now time.Time) bool { return now.Before(h.ExpiresAt) }

// occ is one entry of a resource's occupancy: a confirmed booking's block or
// a hold's block. Instants are Unix nanoseconds, not time.Time: an entry
// is 48 bytes with one pointer instead of 96 bytes with four, and every
// booking a tenant holds has one, so this is what each garbage collection
// scans per booking. Bookable instants lie within a horizon of at most
// MaxHorizonDays from now, far inside int64 nanoseconds' range (1678–2262).
type occ struct {
	start, end int64
	expires    int64 // holds only
	id         string
	hold       bool
}

// occ is the booking's occupancy entry: its block.
func (b *Booking) occ() occ {
	return occ{start: b.BlockStart.UnixNano(), end: b.BlockEnd.UnixNano(), id: b.ID}
}

// occ is the hold's occupancy entry: its block, until it expires.
func (h *Hold) occ() occ {
	return occ{start: h.BlockStart.UnixNano(), end: h.BlockEnd.UnixNano(), id: h.ID, hold: true, expires: h.ExpiresAt.UnixNano()}
}

func (o *occ) live(now int64) bool { return !o.hold || now < o.expires }

// occupancy is a resource's bookings and holds sorted by (start, id).
// maxLen bounds any entry's length, so overlap queries scan only
// [s-maxLen, e).
type occupancy struct {
	list   []occ
	maxLen int64 // nanoseconds
}

func (o *occupancy) less(a, b *occ) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	return a.id < b.id
}

func (o *occupancy) add(e occ) {
	i := sort.Search(len(o.list), func(i int) bool { return !o.less(&o.list[i], &e) })
	o.list = append(o.list, occ{})
	copy(o.list[i+1:], o.list[i:])
	o.list[i] = e
	if l := e.end - e.start; l > o.maxLen {
		o.maxLen = l
	}
}

func (o *occupancy) remove(id string, start time.Time) {
	st := start.UnixNano()
	i := sort.Search(len(o.list), func(i int) bool { return o.list[i].start >= st })
	for ; i < len(o.list) && o.list[i].start == st; i++ {
		if o.list[i].id == id {
			o.list = append(o.list[:i], o.list[i+1:]...)
			return
		}
	}
}

// peak returns the largest number of live entries (other than ignore)
// overlapping at any instant within [s, e).
func (o *occupancy) peak(s, e, now time.Time, ignore string) int {
	return o.peakNanos(s.UnixNano(), e.UnixNano(), now.UnixNano(), ignore)
}

func (o *occupancy) peakNanos(s, e, now int64, ignore string) int {
	lo := sort.Search(len(o.list), func(i int) bool { return o.list[i].start >= s-o.maxLen })
	type edge struct {
		t int64
		d int
	}
	match := func(x *occ) bool { return x.end > s && x.id != ignore && x.live(now) }
	count := 0
	for i := lo; i < len(o.list) && o.list[i].start < e; i++ {
		if match(&o.list[i]) {
			count++
		}
	}
	if count <= 1 {
		return count
	}
	edges := make([]edge, 0, 2*count)
	for i := lo; i < len(o.list) && o.list[i].start < e; i++ {
		if x := &o.list[i]; match(x) {
			edges = append(edges, edge{max(x.start, s), +1}, edge{min(x.end, e), -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].t != edges[j].t {
			return edges[i].t < edges[j].t
		}
		return edges[i].d < edges[j].d // ends before starts: half-open intervals
	})
	cur, best := 0, 0
	for _, ed := range edges {
		cur += ed.d
		if cur > best {
			best = cur
		}
	}
	return best
}

// busyOverlaps reports whether any imported busy block overlaps [s, e).
func (r *resource) busyOverlaps(s, e time.Time) bool {
	for _, blocks := range r.busy {
		i := sort.Search(len(blocks), func(i int) bool { return blocks[i].End.After(s) })
		if i < len(blocks) && blocks[i].Start.Before(e) {
			return true
		}
	}
	return false
}

// free returns how many more bookings r takes over the block [s, e) at now,
// ignoring the entry ignore (a booking being moved, a hold being converted).
func (r *resource) free(s, e, now time.Time, ignore string) int {
	if r.busyOverlaps(s, e) {
		return 0
	}
	n := r.cfg.Capacity - r.occ.peak(s, e, now, ignore)
	if n < 0 {
		return 0
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
