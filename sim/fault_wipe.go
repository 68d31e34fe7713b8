package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// Storage that goes backwards (rule 16): a node restarts on an empty store
// (its data directory wiped) or on an older copy of its store (restored
// from a backup), with a new store identity either way, as the documented
// procedure gives it. Only one node is ever rejoining at a time: two
// regressed stores at once are beyond what any quorum system survives.

// maybeCopy sometimes keeps an old copy of a node's store, for a later
// restore.
func (f *Faults) maybeCopy() {
	if f.w.opts.Faults&FaultWipe == 0 || !f.r.Chance(0.3) {
		return
	}
	sn := f.w.nodes[f.r.Intn(len(f.w.nodes))]
	if f.copies == nil {
		f.copies = map[core.NodeID]nodeStore{}
	}
	f.copies[sn.id] = sn.st.Copy()
}

// rejoined reports whether sn's current store is the one every node's
// membership records for it, crashed nodes' stores included: it has caught
// up and counts again wherever an election could start. (A second store
// regressing before that is a double fault: the survivors may then have
// no candidate they can count, and wait for an operator.) Nodes stopped
// after their removal hold no election, and a node whose membership does
// not list sn (a spare, a removed node, or one that has not learned of its
// addition) asks nothing of it; sn's own membership must list it unless
// nobody's does.
func (f *Faults) rejoined(sn *SimNode) bool {
	if sn.retired {
		return true
	}
	listed, self := false, true
	for _, c := range f.w.nodes {
		if c.retired {
			continue
		}
		ms := c.st.Members()
		if c.up() {
			ms = c.n.Members()
		}
		m, ok := ms.Get(sn.id)
		if !ok {
			self = self && c != sn
			continue
		}
		listed = true
		if m.Store != sn.cfg.Store {
			return false
		}
	}
	return self || !listed
}

// discover is what a node starting on an empty store learns first
// (shell/node/discover.go): the membership of the cluster already running
// (ids, kinds, learners and the stores they are recorded with, as
// /v1/cluster/info gives them), here from the Cortex, else from the running
// node with the newest log. If it lists the node, the node starts as that
// member, its own record naming its old store, so it does not run until the
// Cortex has caught it up (rule 16); if not, it waits to be added. With no
// cluster running it keeps the list it was started with.
func (w *World) discover(sn *SimNode) core.Members {
	src := w.cortex()
	if src == nil {
		for _, o := range w.nodes {
			if o != sn && o.up() && o.n.Epoch() > 0 && (src == nil || src.n.Last().Less(o.n.Last())) {
				src = o
			}
		}
	}
	if src == nil {
		return sn.cfg.Bootstrap
	}
	ms := src.n.Members()
	if _, ok := ms.Get(sn.id); !ok {
		return nil
	}
	out := make(core.Members, len(ms))
	for i, m := range ms {
		out[i] = core.Member{ID: m.ID, Kind: m.Kind, Learner: m.Learner, Store: m.Store}
		if sn.spec.Kind == core.KindSentinel {
			out[i].Store = 0 // as shell/node/discover.go's storesForgotten
		}
	}
	return out
}

func (f *Faults) wipe() {
	for _, other := range f.w.nodes {
		if other.wiped && !f.rejoined(other) {
			return // one regressed store at a time
		}
		other.wiped = false
	}
	sn := f.target()
	if !sn.up() || f.wouldLeaveNoQuorum(sn) {
		return
	}
	f.w.stats.Wipes++
	sn.crash()
	f.w.chk.noteWiped(sn.id, sn.st)
	old := f.copies[sn.id]
	delete(f.copies, sn.id)
	how := "wiped"
	if old != nil && f.r.Chance(0.5) {
		// The documented procedure gives a restored copy a new identity.
		sn.st, how = f.w.reidentify(sn, old), "restored from an older copy"
	} else {
		sn.cfg.Bootstrap = f.w.discover(sn)
		sn.st = f.w.newNodeStore(sn)
	}
	// The new identity is the node's from now on, not from its restart:
	// rejoined compares the memberships with it.
	sn.cfg.Store = sn.st.Identity()
	sn.wiped = true
	sn.maxEpoch = 0
	f.w.record("wipe", sn.id, sn.cfg.Store, 0, func() string { return how })
	f.w.chk.topologyChanged()
	// Half the time the Cortex dies just after the wiped node is back,
	// before it can be caught up: the election that follows is where a
	// regressed vote would do its damage.
	killCortex := f.r.Chance(0.5)
	f.w.after(f.r.Between(time.Second, 8*time.Second), func() {
		f.guarded(func() {
			sn.restart()
			f.w.chk.topologyChanged()
			if c := f.w.cortex(); killCortex && c != nil && c != sn {
				f.w.after(f.r.Between(time.Millisecond, 50*time.Millisecond), f.crashNode(c))
			}
		})
	})
}

// wouldLeaveNoQuorum: a wiped voter's vote does not count until a Cortex
// has caught it up (rule 16), so in a membership whose other voters are not
// a quorum no Cortex could ever be elected again: a double fault the model
// does not draw. The operator keeps three voters, but a promotion lost in a
// failover can leave two and a learner (seed 303042).
func (f *Faults) wouldLeaveNoQuorum(sn *SimNode) bool {
	for _, o := range f.w.nodes {
		if !o.up() {
			continue
		}
		ms := o.n.Members()
		if m, ok := ms.Get(sn.id); ok && m.Voter() && ms.Voters()-1 < ms.Quorum() {
			return true
		}
	}
	return false
}
