package mbp

import (
	"sync"

	"github.com/muninndb/muninn/core"
)

// priority reports whether a message type goes in the priority lane. Only
// appends (which may be large) wait in the bulk lane, so a heartbeat, vote
// or SDOWN report never queues behind a batch of entries.
func priority(t core.MsgType) bool { return t != core.MsgAppend }

// msgSize estimates a message's encoded size for the queued-bytes cap.
func msgSize(m core.Message) int {
	n := 64 + len(m.From) + len(m.To) + len(m.Cortex)
	for _, e := range m.Entries {
		n += e.Size()
	}
	return n
}

// queue is one peer's outgoing messages: a priority lane and a bulk lane,
// each capped in messages, the bulk lane also in bytes (flow control). A
// full queue drops: the protocol retransmits.
type queue struct {
	mu     sync.Mutex
	hi, lo []core.Message
	bytes  int
	notify chan struct{} // one pending wake-up for the writer
}

func newQueue() *queue { return &queue{notify: make(chan struct{}, 1)} }

// push enqueues m and reports whether it fit.
func (q *queue) push(m core.Message, maxLen, maxBytes int) bool {
	q.mu.Lock()
	if priority(m.Type) {
		if len(q.hi) >= maxLen {
			q.mu.Unlock()
			return false
		}
		q.hi = append(q.hi, m)
	} else {
		n := msgSize(m)
		if len(q.lo) >= maxLen || (q.bytes+n > maxBytes && len(q.lo) > 0) {
			q.mu.Unlock()
			return false
		}
		q.lo = append(q.lo, m)
		q.bytes += n
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

// pop takes the next message, priority lane first.
func (q *queue) pop() (core.Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.hi) > 0 {
		m := q.hi[0]
		q.hi[0] = core.Message{}
		q.hi = q.hi[1:]
		return m, true
	}
	if len(q.lo) > 0 {
		m := q.lo[0]
		q.lo[0] = core.Message{}
		q.lo = q.lo[1:]
		q.bytes -= msgSize(m)
		return m, true
	}
	return core.Message{}, false
}

// reset drops everything queued (the connection went away; whatever was
// queued is stale and the protocol will resend what still matters).
func (q *queue) reset() {
	q.mu.Lock()
	q.hi, q.lo, q.bytes = nil, nil, 0
	q.mu.Unlock()
}

// queued reports the queued message count and bulk bytes.
func (q *queue) queued() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.hi) + len(q.lo), q.bytes
}
