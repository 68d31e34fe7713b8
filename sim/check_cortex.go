package sim

import "github.com/muninndb/muninn/core"

// checkOneCortex: at most one Cortex per epoch, ever.
func (c *Checkers) checkOneCortex(sn *SimNode, epoch core.Epoch) {
	if id, ok := c.cortexOf[epoch]; ok {
		if id != sn.id {
			c.violate("one-cortex-per-epoch", false, sn.id, "epoch "+itoa(uint64(epoch))+" already had Cortex "+string(id))
		}
		return
	}
	c.cortexOf[epoch] = sn.id
}

// checkEpochMonotonic: a node's epoch never goes backwards, across restarts
// too (the in-memory epoch is checked here, the persisted one in
// onHardState).
func (c *Checkers) checkEpochMonotonic(sn *SimNode) {
	e := sn.n.Epoch()
	if len(sn.applies) > 0 || sn.drv.Pending() > 0 || sn.n.HasReady() {
		// Saves in flight: what a crash keeps is the synced epoch.
		e = min(e, sn.syncedEpoch)
	}
	if e < sn.maxEpoch {
		c.violate("epoch-monotonic", false, sn.id, "epoch went from "+itoa(uint64(sn.maxEpoch))+" back to "+itoa(uint64(e)))
		return
	}
	sn.maxEpoch = e
}

func (c *Checkers) onHardState(sn *SimNode, prev, hs core.HardState) {
	if hs.Epoch < prev.Epoch {
		c.violate("epoch-monotonic", false, sn.id, "persisted epoch went from "+itoa(uint64(prev.Epoch))+" back to "+itoa(uint64(hs.Epoch)))
	}
	if hs.Epoch == prev.Epoch && prev.Vote != "" && hs.Vote != prev.Vote {
		c.violate("one-vote-per-epoch", false, sn.id, "vote in epoch "+itoa(uint64(hs.Epoch))+" changed from "+string(prev.Vote)+" to "+string(hs.Vote))
	}
}
