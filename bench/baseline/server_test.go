package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/slotd/slotd/internal/pgtest"
)

func post(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestServer: a booking, a taken slot (23P01 → 409), an idempotent retry,
// any-resource, the bookings list and polled availability.
func TestServer(t *testing.T) {
	c := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Open(ctx, c.OwnerDSN(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	cfg := map[string]any{"name": "t", "time_zone": "UTC",
		"resources": []map[string]any{{"id": "r0", "capacity": 1}, {"id": "r1", "capacity": 1}},
		"services":  []map[string]any{{"id": "s0", "duration_min": 60, "buffer_after_min": 0, "resources": []string{"r0", "r1"}}}}
	if code, out := post(t, hs.URL+"/v1/tenants", map[string]any{"id": "t1", "config": cfg}); code != http.StatusCreated {
		t.Fatalf("create tenant: %d %v", code, out)
	}
	start := time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)
	book := func(res string, key string) (int, map[string]any) {
		return post(t, hs.URL+"/v1/tenants/t1/bookings", map[string]any{"service": "s0", "resource": res, "any_resource": res == "",
			"start": start, "customer": "c", "idempotency_key": key})
	}
	if code, out := book("r0", "k1"); code != http.StatusCreated {
		t.Fatalf("book: %d %v", code, out)
	}
	if code, out := book("r0", "k2"); code != http.StatusConflict || out["error"].(map[string]any)["code"] != "slot_taken" {
		t.Fatalf("book a taken slot: %d %v; want 409 slot_taken", code, out)
	}
	if code, out := book("r0", "k1"); code != http.StatusOK || out["duplicate"] != true {
		t.Fatalf("retry: %d %v; want 200 duplicate", code, out)
	}
	if code, out := book("", "k3"); code != http.StatusCreated || out["booking"].(map[string]any)["resource_id"] != "r1" {
		t.Fatalf("any resource: %d %v; want r1", code, out)
	}
	if code, _ := book("", "k4"); code != http.StatusConflict {
		t.Fatalf("any resource, all taken: %d; want 409", code)
	}
	resp, err := http.Get(hs.URL + "/v1/tenants/t1/bookings")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Bookings []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Bookings) != 2 {
		t.Fatalf("bookings: %v; want 2", list.Bookings)
	}
	resp, err = http.Get(hs.URL + "/v1/public/t1/availability?service=s0&from=2030-01-07&to=2030-01-08&tz=UTC")
	if err != nil {
		t.Fatal(err)
	}
	var av struct {
		Slots []struct {
			Start time.Time
			Seats int
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&av)
	resp.Body.Close()
	if len(av.Slots) != 23 {
		t.Fatalf("availability: %d slots; want 23 (24 hours, 10:00 fully booked)", len(av.Slots))
	}
	for _, s := range av.Slots {
		if s.Start.Equal(start) {
			t.Fatalf("10:00 offered though both resources are booked")
		}
	}
}
