package core

// MaxPayload bounds one write's command.
const MaxPayload = 1 << 20

// Propose submits a client write with a durability level. Its Result comes
// in a later Ready (or this one): for Local once the entry is persisted on
// this node, for Quorum once it is durable on W data voters (rule 8).
func (n *Node) Propose(now Time, id uint64, payload []byte, d Durability) {
	n.advanceClock(now)
	if err := n.canWrite(d); err != nil {
		n.result(id, ResultWrite, Pos{}, err)
		return
	}
	if len(payload) > MaxPayload {
		n.result(id, ResultWrite, Pos{}, errorf(CodeBadRequest, "", "write of %d bytes exceeds the %d-byte limit", len(payload), MaxPayload))
		return
	}
	if d == Quorum {
		if err := n.commitBlocked(); err != nil {
			n.result(id, ResultWrite, Pos{}, err)
			return
		}
	}
	if len(n.reads) > 0 {
		// Strong reads wait until everything applied is committed; new
		// entries would keep them waiting, so writes queue behind them
		// (about one round trip).
		n.held = append(n.held, heldWrite{id: id, payload: payload, d: d})
		return
	}
	n.proposeNow(id, payload, d)
}

func (n *Node) proposeNow(id uint64, payload []byte, d Durability) {
	pos := n.appendLocal(Entry{Type: EntryData, Durability: d, Payload: payload})
	if d == Local && n.now < n.commitFloor {
		// Elected on crash hints: the old Cortex may still serve lease
		// reads that would miss it (rule 18). Answered at commitFloor.
		n.writes = append(n.writes, pendingWrite{id: id, pos: pos, local: true})
		return
	}
	if d == Local || pos.Seq <= n.hs.Commit.Seq {
		n.result(id, ResultWrite, pos, nil)
		return
	}
	n.writes = append(n.writes, pendingWrite{id: id, pos: pos})
}

// canWrite says why this node cannot take a write now (rule 13), or nil.
func (n *Node) canWrite(d Durability) *Error {
	switch {
	case n.cfg.Kind == KindSentinel || n.cfg.Kind == KindObserver:
		return errorf(CodeReadOnly, n.cortex, "this node is %s and takes no writes; send writes to the Cortex %s", article(n.cfg.Kind), orUnknown(n.cortex))
	case n.role != RoleCortex && n.cortex == "":
		return errorf(CodeNoCortex, "", "no Cortex is known (an election is under way); retry shortly")
	case n.role != RoleCortex:
		return errorf(CodeNotCortex, n.cortex, "this node is a Lobe; the Cortex is %s", n.cortex)
	case n.xfer != nil:
		return errorf(CodeTransferring, "", "a handoff to %s is under way; retry shortly", n.xfer.target)
	case d == Quorum && n.members.WriteQuorum() > n.members.DataVoters():
		return errorf(CodeQuorumImpossible, "", "quorum durability needs %d data voters but the cluster has %d; add data nodes or write with durability=local", n.members.WriteQuorum(), n.members.DataVoters())
	}
	return nil
}

func orUnknown(id NodeID) string {
	if id == "" {
		return "(unknown: election under way)"
	}
	return string(id)
}

// Read asks whether a read at level c may be served here (rule 12). The
// Result (in this or a later Ready) is OK when the driver may serve it from
// its own state machine, after applying that Ready's entries; otherwise its
// Err says where to forward (NotCortex with the Cortex) or why not.
func (n *Node) Read(now Time, id uint64, c Consistency, maxLagMs int64) {
	n.advanceClock(now)
	ok := func() { n.result(id, ResultRead, n.log.last(), nil) }
	if n.cfg.Kind == KindSentinel {
		n.result(id, ResultRead, Pos{}, errorf(CodeReadOnly, n.cortex, "this node is a sentinel and holds no data; read from %s", orUnknown(n.cortex)))
		return
	}
	switch c {
	case Eventual:
		ok()
	case Bounded:
		if n.role == RoleCortex {
			if err := n.boundedOnCortex(maxLagMs); err != nil {
				n.result(id, ResultRead, Pos{}, err)
				return
			}
			ok()
			return
		}
		if n.staleness() <= Time(maxLagMs)*1e6 {
			ok()
			return
		}
		n.notHere(id, "is more than the bound behind the Cortex")
	case Strong:
		if n.role != RoleCortex {
			n.notHere(id, "is not the Cortex")
			return
		}
		if n.xfer != nil {
			n.result(id, ResultRead, Pos{}, errorf(CodeTransferring, "", "a handoff is under way; retry shortly"))
			return
		}
		if n.members.WriteQuorum() > n.members.DataVoters() {
			n.result(id, ResultRead, Pos{}, errorf(CodeQuorumImpossible, "", "strong reads need commits on %d data voters but the cluster has %d", n.members.WriteQuorum(), n.members.DataVoters()))
			return
		}
		if err := n.commitBlocked(); err != nil {
			n.result(id, ResultRead, Pos{}, err)
			return
		}
		r := pendingRead{id: id, at: n.now, index: n.log.lastSeq(), lease: n.now < n.leaseUntil()}
		if !r.lease {
			// No lease: a quorum round from now (rule 12).
			n.broadcastHeartbeat()
		}
		n.reads = append(n.reads, r)
		n.completeReads()
	}
}

// staleness is how far behind the Cortex this node may be. A node that held
// everything the Cortex had at its last word, and heard from it within a
// heartbeat, has missed at most what is in flight: the Cortex pushes every
// entry at once when a link is idle.
func (n *Node) staleness() Time {
	if n.cortex == "" || n.freshAt == 0 {
		return Never
	}
	if n.freshAt == n.lastHeard && n.now < n.lastHeard.Add(n.cfg.Heartbeat+n.cfg.Heartbeat/2) {
		return 0
	}
	return n.now - n.freshAt
}

func (n *Node) notHere(id uint64, why string) {
	if n.cortex == "" || n.cortex == n.cfg.ID {
		n.result(id, ResultRead, Pos{}, errorf(CodeNoCortex, "", "this node %s and no Cortex is known; retry shortly", why))
		return
	}
	n.result(id, ResultRead, Pos{}, errorf(CodeNotCortex, n.cortex, "this node %s; read from the Cortex %s", why, n.cortex))
}

// completeReads answers strong reads once the Cortex knows it still leads
// (lease, or a quorum echoed a heartbeat sent after the read) and everything
// it had applied when the read came is committed, so nothing a read sees
// can be lost later.
func (n *Node) completeReads() {
	if len(n.reads) == 0 {
		return
	}
	contact := n.quorumContact(n.leaseFloor, false)
	kept := n.reads[:0]
	for _, r := range n.reads {
		confirmed := r.lease || contact >= r.at
		// The driver serves from a state machine that applies entries on
		// receipt: everything in it must be committed, not just what was
		// there when the read came, or a read can see a write that a
		// failover later removes.
		switch {
		case confirmed && r.admin != nil:
			n.result(r.id, ResultAdmin, Pos{}, r.admin)
		case confirmed && n.hs.Commit.Seq >= r.index && n.hs.Commit.Seq >= n.log.lastSeq():
			n.result(r.id, ResultRead, n.hs.Commit, nil)
		default:
			kept = append(kept, r)
		}
	}
	n.reads = kept
	n.releaseHeld()
}

// releaseHeld appends the writes queued behind strong reads once none
// waits any more.
func (n *Node) releaseHeld() {
	if len(n.reads) == 0 && len(n.held) > 0 {
		held := n.held
		n.held = nil
		for _, h := range held {
			n.proposeNow(h.id, h.payload, h.d)
		}
	}
}

type heldWrite struct {
	id      uint64
	payload []byte
	d       Durability
}

// failHeld answers writes queued behind strong reads that will not be
// appended: nothing of them reached the log, so a retry is safe.
func (n *Node) failHeld(err *Error) {
	for _, h := range n.held {
		n.result(h.id, ResultWrite, Pos{}, err)
	}
	n.held = nil
}

func article(k Kind) string {
	if k == KindObserver {
		return "an observer"
	}
	return "a " + k.String()
}
