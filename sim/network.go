package sim

import (
	"bytes"
	"slices"

	"github.com/muninndb/muninn/core"
)

// Network carries protocol messages between nodes with per-message latency,
// loss, duplication (hence reordering), and directed cuts. A cut blocks a
// link in one direction; partitions are sets of cuts. Messages are checked
// against the cuts both when sent and when delivered, so nothing crosses a
// cut that was in force at either end of the flight.
type Network struct {
	w       *World
	idx     map[core.NodeID]int
	blocked [][]int // blocked[from][to]: number of cuts in force
	// lastAt[from][to] is when the last message in flight on the link
	// arrives: a reset reaches the peer after it, as on a TCP stream.
	lastAt  [][]int64
	loss    float64 // current loss probability (loss episodes)
	sent    uint64
	dropped uint64
}

func newNetwork(w *World) *Network {
	n := &Network{w: w, idx: map[core.NodeID]int{}}
	for i, sn := range w.nodes {
		n.idx[sn.id] = i
	}
	n.blocked = make([][]int, len(w.nodes))
	n.lastAt = make([][]int64, len(w.nodes))
	for i := range n.blocked {
		n.blocked[i] = make([]int, len(w.nodes))
		n.lastAt[i] = make([]int64, len(w.nodes))
	}
	return n
}

// linkUp reports whether from can reach to now.
func (n *Network) linkUp(from, to core.NodeID) bool {
	i, ok1 := n.idx[from]
	j, ok2 := n.idx[to]
	return ok1 && ok2 && n.blocked[i][j] == 0
}

// cut blocks (delta=+1) or unblocks (delta=-1) the directed links.
func (n *Network) cut(links [][2]int, delta int) {
	for _, l := range links {
		n.blocked[l[0]][l[1]] += delta
	}
}

// anyCut reports whether some link is blocked.
func (n *Network) anyCut() bool {
	for i := range n.blocked {
		for j := range n.blocked[i] {
			if n.blocked[i][j] > 0 {
				return true
			}
		}
	}
	return false
}

// send puts m in flight (it was persisted-before-send by the caller).
func (n *Network) send(m core.Message) {
	n.sent++
	if !n.linkUp(m.From, m.To) || n.w.rngNet.Chance(n.loss) {
		n.dropped++
		return
	}
	copies := 1
	if n.w.rngNet.Chance(n.w.set.DupProb) {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		d := n.w.rngNet.Between(n.w.set.LatencyMin, n.w.set.LatencyMax)
		i, j := n.idx[m.From], n.idx[m.To]
		n.lastAt[i][j] = max(n.lastAt[i][j], n.w.now+int64(d))
		msg := copyMessage(m)
		n.w.after(d, func() { n.deliver(msg) })
	}
}

// resetAt is when a reset of the link from -> to, sent now, reaches to:
// after what is in flight on it.
func (n *Network) resetAt(from, to core.NodeID) int64 {
	d := n.w.rngNet.Between(n.w.set.LatencyMin, n.w.set.LatencyMax)
	return max(n.w.now+int64(d), n.lastAt[n.idx[from]][n.idx[to]]+1)
}

func (n *Network) deliver(m core.Message) {
	if !n.linkUp(m.From, m.To) {
		n.dropped++
		return
	}
	sn := n.w.node(m.To)
	if sn == nil {
		return
	}
	sn.receive(m)
}

// copyMessage deep-copies m so no two nodes share an Entries slice or a
// payload.
func copyMessage(m core.Message) core.Message {
	if len(m.Entries) > 0 {
		es := slices.Clone(m.Entries)
		for i := range es {
			es[i].Payload = bytes.Clone(es[i].Payload)
		}
		m.Entries = es
	}
	return m
}
