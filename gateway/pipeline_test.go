package gateway_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/gateway"
)

// TestPipelinedRepliesAllArrive: many connections, each sending a burst of
// requests without waiting (as slotsim's clients do), get exactly one
// reply per request. A reply lost between the actor's answer and the
// socket would leave a request unanswered here.
func TestPipelinedRepliesAllArrive(t *testing.T) {
	ts := newTestServer(t, withGateway(func(c *gateway.Config) { c.MsgRate, c.MsgBurst = 1e6, 1e6 }))
	ts.createTenant(t, "salon", testConfig())
	base := at(t, "UTC", 1, 0)
	const conns, each, rounds = 60, 20, 3
	clients := make([]*wsClient, conns)
	for i := range clients {
		clients[i] = ts.dialOperator(t, "salon")
	}
	ctx := timeout(t, 60*time.Second)
	for round := range rounds {
		var wg sync.WaitGroup
		for ci, c := range clients {
			wg.Go(func() {
				for k := range each {
					time.Sleep(time.Duration(k%7) * time.Millisecond) // paced, as slotsim's clients are
					// A booked reply (with the customer) is larger than the
					// connection's write buffer: written in more than one piece.
					n := (round*conns+ci)*each + k
					f := bookFields("tick", "kiosk", base.Add(time.Duration(n)*5*time.Minute),
						map[string]any{"name": fmt.Sprintf("Customer %d of a rather long name, %0150d", n, n), "email": fmt.Sprintf("c%d@example.com", n)})
					f["v"], f["type"], f["id"] = gateway.ProtocolVersion, "book", fmt.Sprintf("r%d-%d", round, k)
					f["idempotency_key"] = fmt.Sprintf("k%d", n)
					b, _ := json.Marshal(f)
					if err := c.write(ctx, b); err != nil {
						t.Errorf("client %d: write: %v", ci, err)
						return
					}
				}
				for k := range each {
					id := fmt.Sprintf("r%d-%d", round, k)
					if f, err := c.await(ctx, func(f gateway.Frame) bool { return f.ID == id }); err != nil {
						t.Errorf("client %d: no reply to %s: %v", ci, id, err)
						return
					} else if b, _ := json.Marshal(f); k == 0 && ci == 0 && round == 0 {
						t.Logf("a reply is %d bytes", len(b))
					} else if f.Type != gateway.TypeBooked {
						t.Errorf("client %d: reply to %s is %s %s", ci, id, f.Type, f.Code)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}
