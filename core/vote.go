package core

import (
	"fmt"
	"time"
)

// campaign starts an election for epoch+1 (rule 4). A handoff candidate
// carries the Cortex's sanction (rule 14), and commits nothing before
// floor, what was left of that Cortex's own commit floor, waited from
// receipt (rule 18).
func (n *Node) campaign(handoff bool, floor time.Duration) {
	n.setEpoch(n.hs.Epoch + 1)
	n.hs.Vote, n.hs.VoteStore = n.cfg.ID, n.cfg.Store
	n.votes = map[NodeID]bool{n.cfg.ID: true}
	n.refusals = map[NodeID]bool{}
	n.setRole(RoleCandidate)
	n.commitFloor = 0
	if !handoff {
		// A handoff's Cortex gave up its lease first (rule 14).
		n.commitFloor = n.now.Add(n.leaseWait())
	} else if floor > 0 {
		n.commitFloor = n.now.Add(floor)
	}
	n.electionAt = Never
	n.electEnd = n.now.Add(n.cfg.Heartbeat)
	if handoff {
		// A handoff's target waits for its votes as long as its Cortex
		// waits for it (rule 14): a vote is persisted before it is sent
		// (rule 5), behind a loaded disk slower than a heartbeat; a later
		// epoch's candidate still ends this one (netns soak, observer x
		// churn: the old Cortex's vote went out 555 ms after it stepped
		// down, the target had given up at 250 ms, and the old Cortex was
		// elected again an SDOWN window later).
		n.electEnd = n.now.Add(n.cfg.DownAfter())
	}
	n.event(Event{Kind: EventElectionStarted, Node: n.cfg.ID})
	for _, m := range n.members {
		if m.ID != n.cfg.ID && m.Voter() {
			n.send(Message{Type: MsgVote, To: m.ID, Last: n.log.last(), Handoff: handoff})
		}
	}
	n.checkWon()
}

// considersCortexDown is the condition for an ordinary vote (rule 5): no
// word from a Cortex for a whole SDOWN window, or a crash hint since the
// last word (rule 18).
func (n *Node) considersCortexDown() bool {
	return n.role != RoleCortex && (n.hinted || n.now >= n.lastHeard.Add(n.cfg.DownAfter()))
}

// leaseWait is how long the lease of a Cortex this node last answered may
// still run: a vote granted now must make its candidate wait that out
// before committing (rule 18). It is 0 after a whole SDOWN window.
func (n *Node) leaseWait() time.Duration {
	left := n.echoedAt.Add(n.cfg.Lease()).Sub(n.now)
	if left <= 0 || n.cfg.Broken == BrokenTrustHint {
		return 0
	}
	// The drift margin: this clock may run slower than the old Cortex's.
	return left + n.cfg.DriftMargin()
}

func (n *Node) stepVote(m Message, p *peerView) {
	p.last = m.Last
	sanctioned := n.sanctioned // before a higher epoch clears it
	refuse := func() { n.send(Message{Type: MsgVoteResp, To: m.From, Granted: false}) }
	if n.role == RoleCandidate && m.Epoch == n.hs.Epoch && !m.Handoff {
		// Two candidates in one epoch: a split. Both know it now, so the
		// worse one (by rule 4's rank) stands back. The better one counts
		// the rival as a refusal and runs again at once only if it can no
		// longer win: the rival may already have won this epoch with the
		// other votes, and a new epoch would depose it (e2e
		// TestWalkthrough: a fresh cluster's first Cortex stepped down
		// at once, and none was elected until SDOWN 3 s later).
		refuse()
		mine := n.log.last()
		if mine.Less(m.Last) || (m.Last == mine && m.From < n.cfg.ID) {
			n.electEnd = Never
			n.votes, n.refusals = nil, nil
			n.setRole(n.followerRole())
			n.electionAt = n.now.Add(n.cfg.Heartbeat)
		} else {
			n.refused(m.From)
		}
		return
	}
	if m.Epoch < n.hs.Epoch || (m.Epoch == n.hs.Epoch && n.cortex != "") {
		refuse()
		return
	}
	// A voter whose own log does not record its store still votes: the
	// candidate decides whether the vote counts, by its own membership
	// (rule 16). A node that crashed before the entry recording its new
	// store reached it would otherwise refuse every candidate forever.
	if n.cfg.Kind == KindObserver {
		refuse()
		return
	}
	// A learner still votes: it may have been promoted in a membership it
	// has not received, and the candidate counts only the voters of its own
	// (as in Raft, a vote does not consult the voter's configuration; seed
	// 368: a promoted node that had not heard of its promotion refused every
	// candidate, and no Cortex could be elected).
	// A candidate runs by its own membership, which may be newer than
	// this voter's (a promotion or an addition it has not received yet):
	// as in Raft, the vote does not depend on the voter's view of it, only
	// on its kind (seed 1745: a lagging voter refused the added node that
	// held the newest log, and no Cortex could ever be elected). A known
	// Sentinel or Observer never gets a vote.
	if cand, ok := n.members.Get(m.From); (ok && cand.Kind != KindAuto) || (!ok && m.Kind != KindAuto) {
		refuse()
		return
	}
	if m.Handoff {
		// Sanctioned by the Cortex, which gave up its lease first.
		if m.Epoch > n.hs.Epoch+1 {
			refuse()
			return
		}
	} else if !n.considersCortexDown() {
		// The Cortex is alive as far as we know: refuse without taking
		// the epoch, so a cut-off node cannot disrupt a healthy cluster.
		refuse()
		return
	}
	if !n.upToDate(m.Last) {
		if m.Epoch > n.hs.Epoch {
			n.becomeFollower(m.Epoch, "")
		}
		refuse()
		if n.odown && n.mayRun() {
			// Our log is ahead of this candidate's: run by rank now rather
			// than after a fresh random wait, or a behind candidate that
			// retries fast starves the one that can win (seed 44: a
			// 3-node cluster with a wiped voter stayed without a Cortex).
			n.electionAt = min(n.electionAt, n.now.Add(time.Duration(n.rank())*n.stagger()))
		}
		return
	}
	if m.Epoch > n.hs.Epoch {
		n.becomeFollower(m.Epoch, "")
	}
	if n.hs.Vote != "" && (n.hs.Vote != m.From || n.hs.VoteStore != 0 && m.Store != n.hs.VoteStore) {
		// One vote per epoch (rule 5), for a candidate and its store (rule
		// 16): a node wiped since it got this vote is another candidate,
		// and leading the same epoch twice with two logs would break log
		// matching (seed 11413).
		refuse()
		return
	}
	// The vote is persisted (HardState) before this reply goes out.
	n.hs.Vote, n.hs.VoteStore = m.From, m.Store
	// Give the candidate its election time before running ourselves.
	n.electionAt = n.now.Add(n.cfg.Heartbeat + n.random(n.cfg.Heartbeat/2))
	resp := Message{Type: MsgVoteResp, To: m.From, Granted: true}
	if !m.Handoff || !sanctioned {
		// A sanctioned vote waits out no lease only while the last word
		// from the Cortex said it had given up its lease. A Cortex whose
		// handoff aborted leads again on echoes like ours, and a vote
		// request delayed past the abort would otherwise elect a rival
		// that commits while the old Cortex still serves lease reads
		// (rules 12, 18).
		resp.LeaseWait = n.leaseWait()
	}
	n.send(resp)
}

// upToDate is rule 5's log check: a data node compares last positions, a
// Sentinel compares with the commit point it last heard.
func (n *Node) upToDate(last Pos) bool {
	if n.cfg.Broken == BrokenNoLogCheck {
		return true
	}
	if n.cfg.Kind == KindSentinel {
		return !last.Less(n.hs.Commit)
	}
	return !last.Less(n.log.last())
}

func (n *Node) stepVoteResp(m Message) {
	if m.Epoch > n.hs.Epoch {
		n.becomeFollower(m.Epoch, "")
		return
	}
	if n.role != RoleCandidate || m.Epoch != n.hs.Epoch {
		return
	}
	if cand, ok := n.members.Get(m.From); m.Granted && ok && !n.counts(cand, m.Store) {
		// The voter's store is not the one it promised with (rule 16): a
		// wiped or restored voter may vote for a log that lacks what it
		// acknowledged, or twice in one epoch.
		n.event(Event{Kind: EventStoreChanged, Node: m.From, Detail: fmt.Sprintf(
			"vote from %s not counted: it reports store %016x, the membership records %016x (wiped, replaced or restored?); it counts again once the Cortex has caught it up",
			m.From, m.Store, cand.Store)})
		m.Granted = false
	}
	if !m.Granted {
		n.refused(m.From)
		return
	}
	n.votes[m.From] = true
	// Waited from receipt: the voter measured it before sending (rule 18).
	n.commitFloor = max(n.commitFloor, n.now.Add(m.LeaseWait))
	n.checkWon()
}

// refused counts a voter's refusal. Once more voters refused than the
// quorum can spare, the election is lost (a split vote, or a better
// candidate): no point waiting out the election timeout. Run again by rank,
// so the best candidate goes first (rule 4); a rival that won meanwhile
// reaches us first with its epoch-start entry.
func (n *Node) refused(voter NodeID) {
	n.refusals[voter] = true
	if len(n.refusals) > n.members.Voters()-n.members.Quorum() {
		n.electEnd = Never
		n.votes, n.refusals = nil, nil
		n.setRole(n.followerRole())
		n.electionAt = n.now.Add(time.Duration(n.rank())*n.stagger() + n.random(n.stagger()))
	}
}

func (n *Node) checkWon() {
	got := 0
	for _, m := range n.members {
		if m.Voter() && n.votes[m.ID] {
			got++
		}
	}
	if got >= n.members.Quorum() {
		n.becomeCortex(got)
	}
}

// becomeCortex takes over: epoch-start entry first (rule 6), then push.
func (n *Node) becomeCortex(votes int) {
	n.role = RoleCortex
	n.cortex = n.cfg.ID
	n.since, n.leaseFloor = n.now, n.now
	n.sdown, n.odown = false, false
	n.electEnd, n.electionAt, n.reportDue = Never, Never, Never
	n.votes = nil
	n.prog = map[NodeID]*progress{}
	last := n.log.lastSeq()
	for _, m := range n.members {
		if m.ID != n.cfg.ID {
			n.prog[m.ID] = &progress{next: last + 1}
		}
	}
	n.event(Event{Kind: EventElected, Node: n.cfg.ID, Votes: votes, Voters: n.members.Voters()})
	n.event(Event{Kind: EventRoleChanged, Role: RoleCortex, Node: n.cfg.ID})
	n.epochStart = n.appendLocal(Entry{Type: EntryEpochStart}).Seq
	if n.changeAt == 0 && n.log.snap.Seq == 0 {
		// Record the bootstrap membership in the log, so nodes that join
		// later learn it from replication, with the stores and addresses
		// already known (rules 15 and 16).
		n.proposeMembers(0, n.bindKnown(n.members))
	} else {
		n.maybeBind()
	}
	n.broadcastHeartbeat()
}
