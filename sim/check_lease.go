package sim

import "github.com/muninndb/muninn/core"

// checkLeaseOverlap: a Cortex commits nothing while a Cortex of an earlier
// epoch may still serve strong reads from its lease (rules 12 and 18), or a
// read it serves could miss a write the new one acknowledged. The old
// lease's end is on the old Cortex's clock; the check compares true times.
// A Cortex elected on crash hints waits it out; one elected after an SDOWN
// window finds it long over.
func (c *Checkers) checkLeaseOverlap(sn *SimNode) {
	commit := sn.n.Commit()
	if commit.Epoch != sn.n.Epoch() || !sn.commitSeen.Less(commit) {
		return
	}
	sn.commitSeen = commit
	c.leaseOverlap(sn, func() string { return "committed " + commit.String() })
}

// onWriteAcked: the same for a write answered (a local write is answered
// before it commits).
func (c *Checkers) onWriteAcked(sn *SimNode, r core.Result) {
	if sn.n != nil && sn.n.Role() == core.RoleCortex && r.Err == nil {
		c.leaseOverlap(sn, func() string { return "acknowledged a write at " + r.Pos.String() })
	}
}

// what describes the event, formatted only for a violation: the check runs
// on every commit and every acknowledged write.
func (c *Checkers) leaseOverlap(sn *SimNode, what func() string) {
	for _, o := range c.w.nodes {
		if o == sn || o.n == nil || o.n.Role() != core.RoleCortex || o.n.Epoch() >= sn.n.Epoch() {
			continue
		}
		if end := o.global(o.n.Status().LeaseUntil); end > c.w.now {
			c.violate("lease-overlap", false, sn.id, "Cortex of epoch "+itoa(uint64(sn.n.Epoch()))+" "+what()+
				" while "+string(o.id)+", Cortex of epoch "+itoa(uint64(o.n.Epoch()))+", still holds its lease for "+itoa(uint64((end-c.w.now)/1e6))+" ms")
			return
		}
	}
}
