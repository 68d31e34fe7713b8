package core

import "slices"

// PeerStatus is the node's view of one member.
type PeerStatus struct {
	ID      NodeID
	Kind    Kind
	Learner bool
	// Match is what the Cortex knows the peer holds (Cortex only).
	Match Seq
	// Echo is the newest heartbeat send time the peer echoed (Cortex only).
	Echo Time
	// Seen is when this node last heard from the peer (0: never).
	Seen Time
	// Last is the peer's last position as last reported.
	Last Pos
	Role Role
	// Store is the store identity the peer last reported; Counts whether
	// it is the one the membership records (rule 16).
	Store  uint64
	Counts bool
	// Addr is the peer's MBP address as recorded or last seen.
	Addr string
	// Unheard lists the voters the peer reported not hearing from.
	Unheard []NodeID
	// Priority is the peer's cluster.priority as it last said (0: never
	// Cortex, or not said yet: PriorityKnown tells which).
	Priority      uint16
	PriorityKnown bool
}

// Status is a snapshot of the node's protocol state, for APIs and checkers.
type Status struct {
	ID         NodeID
	Kind       Kind
	Role       Role
	Epoch      Epoch
	Vote       NodeID
	Cortex     NodeID
	Last       Pos
	Commit     Pos
	Snap       Pos
	SDown      bool
	ODown      bool
	LeaseUntil Time // Cortex only: strong reads need no round before this
	Staleness  Time // followers: how far behind the Cortex this node may be
	Handoff    NodeID
	Members    Members
	Peers      []PeerStatus
	Quorum     int
	WriteQ     int
	// Store is this node's store identity; StoreCounts whether it is the
	// one the membership records for it (rule 16).
	Store       uint64
	StoreCounts bool
	// CommitBlocked says why the Cortex cannot commit now (rule 17): ""
	// when it can, or on other nodes.
	CommitBlocked string
	// Priority is this node's cluster.priority (0: never Cortex).
	Priority uint16
	// CommitFloor: elected on crash hints, this Cortex commits nothing
	// before it (rule 18); 0 when it does not wait.
	CommitFloor Time
}

// Status returns the node's state at its current time.
func (n *Node) Status() Status {
	s := Status{
		ID: n.cfg.ID, Kind: n.cfg.Kind, Role: n.role, Epoch: n.hs.Epoch, Vote: n.hs.Vote,
		Cortex: n.cortex, Last: n.log.last(), Commit: n.hs.Commit, Snap: n.log.snap,
		SDown: n.sdown, ODown: n.odown, Members: n.Members(),
		Quorum: n.members.Quorum(), WriteQ: n.members.WriteQuorum(),
		Store: n.cfg.Store, StoreCounts: n.selfCounts(), Priority: n.priority(),
	}
	if n.role == RoleCortex {
		s.LeaseUntil = n.leaseUntil()
		if n.commitFloor > n.now {
			s.CommitFloor = n.commitFloor
		}
		if err := n.commitBlocked(); err != nil {
			s.CommitBlocked = err.Msg
		}
	} else {
		s.Staleness = n.staleness()
	}
	if n.xfer != nil {
		s.Handoff = n.xfer.target
	}
	for _, m := range n.members {
		if m.ID == n.cfg.ID {
			continue
		}
		ps := PeerStatus{ID: m.ID, Kind: m.Kind, Learner: m.Learner, Addr: m.Addr, Counts: true}
		if p := n.peers[m.ID]; p != nil {
			ps.Seen, ps.Last, ps.Role, ps.Store, ps.Priority, ps.PriorityKnown = p.seenAt, p.last, p.role, p.store, p.priority, p.prioHeard
			ps.Unheard = slices.Clone(p.unheard)
			ps.Counts = n.counts(m, p.store)
			if ps.Addr == "" {
				ps.Addr = p.addr
			}
		}
		if pr := n.prog[m.ID]; pr != nil {
			ps.Match, ps.Echo = pr.match, pr.echo
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}

// Now returns the node's clock as last advanced.
func (n *Node) Now() Time { return n.now }
