package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
)

// TenantRecord is the directory entry of a tenant. It is global lookup
// data, stored outside the tenant's home region (see persistence/regional),
// so it holds no personal data: the tenant id, its booking link, its home
// region and when it was created.
type TenantRecord struct {
	ID   string `json:"id"`
	Link string `json:"link"`
	// Region is the tenant's home region, fixed at creation: the one
	// database its data lives in. Empty when the server has no regions
	// configured (Config.Regions nil).
	Region    string    `json:"region,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Directory kinds.
const (
	KindTenant = "tenant"
	KindLink   = "link"
)

// Regions places tenants in their home regions for data residency
// (*regional.Store). The gateway asks it for a new tenant's region and
// records the choice before the tenant's first write.
type Regions interface {
	// Regions lists the configured region names.
	Regions() []string
	// DefaultRegion is the home region of a tenant created without one.
	DefaultRegion() string
	// Place records tenant's home region durably. Placing a tenant again
	// in the same region is not an error; in another region it is an error
	// wrapping persistence.ErrConflict.
	Place(ctx context.Context, tenant, region string) error
}

// decodeBody reads one JSON object into v, refusing unknown fields,
// trailing data and bodies over the limit.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return engine.Errorf(engine.CodeTooLarge, "request body larger than %d bytes", mbe.Limit)
		}
		return engine.Errorf(engine.CodeInvalid, "could not read request body")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return engine.Errorf(engine.CodeInvalid, "request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return engine.Errorf(engine.CodeInvalid, "request body has data after the JSON object")
	}
	return nil
}

// decodeOptionalBody is decodeBody for endpoints whose body may be empty.
func decodeOptionalBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decodeBody(r, v)
}

func (s *Server) reqCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// tenantRecord looks a tenant up in the directory.
func (s *Server) tenantRecord(ctx context.Context, id string) (TenantRecord, error) {
	if !persistence.ValidTenant(id) {
		return TenantRecord{}, engine.Errorf(engine.CodeNotFound, "tenant %q does not exist", id)
	}
	b, err := s.cfg.Directory.GetDirectory(ctx, KindTenant, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return TenantRecord{}, engine.Errorf(engine.CodeNotFound, "tenant %q does not exist", id)
	}
	if err != nil {
		return TenantRecord{}, fmt.Errorf("read tenant %s: %w", id, err)
	}
	var rec TenantRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return TenantRecord{}, fmt.Errorf("decode tenant %s: %w", id, err)
	}
	return rec, nil
}

// tenantByLink resolves a public booking link to its tenant.
func (s *Server) tenantByLink(ctx context.Context, link string) (string, error) {
	if !validLink(link) {
		return "", engine.Errorf(engine.CodeNotFound, "unknown booking link")
	}
	b, err := s.cfg.Directory.GetDirectory(ctx, KindLink, link)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", engine.Errorf(engine.CodeNotFound, "unknown booking link")
	}
	if err != nil {
		return "", fmt.Errorf("resolve link: %w", err)
	}
	return string(b), nil
}

// CreateTenantRequest is the body of POST /v1/tenants.
type CreateTenantRequest struct {
	ID string `json:"id"`
	// Region is the tenant's home region; empty means the default region.
	Region string              `json:"region,omitempty"`
	Config engine.TenantConfig `json:"config"`
}

// CreateTenant registers a tenant in the default region: see
// CreateTenantIn.
func (s *Server) CreateTenant(ctx context.Context, id string, cfg engine.TenantConfig) (TenantRecord, error) {
	return s.CreateTenantIn(ctx, id, "", cfg)
}

// CreateTenantIn registers a tenant with a fresh booking link and home
// region (region, or the default one if empty) and applies its
// configuration. The configuration and the region are validated before
// anything is stored. The home region is recorded before the tenant's
// first write and never changes.
func (s *Server) CreateTenantIn(ctx context.Context, id, region string, cfg engine.TenantConfig) (TenantRecord, error) {
	if !persistence.ValidTenant(id) {
		return TenantRecord{}, engine.Errorf(engine.CodeInvalid, "tenant id %q: 1–63 lowercase letters, digits or '-'", id)
	}
	region, err := s.homeRegion(region)
	if err != nil {
		return TenantRecord{}, err
	}
	if _, err := engine.Decide(engine.NewState(id), engine.Configure{Config: cfg}, s.cfg.Now()); err != nil {
		return TenantRecord{}, err
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if _, err := s.tenantRecord(ctx, id); err == nil {
		return TenantRecord{}, engine.Errorf(engine.CodeConflict, "tenant %q already exists", id)
	} else if ee := (*engine.Error)(nil); !errors.As(err, &ee) || ee.Code != engine.CodeNotFound {
		return TenantRecord{}, err
	}
	// The home region first (every write of the tenant goes there), the
	// configuration next, the tenant record (which makes the tenant exist)
	// last: a create that fails midway can simply be retried, in the same
	// region.
	if s.cfg.Regions != nil {
		err := s.cfg.Regions.Place(ctx, id, region)
		if errors.Is(err, persistence.ErrConflict) {
			return TenantRecord{}, engine.Errorf(engine.CodeConflict, "tenant %q was already placed in another region by an earlier create; retry with that region", id)
		}
		if err != nil {
			return TenantRecord{}, fmt.Errorf("place tenant: %w", err)
		}
	}
	if _, err := s.cfg.Tenants.Do(ctx, id, engine.Configure{Config: cfg}); err != nil {
		return TenantRecord{}, err
	}
	rec := TenantRecord{ID: id, Link: NewID("")[:26], Region: region, CreatedAt: s.cfg.Now().UTC()}
	b, _ := json.Marshal(rec)
	if err := s.cfg.Directory.PutDirectory(ctx, KindLink, rec.Link, []byte(id)); err != nil {
		return TenantRecord{}, fmt.Errorf("store link: %w", err)
	}
	if err := s.cfg.Directory.PutDirectory(ctx, KindTenant, id, b); err != nil {
		return TenantRecord{}, fmt.Errorf("store tenant: %w", err)
	}
	return rec, nil
}

// homeRegion resolves the region a new tenant asked for: the default
// region when empty, an invalid request when not configured.
func (s *Server) homeRegion(region string) (string, error) {
	if s.cfg.Regions == nil {
		if region != "" {
			return "", engine.Errorf(engine.CodeInvalid, "region %q: this server has no regions configured", region)
		}
		return "", nil
	}
	if region == "" {
		return s.cfg.Regions.DefaultRegion(), nil
	}
	names := s.cfg.Regions.Regions()
	if !slices.Contains(names, region) {
		return "", engine.Errorf(engine.CodeInvalid, "unknown region %q: want one of %s", region, strings.Join(names, ", "))
	}
	return region, nil
}

// TenantView is what GET /v1/tenants/{tenant} returns.
type TenantView struct {
	TenantRecord
	BookingURL string               `json:"booking_path"`
	Version    uint64               `json:"version"`
	Config     *engine.TenantConfig `json:"config"`
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req CreateTenantRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	rec, err := s.CreateTenantIn(ctx, req.ID, req.Region, req.Config)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeTenantView(ctx, w, rec, http.StatusCreated)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	ids, err := s.cfg.Directory.ListDirectory(ctx, KindTenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"tenants": ids})
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	rec, err := s.tenantRecord(ctx, r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeTenantView(ctx, w, rec, http.StatusOK)
}

// writeTenantView answers with a tenant's record, booking path, current
// configuration and journal version.
func (s *Server) writeTenantView(ctx context.Context, w http.ResponseWriter, rec TenantRecord, status int) {
	view := TenantView{TenantRecord: rec, BookingURL: "/book/" + rec.Link}
	err := s.cfg.Tenants.Read(ctx, rec.ID, func(st *engine.State, seq uint64) error {
		if c, ok := st.Config(); ok {
			view.Config = &c
		}
		view.Version = seq
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, status, view)
}

// do runs a command against an existing tenant and writes the result.
func (s *Server) do(w http.ResponseWriter, r *http.Request, cmd engine.Command, status int) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant := r.PathValue("tenant")
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		s.writeError(w, err)
		return
	}
	rep, err := s.cfg.Tenants.Do(ctx, tenant, cmd)
	if err != nil {
		s.writeError(w, err)
		return
	}
	out := map[string]any{"version": rep.Seq}
	if rep.Booking != nil {
		out["booking"] = rep.Booking
	}
	if rep.Hold != nil {
		out["hold"] = rep.Hold
	}
	if rep.Duplicate {
		out["duplicate"] = true
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	var cfg engine.TenantConfig
	if err := decodeBody(r, &cfg); err != nil {
		s.writeError(w, err)
		return
	}
	s.do(w, r, engine.Configure{Config: cfg}, http.StatusOK)
}

func (s *Server) putResource(w http.ResponseWriter, r *http.Request) {
	putByID(s, w, r, "resource", func(x *engine.Resource) *string { return &x.ID },
		func(x engine.Resource) engine.Command { return engine.UpsertResource{Resource: x} })
}

func (s *Server) putService(w http.ResponseWriter, r *http.Request) {
	putByID(s, w, r, "service", func(x *engine.Service) *string { return &x.ID },
		func(x engine.Service) engine.Command { return engine.UpsertService{Service: x} })
}

// putByID decodes an entity whose id the path names (the body may leave it
// out, but must not contradict it) and runs the command made from it.
func putByID[T any](s *Server, w http.ResponseWriter, r *http.Request, key string, id func(*T) *string, cmd func(T) engine.Command) {
	var x T
	if err := decodeBody(r, &x); err != nil {
		s.writeError(w, err)
		return
	}
	p := id(&x)
	if *p == "" {
		*p = r.PathValue(key)
	}
	if *p != r.PathValue(key) {
		s.writeError(w, engine.Errorf(engine.CodeInvalid, "body id %q differs from the path", *p))
		return
	}
	s.do(w, r, cmd(x), http.StatusOK)
}

// OverrideRequest is the body of PUT …/overrides/{date}.
type OverrideRequest struct {
	Open []engine.Range `json:"open"`
}

func (s *Server) putOverride(w http.ResponseWriter, r *http.Request) {
	var req OverrideRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if req.Open == nil {
		req.Open = []engine.Range{}
	}
	s.do(w, r, engine.SetOverride{ResourceID: r.PathValue("resource"), Date: r.PathValue("date"), Open: req.Open}, http.StatusOK)
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	s.do(w, r, engine.SetOverride{ResourceID: r.PathValue("resource"), Date: r.PathValue("date"), Clear: true}, http.StatusOK)
}

// BusyRequest is the body of PUT …/busy/{source}.
type BusyRequest struct {
	Blocks []engine.Interval `json:"blocks"`
}

func (s *Server) putBusy(w http.ResponseWriter, r *http.Request) {
	var req BusyRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	s.do(w, r, engine.ImportBusy{ResourceID: r.PathValue("resource"), Source: r.PathValue("source"), Blocks: req.Blocks}, http.StatusOK)
}

func queryFromURL(r *http.Request) engine.AvailabilityQuery {
	q := r.URL.Query()
	return engine.AvailabilityQuery{ServiceID: q.Get("service"), ResourceID: q.Get("resource"), From: q.Get("from"), To: q.Get("to"), TimeZone: q.Get("tz")}
}

// availability answers a one-off availability query for tenant.
func (s *Server) availability(w http.ResponseWriter, r *http.Request, tenant string) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	q := queryFromURL(r)
	var (
		slots []engine.Slot
		ver   uint64
	)
	err := s.cfg.Tenants.Read(ctx, tenant, func(st *engine.State, seq uint64) error {
		var err error
		slots, err = st.Availability(q, s.cfg.Now())
		ver = seq
		return err
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	if slots == nil {
		slots = []engine.Slot{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": ver, "slots": slots})
}

func (s *Server) staffAvailability(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	if _, err := s.tenantRecord(ctx, r.PathValue("tenant")); err != nil {
		s.writeError(w, err)
		return
	}
	s.availability(w, r, r.PathValue("tenant"))
}

func (s *Server) publicInfo(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant, err := s.tenantByLink(ctx, r.PathValue("link"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !s.allowTenant(w, tenant) {
		return
	}
	var info *TenantInfo
	err = s.cfg.Tenants.Read(ctx, tenant, func(st *engine.State, _ uint64) error {
		cfg, ok := st.Config()
		if !ok {
			return engine.Errorf(engine.CodeNotFound, "this booking page is not set up yet")
		}
		info = publicInfo(tenant, cfg)
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) publicAvailability(w http.ResponseWriter, r *http.Request) {
	tenant, err := s.tenantByLink(r.Context(), r.PathValue("link"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !s.allowTenant(w, tenant) {
		return
	}
	s.availability(w, r, tenant)
}

func parseBound(q, name string) (time.Time, error) {
	if q == "" {
		return time.Time{}, nil
	}
	if d, ok := engine.ParseDate(q); ok {
		return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC), nil
	}
	t, err := time.Parse(time.RFC3339, q)
	if err != nil {
		return time.Time{}, engine.Errorf(engine.CodeInvalid, "%s %q: give YYYY-MM-DD (UTC) or an RFC 3339 time", name, q)
	}
	return t, nil
}

func (s *Server) listBookings(w http.ResponseWriter, r *http.Request) {
	from, err := parseBound(r.URL.Query().Get("from"), "from")
	if err != nil {
		s.writeError(w, err)
		return
	}
	to, err := parseBound(r.URL.Query().Get("to"), "to")
	if err != nil {
		s.writeError(w, err)
		return
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant := r.PathValue("tenant")
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		s.writeError(w, err)
		return
	}
	var (
		list []engine.Booking
		ver  uint64
	)
	err = s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, seq uint64) error {
		list, ver = st.Bookings(from, to), seq
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": ver, "bookings": list})
}

func (s *Server) getBooking(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant := r.PathValue("tenant")
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		s.writeError(w, err)
		return
	}
	var b engine.Booking
	err := s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, _ uint64) error {
		var ok bool
		if b, ok = st.Booking(r.PathValue("booking")); !ok {
			return engine.Errorf(engine.CodeNotFound, "booking %q does not exist", r.PathValue("booking"))
		}
		return nil
	})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"booking": b})
}

// BookRequest is the body of POST …/bookings.
type BookRequest struct {
	HoldID   string          `json:"hold_id,omitempty"`
	Service  string          `json:"service,omitempty"`
	Resource string          `json:"resource,omitempty"`
	Start    string          `json:"start,omitempty"`
	Customer engine.Customer `json:"customer"`
}

func (s *Server) createBooking(w http.ResponseWriter, r *http.Request) {
	var req BookRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	cmd := engine.Book{BookingID: NewID("bk_"), HoldID: req.HoldID, ServiceID: req.Service, ResourceID: req.Resource,
		Customer: req.Customer, IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if req.Start != "" || req.HoldID == "" {
		t, err := parseTime("start", req.Start)
		if err != nil {
			s.writeError(w, err)
			return
		}
		cmd.Start = t
	}
	s.do(w, r, cmd, http.StatusCreated)
}

// CancelRequest is the body of POST …/cancel.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) cancelBooking(w http.ResponseWriter, r *http.Request) {
	var req CancelRequest
	if err := decodeOptionalBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	s.do(w, r, engine.Cancel{BookingID: r.PathValue("booking"), Reason: req.Reason, IdempotencyKey: r.Header.Get("Idempotency-Key")}, http.StatusOK)
}

// RescheduleRequest is the body of POST …/reschedule.
type RescheduleRequest struct {
	Start       string `json:"start"`
	Resource    string `json:"resource,omitempty"`
	AnyResource bool   `json:"any_resource,omitempty"`
}

func (s *Server) rescheduleBooking(w http.ResponseWriter, r *http.Request) {
	var req RescheduleRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	t, perr := parseTime("start", req.Start)
	if perr != nil {
		s.writeError(w, perr)
		return
	}
	s.do(w, r, engine.Reschedule{BookingID: r.PathValue("booking"), Start: t, ResourceID: req.Resource,
		AnyResource: req.AnyResource, IdempotencyKey: r.Header.Get("Idempotency-Key")}, http.StatusOK)
}
