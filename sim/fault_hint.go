package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// Crash hints (rule 18): what a peer's kernel tells the others when the
// peer's process dies. The four failures the protocol must tell apart:
//   - a process crash (crashNow): peers see their connection reset and a
//     redial refused, so they get a hint;
//   - a host crash or a partition (hostCrash, partition): silence;
//   - a freeze (pause): silence, connections stay open, no hint;
//   - a lying reset (lie): hints while the Cortex still runs.

// resets schedules the hints sn's crash gives its peers: each peer that
// can reach sn and be reached by it sees the reset one one-way delay later,
// after what sn sent before it (one TCP stream per pair), and gets a hint
// if its redial is refused then (sn still down).
func (f *Faults) resets(sn *SimNode) {
	w := f.w
	inc := sn.incarnation
	for _, p := range w.nodes {
		if p == sn || !p.up() || !w.net.linkUp(sn.id, p.id) || !w.net.linkUp(p.id, sn.id) {
			continue
		}
		w.at(w.net.resetAt(sn.id, p.id), func() {
			if sn.n == nil && sn.incarnation == inc+1 {
				p.hint(sn.id)
			}
		})
	}
}

// lie gives crash hints about the Cortex to some of the other nodes while
// it runs: a firewall that answers with resets, or a port refused for a
// moment. Half the time the Cortex is also cut off from them (the firewall
// case: REJECT both ways) for a partition's time; clients still reach it.
func (f *Faults) lie() {
	w := f.w
	c := w.cortex()
	if c == nil || !c.live() {
		return
	}
	var to []*SimNode
	for _, sn := range w.nodes {
		if sn != c && sn.up() && f.r.Chance(0.7) {
			to = append(to, sn)
		}
	}
	if len(to) == 0 {
		return
	}
	w.stats.Lies++
	if f.r.Chance(0.5) {
		var links [][2]int
		ci := w.net.idx[c.id]
		for _, sn := range to {
			links = append(links, [2]int{ci, w.net.idx[sn.id]}, [2]int{w.net.idx[sn.id], ci})
		}
		w.record("partition", "", 9, uint64(len(links)), func() string { return "reject " + string(c.id) })
		w.net.cut(links, 1)
		f.cuts++
		w.after(f.r.Between(MinPartition, 10*time.Second), func() {
			f.guarded(func() {
				if f.cuts == 0 {
					return // healed already
				}
				w.record("heal", "", 9, uint64(len(links)), func() string { return "reject " + string(c.id) })
				w.net.cut(links, -1)
				f.cuts--
				w.chk.topologyChanged()
			})
		})
	}
	w.chk.topologyChanged()
	for _, sn := range to {
		w.at(w.net.resetAt(c.id, sn.id), func() { sn.hint(c.id) })
	}
}

// hint hands the node a crash hint about peer. A frozen process reads it
// when it wakes, as it would the reset.
func (sn *SimNode) hint(peer core.NodeID) {
	if sn.n == nil {
		return
	}
	if sn.paused {
		sn.inbox = append(sn.inbox, func() { sn.hint(peer) })
		return
	}
	sn.w.record("hint", sn.id, 0, 0, func() string { return "about " + string(peer) })
	sn.drv.Hint(sn.local(sn.w.now), peer, "connection reset, redial refused")
	sn.drive(nil)
}
