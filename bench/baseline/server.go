package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

const schema = `
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE IF NOT EXISTS tenants (
    id     text PRIMARY KEY,
    config jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS bookings (
    tenant          text        NOT NULL REFERENCES tenants (id),
    id              text        PRIMARY KEY,
    resource        text        NOT NULL,
    service         text        NOT NULL,
    during          tstzrange   NOT NULL, -- [start, end + buffer): the time the resource is blocked
    start_at        timestamptz NOT NULL,
    end_at          timestamptz NOT NULL,
    customer_name   text        NOT NULL DEFAULT '',
    customer_email  text        NOT NULL DEFAULT '',
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (tenant WITH =, resource WITH =, during WITH &&)
);

CREATE UNIQUE INDEX IF NOT EXISTS bookings_idempotency ON bookings (tenant, idempotency_key);
`

// Statements, prepared and cached per connection by pgx (its default
// QueryExecModeCacheStatement).
const (
	sqlInsert = `INSERT INTO bookings (tenant, id, resource, service, during, start_at, end_at, customer_name, idempotency_key)
VALUES ($1, $2, $3, $4, tstzrange($5, $6, '[)'), $7, $8, $9, $10)
ON CONFLICT (tenant, idempotency_key) DO NOTHING`
	sqlByKey = `SELECT id, resource, service, start_at, end_at, upper(during) FROM bookings WHERE tenant = $1 AND idempotency_key = $2`
	sqlBusy  = `SELECT resource, lower(during), upper(during) FROM bookings WHERE tenant = $1 AND during && tstzrange($2, $3, '[)')`
	sqlList  = `SELECT id, resource, service, start_at, end_at, upper(during), coalesce(idempotency_key, '') FROM bookings WHERE tenant = $1 ORDER BY start_at, id`
)

// Server is the baseline's HTTP API over one pgxpool.
type Server struct {
	pool *pgxpool.Pool

	mu      sync.RWMutex
	tenants map[string]*tenant // read-through cache of the tenants table
}

type tenant struct {
	id        string
	resources []string
	services  map[string]service
}

type service struct {
	id        string
	duration  time.Duration
	buffer    time.Duration
	resources []string
}

// Open connects, creates the schema if needed and returns the server.
func Open(ctx context.Context, dsn string, poolSize int) (*Server, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(poolSize)
	cfg.MinConns = int32(poolSize)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &Server{pool: pool, tenants: map[string]*tenant{}}, nil
}

// Close closes the pool.
func (s *Server) Close() { s.pool.Close() }

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tenants", s.createTenant)
	mux.HandleFunc("POST /v1/tenants/{id}/bookings", s.book)
	mux.HandleFunc("GET /v1/tenants/{id}/bookings", s.list)
	mux.HandleFunc("GET /v1/public/{link}/availability", s.availability)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// Wire shapes (a subset of slotd's).

type rangeCfg struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type resourceCfg struct {
	ID       string                `json:"id"`
	Name     string                `json:"name,omitempty"`
	Kind     string                `json:"kind,omitempty"`
	TimeZone string                `json:"time_zone,omitempty"`
	Capacity int                   `json:"capacity"`
	Weekly   map[string][]rangeCfg `json:"weekly,omitempty"`
}

type serviceCfg struct {
	ID             string   `json:"id"`
	Name           string   `json:"name,omitempty"`
	DurationMin    int      `json:"duration_min"`
	BufferAfterMin int      `json:"buffer_after_min,omitempty"`
	StepMin        int      `json:"step_min,omitempty"`
	HorizonDays    int      `json:"horizon_days,omitempty"`
	Resources      []string `json:"resources"`
}

type tenantConfig struct {
	Name       string        `json:"name"`
	TimeZone   string        `json:"time_zone"`
	HoldTTLSec int           `json:"hold_ttl_sec,omitempty"`
	Resources  []resourceCfg `json:"resources"`
	Services   []serviceCfg  `json:"services"`
}

type bookingJSON struct {
	ID             string    `json:"id"`
	ServiceID      string    `json:"service_id"`
	ResourceID     string    `json:"resource_id"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	BlockStart     time.Time `json:"block_start"`
	BlockEnd       time.Time `json:"block_end"`
	Status         string    `json:"status"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
}

type slotJSON struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Resources []string  `json:"resources"`
	Seats     int       `json:"seats"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "bk_" + hex.EncodeToString(b[:])
}

func compile(id string, cfg tenantConfig) (*tenant, error) {
	t := &tenant{id: id, services: map[string]service{}}
	have := map[string]bool{}
	for _, r := range cfg.Resources {
		if r.ID == "" || have[r.ID] {
			return nil, fmt.Errorf("resource id %q empty or repeated", r.ID)
		}
		if r.Capacity > 1 {
			return nil, fmt.Errorf("resource %s: the baseline's exclusion constraint models capacity 1", r.ID)
		}
		have[r.ID] = true
		t.resources = append(t.resources, r.ID)
	}
	for _, sv := range cfg.Services {
		if sv.ID == "" || sv.DurationMin < 5 || sv.DurationMin > 24*60 {
			return nil, fmt.Errorf("service %q: id and duration_min 5–1440 required", sv.ID)
		}
		if sv.StepMin != 0 && sv.StepMin != sv.DurationMin {
			return nil, fmt.Errorf("service %s: the baseline's grid step is the duration", sv.ID)
		}
		res := sv.Resources
		if len(res) == 0 {
			res = t.resources
		}
		for _, r := range res {
			if !have[r] {
				return nil, fmt.Errorf("service %s: unknown resource %s", sv.ID, r)
			}
		}
		t.services[sv.ID] = service{id: sv.ID, duration: time.Duration(sv.DurationMin) * time.Minute,
			buffer: time.Duration(sv.BufferAfterMin) * time.Minute, resources: res}
	}
	if len(t.resources) == 0 || len(t.services) == 0 {
		return nil, errors.New("a tenant needs resources and services")
	}
	return t, nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     string       `json:"id"`
		Config tenantConfig `json:"config"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
		writeErr(w, http.StatusBadRequest, "bad_request", "want {id, config}")
		return
	}
	t, err := compile(req.ID, req.Config)
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, "invalid_config", err.Error())
		return
	}
	cfgJSON, _ := json.Marshal(req.Config)
	tag, err := s.pool.Exec(r.Context(), `INSERT INTO tenants (id, config) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, req.ID, cfgJSON)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if tag.RowsAffected() == 0 {
		writeErr(w, http.StatusConflict, "tenant_exists", "tenant "+req.ID+" exists")
		return
	}
	s.mu.Lock()
	s.tenants[req.ID] = t
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": req.ID, "link": req.ID, "version": 1, "config": req.Config})
}

// tenant returns a tenant from the cache, reading the table on a miss.
func (s *Server) tenant(ctx context.Context, id string) (*tenant, error) {
	s.mu.RLock()
	t := s.tenants[id]
	s.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, `SELECT config FROM tenants WHERE id = $1`, id).Scan(&raw); err != nil {
		return nil, err
	}
	var cfg tenantConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	t, err := compile(id, cfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.tenants[id] = t
	s.mu.Unlock()
	return t, nil
}

func (s *Server) tenantOr404(w http.ResponseWriter, r *http.Request, id string) *tenant {
	t, err := s.tenant(r.Context(), id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		writeErr(w, http.StatusNotFound, "not_found", "no tenant "+id)
	case err != nil:
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
	return t
}

func (s *Server) book(w http.ResponseWriter, r *http.Request) {
	t := s.tenantOr404(w, r, r.PathValue("id"))
	if t == nil {
		return
	}
	var req struct {
		Service     string    `json:"service"`
		Resource    string    `json:"resource"`
		AnyResource bool      `json:"any_resource"`
		Start       time.Time `json:"start"`
		Customer    string    `json:"customer"`
		Idem        string    `json:"idempotency_key"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	sv, ok := t.services[req.Service]
	if !ok {
		writeErr(w, http.StatusNotFound, "not_found", "no service "+req.Service)
		return
	}
	start := req.Start.UTC()
	if start.IsZero() || start.Sub(start.Truncate(24*time.Hour))%sv.duration != 0 ||
		start.Add(sv.duration).After(start.Truncate(24*time.Hour).Add(24*time.Hour)) {
		writeErr(w, http.StatusUnprocessableEntity, "not_a_slot", "start is not on the service's grid")
		return
	}
	var candidates []string
	switch {
	case req.Resource != "":
		candidates = []string{req.Resource}
		if !contains(sv.resources, req.Resource) {
			writeErr(w, http.StatusNotFound, "not_found", "no resource "+req.Resource+" for this service")
			return
		}
	case req.AnyResource:
		candidates = sv.resources
	default:
		writeErr(w, http.StatusBadRequest, "bad_request", "give resource or any_resource")
		return
	}
	var idem *string
	if req.Idem != "" {
		idem = &req.Idem
	}
	end, blockEnd := start.Add(sv.duration), start.Add(sv.duration+sv.buffer)
	ctx := r.Context()
	// Any resource: try each in turn (the first free one in the typical
	// hand-written version); each INSERT is its own transaction.
	for _, res := range candidates {
		id := newID()
		tag, err := s.pool.Exec(ctx, sqlInsert, t.id, id, res, sv.id, start, blockEnd, start, end, req.Customer, idem)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "23P01": // exclusion_violation
			continue
		case err != nil:
			writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		case tag.RowsAffected() == 0: // a retry: the key's booking exists
			b, err := s.byKey(ctx, t.id, req.Idem)
			if err != nil {
				writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"booking": b, "duplicate": true})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"booking": bookingJSON{ID: id, ServiceID: sv.id, ResourceID: res, Start: start,
			End: end, BlockStart: start, BlockEnd: blockEnd, Status: "confirmed", IdempotencyKey: req.Idem}})
		return
	}
	writeErr(w, http.StatusConflict, "slot_taken", "the slot is taken")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) byKey(ctx context.Context, tenantID, key string) (bookingJSON, error) {
	b := bookingJSON{Status: "confirmed", IdempotencyKey: key}
	err := s.pool.QueryRow(ctx, sqlByKey, tenantID, key).Scan(&b.ID, &b.ResourceID, &b.ServiceID, &b.Start, &b.End, &b.BlockEnd)
	b.BlockStart = b.Start
	return b, err
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	t := s.tenantOr404(w, r, r.PathValue("id"))
	if t == nil {
		return
	}
	rows, err := s.pool.Query(r.Context(), sqlList, t.id)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	out := []bookingJSON{}
	for rows.Next() {
		b := bookingJSON{Status: "confirmed"}
		if err := rows.Scan(&b.ID, &b.ResourceID, &b.ServiceID, &b.Start, &b.End, &b.BlockEnd, &b.IdempotencyKey); err != nil {
			rows.Close()
			writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		b.BlockStart = b.Start
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": len(out), "bookings": out})
}

// availability computes the free slots of [from, to) (days, UTC) from the
// bookings table: every grid start whose [start, end+buffer) overlaps no
// booking of at least one of the service's resources.
func (s *Server) availability(w http.ResponseWriter, r *http.Request) {
	t := s.tenantOr404(w, r, r.PathValue("link"))
	if t == nil {
		return
	}
	q := r.URL.Query()
	sv, ok := t.services[q.Get("service")]
	if !ok {
		writeErr(w, http.StatusNotFound, "not_found", "no service "+q.Get("service"))
		return
	}
	if tz := q.Get("tz"); tz != "" && tz != "UTC" {
		writeErr(w, http.StatusBadRequest, "bad_request", "the baseline serves tz=UTC only")
		return
	}
	from, err1 := time.Parse("2006-01-02", q.Get("from"))
	to, err2 := time.Parse("2006-01-02", q.Get("to"))
	if err1 != nil || err2 != nil || !to.After(from) || to.Sub(from) > 31*24*time.Hour {
		writeErr(w, http.StatusBadRequest, "bad_request", "from and to are dates, to after from, at most 31 days")
		return
	}
	rows, err := s.pool.Query(r.Context(), sqlBusy, t.id, from, to.Add(sv.buffer))
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	busy := map[string][][2]time.Time{}
	for rows.Next() {
		var res string
		var lo, hi pgtype.Timestamptz
		if err := rows.Scan(&res, &lo, &hi); err != nil {
			rows.Close()
			writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		busy[res] = append(busy[res], [2]time.Time{lo.Time, hi.Time})
	}
	if err := rows.Err(); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	for _, iv := range busy {
		sort.Slice(iv, func(i, j int) bool { return iv[i][0].Before(iv[j][0]) })
	}
	slots := []slotJSON{}
	for day := from; day.Before(to); day = day.Add(24 * time.Hour) {
		for st := day; !st.Add(sv.duration).After(day.Add(24 * time.Hour)); st = st.Add(sv.duration) {
			blockEnd := st.Add(sv.duration + sv.buffer)
			var free []string
			for _, res := range sv.resources {
				if !overlaps(busy[res], st, blockEnd) {
					free = append(free, res)
				}
			}
			if len(free) > 0 {
				slots = append(slots, slotJSON{Start: st, End: st.Add(sv.duration), Resources: free, Seats: len(free)})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": 0, "slots": slots})
}

func overlaps(iv [][2]time.Time, lo, hi time.Time) bool {
	i := sort.Search(len(iv), func(i int) bool { return !iv[i][0].Before(hi) }) // first starting at or after hi
	// Intervals of one resource are disjoint, so only the last one starting
	// before hi can reach past lo.
	return i > 0 && iv[i-1][1].After(lo)
}
