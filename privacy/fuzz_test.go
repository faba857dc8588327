package privacy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
)

// FuzzDecodeEvents: whatever bytes a journal holds (a tampered database),
// the codec never panics and never hands the engine a sealed customer.
//
//	go test ./privacy -run '^$' -fuzz FuzzDecodeEvents -fuzztime 30s
func FuzzDecodeEvents(f *testing.F) {
	ctx := context.Background()
	codec := privacy.NewCodec(mustKeyring(f), memstore.New())
	a := alice
	a.Subject = "s-alice"
	enc, err := codec.EncodeEvents(ctx, "acme", []engine.Event{bookingEvent("b1", a), bookingEvent("b2", engine.Customer{Subject: "s-x", Erased: true})})
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range enc {
		f.Add(e)
	}
	f.Add([]byte(`{"type":"booking_confirmed","booking":{"id":"b","customer":{"subject":"s","sealed":"AgAA"}}}`))
	f.Add([]byte(`{"type":"booking_confirmed","booking":{"id":"b","customer":{"name":"n","email":"e@x.y"}}}`))
	f.Add([]byte(`{"type":"subject_erased","subject":"s","booking_ids":["b"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := codec.DecodeEvents(ctx, "acme", [][]byte{data})
		if err != nil {
			return
		}
		if b := evs[0].Booking; b != nil && b.Customer.Sealed != "" {
			t.Fatalf("DecodeEvents(%q) yields a sealed customer %+v", data, b.Customer)
		}
	})
}

// FuzzRequestBody: the privacy routes answer any body with a JSON error
// or a result, never a panic or a server error.
func FuzzRequestBody(f *testing.F) {
	r, codec := twoTenants(f)
	log, _ := mustAudit(f)
	svc := mustService(f, r, codec, log)
	gw := gateway.New(gateway.Config{Tenants: r, Auth: testTokens, Logger: quietLogger(), Routes: svc.Routes(), MaxBodyBytes: 4096})
	for _, s := range []string{`{"email":"alice.liddell@example.com"}`, `{"email":""}`, `{}`, `[]`, `{"email":1}`, `{"email":"a"}{}`, ``, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/tenants/acme/privacy/export-customer", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer acme-owner")
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("body %q: status %d %s", body, w.Code, w.Body)
		}
	})
}
