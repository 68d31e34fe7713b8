package core

// HardState is the durable protocol state besides the log. It must be
// persisted before any message of the same Ready is sent.
type HardState struct {
	Epoch Epoch
	Vote  NodeID // the vote granted in Epoch, "" if none
	// VoteStore is the store identity the candidate voted for reported
	// (rule 16): a node whose store was wiped is another candidate, even
	// under the same id, and gets no second vote in that epoch.
	VoteStore uint64
	Commit    Pos // the highest entry known committed (advisory: may lag)
}

// Truncation removes a divergent suffix: every entry after After. Removed
// holds the entries, oldest first, to be undone in the state machine and kept
// in the quarantine with Reason (rule 10).
type Truncation struct {
	After   Pos
	Removed []Entry
	Reason  string
}

// Compaction says the log below Upto may be pruned.
type Compaction struct {
	Upto    Pos
	Members Members // the membership in force at Upto
}

// SnapshotSend asks the driver to stream its current snapshot to To, whose
// log is behind the start of the Cortex's retained log (rule 7).
type SnapshotSend struct {
	To NodeID
}

// ResultKind is what a client Result answers.
type ResultKind uint8

const (
	// ResultWrite answers Propose.
	ResultWrite ResultKind = iota + 1
	// ResultRead answers Read: when OK, the driver serves the read from its
	// state machine before applying this Ready's entries (see Ready).
	ResultRead
	// ResultAdmin answers an admin command.
	ResultAdmin
)

// Result answers one client request.
type Result struct {
	ID   uint64
	Kind ResultKind
	// Pos is where a write landed.
	Pos Pos
	// Err is nil on success. A *Error names what went wrong.
	Err *Error
}

// Event is something an operator should see in logs and metrics.
type Event struct {
	At     Time
	Kind   EventKind
	Epoch  Epoch
	Node   NodeID // the node the event is about (Cortex, peer, candidate)
	Votes  int    // votes received (elected)
	Voters int    // voters in the membership (elected)
	Role   Role   // the new role (role-changed)
	Detail string
}

// EventKind names an Event.
type EventKind uint8

const (
	EventRoleChanged EventKind = iota + 1
	EventSDown
	EventSDownCleared
	EventODown
	EventElectionStarted
	EventElected
	EventSteppedDown
	EventDemoted
	EventHandoffStarted
	EventHandoffAborted
	EventMembershipChanged
	EventCaughtUp
	EventViolation
	// EventStoreChanged: a member reports another store than the one it
	// counted with, or holds less than it acknowledged (rule 16).
	EventStoreChanged
)

var eventNames = [...]string{"", "role-changed", "sdown", "sdown-cleared", "odown", "election-started", "elected", "stepped-down", "demoted", "handoff-started", "handoff-aborted", "membership-changed", "caught-up", "violation", "store-changed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event(?)"
}

// Ready is everything the core wants done. The driver carries it out in
// this order, then calls Advance:
//
//  1. Truncation, HardState and Entries are persisted in one atomic, synced
//     batch (the truncated entries undone and quarantined, the new entries
//     appended and applied), BEFORE any message is sent: a vote or an
//     acknowledgement must never be sent for state a crash could lose.
//  2. Messages are sent (any order; the network reorders anyway). The
//     exception: heartbeats, heartbeat answers and SDOWN reports (see
//     Message.Urgent) depend on nothing persisted and may be sent before
//     step 1, so a slow fsync never silences a Cortex's heartbeats.
//  3. Snapshots are streamed (in the background).
//  4. Results are delivered to waiting clients: they are answered only after
//     step 1, so an acknowledged write is durable. Reads are the exception
//     to the order: a read marked OK is served from the state machine as it
//     stood BEFORE step 1, i.e. with every earlier Ready applied and none of
//     this Ready's entries. Nothing in this Ready has been acknowledged yet,
//     and entries appended after a strong read completed (writes queued
//     behind it) are not committed, so serving the read first is what keeps
//     it linearizable.
//  5. Events are logged and counted (with a Pipeline, when the Ready is
//     applied: they promise nothing).
type Ready struct {
	HardState *HardState // nil when unchanged
	Truncate  *Truncation
	Entries   []Entry
	// Members is the membership after this Ready (nil when unchanged); it is
	// also derivable from the log and is given for convenience.
	Members Members
	// Compact: entries at or below Compact.Upto are no longer needed by any
	// member (keeping the configured tail); the driver may prune them and
	// must keep Compact.Members as the membership in force at that point.
	Compact *Compaction
	// SyncCommit: the hard state's commit point must be synced too (a
	// Sentinel's: see MustSync).
	SyncCommit bool
	Messages   []Message
	Snapshots  []SnapshotSend
	Results    []Result
	Events     []Event
}

// Empty reports whether rd holds nothing to do.
func (rd *Ready) Empty() bool {
	return rd.HardState == nil && rd.Truncate == nil && len(rd.Entries) == 0 && rd.Members == nil &&
		rd.Compact == nil && len(rd.Messages) == 0 && len(rd.Snapshots) == 0 && len(rd.Results) == 0 && len(rd.Events) == 0
}

// saves reports whether step 1 has anything to persist.
func (rd *Ready) saves() bool {
	return rd.HardState != nil || rd.Truncate != nil || len(rd.Entries) > 0 || rd.Members != nil
}

// MustSync reports whether step 1 needs an fsync: a vote, an epoch or
// entries. A Ready that only advances the commit point may be written
// without one (the commit point is advisory and rides on the next sync),
// except on a Sentinel, whose votes depend on it (SyncCommit).
func (rd *Ready) MustSync(prev HardState) bool {
	if rd.Truncate != nil || len(rd.Entries) > 0 || rd.SyncCommit {
		return true
	}
	return rd.HardState != nil && (rd.HardState.Epoch != prev.Epoch || rd.HardState.Vote != prev.Vote || rd.HardState.VoteStore != prev.VoteStore)
}
