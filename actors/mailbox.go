package actors

import "sync"

// mailbox is a tenant actor's bounded queue of messages. It holds no
// buffer while empty and grows only as messages wait, up to max: a
// channel of MailboxSize would keep 8 KiB per live tenant whether or not
// anything ever queued (80 MiB for 10,000 idle tenants).
type mailbox struct {
	mu   sync.Mutex
	q    []*message // q[head:] wait, oldest first
	head int
	max  int
	// ready (capacity 1) holds a token after a put; the actor takes it,
	// then gets until the queue is empty. A put after that leaves a new
	// token, so no message is left waiting unnoticed.
	ready chan struct{}
}

// keepCap is the largest backing array kept once the queue empties; a
// burst's larger one is let go.
const keepCap = 32

func newMailbox(max int) *mailbox {
	return &mailbox{max: max, ready: make(chan struct{}, 1)}
}

// put queues m, or reports false if max messages wait already.
func (mb *mailbox) put(m *message) bool {
	mb.mu.Lock()
	if len(mb.q)-mb.head >= mb.max {
		mb.mu.Unlock()
		return false
	}
	mb.q = append(mb.q, m)
	mb.mu.Unlock()
	mb.signal()
	return true
}

// signal leaves a token in ready, if there is none.
func (mb *mailbox) signal() {
	select {
	case mb.ready <- struct{}{}:
	default:
	}
}

// get takes the oldest waiting message, if any.
func (mb *mailbox) get() (*message, bool) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.head == len(mb.q) {
		return nil, false
	}
	m := mb.q[mb.head]
	mb.q[mb.head] = nil
	mb.head++
	if mb.head == len(mb.q) {
		mb.head = 0
		if cap(mb.q) > keepCap {
			mb.q = nil
		} else {
			mb.q = mb.q[:0]
		}
	}
	return m, true
}

// len reports how many messages wait.
func (mb *mailbox) len() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.q) - mb.head
}
