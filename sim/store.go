package sim

import (
	"bytes"
	"slices"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// Store is a node's durable state: what survives a crash. The driver writes
// each Ready's Truncate, HardState and Entries here (one atomic, synced
// batch) before it sends anything. Data entries are applied on receipt to an
// engram.MemKV through the real engram.Apply; the undo of every applied entry
// is kept so a truncation can roll it back, and truncated entries are kept
// in the quarantine (rule 10).
type Store struct {
	hs          core.HardState
	snap        core.Pos
	snapMembers core.Members
	snapChain   uint64
	log         []core.Entry // after snap
	chain       []uint64     // chain[i]: hash of the log up to log[i]
	undo        []engram.Undo
	kv          *engram.MemKV
	quarantine  []Quarantined
	// rejects counts data entries engram.Apply refused (deterministic no-ops).
	rejects int
}

// Quarantined is one entry removed from the log by a truncation, with the
// state it had been applied on (a replay's precondition).
type Quarantined struct {
	Entry  core.Entry
	Reason string
	At     int64
	Base   *engram.Precondition
}

func newStore(bootstrap core.Members) *Store {
	return &Store{kv: engram.NewMemKV(), snapMembers: bootstrap}
}

// members returns the membership in force in the stored log.
func (s *Store) members() core.Members {
	for i := len(s.log) - 1; i >= 0; i-- {
		if e := s.log[i]; e.Type == core.EntryMembership {
			if ms, err := core.DecodeMembers(e.Payload); err == nil {
				return ms
			}
		}
	}
	return s.snapMembers
}

// clone returns a deep copy: an old copy of the store to put back later.
func (s *Store) clone() *Store {
	c := *s
	c.snapMembers = slices.Clone(s.snapMembers)
	c.log = slices.Clone(s.log)
	c.chain = slices.Clone(s.chain)
	c.undo = slices.Clone(s.undo)
	c.kv = s.kv.Clone()
	c.quarantine = slices.Clone(s.quarantine)
	return &c
}

func (s *Store) last() core.Pos {
	if n := len(s.log); n > 0 {
		return s.log[n-1].Pos
	}
	return s.snap
}

func (s *Store) lastChain() uint64 {
	if n := len(s.chain); n > 0 {
		return s.chain[n-1]
	}
	return s.snapChain
}

// entryAt returns the entry at seq, if the log holds it.
func (s *Store) entryAt(seq core.Seq) (core.Entry, bool) {
	if seq <= s.snap.Seq || seq > s.last().Seq {
		return core.Entry{}, false
	}
	return s.log[seq-s.snap.Seq-1], true
}

func chainHash(prev uint64, e core.Entry) uint64 {
	h := prev ^ 14695981039346656037
	mix := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	mix(uint64(e.Pos.Epoch))
	mix(uint64(e.Pos.Seq))
	mix(uint64(e.Type))
	for _, b := range e.Payload {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// truncate removes every entry after seq, newest first: rolls back its
// apply and quarantines it. It returns the removed entries, oldest first.
func (s *Store) truncate(seq core.Seq, reason string, now int64) []core.Entry {
	if seq >= s.last().Seq {
		return nil
	}
	i := int(seq - s.snap.Seq)
	if i < 0 {
		i = 0
	}
	removed := slices.Clone(s.log[i:])
	for k := len(s.log) - 1; k >= i; k-- {
		if err := engram.Rollback(s.kv, s.undo[k]); err != nil {
			panic(err) // MemKV never fails
		}
	}
	for k, e := range removed {
		s.quarantine = append(s.quarantine, Quarantined{Entry: e, Reason: reason, At: now, Base: engram.PreconditionOf(s.undo[i+k])})
	}
	s.log = s.log[:i:i]
	s.chain = s.chain[:i:i]
	s.undo = s.undo[:i:i]
	return removed
}

// append persists and applies es, which must follow the log. It reports
// whether the state machine refused the entry's command (a no-op).
func (s *Store) append(e core.Entry) (rejected bool) {
	e.Payload = bytes.Clone(e.Payload)
	var u engram.Undo
	if e.Type == core.EntryData {
		var err error
		u, err = engram.Apply(s.kv, e.Pos, e.Payload)
		if err != nil {
			if !engram.IsReject(err) {
				panic(err)
			}
			s.rejects++
			rejected = true
		} else if q, ok := engram.ReplayConsumes(e.Payload); ok {
			// A replay consumes its quarantined entry with its apply.
			s.quarantine = slices.DeleteFunc(s.quarantine, func(x Quarantined) bool { return x.Entry.Pos == q })
		}
	}
	s.chain = append(s.chain, chainHash(s.lastChain(), e))
	s.log = append(s.log, e)
	s.undo = append(s.undo, u)
	return rejected
}

// compact drops entries at or below upto (they are committed everywhere
// that matters); the state machine keeps them applied.
func (s *Store) compact(upto core.Pos, ms core.Members) {
	if upto.Seq <= s.snap.Seq || upto.Seq > s.last().Seq {
		return
	}
	k := int(upto.Seq - s.snap.Seq)
	s.snapChain = s.chain[k-1]
	s.log = slices.Clone(s.log[k:])
	s.chain = slices.Clone(s.chain[k:])
	s.undo = slices.Clone(s.undo[k:])
	s.snap = upto
	s.snapMembers = ms
}

// dropUndo forgets the undo of committed entries (they never roll back).
func (s *Store) dropUndo(commit core.Seq) {
	for i := range s.undo {
		if s.log[i].Pos.Seq > commit {
			break
		}
		s.undo[i] = engram.Undo{}
	}
}

// restored is what a restarting node reads back.
func (s *Store) restored() core.Restored {
	return core.Restored{
		HardState:   s.hs,
		Snap:        s.snap,
		SnapMembers: slices.Clone(s.snapMembers),
		Entries:     slices.Clone(s.log),
	}
}
