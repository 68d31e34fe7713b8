package api

import (
	"context"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/node"
)

// lagTracker measures replication lag in milliseconds, as the Cortex sees
// it. While this node is Cortex it samples its own last sequence number
// every sampleEvery and remembers when each new value was first seen. A
// member whose match (what the Cortex knows it holds) is m lacks the entries
// after m; its lag is the age of the oldest of them: now minus the time the
// Cortex's last seq first exceeded m. A member holding everything has lag 0.
//
// The sampling makes the figure a lower bound, short by at most
// sampleEvery; entries older than the ring's history give the ring's age
// (also a lower bound). Samples reset when this node stops being Cortex or
// its epoch changes.
type lagTracker struct {
	n    *node.Node
	stop chan struct{}
	done chan struct{}

	// The same sampling watches the Cortex this node follows, for
	// forwarded requests (cortexChanges).
	cmu     sync.Mutex
	cortex  core.NodeID
	changed context.Context
	change  context.CancelFunc

	mu      sync.Mutex
	epoch   core.Epoch
	samples []lagSample // ring, oldest at head
	head    int
	count   int
}

type lagSample struct {
	seq core.Seq
	at  time.Time
}

const (
	sampleEvery = 2 * time.Millisecond
	ringSize    = 1 << 14
)

func newLagTracker(n *node.Node) *lagTracker {
	t := &lagTracker{n: n, stop: make(chan struct{}), done: make(chan struct{}), samples: make([]lagSample, ringSize)}
	t.changed, t.change = context.WithCancel(context.Background())
	go t.run()
	return t
}

func (t *lagTracker) run() {
	defer close(t.done)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		t.sample(time.Now())
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
	}
}

func (t *lagTracker) close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}

func (t *lagTracker) sample(now time.Time) {
	snap := t.n.Status()
	if snap == nil {
		return
	}
	st := snap.Core
	t.watch(st.Cortex)
	t.mu.Lock()
	defer t.mu.Unlock()
	if st.Role != core.RoleCortex || st.Epoch != t.epoch {
		t.head, t.count, t.epoch = 0, 0, st.Epoch
		if st.Role != core.RoleCortex {
			return
		}
	}
	t.record(st.Last.Seq, now)
}

// watch notes the Cortex this node follows; a change ends the context
// cortexChanges handed out.
func (t *lagTracker) watch(c core.NodeID) {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	if c == t.cortex {
		return
	}
	t.cortex = c
	t.change()
	t.changed, t.change = context.WithCancel(context.Background())
}

// cortexChanges returns a context that ends the next time the sampler sees
// the Cortex change (within sampleEvery of the node publishing it).
func (t *lagTracker) cortexChanges() context.Context {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	return t.changed
}

// record notes seq at time now if it is new.
func (t *lagTracker) record(seq core.Seq, now time.Time) {
	if t.count > 0 && t.samples[(t.head+t.count-1)%ringSize].seq >= seq {
		return
	}
	if t.count == ringSize {
		t.head = (t.head + 1) % ringSize
		t.count--
	}
	t.samples[(t.head+t.count)%ringSize] = lagSample{seq: seq, at: now}
	t.count++
}

// lag returns how far behind a member holding match is, in ms, and whether
// it is known.
func (t *lagTracker) lag(match, last core.Seq, now time.Time) (int64, bool) {
	if match >= last {
		return 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count == 0 {
		return 0, false
	}
	// Binary search the first sample with seq > match.
	lo, hi := 0, t.count
	for lo < hi {
		mid := (lo + hi) / 2
		if t.samples[(t.head+mid)%ringSize].seq > match {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == t.count {
		// The newest sample is not past match yet: the entries are
		// younger than one sampling period.
		return 0, true
	}
	ms := now.Sub(t.samples[(t.head+lo)%ringSize].at).Milliseconds()
	return max(ms, 0), true
}
