package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/muninndb/muninn/core"
)

// SoleVoter is what ForceSoleVoter changed: the store's place before and
// after, and the membership it wrote.
type SoleVoter struct {
	Node core.NodeID
	// Before: the hard state and last entry the store held, and its
	// membership.
	Before        core.HardState
	BeforeLast    core.Pos
	BeforeMembers core.Members
	// Epoch is the new epoch, Entry the membership entry written in it
	// (the new last entry). The commit point is unchanged.
	Epoch   core.Epoch
	Entry   core.Pos
	Members core.Members
	// Learners are the former data members kept as learners (Observers
	// stay Observers, in Members); Dropped the Sentinels left out.
	Learners []core.NodeID
	Dropped  []core.NodeID
}

// ForceSoleVoter makes member id, whose store this is, the only voter of a
// new epoch: the disaster-recovery step of muninn cluster recover --force,
// for a cluster whose quorum is gone for good. The store must be closed to
// every node (the caller holds it open; a running node holds Pebble's
// LOCK, so Open fails). One atomic save writes:
//
//   - the hard state: epoch E = max(hard state epoch, highest epoch
//     recorded, last entry's epoch, minEpoch) + 1, no vote, the commit
//     point unchanged. minEpoch is the highest epoch any other survivor
//     reported: E is above every epoch a survivor has seen, so the
//     survivors follow the recovered node when they hear it (rule 6);
//   - a membership entry at the last seq + 1, of epoch E, whose membership
//     has id as its only voter, with this store's identity (rule 16), and
//     every other data member as a learner with no store recorded (it
//     catches up and is promoted again: rules 15, 16). Observers stay
//     Observers. Sentinels are dropped: a Sentinel holds no data, so it
//     cannot be a learner, and kept as a voter it would be half of a quorum
//     of two that the recovered node cannot reach alone; the operator adds
//     it again (muninn cluster add-node --kind sentinel).
//
// Every entry the store holds is kept, those above the commit point too:
// a quorum may have acknowledged them. Nothing is committed here: the node,
// sole voter, elects itself once started and its first entry commits them
// all (rule 9). A store with no epoch (never part of an elected cluster)
// is refused, as is an id that is not a data voter of its membership.
func (s *Store) ForceSoleVoter(id core.NodeID, minEpoch core.Epoch, now int64) (SoleVoter, error) {
	s.mu.Lock()
	hs, last, maxEpoch := s.hs, s.last, s.maxEpoch
	ms := slices.Clone(s.members)
	identity := s.identity
	s.mu.Unlock()
	out := SoleVoter{Node: id, Before: hs, BeforeLast: last, BeforeMembers: ms}
	if hs.Epoch == 0 {
		return out, fmt.Errorf("store %s has no epoch: it was never part of an elected cluster, so there is nothing to recover (start the node as it is)", s.dir)
	}
	me, ok := ms.Get(id)
	if !ok || !me.DataVoter() {
		why := "is not a member"
		if ok {
			why = "is a member but not a data voter (" + memberDesc(me) + ")"
		}
		return out, fmt.Errorf("store %s: %s %s of its membership, whose data voters are %s: give one of them as --node, with its own data directory",
			s.dir, id, why, dataVoters(ms))
	}
	out.Epoch = max(hs.Epoch, maxEpoch, last.Epoch, minEpoch) + 1
	var next core.Members
	for _, m := range ms {
		switch {
		case m.ID == id:
			m.Learner, m.Store = false, identity
		case m.Kind == core.KindSentinel:
			out.Dropped = append(out.Dropped, m.ID)
			continue
		default:
			// A data node (auto) becomes a learner; an Observer never
			// votes and stays one. Neither counts with a store until the
			// new Cortex has caught it up (rule 16).
			m.Learner, m.Store = m.Kind == core.KindAuto, 0
			if m.Learner {
				out.Learners = append(out.Learners, m.ID)
			}
		}
		next = append(next, m)
	}
	out.Members = next.Normalize()
	out.Entry = core.Pos{Epoch: out.Epoch, Seq: last.Seq + 1}
	e := core.Entry{Pos: out.Entry, Type: core.EntryMembership, Payload: core.EncodeMembers(out.Members)}
	nhs := core.HardState{Epoch: out.Epoch, Commit: hs.Commit}
	if err := s.Save(SaveBatch{HardState: &nhs, Entries: []core.Entry{e}, Members: out.Members, Now: now}, true); err != nil {
		return out, fmt.Errorf("store %s: write the new epoch and membership: %w", s.dir, err)
	}
	return out, nil
}

func dataVoters(ms core.Members) string {
	var ids []string
	for _, m := range ms {
		if m.DataVoter() {
			ids = append(ids, string(m.ID))
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

func memberDesc(m core.Member) string {
	switch {
	case m.Learner:
		return "a learner"
	case m.Kind == core.KindObserver:
		return "an observer"
	}
	return "a " + m.Kind.String()
}
