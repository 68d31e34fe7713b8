package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// The event hub: every cluster event this node learns, numbered, kept in a
// bounded ring for resuming streams, and fanned out to subscribers
// (GET /v1/cluster/events, docs/api.md "Cluster events"). The node's loop
// emits; emitting never blocks it: a subscriber that cannot keep up is
// dropped, and resumes from the ring with its last id.

// Hub bounds.
const (
	// EventRing is how many events the hub keeps for resuming.
	EventRing = 1024
	// SubscriberBuffer is how many events a subscriber may lag behind
	// before it is dropped (its stream ends with an overflow event).
	SubscriberBuffer = 128
	// MaxSubscribers bounds the open subscriptions of one node.
	MaxSubscribers = 256
)

// ErrTooManySubscribers refuses a subscription over MaxSubscribers.
var ErrTooManySubscribers = errors.New("this node already streams events to its maximum of subscribers; retry later or subscribe on another node")

// Event is one cluster event and its JSON (the SSE data).
type Event struct {
	apitypes.ClusterEvent
	Data []byte
}

// EventHub numbers, keeps and fans out the node's cluster events. Safe for
// concurrent use.
type EventHub struct {
	boot   string
	source string
	max    int
	buffer int
	now    func() time.Time

	mu     sync.Mutex
	seq    uint64
	ring   []Event // oldest first once full: ring[head:] then ring[:head]
	head   int
	subs   map[*Subscription]struct{}
	closed bool

	// What the node reported last, for the hello and for the events
	// derived by comparing (tracker.go).
	st hubState
}

// newEventHub returns the hub of node source, with a fresh boot token.
func newEventHub(source string) *EventHub {
	var b [8]byte
	rand.Read(b[:])
	return &EventHub{
		boot: hex.EncodeToString(b[:]), source: source, max: MaxSubscribers, buffer: SubscriberBuffer,
		now: time.Now, ring: make([]Event, 0, EventRing), subs: map[*Subscription]struct{}{},
	}
}

// Boot is the hub's boot token: ids of another token are another run's.
func (h *EventHub) Boot() string { return h.boot }

func (h *EventHub) id(seq uint64) string { return h.boot + "-" + strconv.FormatUint(seq, 10) }

// emitLocked numbers e, keeps it and hands it to every subscriber; one
// whose buffer is full is dropped instead of waited for.
func (h *EventHub) emitLocked(e apitypes.ClusterEvent) {
	if h.closed {
		return
	}
	h.seq++
	e.Seq, e.ID, e.Boot, e.Source, e.Time = h.seq, h.id(h.seq), h.boot, h.source, h.now()
	ev := Event{ClusterEvent: e, Data: encodeEvent(e)}
	if len(h.ring) < cap(h.ring) {
		h.ring = append(h.ring, ev)
	} else {
		h.ring[h.head] = ev
		h.head = (h.head + 1) % len(h.ring)
	}
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.overflow.Store(true)
			h.dropLocked(s)
		}
	}
}

func encodeEvent(e apitypes.ClusterEvent) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		// Plain strings and numbers: cannot happen.
		b = []byte(`{"type":"` + e.Type + `"}`)
	}
	return b
}

// emit is emitLocked for callers that do not hold the lock.
func (h *EventHub) emit(e apitypes.ClusterEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitLocked(e)
}

// Subscription is one subscriber: what to send first (Hello, then Reset
// and Replay), then the live events on C. C is closed when the subscriber
// is dropped (Overflowed), the hub closes (the node stops) or Close.
type Subscription struct {
	// Hello is the node's state now. Its ID is the last event's id (the
	// state includes it); send it as the SSE id only when Replay is empty,
	// so a client that drops during the replay resumes where it was.
	Hello Event
	// Reset is set when the last id given cannot be resumed: events were
	// missed (its Reason says why).
	Reset *Event
	// Replay are the kept events after the last id given.
	Replay []Event
	C      <-chan Event

	c        chan Event
	h        *EventHub
	overflow atomic.Bool
}

// Overflowed reports whether the hub dropped the subscriber because it fell
// SubscriberBuffer events behind.
func (s *Subscription) Overflowed() bool { return s.overflow.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.dropLocked(s)
}

func (h *EventHub) dropLocked(s *Subscription) {
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// Subscribers is the number of open subscriptions.
func (h *EventHub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Subscribe opens a subscription resuming after lastID ("" for none: no
// replay). The hello, the replay and the live events are taken under one
// lock, so none is missed or sent twice.
func (h *EventHub) Subscribe(lastID string) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrStopped
	}
	if len(h.subs) >= h.max {
		return nil, ErrTooManySubscribers
	}
	s := &Subscription{c: make(chan Event, h.buffer), h: h}
	s.C = s.c
	s.Hello = h.helloLocked()
	if lastID = strings.TrimSpace(lastID); lastID != "" {
		s.Reset, s.Replay = h.resumeLocked(lastID)
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// Hello is the hub's view of the node now, as a new subscriber's hello.
// It follows the node's status by a step: a change is seen once the Ready
// holding it is carried out.
func (h *EventHub) Hello() Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.helloLocked()
}

func (h *EventHub) helloLocked() Event {
	st := h.st
	e := apitypes.ClusterEvent{
		ID: h.id(h.seq), Seq: h.seq, Boot: h.boot, Source: h.source, Time: h.now(), Type: apitypes.EventHello,
		Epoch: st.epoch, Node: h.source, Role: st.role, Cortex: st.cur, CortexAPI: st.curAPI,
	}
	return Event{ClusterEvent: e, Data: encodeEvent(e)}
}

// resumeLocked returns the events after lastID, and a reset when some may
// have been missed: an id of another run or node (nothing is replayed:
// its numbers mean nothing here), or one older than the ring (the whole
// ring is replayed).
func (h *EventHub) resumeLocked(lastID string) (*Event, []Event) {
	if len(lastID) > maxEventID {
		// Not one of ours (those are <16 hex>-<seq>): echo a bounded
		// prefix, so a hostile header costs little under the node's lock.
		lastID = lastID[:maxEventID] + "..."
	}
	boot, n, err := parseEventID(lastID)
	reset := func(why string) *Event {
		e := apitypes.ClusterEvent{Boot: h.boot, Source: h.source, Time: h.now(), Type: apitypes.EventReset,
			Epoch: h.st.epoch, Reason: why, LastEventID: lastID}
		return &Event{ClusterEvent: e, Data: encodeEvent(e)}
	}
	switch {
	case err != nil:
		return reset(err.Error() + ": events may have been missed; the hello is the current state"), nil
	case boot != h.boot:
		return reset(fmt.Sprintf("event id %s is from another node or an earlier run of %s (boot %s): events may have been missed; the hello is the current state", lastID, h.source, h.boot)), nil
	case n > h.seq:
		return reset(fmt.Sprintf("event id %s is ahead of this node's last event %s: events may have been missed; the hello is the current state", lastID, h.id(h.seq))), nil
	}
	first := h.seq - uint64(len(h.ring)) + 1 // the oldest kept
	var out []Event
	for i := range h.ring {
		ev := h.ring[(h.head+i)%len(h.ring)]
		if ev.Seq > n {
			out = append(out, ev)
		}
	}
	if n+1 < first {
		return reset(fmt.Sprintf("%d events after %s were missed: this node keeps its last %d; the hello is the current state", first-n-1, lastID, EventRing)), out
	}
	return nil, out
}

// maxEventID bounds a last event id taken from a client: ours are at
// most 37 bytes (16 hex digits, a dash, a uint64).
const maxEventID = 64

// parseEventID splits "<boot>-<seq>".
func parseEventID(id string) (string, uint64, error) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, fmt.Errorf("last event id %q is not an event id (<boot>-<seq>)", id)
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("last event id %q is not an event id (<boot>-<seq>)", id)
	}
	return id[:i], n, nil
}

// close ends every subscription (the node stops); later subscriptions are
// refused with ErrStopped.
func (h *EventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		h.dropLocked(s)
	}
	h.closed = true
}

// Events returns the node's event hub.
func (n *Node) Events() *EventHub { return n.events }
