package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/muninndb/muninn/core"
)

// ForcedEpochJump is how far above every epoch seen ForceSoleVoter puts
// the new epoch. Rule 6 (docs/protocol.md): a candidate runs at epoch + 1
// and its epoch is the fencing token; a node steps down only for a higher
// epoch, so two Cortexes of one epoch fence neither each other nor each
// other's followers, and the same position could hold two entries. --force
// cannot see a voter that runs cut off from where it is run: old voters
// that come back and elect among themselves in the old membership run at
// the highest epoch they saw + 1, exactly where a jump of 1 lands. With a
// jump of 1000 they would need a thousand election attempts to reach the
// forced epoch, so the recovered Cortex, higher, deposes any such old
// Cortex it meets. It is no licence to leave old voters running: after
// that many attempts they would end above it and depose it instead
// (docs/cli.md says to stop every node first). Epochs are 64-bit; the jump
// costs nothing.
const ForcedEpochJump = 1000

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
//     recorded, last entry's epoch, minEpoch) + ForcedEpochJump (1000), no
//     vote, the commit point unchanged. minEpoch is the highest epoch any
//     other survivor reported: E is above every epoch a survivor has seen,
//     so the survivors follow the recovered node when they hear it (rule
//     6), and far above it, so that old voters electing without it cannot
//     reach E (see ForcedEpochJump);
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
// is refused, as is an id that is not a data voter of its membership, and
// a store that is not id's: its membership records another store for id,
// or this store for another member (rule 16).
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
	// Whose store this is (rule 16): the membership records, per member,
	// the store it counts with. A store recorded for another member, or
	// another store recorded for id, is not id's: forcing it would make
	// another node's log id's, and id's own store, if it comes back, would
	// count as id too.
	if me.Store != 0 && me.Store != identity {
		return out, fmt.Errorf("store %s (identity %016x) is not %s's: its membership records store %016x for %s; give %s's own data directory, "+
			"or find whose this one is (muninn cluster recover --data-dir DIR, without ID=, names it)", s.dir, identity, id, me.Store, id, id)
	}
	for _, m := range ms {
		if m.ID != id && identity != 0 && m.Store == identity {
			return out, fmt.Errorf("store %s (identity %016x) is %s's, not %s's: its membership records this store for %s; give --node %s with it, or %s's own data directory",
				s.dir, identity, m.ID, id, m.ID, m.ID, id)
		}
	}
	out.Epoch = max(hs.Epoch, maxEpoch, last.Epoch, minEpoch) + ForcedEpochJump
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
