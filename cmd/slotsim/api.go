package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The types below mirror the public protocol (docs/protocol.md); slotsim
// declares its own rather than importing slotd's, so that it tests the wire
// format and not a shared struct.

type rangeCfg struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type resourceCfg struct {
	ID       string                `json:"id"`
	Name     string                `json:"name"`
	Kind     string                `json:"kind"`
	TimeZone string                `json:"time_zone"`
	Capacity int                   `json:"capacity"`
	Weekly   map[string][]rangeCfg `json:"weekly"`
}

type serviceCfg struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
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

type tenantView struct {
	ID      string        `json:"id"`
	Link    string        `json:"link"`
	Version uint64        `json:"version"`
	Config  *tenantConfig `json:"config"`
}

type slot struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Resources []string  `json:"resources"`
	Seats     int       `json:"seats"`
}

type booking struct {
	ID             string    `json:"id"`
	ServiceID      string    `json:"service_id"`
	ResourceID     string    `json:"resource_id"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	BlockStart     time.Time `json:"block_start"`
	BlockEnd       time.Time `json:"block_end"`
	Status         string    `json:"status"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	FromHold       string    `json:"from_hold,omitempty"`
}

type hold struct {
	ID         string    `json:"id"`
	ServiceID  string    `json:"service_id"`
	ResourceID string    `json:"resource_id"`
	Start      time.Time `json:"start"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// frame is every server WebSocket frame; only the fields of its type are set.
type frame struct {
	V         int         `json:"v"`
	ID        string      `json:"id"`
	Type      string      `json:"type"`
	Code      string      `json:"code"`
	Message   string      `json:"message"`
	Sub       string      `json:"sub"`
	Version   *uint64     `json:"version"`
	Resync    bool        `json:"resync"`
	Slots     []slot      `json:"slots"`
	Upserted  []slot      `json:"upserted"`
	Removed   []time.Time `json:"removed"`
	Hold      *hold       `json:"hold"`
	Booking   *booking    `json:"booking"`
	Duplicate bool        `json:"duplicate"`
}

// apiError is a refused HTTP request.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// api is the HTTP side of the protocol: set-up and the final state.
type api struct {
	base  string
	token string
	hc    *http.Client
}

func newAPI(base, token string) *api {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	return &api{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(data, &eb)
		return &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func (a *api) createTenant(ctx context.Context, id string, cfg tenantConfig) (tenantView, error) {
	var v tenantView
	err := a.do(ctx, http.MethodPost, "/v1/tenants", map[string]any{"id": id, "config": cfg}, &v)
	return v, err
}

func (a *api) tenant(ctx context.Context, id string) (tenantView, error) {
	var v tenantView
	err := a.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(id), nil, &v)
	return v, err
}

func (a *api) bookings(ctx context.Context, tenant string) ([]booking, uint64, error) {
	var out struct {
		Version  uint64    `json:"version"`
		Bookings []booking `json:"bookings"`
	}
	err := a.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/bookings", nil, &out)
	return out.Bookings, out.Version, err
}

// availQuery is an availability query, as a subscription or a GET.
type availQuery struct {
	Service, From, To, TZ string
}

func (a *api) publicAvailability(ctx context.Context, link string, q availQuery) ([]slot, uint64, error) {
	var out struct {
		Version uint64 `json:"version"`
		Slots   []slot `json:"slots"`
	}
	v := url.Values{"service": {q.Service}, "from": {q.From}, "to": {q.To}, "tz": {q.TZ}}
	err := a.do(ctx, http.MethodGet, "/v1/public/"+url.PathEscape(link)+"/availability?"+v.Encode(), nil, &out)
	return out.Slots, out.Version, err
}

// serverMetrics are the samples slotsim reads from GET /metrics.
type serverMetrics struct {
	RSS        float64 // process_resident_memory_bytes
	CPU        float64 // process_cpu_seconds_total
	Goroutines float64 // go_goroutines
	HeapInuse  float64 // go_memstats_heap_inuse_bytes
	Conns      float64 // sum of slotd_websocket_connections
	Bookings   float64 // slotd_bookings_total
	Dropped    float64 // slotd_subscribers_dropped_total
	CommitSum  float64 // slotd_commit_seconds_sum: durable journal appends
	CommitN    float64 // slotd_commit_seconds_count
	BatchSum   float64 // slotd_batch_size_sum: commands per group commit
	BatchN     float64 // slotd_batch_size_count
}

func (a *api) metrics(ctx context.Context) (serverMetrics, error) {
	var m serverMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := cutMetric(line)
		if !ok {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			m.RSS = val
		case name == "process_cpu_seconds_total":
			m.CPU = val
		case name == "go_goroutines":
			m.Goroutines = val
		case name == "go_memstats_heap_inuse_bytes":
			m.HeapInuse = val
		case name == "slotd_websocket_connections":
			m.Conns += val
		case name == "slotd_bookings_total":
			m.Bookings = val
		case name == "slotd_subscribers_dropped_total":
			m.Dropped = val
		case name == "slotd_commit_seconds_sum":
			m.CommitSum = val
		case name == "slotd_commit_seconds_count":
			m.CommitN = val
		case name == "slotd_batch_size_sum":
			m.BatchSum = val
		case name == "slotd_batch_size_count":
			m.BatchN = val
		}
	}
	return m, sc.Err()
}

// cutMetric splits a Prometheus text line into its bare name and value.
func cutMetric(line string) (string, float64, bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", 0, false
	}
	name := line[:sp]
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name = name[:i]
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	return strings.TrimSpace(name), v, err == nil
}
