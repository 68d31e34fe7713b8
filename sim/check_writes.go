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
	if op.Pos.Seq <= sn.st.snap.Seq {
		return true
	}
	e, ok := sn.st.entryAt(op.Pos.Seq)
	return ok && e.Pos == op.Pos && bytes.Equal(e.Payload, op.Payload)
}

// checkQuorumAcksOn: every quorum-acknowledged write is on every later
// Cortex, checked the moment it is elected.
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
func (c *Checkers) noteWiped(node core.NodeID, old *Store) {
	c.wiped[node] = append(c.wiped[node], old)
}

// lostWithWipe reports whether op was on a store its node lost.
func (c *Checkers) lostWithWipe(op *Op) bool {
	for _, st := range c.wiped[op.Node] {
		if e, ok := st.entryAt(op.Pos.Seq); ok && e.Pos == op.Pos && bytes.Equal(e.Payload, op.Payload) {
			return true
		}
		for _, q := range st.quarantine {
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
		for _, q := range sn.st.quarantine {
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
		if !found {
			c.violate("local-write-lost", false, op.Node, "acknowledged local write "+itoa(uint64(op.ID))+" at "+op.Pos.String()+" is neither on the Cortex nor in a quarantine")
			return
		}
		c.w.stats.LostLocal++
	}
}
