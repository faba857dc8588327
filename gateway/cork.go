package gateway

import (
	"net"
	"sync"
)

// corker is the writer under a WebSocket's bufio.Writer. The library
// flushes after every message; while corked, what it flushes is kept, and
// uncork sends it all with one write(2). A connection's writer corks while
// it writes the frames queued together, so that a viewer that fell behind
// by several deltas costs one system call instead of one per delta (in the
// fanout scenario the write(2) per frame is half of slotd's CPU). Writes
// by the library itself while corked (a pong, the close frame) keep their
// order and go out with the batch.
type corker struct {
	nc   net.Conn
	bufs *sync.Pool // *[]byte, shared with the frame writers (Server.frames)

	mu      sync.Mutex // guards the fields below and orders writes to nc
	corked  bool
	pending *[]byte // from bufs while corked and not empty
}

// maxCorked is the most a corker keeps before writing through.
const maxCorked = 64 << 10

func (k *corker) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.corked && (k.pending == nil || len(*k.pending)+len(p) <= maxCorked) {
		if k.pending == nil {
			k.pending = pooledBuffer(k.bufs)
		}
		*k.pending = append(*k.pending, p...)
		return len(p), nil
	}
	if err := k.flushLocked(); err != nil {
		return 0, err
	}
	return k.nc.Write(p)
}

// cork keeps what is written until uncork.
func (k *corker) cork() {
	k.mu.Lock()
	k.corked = true
	k.mu.Unlock()
}

// uncork writes what was kept, in one write, and stops keeping.
func (k *corker) uncork() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.corked = false
	return k.flushLocked()
}

func (k *corker) flushLocked() error {
	if k.pending == nil {
		return nil
	}
	b := *k.pending
	_, err := k.nc.Write(b)
	if cap(b) <= maxPooledFrame {
		*k.pending = b[:0]
		k.bufs.Put(k.pending)
	}
	k.pending = nil
	return err
}

// corkedConn is the net.Conn the library closes: what the corker keeps
// (the library's close frame, say) is written first.
type corkedConn struct {
	net.Conn
	k *corker
}

func (c *corkedConn) Close() error {
	_ = c.k.uncork()
	return c.Conn.Close()
}
