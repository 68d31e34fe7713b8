package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Member is one node of the membership.
type Member struct {
	ID   NodeID
	Kind Kind
	// Learner marks a joining data node that does not count toward any quorum
	// until it has caught up and a membership entry promotes it (rule 15).
	Learner bool
	// Store is the identity of the store the member held when the Cortex
	// last found it caught up (rule 16); 0 until then. A member reporting
	// another store counts toward no quorum until it has caught up again.
	Store uint64
	// Addr is the member's advertised MBP address, so every member can
	// reach every other one, not only its seeds (rule 15).
	Addr string
}

// Voter reports whether m votes and counts toward quorums.
func (m Member) Voter() bool { return !m.Learner && m.Kind != KindObserver }

// DataVoter reports whether m holds data and votes: a possible Cortex.
func (m Member) DataVoter() bool { return !m.Learner && m.Kind == KindAuto }

// Members is a membership, sorted by ID.
type Members []Member

// Normalize returns a sorted copy of ms.
func (ms Members) Normalize() Members {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Get returns the member with id.
func (ms Members) Get(id NodeID) (Member, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Voters counts the voters.
func (ms Members) Voters() int {
	n := 0
	for _, m := range ms {
		if m.Voter() {
			n++
		}
	}
	return n
}

// DataVoters counts the data voters.
func (ms Members) DataVoters() int {
	n := 0
	for _, m := range ms {
		if m.DataVoter() {
			n++
		}
	}
	return n
}

// Quorum is the election quorum Q: a majority of voters.
func (ms Members) Quorum() int { return ms.Voters()/2 + 1 }

// WriteQuorum is W = D + S - Q + 1 (rule 8): the smallest number of data
// voters such that every election quorum contains one of them.
func (ms Members) WriteQuorum() int {
	v := ms.Voters()
	return v - ms.Quorum() + 1
}

// Membership flag bits: learner, the kind (two bits), and which optional
// fields follow the flags byte.
const (
	memberLearner  = 1 << 0
	memberKindMask = 3 << 1
	memberHasStore = 1 << 3
	memberHasAddr  = 1 << 4
	memberKnown    = memberLearner | memberKindMask | memberHasStore | memberHasAddr
)

// EncodeMembers encodes a member list for an EntryMembership payload:
// a count, then per member its id, a flags byte, and the store identity
// and address when the flags say so.
func EncodeMembers(ms Members) []byte {
	b := binary.AppendUvarint(nil, uint64(len(ms)))
	for _, m := range ms {
		b = binary.AppendUvarint(b, uint64(len(m.ID)))
		b = append(b, m.ID...)
		flags := byte(m.Kind) << 1
		if m.Learner {
			flags |= memberLearner
		}
		if m.Store != 0 {
			flags |= memberHasStore
		}
		if m.Addr != "" {
			flags |= memberHasAddr
		}
		b = append(b, flags)
		if m.Store != 0 {
			b = binary.BigEndian.AppendUint64(b, m.Store)
		}
		if m.Addr != "" {
			b = binary.AppendUvarint(b, uint64(len(m.Addr)))
			b = append(b, m.Addr...)
		}
	}
	return b
}

// MaxMembers bounds a decoded member list.
const MaxMembers = 64

// MaxNodeIDLen bounds a node id.
const MaxNodeIDLen = 128

// MaxAddrLen bounds a member's address.
const MaxAddrLen = 255

// DecodeMembers decodes EncodeMembers' output.
func DecodeMembers(b []byte) (Members, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > MaxMembers {
		return nil, errors.New("membership: bad member count")
	}
	b = b[k:]
	ms := make(Members, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l == 0 || l > MaxNodeIDLen || uint64(len(b)-k) < l+1 {
			return nil, fmt.Errorf("membership: bad id length in member %d", i)
		}
		b = b[k:]
		m := Member{ID: NodeID(b[:l])}
		flags := b[l]
		b = b[l+1:]
		if flags&^memberKnown != 0 {
			return nil, fmt.Errorf("membership: unknown flags 0x%02x for %s", flags, m.ID)
		}
		m.Kind = Kind(flags & memberKindMask >> 1)
		m.Learner = flags&memberLearner != 0
		if m.Kind > KindObserver {
			return nil, fmt.Errorf("membership: bad kind %d for %s", m.Kind, m.ID)
		}
		if flags&memberHasStore != 0 {
			if len(b) < 8 {
				return nil, fmt.Errorf("membership: short store identity for %s", m.ID)
			}
			m.Store = binary.BigEndian.Uint64(b)
			b = b[8:]
		}
		if flags&memberHasAddr != 0 {
			l, k := binary.Uvarint(b)
			if k <= 0 || l == 0 || l > MaxAddrLen || uint64(len(b)-k) < l {
				return nil, fmt.Errorf("membership: bad address length for %s", m.ID)
			}
			m.Addr = string(b[k : k+int(l)])
			b = b[k+int(l):]
		}
		ms = append(ms, m)
	}
	if len(b) != 0 {
		return nil, errors.New("membership: trailing bytes")
	}
	return ms, nil
}
