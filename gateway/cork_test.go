package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writeLog is a net.Conn that records each Write.
type writeLog struct {
	net.Conn // nil unless wrapping a real connection
	mu       sync.Mutex
	writes   [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.mu.Unlock()
	if w.Conn != nil {
		return w.Conn.Write(p)
	}
	return len(p), nil
}

func (w *writeLog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

func TestCorkerKeepsUntilUncork(t *testing.T) {
	log := &writeLog{}
	k := &corker{nc: log, bufs: new(sync.Pool)}
	if _, err := k.Write([]byte("a")); err != nil || log.count() != 1 {
		t.Fatalf("uncorked write: err %v, %d writes, want it written at once", err, log.count())
	}
	k.cork()
	for _, p := range []string{"b", "c", "d"} {
		if n, err := k.Write([]byte(p)); n != 1 || err != nil {
			t.Fatalf("corked Write(%q) = %d, %v", p, n, err)
		}
	}
	if log.count() != 1 {
		t.Fatalf("%d writes while corked, want none beyond the first", log.count()-1)
	}
	if err := k.uncork(); err != nil {
		t.Fatal(err)
	}
	if log.count() != 2 || string(log.writes[1]) != "bcd" {
		t.Fatalf("after uncork: writes %q, want one write of \"bcd\"", log.writes)
	}
	if err := k.uncork(); err != nil || log.count() != 2 {
		t.Fatalf("second uncork wrote again (%q, %v)", log.writes, err)
	}
}

func TestCorkerWritesThroughBeyondLimit(t *testing.T) {
	log := &writeLog{}
	k := &corker{nc: log, bufs: new(sync.Pool)}
	k.cork()
	first := bytes.Repeat([]byte("x"), maxCorked-10)
	second := bytes.Repeat([]byte("y"), 20)
	k.Write(first)
	k.Write(second)
	if log.count() != 2 || !bytes.Equal(log.writes[0], first) || !bytes.Equal(log.writes[1], second) {
		t.Fatalf("over the limit: %d writes, want what was kept and then the new bytes, in order", log.count())
	}
	k.Write([]byte("z"))
	k.uncork()
	if log.count() != 3 || string(log.writes[2]) != "z" {
		t.Fatalf("after writing through, still corked: got %d writes", log.count())
	}
}

// acceptedWS is the server side of a WebSocket accepted as the gateway
// does (smallBuffers), before any conn is built on it.
type acceptedWS struct {
	ws *websocket.Conn
	sb *smallBuffers
}

// dialAccepted starts a server that accepts one WebSocket as the gateway
// does and dials it; wrap, if not nil, runs on the accepted connection
// before it is handed over.
func dialAccepted(t *testing.T, ctx context.Context, wrap func(*smallBuffers)) (*websocket.Conn, acceptedWS) {
	t.Helper()
	accepted := make(chan acceptedWS, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb := &smallBuffers{ResponseWriter: w, bufs: new(sync.Pool)}
		ws, err := websocket.Accept(sb, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		if wrap != nil {
			wrap(sb)
		}
		accepted <- acceptedWS{ws: ws, sb: sb}
	}))
	t.Cleanup(hs.Close)
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	return client, <-accepted
}

// TestWriterCoalescesQueuedFrames queues several frames on a real
// WebSocket at once and requires them to reach the client intact and in
// order, in one write(2).
func TestWriterCoalescesQueuedFrames(t *testing.T) {
	const n = 5
	srv := &Server{cfg: Config{WriteTimeout: 5 * time.Second, OutQueue: 256}}
	log := &writeLog{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, a := dialAccepted(t, ctx, func(sb *smallBuffers) { log.Conn, sb.cork.nc = sb.nc, log })
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	c := &conn{s: srv, ws: a.ws, nc: a.sb.nc, cork: a.sb.cork, ctx: cctx, cancel: ccancel}

	c.qmu.Lock()
	for i := range n {
		if !c.queueLocked(outFrame{b: fmt.Appendf(nil, `{"n":%d}`, i)}) {
			t.Fatal("queue full")
		}
	}
	c.qmu.Unlock()
	for i := range n {
		_, b, err := client.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"n":%d}`, i); string(b) != want {
			t.Fatalf("frame %d = %s, want %s", i, b, want)
		}
	}
	c.wg.Wait()
	if log.count() != 1 {
		t.Fatalf("%d frames queued together took %d writes, want 1", n, log.count())
	}
	// A frame queued alone is written alone, at once.
	c.enqueue(outFrame{b: []byte(`{"n":"alone"}`)})
	if _, b, err := client.Read(ctx); err != nil || string(b) != `{"n":"alone"}` {
		t.Fatalf("lone frame: %s, %v", b, err)
	}
	c.wg.Wait()
	if log.count() != 2 {
		t.Fatalf("lone frame: %d writes in all, want 2", log.count())
	}
}

// TestCloseReplyWhileCorked: the client closes while the server's writer
// is corked (mid-batch). The library writes its close reply, which the
// corker keeps, and then closes the net.Conn at once: the connection's
// Close must send what the corker kept first, or the client's close
// handshake fails.
func TestCloseReplyWhileCorked(t *testing.T) {
	for _, corked := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		client, a := dialAccepted(t, ctx, nil)
		k, ws := a.sb.cork, a.ws
		if corked {
			k.cork() // the connection's writer is in the middle of a batch
		}
		go func() { _, _, _ = ws.Read(context.Background()) }() // the server's reader
		start := time.Now()
		err := client.Close(websocket.StatusNormalClosure, "bye")
		t.Logf("corked=%v: client.Close = %v after %v", corked, err, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Errorf("corked=%v: the client's close handshake failed: %v", corked, err)
		}
		_ = k.uncork() // the writer's batch ends
		cancel()
	}
}
