package sim

import "github.com/muninndb/muninn/core"

// onAppend: a node never accepts entries from a Cortex whose epoch is lower
// than the one it has persisted, and never holds an entry from an epoch it
// has not reached. Sentinels never store entries.
func (c *Checkers) onAppend(sn *SimNode, es []core.Entry, cause *core.Message, persisted core.Epoch) {
	if sn.spec.Kind == core.KindSentinel {
		c.violate("sentinel-no-data", false, sn.id, "a sentinel persisted "+itoa(uint64(len(es)))+" entries")
		return
	}
	if cause != nil && cause.Type == core.MsgAppend && cause.Epoch < persisted {
		c.violate("stale-epoch-entry", false, sn.id, "accepted entries from "+string(cause.From)+" in epoch "+itoa(uint64(cause.Epoch))+" below the persisted epoch "+itoa(uint64(persisted)))
		return
	}
	for _, e := range es {
		if hs := sn.st.HardState(); e.Pos.Epoch > hs.Epoch {
			c.violate("stale-epoch-entry", false, sn.id, "entry "+e.Pos.String()+" is from beyond the persisted epoch "+itoa(uint64(hs.Epoch)))
			return
		}
	}
}

// onPersisted checks log matching incrementally: every entry persisted
// after prev gets a chained hash (of prev's hash and the entry), and two
// logs holding the same (epoch, seq) must have the same hash there, i.e.
// agree on everything up to it. A node whose entry at prev differed from
// the first one recorded there was caught when it persisted prev.
func (c *Checkers) onPersisted(sn *SimNode, prev core.Pos, e core.Entry) {
	chain := chainHash(c.posChain[prev], e)
	if h, ok := c.posChain[e.Pos]; ok {
		if h != chain {
			c.violate("log-matching", false, sn.id, "logs holding "+e.Pos.String()+" disagree on the entries up to it")
		}
		return
	}
	c.posChain[e.Pos] = chain
}

// onTruncate: an acknowledged quorum write is never truncated.
func (c *Checkers) onTruncate(sn *SimNode, t *core.Truncation, removed []core.Entry) {
	for _, e := range removed {
		if op := c.ackedAt[e.Pos]; op != nil && op.Dur == core.Quorum {
			c.violate("quorum-write-lost", false, sn.id, "acknowledged quorum write at "+e.Pos.String()+" truncated: "+t.Reason)
			return
		}
	}
}
