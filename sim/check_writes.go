package sim

import (
	"bytes"

	"github.com/muninndb/muninn/core"
)

// onAck records an acknowledged write.
func (c *Checkers) onAck(op *Op) {
	if prev := c.ackedAt[op.Pos]; prev != nil {
		c.violate("unique-position", false, op.Node, "writes "+itoa(uint64(prev.ID))+" and "+itoa(uint64(op.ID))+" were both acknowledged at "+op.Pos.String())
		return
	}
	c.ackedAt[op.Pos] = op
	if op.Dur == core.Quorum {
		c.quorumAcks = append(c.quorumAcks, op)
	} else {
		c.localAcks = append(c.localAcks, op)
	}
}

// holds reports whether sn's log holds op's entry (or has compacted past it).
func holds(sn *SimNode, op *Op) bool {
	if op.Pos.Seq <= sn.st.Base().Seq {
		return true
	}
	e, ok := sn.st.EntryAt(op.Pos.Seq)
	return ok && e.Pos == op.Pos && bytes.Equal(e.Payload, op.Payload)
}

// checkQuorumAcksOn: every quorum-acknowledged write is on every later
// Cortex, checked the moment the core makes it Cortex (check.go,
// afterDrive).
func (c *Checkers) checkQuorumAcksOn(sn *SimNode) {
	for _, op := range c.quorumAcks {
		if !holds(sn, op) {
			c.violate("quorum-write-lost", false, sn.id, "new Cortex lacks quorum write "+itoa(uint64(op.ID))+" acknowledged at "+op.Pos.String())
			return
		}
	}
}

// noteWiped keeps the store a node lost to a wipe or a restore: a local
// write whose only copy was there is excused (the documented price of
// local), and only such a write.
func (c *Checkers) noteWiped(node core.NodeID, old nodeStore) {
	c.wiped[node] = append(c.wiped[node], old)
}

// noteRemoved keeps the store of a node the operator removed and stopped
// (workload_members.go): a local write only that node had (it was cut off
// as Cortex, then removed before it rejoined) stays on it, as with a wipe.
func (c *Checkers) noteRemoved(node core.NodeID, st nodeStore) {
	c.removed[node] = append(c.removed[node], st)
}

// lostWithWipe reports whether op was on a store its node lost.
func (c *Checkers) lostWithWipe(op *Op) bool { return onStores(c.wiped[op.Node], op) }

// lostWithRemoval reports whether op was on the store of its node, which
// was removed from the membership: stopped (noteRemoved kept the store), or
// not yet. The operator stops a removed node a moment after the removal
// commits, and phase 2 may converge first (it ignores non-members), so a
// node outside the final Cortex's membership that is not retired still
// holds its store, and a local write only it had is excused the same way.
func (c *Checkers) lostWithRemoval(cortex *SimNode, op *Op) bool {
	if onStores(c.removed[op.Node], op) {
		return true
	}
	sn := c.w.node(op.Node)
	if sn == nil || sn.retired {
		return false
	}
	if _, in := cortex.n.Members().Get(op.Node); in {
		return false
	}
	return onStores([]nodeStore{sn.st}, op)
}

// onStores reports whether op's entry is in one of sts, in the log or the
// quarantine.
func onStores(sts []nodeStore, op *Op) bool {
	for _, st := range sts {
		if e, ok := st.EntryAt(op.Pos.Seq); ok && e.Pos == op.Pos && bytes.Equal(e.Payload, op.Payload) {
			return true
		}
		for _, q := range st.Quarantined() {
			if q.Entry.Pos == op.Pos && bytes.Equal(q.Entry.Payload, op.Payload) {
				return true
			}
		}
	}
	return false
}

// checkFinalWrites runs after convergence: every acknowledged quorum write
// is on the Cortex; every acknowledged local write is on the Cortex or in a
// quarantine (its node has rejoined: phase 2 restarts every node).
func (c *Checkers) checkFinalWrites(cortex *SimNode) {
	c.checkQuorumAcksOn(cortex)
	c.checkSlots(cortex)
	c.checkReplays()
	quarantined := map[core.Pos][][]byte{}
	for _, sn := range c.w.nodes {
		for _, q := range sn.st.Quarantined() {
			quarantined[q.Entry.Pos] = append(quarantined[q.Entry.Pos], q.Entry.Payload)
		}
	}
	for _, op := range c.localAcks {
		if holds(cortex, op) {
			continue
		}
		found := false
		for _, p := range quarantined[op.Pos] {
			if bytes.Equal(p, op.Payload) {
				found = true
				break
			}
		}
		if !found && c.lostWithWipe(op) {
			c.w.stats.WipedLocal++
			continue
		}
		if !found && c.lostWithRemoval(cortex, op) {
			c.w.stats.RemovedLocal++
			continue
		}
		if !found {
			c.violate("local-write-lost", false, op.Node, "acknowledged local write "+itoa(uint64(op.ID))+" at "+op.Pos.String()+" is neither on the Cortex nor in a quarantine")
			return
		}
		c.w.stats.LostLocal++
	}
}

// onWriteAnswered: a write is acknowledged only once its entry is on this
// node's disk (the contract on core.Ready, steps 1 and 4).
func (c *Checkers) onWriteAnswered(sn *SimNode, r core.Result) {
	c.onWriteAcked(sn, r)
	if r.Pos.Seq <= sn.st.Base().Seq {
		return
	}
	if e, ok := sn.st.EntryAt(r.Pos.Seq); !ok || e.Pos != r.Pos || r.Pos.Seq > sn.synced {
		c.violate("ack-before-durable", false, sn.id, "write acknowledged at "+r.Pos.String()+" before its entry was stored and synced (the store's log ends at "+sn.st.Last().String()+", synced up to "+itoa(uint64(sn.synced))+")")
	}
}

// onInstalled: a node that installs a snapshot counts all of it committed
// (its log restarts at the snapshot's end), so a snapshot holds nothing
// beyond what some node knows committed (rule 7).
func (c *Checkers) onInstalled(sn *SimNode, in core.Installed) {
	c.w.stats.SnapshotsInstalled++
	var commit core.Seq
	for _, x := range c.w.nodes {
		if x.n != nil && x != sn {
			commit = max(commit, x.n.Commit().Seq)
		}
	}
	if in.Pos.Seq > commit {
		c.violate("snapshot-uncommitted", false, sn.id, "installed a snapshot ending at "+in.Pos.String()+", beyond every commit point known ("+itoa(uint64(commit))+")")
	}
}
