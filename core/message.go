package core

import (
	"fmt"
	"time"
)

// MsgType is the kind of a protocol message.
type MsgType uint8

const (
	// MsgHeartbeat (MSP) goes from every node to every peer each heartbeat.
	// From the Cortex it carries SentAt (echoed back, rule 1) and Commit.
	MsgHeartbeat MsgType = iota + 1
	// MsgHeartbeatResp answers a Cortex heartbeat, echoing SentAt.
	MsgHeartbeatResp
	// MsgAppend carries entries after Prev from the Cortex (rule 7).
	MsgAppend
	// MsgAppendResp acknowledges durable entries up to Match, or rejects
	// with a Hint of where the logs may agree.
	MsgAppendResp
	// MsgSDown reports the sender's SDOWN view of the Cortex (Down) to the
	// other voters, with the sender's Last (rule 3).
	MsgSDown
	// MsgVote asks for a vote in Epoch (rule 5).
	MsgVote
	// MsgVoteResp grants or refuses a vote.
	MsgVoteResp
	// MsgTimeoutNow tells a caught-up Lobe to run at once (rule 14).
	MsgTimeoutNow
)

var msgNames = [...]string{"", "heartbeat", "heartbeat-resp", "append", "append-resp", "sdown", "vote", "vote-resp", "timeout-now"}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && t != 0 {
		return msgNames[t]
	}
	return fmt.Sprintf("msg(%d)", uint8(t))
}

// Urgent reports whether a message of type t may be sent before its Ready's
// state is persisted (Ready, step 2). Heartbeats and their answers carry
// the sender's volatile view and a commit point that only counts entries
// peers already hold; SDOWN reports only steer candidacy ranking. Votes,
// appends and their answers must wait: they vouch for persisted state.
func (t MsgType) Urgent() bool {
	return t == MsgHeartbeat || t == MsgHeartbeatResp || t == MsgSDown
}

// Valid reports whether t is a known type.
func (t MsgType) Valid() bool { return t >= MsgHeartbeat && t <= MsgTimeoutNow }

// Message is one protocol message. It is flat, like raftpb.Message: each
// type uses the fields its comment names, and the rest stay zero.
type Message struct {
	Type  MsgType
	From  NodeID
	To    NodeID
	Epoch Epoch // the sender's epoch
	Kind  Kind  // the sender's kind
	Role  Role  // the sender's role

	// SentAt is the Cortex's send time on heartbeats and appends; responses
	// echo it. Only the Cortex's own clock is ever compared with it.
	SentAt Time
	// Cortex is the Cortex the sender follows (heartbeats).
	Cortex NodeID
	// Last is the sender's last log position (heartbeats, sdown, vote).
	Last Pos
	// Commit is the Cortex's commit point, capped at what the receiver is
	// known to hold (heartbeats, appends).
	Commit Pos

	// Prev and Entries: an append of Entries after Prev.
	Prev    Pos
	Entries []Entry

	// Match: the receiver's log agrees with the Cortex's up to Match
	// (append-resp, heartbeat-resp).
	Match Pos
	// Reject and Hint: the append did not fit; Hint is the sender's last
	// position at or before Prev where logs may agree.
	Reject bool
	Hint   Pos

	// Down: the sender considers the Cortex of Epoch down (sdown).
	Down bool
	// Handoff: the vote was sanctioned by the Cortex (vote, timeout-now);
	// on a Cortex's heartbeat or append, it has given up its lease for a
	// handoff (rule 14).
	Handoff bool
	// Granted: the vote is granted (vote-resp).
	Granted bool
	// Leased: the Cortex sent this within its lease (heartbeats, appends),
	// so a follower holding Last is current as of the send (rule 12).
	Leased bool

	// Store is the sender's store identity (every message, rule 16).
	Store uint64
	// Unheard lists the voters the sender has not heard from within an
	// SDOWN window (heartbeats from followers): voters that cannot reach
	// each other are a failover risk the Cortex reports.
	Unheard []NodeID
	// Priority is the sender's cluster.priority (heartbeats, sdown, vote):
	// among equally fresh candidates the lower runs first; 0 never runs
	// (rule 4).
	Priority uint16
	// LeaseWait (vote-resp, granted): how long the lease of a Cortex this
	// voter echoed may still run. A Cortex elected on crash hints commits
	// nothing before it has waited that out (rule 18). On timeout-now: what
	// is left of the sanctioning Cortex's own commit floor (rule 14).
	LeaseWait time.Duration
}

func (m Message) String() string {
	s := fmt.Sprintf("%s->%s %s e=%d", m.From, m.To, m.Type, m.Epoch)
	switch m.Type {
	case MsgHeartbeat:
		s += fmt.Sprintf(" last=%s commit=%s", m.Last, m.Commit)
	case MsgHeartbeatResp:
		s += fmt.Sprintf(" match=%s", m.Match)
	case MsgAppend:
		s += fmt.Sprintf(" prev=%s n=%d commit=%s", m.Prev, len(m.Entries), m.Commit)
	case MsgAppendResp:
		if m.Reject {
			s += fmt.Sprintf(" reject hint=%s", m.Hint)
		} else {
			s += fmt.Sprintf(" match=%s", m.Match)
		}
	case MsgSDown:
		s += fmt.Sprintf(" down=%v last=%s", m.Down, m.Last)
	case MsgVote:
		s += fmt.Sprintf(" last=%s", m.Last)
		if m.Handoff {
			s += " handoff"
		}
	case MsgVoteResp:
		s += fmt.Sprintf(" granted=%v", m.Granted)
		if m.LeaseWait > 0 {
			s += fmt.Sprintf(" lease-wait=%v", m.LeaseWait)
		}
	}
	return s
}
