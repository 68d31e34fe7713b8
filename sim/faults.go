package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// Faults injects the fault phase: crashes, pauses, partitions (symmetric,
// one-way, isolation, bridge), loss episodes and manual handoffs, each held
// for a drawn time, with the mix drawn per seed. While a liveness watch is
// armed it injects nothing, so the watch measures a clean failover.
type Faults struct {
	w   *World
	r   *Rand
	end int64
	// loss episodes can overlap: the network takes the highest.
	losses []float64
	cuts   int
	copies map[core.NodeID]nodeStore // old copies of stores, for restores
}

// MinPartition is the minimum time a partition is held (stability time).
const MinPartition = 2 * time.Second

func newFaults(w *World) *Faults { return &Faults{w: w, r: w.rngFault} }

func (f *Faults) start(from, end int64) {
	f.end = end
	if f.w.opts.Faults&^FaultDrift == 0 {
		return
	}
	f.w.at(from+int64(f.r.Exp(f.w.set.FaultGap)), f.inject)
}

// guarded runs fn now, or later if a liveness watch is armed.
func (f *Faults) guarded(fn func()) {
	if f.w.chk.watching() {
		f.w.after(250*time.Millisecond, func() { f.guarded(fn) })
		return
	}
	fn()
}

func (f *Faults) inject() {
	w := f.w
	if w.now >= f.end || w.stopped {
		return
	}
	defer w.after(f.r.Exp(w.set.FaultGap), f.inject)
	if w.chk.watching() {
		return
	}
	f.maybeCopy()
	switch f.r.Pick(w.set.Weights[:]) {
	case 0:
		f.crash()
	case 1:
		f.partition()
	case 2:
		f.pause()
	case 3:
		f.loss()
	case 4:
		f.handoff()
	case 5:
		f.wipe()
	case 6:
		f.diskFault()
	case 7:
		f.lie()
	}
}

// target picks the Cortex half of the time, else any node.
func (f *Faults) target() *SimNode {
	if c := f.w.cortex(); c != nil && f.r.Chance(0.5) {
		return c
	}
	return f.w.nodes[f.r.Intn(len(f.w.nodes))]
}

// crash kills a process. Most of the time it is the process alone (kill
// -9, a panic): its host's kernel resets its connections and refuses
// redials, so its peers get crash hints (rule 18). Otherwise the host dies
// with it: silence, as for a partition.
func (f *Faults) crash() {
	sn := f.target()
	if f.r.Chance(0.6) {
		f.crashNow(sn)
		return
	}
	f.hostCrash(sn)
}

// crashNode returns a fault that crashes sn and restarts it later.
func (f *Faults) crashNode(sn *SimNode) func() {
	return func() { f.crashNow(sn) }
}

// hostCrash is a crash its peers cannot tell from a partition.
func (f *Faults) hostCrash(sn *SimNode) {
	if sn.up() {
		f.w.stats.HostCrashes++
	}
	f.crashWith(sn, false)
}

// crashNow crashes sn's process: peers connected to it get crash hints.
func (f *Faults) crashNow(sn *SimNode) { f.crashWith(sn, true) }

func (f *Faults) crashWith(sn *SimNode, hints bool) {
	if !sn.up() {
		return
	}
	f.w.stats.Crashes++
	wasCortex := sn.live() && sn.n.Role() == core.RoleCortex
	epoch := sn.n.Epoch()
	clean := wasCortex && f.clean(sn)
	if hints {
		f.resets(sn)
	}
	sn.crash()
	if clean {
		f.w.chk.armFailover(sn.id, epoch)
	}
	f.w.chk.topologyChanged()
	f.w.after(f.r.Between(time.Second, 8*time.Second), func() {
		f.guarded(func() {
			sn.restart()
			f.w.chk.topologyChanged()
		})
	})
}

// clean reports whether a crash of Cortex c is a clean failover: nothing
// else is wrong and a connected quorum of voters follows c. The voters are
// those of c's membership in force, and every one that is up must have the
// same membership (no change half-replicated: the survivors elect by it).
func (f *Faults) clean(c *SimNode) bool {
	w := f.w
	if w.net.anyCut() || w.net.loss > 0 {
		return false
	}
	for _, sn := range w.nodes {
		if sn.disk.full || sn.disk.failSync || (sn.drv != nil && sn.drv.Held()) {
			return false // a disk fault: the node may not take over (fault_disk.go)
		}
	}
	ms := c.n.Members()
	live := 0
	for _, m := range ms {
		sn := w.node(m.ID)
		if sn == c || !m.Voter() || sn == nil {
			continue
		}
		if sn.paused {
			return false
		}
		if sn.wiped && !f.rejoined(sn) {
			return false // a regressed store counts toward no quorum yet (rule 16)
		}
		if !sn.up() {
			continue
		}
		if sn.n.Epoch() != c.n.Epoch() || sn.n.Cortex() != c.id || !sameMembers(sn.n.Members(), ms) {
			return false
		}
		live++
	}
	return live >= ms.Quorum()
}

// sameMembers reports whether two memberships have the same members, kinds,
// learners and recorded stores.
func sameMembers(a, b core.Members) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Kind != b[i].Kind || a[i].Learner != b[i].Learner || a[i].Store != b[i].Store {
			return false
		}
	}
	return true
}

func (f *Faults) pause() {
	sn := f.target()
	if !sn.live() {
		return
	}
	f.w.stats.Pauses++
	sn.pause()
	f.w.chk.topologyChanged()
	f.w.after(f.r.Between(300*time.Millisecond, 8*time.Second), func() {
		f.guarded(func() {
			sn.resume()
			f.w.chk.topologyChanged()
		})
	})
}

// partition draws a partition and holds it for at least MinPartition.
func (f *Faults) partition() {
	w := f.w
	n := len(w.nodes)
	var links [][2]int
	block := func(i, j int) { links = append(links, [2]int{i, j}) }
	kind := f.r.Intn(4)
	var what string
	switch kind {
	case 0: // symmetric split
		side := make([]bool, n)
		for i := range side {
			side[i] = f.r.Chance(0.5)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if side[i] != side[j] {
					block(i, j)
				}
			}
		}
		what = "split"
	case 1: // isolate one node (the Cortex half of the time)
		t := w.net.idx[f.target().id]
		for j := 0; j < n; j++ {
			if j != t {
				block(t, j)
				block(j, t)
			}
		}
		what = "isolate " + string(w.nodes[t].id)
	case 2: // one-way: a node cannot send to (or receive from) the others
		t := w.net.idx[f.target().id]
		out := f.r.Chance(0.5)
		for j := 0; j < n; j++ {
			if j == t {
				continue
			}
			if out {
				block(t, j)
			} else {
				block(j, t)
			}
		}
		what = "one-way " + string(w.nodes[t].id)
	default: // bridge: two sides that only one node sees both of
		b := f.r.Intn(n)
		side := make([]bool, n)
		for i := range side {
			side[i] = f.r.Chance(0.5)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i != b && j != b && side[i] != side[j] {
					block(i, j)
				}
			}
		}
		what = "bridge " + string(w.nodes[b].id)
	}
	if len(links) == 0 {
		return
	}
	w.stats.Partitions++
	w.record("partition", "", uint64(kind), uint64(len(links)), func() string { return what })
	w.net.cut(links, 1)
	f.cuts++
	w.chk.topologyChanged()
	w.after(f.r.Between(MinPartition, 10*time.Second), func() {
		f.guarded(func() {
			if f.cuts == 0 {
				return // healed already
			}
			w.record("heal", "", uint64(kind), uint64(len(links)), func() string { return what })
			w.net.cut(links, -1)
			f.cuts--
			w.chk.topologyChanged()
		})
	})
}

func (f *Faults) loss() {
	w := f.w
	p := w.set.LossMax * (0.2 + 0.8*f.r.Float64())
	w.stats.LossEpisodes++
	f.losses = append(f.losses, p)
	f.setLoss()
	w.after(f.r.Between(MinPartition, 6*time.Second), func() {
		f.guarded(func() {
			for i, q := range f.losses {
				if q == p {
					f.losses = append(f.losses[:i], f.losses[i+1:]...)
					break
				}
			}
			f.setLoss()
		})
	})
}

func (f *Faults) setLoss() {
	m := 0.0
	for _, q := range f.losses {
		m = max(m, q)
	}
	f.w.net.loss = m
	f.w.record("loss", "", uint64(m*1e6), 0, nil)
}

func (f *Faults) handoff() {
	c := f.w.cortex()
	if c == nil || !c.live() {
		return
	}
	f.w.stats.Handoffs++
	f.w.nextReq++
	id := f.w.nextReq
	f.w.record("handoff", c.id, 0, 0, nil)
	c.request(core.Request{Kind: core.RequestTransfer, ID: id}, func(core.Result, engram.KV) {})
}

// healAll ends every fault: phase 2.
func (f *Faults) healAll() {
	w := f.w
	w.record("heal-all", "", 0, 0, nil)
	for i := range w.net.blocked {
		for j := range w.net.blocked[i] {
			w.net.blocked[i][j] = 0
		}
	}
	f.cuts = 0
	f.losses = nil
	f.setLoss()
	for _, sn := range w.nodes {
		sn.disk.failSync, sn.disk.full = false, false
		sn.resume()
		sn.restart()
	}
	w.chk.topologyChanged()
}
