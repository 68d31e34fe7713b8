package sim

import "github.com/muninndb/muninn/core"

// onSend: Observers never vote, and neither do learners.
func (c *Checkers) onSend(sn *SimNode, m core.Message) {
	if m.Type == core.MsgAppendResp && !m.Reject && (sn.st.Last().Less(m.Match) || m.Match.Seq > sn.synced || !holdsPos(sn.st, m.Match)) {
		// An acknowledgement promises the entries are on disk (the
		// contract on core.Ready, step 1): that very entry, not another
		// epoch's at its seq (seed 507710 acknowledged 2.46 over 4.46).
		msg := "answered an append up to " + m.Match.String() + " while the store's log ends at " + sn.st.Last().String() + ", synced up to " + itoa(uint64(sn.synced))
		if e, ok := sn.st.EntryAt(m.Match.Seq); ok && e.Pos != m.Match {
			msg += ", and holds " + e.Pos.String() + " at that seq"
		}
		c.violate("ack-before-durable", false, sn.id, msg)
		return
	}
	if m.Type != core.MsgVoteResp || !m.Granted {
		return
	}
	if sn.spec.Kind == core.KindObserver {
		c.violate("observer-voted", false, sn.id, "an observer granted a vote to "+string(m.To))
		return
	}
	// A learner may vote (it may have been promoted in a membership it has
	// not received): the candidate counts only its own voters, which
	// check_cortex.go's one-Cortex-per-epoch and the write checkers judge.
}

// onReceive is a hook for message-level checks on delivery.
func (c *Checkers) onReceive(sn *SimNode, m core.Message) {}

// checkSentinels: Sentinels hold no data, at the end of a run.
func (c *Checkers) checkSentinels() {
	for _, sn := range c.w.nodes {
		if sn.spec.Kind == core.KindSentinel && (sn.st.Last().Seq > sn.st.Base().Seq || dataLen(sn.st.Data()) > 0) {
			c.violate("sentinel-no-data", false, sn.id, "a sentinel holds data")
		}
	}
}

// holdsPos reports whether st holds the entry at p (or compacted past it).
func holdsPos(st nodeStore, p core.Pos) bool {
	if p.Seq <= st.Base().Seq {
		return true
	}
	e, ok := st.EntryAt(p.Seq)
	return ok && e.Pos == p
}
