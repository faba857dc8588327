package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// FuzzHTTPBodies sends arbitrary bytes as the body of every POST and PUT
// route (enumerated from the router, so a new route is fuzzed too, or
// fails here until its path parameters are known) through the gateway
// handler, as the operator. No body may cause a panic or a 5xx (an
// internal error is also logged as an error, which fails the test when
// the server closes), and a body refused with a 4xx must leave the store
// as it was: every tenant's journal, the directory and the allowed
// origins. Seeds (valid and broken bodies of each route) are in
// testdata/fuzz/FuzzHTTPBodies:
//
//	go test -run '^$' -fuzz FuzzHTTPBodies -fuzztime 60s ./gateway/
func FuzzHTTPBodies(f *testing.F) {
	ts := newTestServer(f, withMemstore(), withGateway(func(c *gateway.Config) { c.MaxBodyBytes = 8 << 10 }))
	ts.createTenant(f, "salon", testConfig())
	var booked struct{ Booking engine.Booking }
	ts.do(f, "POST", "/v1/tenants/salon/bookings", operatorToken, bookFields("cut", "alice", at(f, "Europe/Rome", 1, 9), ada)).
		want(f, http.StatusCreated, &booked)
	params := map[string]string{"tenant": "salon", "resource": "alice", "service": "cut", "date": day1, "source": "fuzz",
		"booking": booked.Booking.ID}
	type route struct{ method, path string }
	var routes []route
	param := regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)
	for _, r := range ts.gw.Routes() {
		method, pattern, _ := strings.Cut(r.Pattern, " ")
		if method != http.MethodPost && method != http.MethodPut {
			continue
		}
		path := param.ReplaceAllStringFunc(pattern, func(m string) string {
			name := param.FindStringSubmatch(m)[1]
			v, ok := params[name]
			if !ok {
				f.Fatalf("route %s: no value for path parameter {%s}: add one to FuzzHTTPBodies", r.Pattern, name)
			}
			return v
		})
		routes = append(routes, route{method, path})
	}
	if len(routes) < 8 {
		f.Fatalf("only %d POST and PUT routes: %v", len(routes), routes)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, rt := range routes {
			before := storeState(t, ts)
			r := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+operatorToken)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			ts.gw.ServeHTTP(w, r)
			switch {
			case w.Code >= 500:
				t.Fatalf("%s %s with body %q = %d %s", rt.method, rt.path, body, w.Code, w.Body)
			case w.Code >= 400:
				if after := storeState(t, ts); after != before {
					t.Fatalf("%s %s with body %q = %d %s, but the store changed:\nbefore %s\nafter  %s",
						rt.method, rt.path, body, w.Code, w.Body, before, after)
				}
			}
		}
	})
}

// storeState describes everything an HTTP route may write: the directory
// (tenants, links, allowed origins) and each tenant's journal sequence.
func storeState(tb testing.TB, ts *testServer) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, kind := range []string{gateway.KindTenant, gateway.KindLink, gateway.KindOrigins} {
		keys, err := ts.store.ListDirectory(ctx, kind)
		if err != nil {
			tb.Fatalf("ListDirectory(%s) = %v", kind, err)
		}
		for _, k := range keys {
			v, err := ts.store.GetDirectory(ctx, kind, k)
			if err != nil {
				tb.Fatalf("GetDirectory(%s, %s) = %v", kind, k, err)
			}
			fmt.Fprintf(&b, "%s/%s=%s ", kind, k, v)
			if kind == gateway.KindTenant {
				fmt.Fprintf(&b, "seq=%d ", ts.seq(tb, k))
			}
		}
	}
	return b.String()
}
