package sim

import (
	"fmt"
	"io"
	"time"

	"github.com/muninndb/muninn/core"
)

// event is one scheduled action. Events run in (at, seq) order: seq is the
// insertion counter, so two events at the same instant run in the order
// they were scheduled, whatever the heap does.
type event struct {
	at  int64
	seq uint64
	fn  func()
}

// queue is a binary min-heap of events.
type queue []event

func (q queue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// World is one simulated run: a virtual clock, an event queue, the network,
// the nodes, the workload and the checkers. It runs on one goroutine and
// everything in it derives from the run seed.
type World struct {
	seed uint64
	opts Options
	set  Settings

	now   int64 // global virtual time, ns
	q     queue
	seq   uint64
	steps uint64

	hash  uint64 // FNV-1a over every delivered event
	trace io.Writer

	rngNet, rngFault, rngWork *Rand

	net    *Network
	nodes  []*SimNode // the bootstrap members sorted by id, then the spares
	byID   map[core.NodeID]*SimNode
	work   *Workload
	faults *Faults
	// members is the operator changing the membership
	// (workload_members.go).
	members *Operator
	chk     *Checkers
	// snapshots streams checkpoints between nodes (snapshot.go).
	snapshots *snapshots
	// pebbles: every Pebble store opened, closed when the run ends.
	pebbles []*pebbleStore

	nextReq uint64
	stopped bool
	phase   int // 1 faults, 2 healing
	stats   Stats
	stores  uint64 // store identities handed out
}

// newStoreID hands out the next store identity (deterministic, non-zero).
func (w *World) newStoreID() uint64 {
	w.stores++
	return 0x57000000 + w.stores
}

// newNodeStore makes an empty store for sn, of the kind the run uses.
func (w *World) newNodeStore(sn *SimNode) nodeStore {
	if w.opts.Store == "pebble" {
		st, err := newPebbleStore(w, sn)
		if err != nil {
			panic(fmt.Sprintf("opening a Pebble store on a memory file system: %v", err))
		}
		return st
	}
	return newStore(sn.cfg.Bootstrap, w.newStoreID(), sn.disk)
}

// reidentify gives a restored copy of a store a new identity, as the
// documented restore procedure does (rule 16).
func (w *World) reidentify(sn *SimNode, old nodeStore) nodeStore {
	switch st := old.(type) {
	case *Store:
		st.identity = w.newStoreID()
		return st
	case *pebbleStore:
		if err := st.reidentify(w.newStoreID()); err != nil {
			panic(fmt.Sprintf("giving a restored store a new identity: %v", err))
		}
		return st
	}
	return old
}

// Now returns the global virtual time.
func (w *World) Now() time.Duration { return time.Duration(w.now) }

// at schedules fn at absolute global time t (never in the past).
func (w *World) at(t int64, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	w.q.push(event{at: t, seq: w.seq, fn: fn})
}

// after schedules fn d from now.
func (w *World) after(d time.Duration, fn func()) { w.at(w.now+int64(d), fn) }

// runUntil runs events up to and including time t, or until stopped.
func (w *World) runUntil(t int64) {
	for len(w.q) > 0 && !w.stopped {
		if w.q[0].at > t {
			break
		}
		e := w.q.pop()
		w.now = e.at
		w.steps++
		e.fn()
	}
	if !w.stopped && w.now < t {
		w.now = t
	}
}

// record mixes one delivered event into the trace hash and, when tracing,
// prints it. kind is a short tag; a and b are numeric details.
func (w *World) record(kind string, node core.NodeID, a, b uint64, detail func() string) {
	h := w.hash
	mixU := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	mixS := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	mixU(uint64(w.now))
	mixS(kind)
	mixS(string(node))
	mixU(a)
	mixU(b)
	w.hash = h
	if w.trace != nil {
		d := ""
		if detail != nil {
			d = detail()
		}
		fmt.Fprintf(w.trace, "%12.6f %-10s %-4s %s\n", float64(w.now)/1e9, kind, node, d)
	}
}

func (w *World) node(id core.NodeID) *SimNode { return w.byID[id] }

// cortex returns the up node that is Cortex in the highest epoch, if any.
func (w *World) cortex() *SimNode {
	var best *SimNode
	for _, sn := range w.nodes {
		if sn.n != nil && sn.n.Role() == core.RoleCortex && (best == nil || sn.n.Epoch() > best.n.Epoch()) {
			best = sn
		}
	}
	return best
}
