// Package core is MuninnDB's cluster protocol as a pure state machine: roles,
// heartbeats (MSP), SDOWN/ODOWN, elections, epochs and fencing, replication,
// commit, quorum self-demotion, handoff and membership.
//
// The core does no I/O and reads no clock. A driver (the node runner in
// shell/node, or the simulator in sim/) feeds it time, messages and client
// requests, then takes a Ready, carries out its effects in the documented
// order, and calls Advance. The shape follows etcd-io/raft's RawNode.
package core

import (
	"fmt"
	"time"
)

// NodeID names a node; it is unique and stable across restarts.
type NodeID string

// Epoch is the election term. The epoch of a Cortex is its fencing token.
type Epoch uint64

// Seq numbers log entries. It is global and contiguous across epochs: the
// entry after (e, s) is (e', s+1) for some e' >= e.
type Seq uint64

// Time is a reading of the driver's monotonic clock, in nanoseconds since an
// origin the driver chooses. The core only compares and subtracts Times.
type Time int64

// Add returns t moved by d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns the duration t - u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Never is a Time later than any real deadline.
const Never Time = 1<<63 - 1

// Pos is a log position. Positions order by epoch, then seq, which is the
// "at least as up to date" order of rule 5.
type Pos struct {
	Epoch Epoch
	Seq   Seq
}

// Less reports whether p is strictly older than q.
func (p Pos) Less(q Pos) bool {
	if p.Epoch != q.Epoch {
		return p.Epoch < q.Epoch
	}
	return p.Seq < q.Seq
}

func (p Pos) String() string { return fmt.Sprintf("%d.%d", p.Epoch, p.Seq) }

// Kind is a node's static kind, from cluster.role.
type Kind uint8

const (
	// KindAuto is a data voter: it holds data, votes and may become Cortex.
	KindAuto Kind = iota
	// KindSentinel votes but holds no data and never becomes Cortex.
	KindSentinel
	// KindObserver holds data but never votes and never accepts writes.
	KindObserver
)

func (k Kind) String() string {
	switch k {
	case KindAuto:
		return "auto"
	case KindSentinel:
		return "sentinel"
	case KindObserver:
		return "observer"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind reads a cluster.role value.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "auto", "":
		return KindAuto, nil
	case "sentinel":
		return KindSentinel, nil
	case "observer":
		return KindObserver, nil
	}
	return 0, fmt.Errorf("unknown role %q: use auto, sentinel or observer", s)
}

// Role is what a node is doing now.
type Role uint8

const (
	// RoleLobe is a data voter following the Cortex.
	RoleLobe Role = iota
	// RoleCandidate is a data voter asking for votes.
	RoleCandidate
	// RoleCortex owns writes for its epoch.
	RoleCortex
	// RoleSentinel votes and holds no data.
	RoleSentinel
	// RoleObserver replicates and never votes.
	RoleObserver
)

func (r Role) String() string {
	switch r {
	case RoleLobe:
		return "lobe"
	case RoleCandidate:
		return "candidate"
	case RoleCortex:
		return "cortex"
	case RoleSentinel:
		return "sentinel"
	case RoleObserver:
		return "observer"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Durability is how durable a write must be before it is acknowledged.
type Durability uint8

const (
	// Local acknowledges once the write is durable on the Cortex (the seed's
	// asynchronous replication). A failover can cut it off; it is then
	// quarantined on the deposed node, never silently dropped.
	Local Durability = iota
	// Quorum acknowledges once the write is durable on W data voters, so every
	// later Cortex has it.
	Quorum
)

func (d Durability) String() string {
	if d == Quorum {
		return "quorum"
	}
	return "local"
}

// ParseDurability reads a durability parameter.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "", "local":
		return Local, nil
	case "quorum":
		return Quorum, nil
	}
	return 0, fmt.Errorf("unknown durability %q: use local or quorum", s)
}

// Consistency is how fresh a read must be.
type Consistency uint8

const (
	// Eventual reads whatever the node has.
	Eventual Consistency = iota
	// Bounded reads on a node known to be within MaxLag of the Cortex.
	Bounded
	// Strong reads are linearizable: served by the Cortex within its lease or
	// after a quorum round, once everything it has applied is committed.
	Strong
)

func (c Consistency) String() string {
	switch c {
	case Bounded:
		return "bounded"
	case Strong:
		return "strong"
	}
	return "eventual"
}

// ParseConsistency reads a consistency parameter.
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "eventual":
		return Eventual, nil
	case "bounded":
		return Bounded, nil
	case "strong":
		return Strong, nil
	}
	return 0, fmt.Errorf("unknown consistency %q: use eventual, bounded or strong", s)
}
