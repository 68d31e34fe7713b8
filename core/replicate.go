package core

import "fmt"

// maxBatchBytes caps one append's payload.
const maxBatchBytes = 4 << 20

// appendLocal appends an entry of the Cortex's epoch and schedules it for
// every peer (rule 7).
func (n *Node) appendLocal(e Entry) Pos {
	e.Pos = Pos{Epoch: n.hs.Epoch, Seq: n.log.lastSeq() + 1}
	n.log.append(e)
	n.rd.Entries = append(n.rd.Entries, e)
	if e.Type == EntryMembership {
		n.applyMembership()
		n.syncProgress()
	}
	for _, m := range n.members {
		if pr := n.prog[m.ID]; pr != nil && pr.pendingSince == 0 {
			pr.pendingSince = n.now
		}
	}
	n.advanceCommit()
	for _, m := range n.members {
		n.maybeSend(m.ID)
	}
	return e.Pos
}

// syncProgress adds progress for new members and drops removed ones.
func (n *Node) syncProgress() {
	for _, m := range n.members {
		if m.ID != n.cfg.ID && n.prog[m.ID] == nil {
			n.prog[m.ID] = &progress{next: n.log.lastSeq() + 1}
		}
	}
	for id := range n.prog {
		if _, ok := n.members.Get(id); !ok {
			delete(n.prog, id)
		}
	}
}

// maybeSend pushes entries to a peer by the batching rule: at once when the
// link is idle, otherwise when 100 entries wait or the oldest has waited
// 5 ms; never more than MaxInflight appends unanswered.
func (n *Node) maybeSend(id NodeID) {
	pr := n.prog[id]
	if pr == nil || pr.snapshot {
		return
	}
	m, _ := n.members.Get(id)
	if m.Kind == KindSentinel {
		pr.pendingSince = 0 // Sentinels hold no data; heartbeats carry the commit point
		return
	}

	last := n.log.lastSeq()
	for pr.next <= last && pr.inflight < n.cfg.MaxInflight {
		waiting := int(last - pr.next + 1)
		if pr.inflight > 0 && waiting < n.cfg.BatchSize && n.now < pr.pendingSince.Add(n.cfg.BatchDelay) {
			return
		}
		prevSeq := pr.next - 1
		prevEpoch, ok := n.log.epochAt(prevSeq)
		if !ok && !pr.heard {
			// Probe first (rule 7): the peer has not answered this Cortex,
			// so "it needs entries we no longer have" is only a guess (a
			// retransmit went back to match 0). Its answer to a heartbeat
			// says where it is; a snapshot only if the log cannot serve it.
			pr.pendingSince = 0
			return
		}
		if !ok {
			// The peer needs entries we no longer have: snapshot (rule 7),
			// at most one started per SDOWN window, so a peer that cannot
			// take one (a full disk) is not sent checkpoints back to back.
			if pr.snapshotAt != 0 && n.now < pr.snapshotAt.Add(n.cfg.DownAfter()) {
				pr.pendingSince = 0
				return
			}
			pr.snapshot, pr.snapshotAt = true, n.now
			pr.pendingSince = 0
			n.rd.Snapshots = append(n.rd.Snapshots, SnapshotSend{To: id})
			return
		}
		hi := min(last, pr.next+Seq(n.cfg.BatchSize)-1)
		es := n.log.slice(pr.next, hi, maxBatchBytes)
		n.send(Message{Type: MsgAppend, To: id, Prev: Pos{Epoch: prevEpoch, Seq: prevSeq},
			Entries: es, Commit: n.commitCapped(es[len(es)-1].Pos.Seq), SentAt: n.now, Last: n.log.last(), Leased: n.now < n.leaseUntil()})
		pr.next += Seq(len(es))
		if pr.ackWait == 0 {
			pr.ackWait = n.now
		}
		pr.inflight++
		pr.lastSend = n.now
		pr.pendingSince = 0
		if pr.next <= last {
			pr.pendingSince = n.now
		}
	}
}

// commitFor is the commit point to tell a peer: capped at what it holds.
func (n *Node) commitFor(id NodeID) Pos {
	if m, ok := n.members.Get(id); ok && m.Kind == KindSentinel {
		return n.hs.Commit
	}
	pr := n.prog[id]
	if pr == nil {
		return Pos{}
	}
	return n.commitCapped(pr.match)
}

func (n *Node) commitCapped(s Seq) Pos {
	c := n.hs.Commit
	if s < c.Seq {
		if e, ok := n.log.epochAt(s); ok {
			return Pos{Epoch: e, Seq: s}
		}
		return Pos{}
	}
	return c
}

// answerFrom handles what every answer to the Cortex shares: a higher
// epoch deposes it (rule 6); otherwise the echoed send time is quorum
// contact (rule 1). It returns the peer's progress, or nil to stop.
func (n *Node) answerFrom(m Message) *progress {
	if m.Epoch > n.hs.Epoch {
		n.becomeFollower(m.Epoch, "")
		return nil
	}
	if n.role != RoleCortex || m.Epoch != n.hs.Epoch {
		return nil
	}
	pr := n.prog[m.From]
	if pr == nil {
		return nil
	}
	n.noteStore(m.From, pr, m.Store)
	pr.heard = true
	if m.SentAt > pr.echo {
		pr.echo = m.SentAt
	}
	return pr
}

func (n *Node) stepAppendResp(m Message) {
	pr := n.answerFrom(m)
	if pr == nil {
		return
	}
	if pr.inflight > 0 {
		pr.inflight--
	}
	if m.Reject {
		if m.SentAt >= pr.backAt {
			pr.reported = m.Hint.Seq
		}
		// Step back to where the logs may agree (rule 7).
		back := m.Hint.Seq + 1
		if e, ok := n.log.epochAt(m.Hint.Seq); ok && e != m.Hint.Epoch && m.Hint.Seq > 0 {
			// The peer's entries up to the hint are of epochs at most
			// the hint's; ours of a later epoch cannot match them, so
			// skip them all at once, not one entry per round trip
			// (model seed 7983: a Lobe with 100 divergent entries never
			// caught up, the resend timer undoing the walk back).
			back = n.log.hintBefore(m.Hint.Seq-1, m.Hint.Epoch).Seq + 1
		}
		if back <= pr.match {
			if m.SentAt > pr.matchAt {
				// Asked after it acknowledged match, the peer says it
				// holds less: believe it (rule 16).
				n.event(Event{Kind: EventStoreChanged, Node: m.From, Detail: fmt.Sprintf(
					"member %s holds less than it acknowledged (had %d, now refuses after %s): replicating again from there", m.From, pr.match, m.Hint)})
				n.regressed(pr)
			} else {
				back = pr.match + 1 // an answer older than the match
			}
		}
		if back < pr.next && m.SentAt >= pr.backAt {
			pr.next = back
			pr.inflight = 0
			pr.backAt = n.now
		}
		// (A refusal of an append sent before the last step back is
		// stale: the appends sent since answer for themselves. Acting on
		// each sent the same appends again, each refused in turn: a storm
		// that grew without bound, model seed 23784.)
	} else {
		pr.snapshot = false
		pr.ackWait = 0 // it stores what it is sent
		if pr.inflight > 0 {
			pr.ackWait = n.now
		}
		if m.Match.Seq > pr.match && n.log.has(m.Match) || m.Match.Seq > pr.match && m.Match.Seq <= n.log.snap.Seq {
			pr.match, pr.matchAt = m.Match.Seq, max(pr.matchAt, m.SentAt)
		}
		if pr.next <= pr.match {
			pr.next = pr.match + 1
		}
		n.advanceCommit()
		n.maybeBind()
		n.maybeTimeoutNow()
	}
	n.maybeSend(m.From)
	n.completeReads()
}

func (n *Node) stepHeartbeatResp(m Message) {
	pr := n.answerFrom(m)
	if pr == nil {
		return
	}
	if pr.snapshot && m.SentAt > pr.snapshotAt && m.Last.Seq >= n.log.snap.Seq {
		// The peer holds what appends can follow from again: the snapshot
		// was installed (its answer may have been lost, seed 5035) or was
		// not needed. Appends find where it stands (rule 7).
		pr.snapshot = false
		pr.next = max(pr.match, m.Last.Seq) + 1
		pr.inflight = 0
	}
	if pr.snapshot && m.SentAt > pr.snapshotAt.Add(n.cfg.DownAfter()) && m.Last.Seq < n.log.snap.Seq {
		// A whole SDOWN window after the snapshot started, the peer
		// answers and still lacks it: the stream or the answer (a
		// declined install, for a full disk) was lost. Send it again;
		// the runner starts no second stream while one runs (sim seed
		// 501378: lost, never sent again, the learner never caught up).
		pr.snapshot = false
	}
	if m.Last.Seq < pr.match && m.SentAt > pr.matchAt && !pr.snapshot {
		// Asked after it acknowledged match, the peer holds less: its log
		// went back (rule 16). Believe it and replicate from there.
		n.event(Event{Kind: EventStoreChanged, Node: m.From, Detail: fmt.Sprintf(
			"member %s holds less than it acknowledged (had %d, now at %s): replicating again from there", m.From, pr.match, m.Last)})
		n.regressed(pr)
	}
	pr.reported = m.Last.Seq
	// The peer may have lost an append: restart from what it has.
	if pr.inflight == 0 && !pr.snapshot && m.Last.Seq+1 < pr.next {
		pr.next = max(pr.match, m.Last.Seq) + 1
	}
	// Everything was sent and answered, yet the peer has not matched our
	// last entry (its log diverges past our end, so the check above never
	// fires): go back to what it is known to hold.
	if pr.inflight == 0 && !pr.snapshot && pr.next > n.log.lastSeq() && pr.match < n.log.lastSeq() {
		pr.next = pr.match + 1
	}
	n.maybeBind()
	n.maybeSend(m.From)
	n.completeReads()
}

// commitUnder is the highest seq durable on W counted data voters of ms
// (0 if none can be), each counted with the store the latest membership
// records for it.
func (n *Node) commitUnder(ms Members) Seq { return n.commitCounting(ms, true) }

// commitCounting is commitUnder; with latest false each member counts with
// the store ms itself records.
func (n *Node) commitCounting(ms Members, latest bool) Seq {
	w := ms.WriteQuorum()
	if w > ms.DataVoters() {
		return 0
	}
	var matches []Seq
	for _, m := range ms {
		if !m.DataVoter() {
			continue
		}
		if cur, ok := n.members.Get(m.ID); ok && latest {
			m = cur // the store it counts with is the latest record (rule 16)
		}
		switch {
		case !n.peerCounts(m):
			matches = append(matches, 0) // another store: it counts once caught up (rule 16)
		case m.ID == n.cfg.ID:
			// Only what its own save has made durable (rule 8): its
			// appends went out before that save completed.
			matches = append(matches, min(n.durable, n.log.lastSeq()))
		case n.prog[m.ID] != nil:
			matches = append(matches, n.prog[m.ID].match)
		default:
			matches = append(matches, 0) // no longer replicated to
		}
	}
	if len(matches) < w {
		return 0
	}
	sortDesc(matches)
	return matches[w-1]
}

// storesChanged reports whether b records, for a voter a had bound to a
// store, another store.
func storesChanged(a, b Members) bool {
	for _, m := range a {
		if x, ok := b.Get(m.ID); ok && m.Voter() && m.Store != 0 && x.Store != m.Store {
			return true
		}
	}
	return false
}

// canCommitWithout reports whether W data voters of a remain whose store b
// does not change.
func canCommitWithout(a, b Members) bool {
	k := 0
	for _, m := range a {
		if x, ok := b.Get(m.ID); ok && m.DataVoter() && (m.Store == 0 || x.Store == m.Store) {
			k++
		}
	}
	return k >= a.WriteQuorum()
}

// votersChanged counts the voters in one of a and b and not the other
// (recording a store or an address changes none). Rule 15 changes one at a
// time; the runner's rename of a standalone node's only voter
// (adoptStandalone) changes two, and nobody else could elect by the old
// name.
func votersChanged(a, b Members) int {
	n := 0
	for _, m := range a {
		if x, ok := b.Get(m.ID); m.Voter() && (!ok || !x.Voter()) {
			n++
		}
	}
	for _, m := range b {
		if x, ok := a.Get(m.ID); m.Voter() && (!ok || !x.Voter()) {
			n++
		}
	}
	return n
}

// advanceCommit moves the commit point to the highest own-epoch entry
// durable on W data voters (rules 8 and 9), and answers quorum writes.
func (n *Node) advanceCommit() {
	c := n.commitUnder(n.members)
	// changeAt first: membersAt scans the log back (15 µs a write when it
	// ran on every proposal).
	if n.changeAt > n.hs.Commit.Seq {
		if old := n.membersAt(n.hs.Commit.Seq); votersChanged(old, n.members) == 1 {
			// A membership change is not committed yet: nodes that have
			// not received it still elect by the previous membership,
			// whose election quorums a W of the new one need not meet
			// when W is below a majority (an even number of voters).
			// Until it commits, an entry commits only on W voters of both
			// (rule 15; seed 2549).
			c = min(c, n.commitUnder(old))
		}
		if old := n.membersAt(n.hs.Commit.Seq); storesChanged(old, n.members) && canCommitWithout(old, n.members) {
			// A new store recorded for a member counts only once its
			// record has committed on W data voters counted with the
			// stores recorded before (rule 16). The echo check before
			// recording it (leadsSince) cannot see a voter that echoed
			// this Cortex and then voted for a rival holding the old
			// store's vote (review of 25cb1ff: a delayed handoff vote).
			// Where W data voters do not remain without the changed
			// members (two data voters and a Sentinel) no such rival can
			// be elected without this Cortex, and waiting would deadlock.
			c = min(c, n.commitCounting(old, false))
		}
	}
	if c <= n.hs.Commit.Seq {
		return
	}
	if n.now < n.commitFloor {
		// Elected on crash hints: the old Cortex may still hold a lease
		// and serve reads that must not miss what we would commit (rule
		// 18). Tick commits once commitFloor passes.
		return
	}
	e, ok := n.log.epochAt(c)
	if !ok || e != n.hs.Epoch {
		return // earlier epochs' entries commit only with one of ours
	}
	n.hs.Commit = Pos{Epoch: e, Seq: c}
	kept := n.writes[:0]
	for _, w := range n.writes {
		if w.pos.Seq <= c {
			n.result(w.id, ResultWrite, w.pos, nil)
		} else {
			kept = append(kept, w)
		}
	}
	n.writes = kept
	keptAdmin := n.adminWait[:0]
	for _, a := range n.adminWait {
		if a.pos.Seq <= c {
			n.result(a.id, ResultAdmin, a.pos, nil)
		} else {
			keptAdmin = append(keptAdmin, a)
		}
	}
	n.adminWait = keptAdmin
	n.maybeCompact()
}

func sortDesc(s []Seq) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// maybeCompact lets the driver prune entries every member has, keeping
// LogTail of them for peers that fall a little behind.
func (n *Node) maybeCompact() {
	upto := n.hs.Commit.Seq
	if n.role == RoleCortex {
		for _, m := range n.members {
			if m.Kind == KindSentinel || m.ID == n.cfg.ID {
				continue
			}
			if pr := n.prog[m.ID]; pr != nil && pr.match < upto {
				upto = pr.match
			}
		}
	}
	if upto <= Seq(n.cfg.LogTail) {
		return
	}
	upto -= Seq(n.cfg.LogTail)
	// Compact in steps so the driver prunes in chunks, not per entry.
	if upto < n.log.snap.Seq+Seq(n.cfg.LogTail) {
		return
	}
	ms := n.membersAt(upto)
	n.log.compact(upto)
	n.base = ms
	n.rd.Compact = &Compaction{Upto: n.log.snap, Members: ms}
}
