package core

// Step feeds one message received at now. Messages from nodes outside the
// membership are accepted only from a Cortex (a joining node learns its
// membership from the log).
func (n *Node) Step(now Time, m Message) {
	n.advanceClock(now)
	if m.From == n.cfg.ID || !m.Type.Valid() {
		return
	}
	p := n.peer(m.From)
	p.kind, p.seenAt, p.hasSeen, p.epoch, p.role, p.store = m.Kind, n.now, true, m.Epoch, m.Role, m.Store
	if m.Type == MsgHeartbeat || m.Type == MsgSDown || m.Type == MsgVote {
		p.priority, p.prioHeard = m.Priority, true
	}
	if m.Role == RoleCortex {
		// A Cortex does not take itself for down, whatever it reported
		// before it won: a stale report must not make ODOWN (rule 3).
		p.down = false
	}
	switch m.Type {
	case MsgHeartbeat:
		n.stepHeartbeat(m, p)
	case MsgHeartbeatResp:
		n.stepHeartbeatResp(m)
	case MsgAppend:
		n.stepAppend(m)
	case MsgAppendResp:
		n.stepAppendResp(m)
	case MsgSDown:
		n.stepSDown(m, p)
	case MsgVote:
		n.stepVote(m, p)
	case MsgVoteResp:
		n.stepVoteResp(m)
	case MsgTimeoutNow:
		n.stepTimeoutNow(m)
	}
}

// heardCortex handles contact from the Cortex of epoch m.Epoch >= ours.
func (n *Node) heardCortex(m Message) {
	if m.Epoch > n.hs.Epoch || n.role == RoleCandidate || n.cortex != m.From {
		if n.role == RoleCortex && m.Epoch == n.hs.Epoch {
			n.event(Event{Kind: EventViolation, Node: m.From, Detail: "two Cortexes in one epoch"})
			return
		}
		n.becomeFollower(m.Epoch, m.From)
		n.echoAt = 0 // another Cortex, another clock
	}
	if m.SentAt >= n.echoAt {
		n.sanctioned = m.Handoff
	}
	n.echoAt = max(n.echoAt, m.SentAt)
	n.lastHeard, n.echoedAt = n.now, n.now
	n.hinted = false
	n.electionAt = Never
	if n.sdown {
		n.sdown = false
		n.odown = false
		n.event(Event{Kind: EventSDownCleared, Node: m.From})
		if n.isVoter() {
			n.report(false)
		} else {
			n.reportDue = Never
		}
	}
}

func (n *Node) stepHeartbeat(m Message, p *peerView) {
	p.last, p.followed, p.unheard = m.Last, m.Cortex, m.Unheard
	if m.Role != RoleCortex {
		// A peer's heartbeat: a higher epoch that already has a Cortex
		// means we are behind (rule 6).
		if m.Epoch > n.hs.Epoch && m.Cortex != "" && m.Cortex != n.cfg.ID {
			n.becomeFollower(m.Epoch, "")
		}
		return
	}
	if m.Epoch < n.hs.Epoch {
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, SentAt: m.SentAt, Last: n.log.last(), Reject: true})
		return
	}
	n.heardCortex(m)
	if n.role == RoleCortex {
		return
	}
	n.learnCommit(m.Commit)
	if m.Leased {
		n.noteFresh(m.Last)
	}
	n.send(Message{Type: MsgHeartbeatResp, To: m.From, SentAt: m.SentAt, Last: n.log.last()})
}

// learnCommit records a commit point heard from the Cortex. A data node
// takes it only if its log holds that position; a Sentinel keeps it to judge
// candidates (rule 5).
func (n *Node) learnCommit(c Pos) {
	if !n.hs.Commit.Less(c) {
		return
	}
	if n.cfg.Kind == KindSentinel || n.log.has(c) {
		n.hs.Commit = c
	}
}

// noteFresh records that this node holds everything the Cortex had when it
// sent a message carrying cortexLast. Only a message the Cortex sent within
// its lease counts (rule 12): past it a rival may lead, and what the old
// Cortex had says nothing about freshness.
//
// "Holds" means what a read served now would see: the driver serves a read
// from the state before the Ready that answers it, so entries of the Ready
// not yet taken do not count (with pipelined saves a group commit, or a
// truncation waiting for saves in flight, keeps it untaken a while:
// container CI, a bounded read on a node catching up missed a write
// acknowledged 3 s earlier).
func (n *Node) noteFresh(cortexLast Pos) {
	if n.rd.Truncate != nil {
		return
	}
	last := n.log.lastSeq()
	if k := len(n.rd.Entries); k > 0 {
		last = n.rd.Entries[0].Pos.Seq - 1
	}
	if last >= cortexLast.Seq && n.log.has(cortexLast) {
		n.freshAt = n.now
	}
}

func (n *Node) stepSDown(m Message, p *peerView) {
	p.last = m.Last
	p.down = m.Down
	p.downAt = n.now
	if n.role != RoleCortex {
		n.checkODown()
	}
	sm, member := n.members.Get(m.From)
	if m.Down && n.sdown && n.cfg.Kind != KindObserver && (!n.isVoter() || !member || !sm.Voter()) {
		// The memberships disagree: the sender's lists us as a voter (else
		// it would not report to us), ours does not list it as one, or not
		// us. One of us missed a change (an addition, or a learner's
		// promotion, while down or cut off), so our report() never reaches
		// it: answer its report, or
		// it never sees ODOWN and cannot run, though it may hold the only
		// copy of committed entries (seed 200351: a re-added node with the
		// newest log never ran, while the voters it needed campaigned
		// forever with a stale log and a vote that does not count; seed 426
		// on Pebble: the same with a promoted learner; seed 102453: a
		// promoted learner that crashed before it heard of its promotion).
		n.send(Message{Type: MsgSDown, To: m.From, Down: true, Last: n.log.last()})
	}
}
