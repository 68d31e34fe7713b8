package core

import (
	"fmt"
	"slices"
)

// Store identities (rule 16). A voter's promises — its vote, and the
// entries it acknowledged — live in its store. A store that was wiped,
// replaced or restored from an older copy no longer keeps them, so a member
// counts toward a quorum only with the store the membership recorded for
// it. A member reporting another store is, in effect, a learner: it
// replicates, and once it has everything the Cortex has, the Cortex records
// its new store and it counts again.

// counts reports whether member m, reporting store identity store, counts
// toward quorums: its vote, and its match for commit. A member the
// membership has not bound yet (Store 0: the bootstrap list, or a store
// first met a moment ago) counts, as before identities existed.
func (n *Node) counts(m Member, store uint64) bool {
	return m.Store == 0 || m.Store == store || n.cfg.Broken == BrokenNoStoreCheck
}

// selfCounts reports whether this node's own store is the one its
// membership records for it. A node that does not count does not run: its
// log may lack what it once acknowledged.
func (n *Node) selfCounts() bool {
	m, ok := n.self()
	return ok && n.counts(m, n.cfg.Store)
}

// peerCounts reports whether member m counts, by the store the Cortex's
// progress for it was measured on.
func (n *Node) peerCounts(m Member) bool {
	if m.ID == n.cfg.ID {
		return n.counts(m, n.cfg.Store)
	}
	pr := n.prog[m.ID]
	return pr != nil && n.counts(m, pr.store)
}

// noteStore is the Cortex seeing a member's store identity on an answer. A
// store that changed holds nothing the Cortex knew of: its progress starts
// over from a probe (rule 16).
func (n *Node) noteStore(id NodeID, pr *progress, store uint64) {
	if pr.store == store {
		return
	}
	if pr.store != 0 {
		n.event(Event{Kind: EventStoreChanged, Node: id, Detail: fmt.Sprintf(
			"member %s now reports store %016x instead of %016x (wiped, replaced or restored?): it counts toward no quorum until it has caught up",
			id, store, pr.store)})
		n.regressed(pr)
	}
	pr.store, pr.storeSince = store, n.now
}

// regressed forgets what the Cortex believed a peer held: the peer says it
// holds less. Replication restarts from where the peer is.
func (n *Node) regressed(pr *progress) {
	pr.match, pr.matchAt = 0, 0
	pr.inflight, pr.ackWait = 0, 0
	pr.snapshot = false
	pr.next = min(pr.next, n.log.lastSeq()+1)
}

// NotePeerAddr tells the core the MBP address a peer advertised when it
// connected, so the Cortex records it in the membership (rule 15).
func (n *Node) NotePeerAddr(now Time, id NodeID, addr string) {
	n.advanceClock(now)
	if id == n.cfg.ID || addr == "" || len(addr) > MaxAddrLen {
		return
	}
	n.peer(id).addr = addr
	if n.role == RoleCortex {
		n.maybeBind()
	}
}

// maybeBind is the Cortex keeping the membership true to what it sees: a
// caught-up learner becomes a voter, a caught-up member's store identity is
// recorded, and addresses are recorded as members advertise them. A
// promotion changes the voter set, so it waits until the last change has
// committed (rule 15); recording a store or an address changes no voter
// set, and must not wait: the change still committing may need exactly the
// member whose new store is being recorded.
func (n *Node) maybeBind() {
	if n.role != RoleCortex || n.xfer != nil {
		return
	}
	canPromote := n.changeAt <= n.hs.Commit.Seq
	ms := n.Members()
	changed := false
	for i := range ms {
		m := &ms[i]
		store, addr, caughtUp := n.cfg.Store, n.cfg.Addr, true
		if m.ID != n.cfg.ID {
			p, pr := n.peers[m.ID], n.prog[m.ID]
			if pr == nil {
				continue
			}
			store, addr = pr.store, ""
			if p != nil {
				addr = p.addr
			}
			caughtUp = n.caughtUp(*m, pr)
		}
		if m.Learner && caughtUp && canPromote {
			m.Learner = false
			n.event(Event{Kind: EventCaughtUp, Node: m.ID})
			changed = true
		}
		if store != 0 && m.Store != store && caughtUp && !m.Learner {
			// Its own store: it runs only if it counts (rule 16), so only a
			// broken variant (BrokenNoStoreCheck) gets here; it has no
			// progress of its own to date the store by.
			if m.Store != 0 && m.ID != n.cfg.ID && !n.leadsSince(n.prog[m.ID].storeSince, m.ID) {
				continue
			}
			if m.Store != 0 {
				n.event(Event{Kind: EventCaughtUp, Node: m.ID, Detail: fmt.Sprintf("member %s caught up on its new store %016x: it counts again", m.ID, store)})
			}
			m.Store = store
			changed = true
		}
		if addr != "" && m.Addr != addr {
			m.Addr = addr
			changed = true
		}
	}
	if changed {
		n.proposeMembers(0, ms)
	}
}

// leadsSince reports whether a quorum of voters counting with their
// recorded stores, not counting except, echoed this Cortex's messages sent
// at or after t: none of them had then joined a later epoch. A wiped
// member's new store is recorded only once that holds from when it was
// first heard. Its old store may have voted for, and acknowledged entries
// of, a later Cortex this one has not heard of; that Cortex's election
// quorum meets this quorum in a voter who would have refused us. Without
// the check, a deposed Cortex recorded a wiped member's new store, caught
// up only on the deposed Cortex's log, then committed, and was elected
// again, with its help (rule 16; seed 500117: a committed entry of the
// later epoch was lost).
func (n *Node) leadsSince(t Time, except NodeID) bool {
	got := 0
	for _, m := range n.members {
		if !m.Voter() || m.ID == except {
			continue
		}
		if m.ID == n.cfg.ID {
			if n.counts(m, n.cfg.Store) {
				got++
			}
			continue
		}
		if pr := n.prog[m.ID]; pr != nil && pr.echo >= t && n.counts(m, pr.store) {
			got++
		}
	}
	return got >= n.members.Quorum()
}

// caughtUp reports whether a member holds everything that may have been
// committed with the help of any store it held before: every entry below
// this Cortex's first one (the election restriction put them all here) and
// everything committed since. A Sentinel holds no log: answering a
// heartbeat that carried the commit point is all it needs.
func (n *Node) caughtUp(m Member, pr *progress) bool {
	if m.Kind == KindSentinel {
		return pr.echo > 0
	}
	return pr.match >= max(n.hs.Commit.Seq, n.epochStart)
}

// unheardVoters lists the voters this node has not heard from within an
// SDOWN window, for its heartbeats.
func (n *Node) unheardVoters() []NodeID {
	var out []NodeID
	for _, m := range n.members {
		if m.ID == n.cfg.ID || !m.Voter() {
			continue
		}
		if p := n.peers[m.ID]; p == nil || !p.hasSeen || n.now >= p.seenAt.Add(n.cfg.DownAfter()) {
			out = append(out, m.ID)
		}
	}
	return out
}

// bindKnown fills in the store identities and addresses the Cortex already
// knows, for the first membership it records (rule 15): every log is empty
// then, so every member that has spoken is caught up.
func (n *Node) bindKnown(ms Members) Members {
	ms = slices.Clone(ms)
	for i := range ms {
		m := &ms[i]
		if m.ID == n.cfg.ID {
			m.Store, m.Addr = n.cfg.Store, n.cfg.Addr
			continue
		}
		if p := n.peers[m.ID]; p != nil {
			if m.Store == 0 && !m.Learner {
				m.Store = p.store
			}
			if p.addr != "" {
				m.Addr = p.addr
			}
		}
	}
	return ms
}
