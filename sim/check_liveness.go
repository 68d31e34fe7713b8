package sim

import (
	"cmp"
	"slices"
	"time"

	"github.com/muninndb/muninn/core"
)

// failoverWatch: a Cortex crashed while a connected quorum of voters
// followed it and nothing else was wrong; a new Cortex must be elected
// within 3 × heartbeat + 500 ms (docs/protocol.md, "Timing").
type failoverWatch struct {
	from     core.NodeID
	epoch    core.Epoch
	at       int64
	deadline int64
}

// demoteWatch: a Cortex that cannot exchange messages with a quorum of
// voters must demote itself within QuorumLoss + one heartbeat (plus the
// clock-drift allowance) of the moment the quorum-th of them was last
// reachable.
type demoteWatch struct {
	epoch    core.Epoch
	since    int64
	deadline int64
}

// FailoverBound is the liveness bound on a clean failover.
func FailoverBound(hb time.Duration) time.Duration { return core.MissedBeats*hb + 500*time.Millisecond }

func (c *Checkers) watching() bool { return c.failover != nil }

// noteStall records an fsync that stalls until at (store_pipeline.go).
func (c *Checkers) noteStall(at int64) { c.stalledUntil = max(c.stalledUntil, at) }

func (c *Checkers) armFailover(from core.NodeID, epoch core.Epoch) {
	bound := FailoverBound(c.w.set.Heartbeat)
	fw := &failoverWatch{from: from, epoch: epoch, at: c.w.now, deadline: c.w.now + int64(bound)}
	c.failover = fw
	c.w.at(fw.deadline, func() {
		if c.failover != fw {
			return
		}
		if c.stalledUntil >= fw.at {
			// An fsync stalled during the window: votes wait for their
			// save, so this was not a clean failover.
			c.failover = nil
			return
		}
		c.violate("failover-time", true, from, "no new Cortex within "+bound.String()+" of the Cortex crashing with a connected quorum")
	})
}

func (c *Checkers) resolveFailover(sn *SimNode, epoch core.Epoch) {
	if fw := c.failover; fw != nil && epoch > fw.epoch {
		c.failovers = append(c.failovers, time.Duration(c.w.now-fw.at))
		c.failover = nil
	}
}

// reachable reports whether sn and voter v can exchange messages. A paused
// voter still counts: the heartbeats wait in its inbox and it echoes them
// when it resumes, which is contact by rule 1.
func (c *Checkers) reachable(sn, v *SimNode) bool {
	return v == sn || (v.up() && c.w.net.linkUp(sn.id, v.id) && c.w.net.linkUp(v.id, sn.id))
}

// cutOffSince returns when Cortex sn last had a quorum of voters to talk
// to, counting each voter's own last contact (the core's rule 11 counts
// the quorum-th newest echo the same way), or -1 if it has one now. The
// voters and the quorum are those of the membership the Cortex has in
// force, as in the core, and becoming Cortex counts as contact with each
// of them (a voter added since, unreachable since before, included).
func (c *Checkers) cutOffSince(sn *SimNode) int64 {
	ms := sn.n.Members()
	q := ms.Quorum()
	var times []int64
	reach := 0
	for _, m := range ms {
		v := c.w.node(m.ID)
		if !m.Voter() || v == nil {
			continue
		}
		if c.reachable(sn, v) {
			reach++
			times = append(times, c.w.now)
			continue
		}
		times = append(times, max(c.lastReach[[2]core.NodeID{sn.id, v.id}], sn.ledSince))
	}
	if reach >= q || len(times) < q {
		return -1
	}
	slices.SortFunc(times, func(a, b int64) int { return cmp.Compare(b, a) })
	return times[q-1]
}

// topologyChanged re-evaluates the demotion watches after any change of
// who can talk to whom (faults, restarts, elections), or of the voters a
// Cortex needs (membership changes).
func (c *Checkers) topologyChanged() {
	// Links up at the last evaluation were up until now.
	for _, sn := range c.w.nodes {
		for _, v := range c.w.nodes {
			k := [2]core.NodeID{sn.id, v.id}
			up := c.reachable(sn, v)
			if up || c.reachUp[k] {
				c.lastReach[k] = c.w.now
			}
			c.reachUp[k] = up
		}
	}
	for _, sn := range c.w.nodes {
		d := c.demote[sn.id]
		isCortex := sn.live() && sn.n.Role() == core.RoleCortex
		since := int64(-1)
		if isCortex {
			since = c.cutOffSince(sn)
		}
		if since < 0 {
			if d != nil {
				delete(c.demote, sn.id)
			}
			continue
		}
		if d != nil && d.epoch == sn.n.Epoch() && d.since == since {
			continue
		}
		drift := time.Duration(float64(core.DefaultQuorumLoss) * 0.02)
		bound := core.DefaultQuorumLoss + c.w.set.Heartbeat + drift + 50*time.Millisecond
		d = &demoteWatch{epoch: sn.n.Epoch(), since: since, deadline: since + int64(bound)}
		c.demote[sn.id] = d
		// A membership change can put the deadline in the past (a voter
		// unreachable for long is promoted, a reachable one removed): the
		// core demotes at its next tick, a moment from now.
		c.w.at(max(d.deadline, c.w.now+int64(10*time.Millisecond)), func() {
			// A Ready held for disk space stops the node as a pause does
			// (core.Driver.Held): it sends and answers nothing meanwhile.
			if c.demote[sn.id] == d && sn.live() && !sn.drv.Held() && sn.n.Role() == core.RoleCortex {
				c.violate("self-demotion", true, sn.id, "Cortex cut off from a quorum did not demote within "+bound.String())
			}
		})
	}
}

func (c *Checkers) resolveDemotion(sn *SimNode, d *demoteWatch) {
	c.demotions = append(c.demotions, time.Duration(c.w.now-d.since))
	delete(c.demote, sn.id)
}
