package core

import "slices"

// TransferCortex hands the Cortex role to target (or, when target is "",
// the most caught-up data voter): stop taking writes, wait until the target
// has everything, then tell it to run at once (rule 14). If it has not won
// within DownAfter the handoff aborts and writes resume. The Result (Admin)
// comes when the Cortex steps down for the target, or on abort.
func (n *Node) TransferCortex(now Time, id uint64, target NodeID) {
	n.advanceClock(now)
	if n.role != RoleCortex {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeNotCortex, n.cortex, "only the Cortex can hand off; the Cortex is %s", orUnknown(n.cortex)))
		return
	}
	if n.xfer != nil {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBusy, "", "a handoff to %s is already under way", n.xfer.target))
		return
	}
	in, _ := n.reachable()
	if target == "" {
		var best Seq
		var bestPrio uint16
		var unsaid NodeID
		for _, m := range n.members {
			pr := n.prog[m.ID]
			prio, heard := n.peerPriority(m.ID)
			if !m.DataVoter() || pr == nil || !slices.Contains(in, m.ID) {
				continue
			}
			if !heard {
				unsaid = m.ID
				continue
			}
			if prio == 0 {
				continue
			}
			if target == "" || pr.match > best || pr.match == best && prio < bestPrio {
				target, best, bestPrio = m.ID, pr.match, prio
			}
		}
		if target == "" && unsaid != "" {
			n.result(id, ResultAdmin, Pos{}, prioUnsaid(unsaid))
			return
		}
		if target == "" {
			n.result(id, ResultAdmin, Pos{}, errorf(CodeUnavailable, "", "no other data voter answers (within %s) to hand off to", n.cfg.DownAfter()))
			return
		}
	}
	if m, ok := n.members.Get(target); !ok || !m.DataVoter() || target == n.cfg.ID {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBadRequest, "", "%s is not another data voter of this cluster; pick a Lobe from muninn cluster info", target))
		return
	}
	if prio, heard := n.peerPriority(target); !heard && slices.Contains(in, target) {
		n.result(id, ResultAdmin, Pos{}, prioUnsaid(target))
		return
	} else if heard && prio == 0 {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBadRequest, "", "%s has cluster.priority 0 (never Cortex); pick another Lobe from muninn cluster info", target))
		return
	}
	if !slices.Contains(in, target) {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeUnavailable, "", "%s has not answered within %s (down, cut off, or its disk is full): hand off to a Lobe that answers", target, n.cfg.DownAfter()))
		return
	}
	n.xfer = &transfer{target: target, deadline: n.now.Add(n.cfg.DownAfter()), id: id}
	n.failHeld(errorf(CodeTransferring, "", "a handoff to %s is under way; retry shortly", target))
	n.event(Event{Kind: EventHandoffStarted, Node: target})
	// The lease is given up now: voters grant the target's sanctioned vote
	// without waiting out an SDOWN window, and, once a heartbeat saying so
	// (Handoff) reached them, without waiting out a lease.
	n.leaseFloor = Never
	n.broadcastHeartbeat()
	n.maybeTimeoutNow()
}

// peerPriority is a member's cluster.priority as its messages said, and
// whether one has said it (its heartbeats, SDOWN reports and votes carry
// it; 0 means never Cortex).
func (n *Node) peerPriority(id NodeID) (uint16, bool) {
	if p := n.peers[id]; p != nil && p.prioHeard {
		return p.priority, true
	}
	return 0, false
}

// prioUnsaid: a Lobe that answers but has sent no heartbeat yet (this node
// just started or just won) has not said its priority. Busy, so the API's
// admin retry asks again after its next heartbeat.
func prioUnsaid(id NodeID) *Error {
	return errorf(CodeBusy, "", "%s has not said its cluster.priority yet (no heartbeat from it since this Cortex started); retry in a heartbeat", id)
}

func (n *Node) maybeTimeoutNow() {
	x := n.xfer
	if x == nil || x.sent {
		return
	}
	if n.now < n.commitFloor {
		// Elected on crash hints: an older Cortex's lease may still run,
		// and a sanctioned vote waits out none (rule 18). Tick hands off
		// once it has passed.
		return
	}
	if pr := n.prog[x.target]; pr != nil && pr.match == n.log.lastSeq() {
		x.sent = true
		n.send(n.timeoutNow(x.target))
	} else {
		n.maybeSend(x.target)
	}
}

func (n *Node) abortTransfer(why string) {
	n.event(Event{Kind: EventHandoffAborted, Node: n.xfer.target, Detail: why})
	n.result(n.xfer.id, ResultAdmin, Pos{}, errorf(CodeUnavailable, "", "handoff to %s aborted: %s; this node stays Cortex", n.xfer.target, why))
	n.xfer = nil
	n.leaseFloor = n.now
}

func (n *Node) stepTimeoutNow(m Message) {
	if m.Epoch != n.hs.Epoch || m.From != n.cortex || !n.mayRun() || n.role == RoleCortex {
		return
	}
	n.campaign(true, m.LeaseWait)
}

// AddMember adds a node (rule 15): a data node joins as a learner and is
// promoted by the Cortex once caught up; Sentinels and Observers join as
// they are. One change at a time. The Result (Admin) comes at commit.
func (n *Node) AddMember(now Time, id uint64, m Member) {
	n.advanceClock(now)
	if err := n.canChange(); err != nil {
		n.result(id, ResultAdmin, Pos{}, err)
		return
	}
	m.Store = 0 // recorded once it has caught up (rule 16)
	if m.ID == "" || len(m.ID) > MaxNodeIDLen {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBadRequest, "", "node id must be 1 to %d bytes", MaxNodeIDLen))
		return
	}
	if _, ok := n.members.Get(m.ID); ok {
		n.confirmThen(id, errorf(CodeBadRequest, "", "%s is already a member", m.ID))
		return
	}
	if len(n.members) >= MaxMembers {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBadRequest, "", "the cluster already has %d members", MaxMembers))
		return
	}
	m.Learner = m.Kind == KindAuto
	n.proposeMembers(id, append(n.Members(), m).Normalize())
}

// RemoveMember removes a node (rule 15). The Cortex cannot remove itself:
// hand off first.
func (n *Node) RemoveMember(now Time, id uint64, node NodeID) {
	n.advanceClock(now)
	if err := n.canChange(); err != nil {
		n.result(id, ResultAdmin, Pos{}, err)
		return
	}
	if node == n.cfg.ID {
		n.result(id, ResultAdmin, Pos{}, errorf(CodeBadRequest, "", "%s is the Cortex: hand off first (muninn cluster failover --yes), then remove it", node))
		return
	}
	if _, ok := n.members.Get(node); !ok {
		n.confirmThen(id, errorf(CodeBadRequest, "", "%s is not a member", node))
		return
	}
	var ms Members
	for _, m := range n.members {
		if m.ID != node {
			ms = append(ms, m)
		}
	}
	n.proposeMembers(id, ms)
}

// confirmThen gives an admin answer read from the membership once this
// Cortex knows it still leads (its lease, or a quorum round, as a strong
// read): a retry after an unknown outcome takes "not a member" as done, and
// a deposed Cortex's membership may be stale (model seed 7033: a Cortex
// whose handoff target had won while it was cut off answered "not a member"
// for a node the new Cortex's membership still held, and the operator
// stopped a voter).
func (n *Node) confirmThen(id uint64, err *Error) {
	r := pendingRead{id: id, at: n.now, index: n.log.lastSeq(), lease: n.now < n.leaseUntil(), admin: err}
	if !r.lease {
		n.broadcastHeartbeat()
	}
	n.reads = append(n.reads, r)
	n.completeReads()
}

func (n *Node) canChange() *Error {
	if n.role != RoleCortex {
		return errorf(CodeNotCortex, n.cortex, "membership changes go to the Cortex %s", orUnknown(n.cortex))
	}
	if n.xfer != nil {
		return errorf(CodeTransferring, "", "a handoff is under way; retry shortly")
	}
	if err := n.commitBlocked(); err != nil {
		// A change that cannot commit would block every later one (rule 17).
		return err
	}
	if n.changeAt > n.hs.Commit.Seq {
		return errorf(CodeBusy, "", "a membership change is still committing; retry shortly")
	}
	return nil
}

func (n *Node) proposeMembers(id uint64, ms Members) {
	pos := n.appendLocal(Entry{Type: EntryMembership, Payload: EncodeMembers(ms)})
	if id != 0 {
		if pos.Seq <= n.hs.Commit.Seq {
			n.result(id, ResultAdmin, pos, nil)
		} else {
			n.adminWait = append(n.adminWait, pendingWrite{id: id, pos: pos})
		}
	}
}

// TakesSnapshot reports whether a snapshot ending at pos would move this
// node forward: SnapshotInstalled ignores one whose pos the log already
// holds with nothing missing before it, or one at or below its own
// compacted prefix (seed 15: a new Cortex's checkpoint, capped at its
// commit point, cut back a Lobe that had compacted past it). The driver
// asks before the store
// replaces anything (rule 7), so a stream that arrives late (its Cortex
// deposed, or the node caught up by appends meanwhile) never cuts back a
// log whose entries this node has acknowledged.
func (n *Node) TakesSnapshot(pos Pos) bool {
	if pos.Seq <= n.log.snap.Seq {
		return false // compacted past it: everything there is committed
	}
	return n.log.last().Less(pos) || !n.log.has(pos)
}

// SnapshotInstalled tells a follower its driver installed a snapshot taken
// at pos, by a Cortex of epoch, with membership ms: the log restarts there,
// and the node moves to that epoch if it was behind.
func (n *Node) SnapshotInstalled(now Time, pos Pos, epoch Epoch, ms Members) {
	n.advanceClock(now)
	if epoch > n.hs.Epoch {
		n.becomeFollower(epoch, n.cortex)
	}
	if !n.log.last().Less(pos) && n.log.has(pos) {
		return
	}
	n.log = raftLog{snap: pos}
	n.durable = pos.Seq
	n.base = ms.Normalize()
	n.recomputeMembers()
	n.rd.Members = n.members
	if n.hs.Commit.Less(pos) {
		n.hs.Commit = pos
	}
	if n.cortex != "" {
		n.send(Message{Type: MsgAppendResp, To: n.cortex, Match: pos, SentAt: n.echoAt})
	}
}

// SnapshotDeclined tells a follower its driver did not install a snapshot
// ending at pos: the log already holds it (TakesSnapshot), or installing
// failed (pos is then zero). The Cortex, which waits for an answer before
// it replicates to this node again (rule 7), is told what the log holds in
// agreement with it: pos, or the compacted prefix, which is committed
// (seeds 15 and 440: without this answer the Cortex waited on the snapshot
// forever).
func (n *Node) SnapshotDeclined(now Time, pos Pos) {
	n.advanceClock(now)
	if n.cortex == "" || n.role == RoleCortex {
		return
	}
	match := n.log.snap
	if n.log.has(pos) {
		match = pos
	}
	n.send(Message{Type: MsgAppendResp, To: n.cortex, Match: match, SentAt: n.echoAt})
}

// SnapshotFailed tells the Cortex a snapshot to a peer did not complete, so
// it tries again.
func (n *Node) SnapshotFailed(now Time, to NodeID) {
	n.advanceClock(now)
	if pr := n.prog[to]; pr != nil {
		pr.snapshot = false
	}
}
