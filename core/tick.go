package core

import (
	"cmp"
	"slices"
	"time"
)

// Tick advances the node's clock to now and does whatever time demands:
// heartbeats, SDOWN, elections, batch flushes, retransmissions, quorum
// self-demotion. It is safe to call at any time; NextDeadline says when it
// must be called next.
func (n *Node) Tick(now Time) {
	n.advanceClock(now)
	if n.role == RoleCortex {
		n.tickCortex()
	} else {
		n.tickFollower()
	}
}

func (n *Node) advanceClock(now Time) {
	if now <= n.now {
		return
	}
	// A driver ticks at least every heartbeat (NextDeadline never lies
	// further out), so a longer gap means this process was frozen (a pause,
	// a stall, starvation) with the Cortex's heartbeats likely queued
	// unread. Like Redis Sentinel's TILT, time spent frozen is not taken as
	// the Cortex's silence: a follower counts it as heard. This only delays
	// this node's SDOWN and vote, which is always safe. A Cortex's lease is
	// untouched (its echoes are what they are).
	if gap := now.Sub(n.now); gap > n.cfg.Heartbeat+n.cfg.Heartbeat/2 && n.role != RoleCortex && n.lastHeard < n.now {
		n.lastHeard = min(now, n.lastHeard.Add(gap))
	}
	n.now = now
}

// NextDeadline returns the time by which Tick must be called next (Never
// when nothing is pending). Ticking earlier is harmless.
func (n *Node) NextDeadline() Time {
	d := n.hbDue
	if n.role == RoleCortex {
		if n.cfg.Broken != BrokenNoDemotion {
			d = min(d, n.demoteAt())
		}
		for _, m := range n.members {
			pr := n.prog[m.ID]
			if pr == nil {
				continue
			}
			// A full window or a snapshot in flight waits for an answer,
			// not the batch timer (else NextDeadline stays in the past).
			if pr.pendingSince != 0 && !pr.snapshot && pr.inflight < n.cfg.MaxInflight && pr.next <= n.log.lastSeq() {
				d = min(d, pr.pendingSince.Add(n.cfg.BatchDelay))
			}
			if pr.inflight > 0 {
				d = min(d, pr.lastSend.Add(n.resendAfter()))
			}
		}
		if n.xfer != nil {
			d = min(d, n.xfer.deadline)
		}
		if n.commitFloor > n.now {
			d = min(d, n.commitFloor)
		}
		return min(d, n.reachDeadline())
	}
	if !n.sdown {
		d = min(d, n.lastHeard.Add(n.cfg.DownAfter()))
	}
	d = min(d, n.reportDue, n.electionAt, n.electEnd)
	return d
}

func (n *Node) resendAfter() time.Duration {
	return max(20*n.cfg.BatchDelay, n.cfg.Heartbeat/4)
}

// broadcastHeartbeat sends MSP heartbeats to every member (rule 1).
func (n *Node) broadcastHeartbeat() {
	var unheard []NodeID
	leased := false
	if n.role != RoleCortex {
		unheard = n.unheardVoters()
	} else {
		leased = n.now < n.leaseUntil()
	}
	for _, m := range n.members {
		if m.ID == n.cfg.ID {
			continue
		}
		hb := Message{Type: MsgHeartbeat, To: m.ID, Cortex: n.cortex, Last: n.log.last()}
		if n.role == RoleCortex {
			hb.SentAt = n.now
			hb.Commit = n.commitFor(m.ID)
			hb.Leased = leased
		} else {
			hb.Unheard = unheard
		}
		n.send(hb)
	}
	n.hbDue = n.now.Add(n.cfg.Heartbeat)
	if n.role == RoleCortex {
		n.hbDue = n.now.Add(n.cfg.LeaseBeat())
	}
}

func (n *Node) tickCortex() {
	if n.demoteAt() <= n.now && n.cfg.Broken != BrokenNoDemotion {
		n.demote()
		n.tickFollower()
		return
	}
	if n.xfer != nil && n.now >= n.xfer.deadline {
		n.abortTransfer("the target did not catch up and win in time")
	}
	if n.now >= n.hbDue {
		n.broadcastHeartbeat()
	}
	if n.commitFloor != 0 && n.now >= n.commitFloor {
		n.commitFloor = 0
		n.advanceCommit()
		n.answerHeldLocal()
		n.maybeTimeoutNow()
	}
	for _, m := range n.members {
		if pr := n.prog[m.ID]; pr != nil && pr.inflight > 0 && n.now >= pr.lastSend.Add(n.resendAfter()) {
			// An append or its answer was lost: go back to what is known
			// it holds, or to what it last said it holds (a probe: a
			// refusal walks back from there), not to nothing.
			pr.inflight = 0
			pr.next = max(pr.match, min(pr.reported, n.log.lastSeq())) + 1
			if !pr.heard {
				// Nothing known of it since this node became Cortex: probe
				// with an empty append at our end, retried like any other;
				// its answer (or refusal, which also fences a stale peer)
				// says where it is.
				pr.next = n.log.lastSeq() + 1
				n.send(Message{Type: MsgAppend, To: m.ID, Prev: n.log.last(), Commit: n.commitCapped(pr.match), SentAt: n.now, Last: n.log.last()})
				pr.inflight, pr.lastSend = 1, n.now
			}
		}
		n.maybeSend(m.ID)
	}
	n.completeReads()
	n.answerBlocked()
}

// answerHeldLocal answers the local writes held until commitFloor: they
// are persisted here, which is all local durability promises (rule 8).
func (n *Node) answerHeldLocal() {
	kept := n.writes[:0]
	for _, w := range n.writes {
		if w.local {
			n.result(w.id, ResultWrite, w.pos, nil)
		} else {
			kept = append(kept, w)
		}
	}
	n.writes = kept
}

func (n *Node) tickFollower() {
	if n.now >= n.hbDue {
		n.broadcastHeartbeat()
	}
	if !n.sdown && n.now >= n.lastHeard.Add(n.cfg.DownAfter()) {
		n.sdown = true
		if n.cortex != "" || n.hs.Epoch > 0 {
			n.event(Event{Kind: EventSDown, Node: n.cortex})
		}
		n.reportDue = n.now
	}
	if n.sdown && n.now >= n.reportDue {
		if n.isVoter() {
			n.report(true)
		} else {
			// Observers and learners report nothing; re-check a beat later
			// (a past reportDue would make NextDeadline spin).
			n.reportDue = n.now.Add(n.cfg.Heartbeat)
		}
	}
	n.checkODown()
	if n.role == RoleCandidate && n.now >= n.electEnd {
		// Lost or split: wait a random backoff and try again (rule 4).
		n.electEnd = Never
		n.votes = nil
		n.setRole(n.followerRole())
		n.electionAt = n.now.Add(n.cfg.Heartbeat/4 + n.random(n.cfg.Heartbeat))
	}
	if n.role != RoleCandidate && n.now >= n.electionAt {
		n.electionAt = Never
		if n.odown && n.sdown && n.mayRun() {
			n.campaign(false, 0)
		}
	}
}

// report tells the other voters whether this node considers the Cortex down.
func (n *Node) report(down bool) {
	for _, m := range n.members {
		if m.ID != n.cfg.ID && m.Voter() {
			n.send(Message{Type: MsgSDown, To: m.ID, Down: down, Last: n.log.last()})
		}
	}
	if down {
		n.reportDue = n.now.Add(n.cfg.Heartbeat)
	} else {
		n.reportDue = Never
	}
}

// reportValid: a report counts while it is fresh; dead reporters stop
// refreshing theirs.
func (n *Node) reportValid(p *peerView) bool {
	return p.down && n.now < p.downAt.Add(2*n.cfg.Heartbeat)
}

// checkODown counts SDOWN reports from voters (rule 3) and, on ODOWN,
// schedules this node's candidacy by rank (rule 4).
func (n *Node) checkODown() {
	if !n.sdown || !n.isVoter() {
		n.odown = false
		return
	}
	count := 0
	for _, m := range n.members {
		if !m.Voter() {
			continue
		}
		if m.ID == n.cfg.ID {
			count++
		} else if p := n.peers[m.ID]; p != nil && m.ID != n.cortex && n.reportValid(p) {
			count++
		}
	}
	was := n.odown
	n.odown = count >= n.members.Quorum()
	if n.odown && was && n.electionAt == Never && n.role != RoleCandidate && n.mayRun() {
		// A rival's higher epoch ended our candidacy (becomeFollower) while
		// the Cortex stays down: without this nothing would ever run again.
		n.electionAt = n.now.Add(n.cfg.Heartbeat/4 + n.random(n.cfg.Heartbeat) + time.Duration(n.rank())*n.stagger())
	}
	if !n.odown || was {
		return
	}
	if n.hs.Epoch > 0 || n.cortex != "" {
		n.event(Event{Kind: EventODown, Node: n.cortex, Votes: count, Voters: n.members.Voters()})
	}
	if !n.mayRun() || n.role == RoleCandidate {
		return
	}
	if n.hs.Vote != "" && n.hs.Vote != n.cfg.ID && n.electionAt != Never {
		// It granted its vote in this epoch: that candidate gets its
		// election time first (rule 4), even if this node reaches ODOWN
		// only now (at a cluster's start both come within a millisecond).
		return
	}
	n.electionAt = min(n.electionAt, n.now.Add(time.Duration(n.rank())*n.stagger()))
}

func (n *Node) stagger() time.Duration { return n.cfg.Heartbeat / 4 }

// rank is this node's place among the live data voters that may run, best
// first: highest (epoch, seq), then lowest cluster.priority, then lowest id
// (rule 4). Rank 0 runs at once. Freshness comes first, so a preference
// never costs a committed write.
func (n *Node) rank() int {
	mine := n.log.last()
	r := 0
	for _, m := range n.members {
		if m.ID == n.cfg.ID || !m.DataVoter() || n.sdown && m.ID == n.cortex {
			// The Cortex we take for down is no rival, however recently a
			// crash hint says we heard it (rule 18).
			continue
		}
		p := n.peers[m.ID]
		// A live peer counts even before its SDOWN report arrives (its
		// heartbeats carry its last position): else two good candidates
		// that each reach ODOWN first both run at once and split the vote.
		if p == nil || !(n.reportValid(p) || p.hasSeen && n.now < p.seenAt.Add(n.cfg.DownAfter())) {
			continue
		}
		if p.priority == 0 {
			continue // never runs, or not heard yet
		}
		if mine.Less(p.last) || p.last == mine && (p.priority < n.priority() || p.priority == n.priority() && m.ID < n.cfg.ID) {
			r++
		}
	}
	return r
}

// demoteAt is when the Cortex must demote itself without a quorum's echo
// (rule 11). Becoming Cortex counts as contact with everyone.
func (n *Node) demoteAt() Time {
	return n.quorumContact(n.since, true).Add(n.cfg.QuorumLoss)
}

// quorumContact is the newest time t such that a quorum of voters (this
// node counting as now) echoed a heartbeat sent at or after t. An echo older
// than floor counts as floor when grace is set, and not at all otherwise.
func (n *Node) quorumContact(floor Time, grace bool) Time {
	const none = Time(-1 << 62)
	var times []Time
	for _, m := range n.members {
		if !m.Voter() {
			continue
		}
		if m.ID == n.cfg.ID {
			times = append(times, n.now)
			continue
		}
		t := none
		if pr := n.prog[m.ID]; pr != nil && pr.echo >= floor {
			t = pr.echo
		} else if grace {
			t = floor
		}
		times = append(times, t)
	}
	q := n.members.Quorum()
	if len(times) < q {
		return none
	}
	slices.SortFunc(times, func(a, b Time) int { return cmp.Compare(b, a) })
	return times[q-1]
}

// leaseUntil is when the Cortex's lease ends: a quorum of voters echoed a
// heartbeat sent at t, so none of them votes before t + DownAfter on its own
// clock (rules 1 and 5), and a Cortex elected on crash hints commits nothing
// before t + Lease (rule 18); the drift margin covers clocks running apart.
// Only echoes of heartbeats sent since leaseFloor count.
func (n *Node) leaseUntil() Time {
	return n.quorumContact(n.leaseFloor, false).Add(n.cfg.Lease() - n.cfg.DriftMargin())
}

func (n *Node) demote() {
	n.demoteFor("no heartbeat echo from a quorum of voters for " + n.cfg.QuorumLoss.String())
}

// demoteFor gives up the Cortex role for why (rule 11, or StepDown).
func (n *Node) demoteFor(why string) {
	n.stepDownCleanup(EventDemoted, why)
	n.cortex = ""
	n.setRole(n.followerRole())
	// It just led: it has heard itself, and must not vote for a rival
	// before its own lease has run out.
	n.lastHeard = n.now
	n.sdown = false
}
