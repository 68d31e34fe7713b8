package apitypes

import "time"

// Cluster event types: the "type" of a ClusterEvent and the SSE event name
// on GET /v1/cluster/events (docs/api.md, "Cluster events").
const (
	// EventHello is the first event of every stream: the node's state now
	// (Role, Epoch, Cortex, CortexAPI). It is not kept in the ring.
	EventHello = "hello"
	// EventReset follows the hello when the Last-Event-ID cannot be
	// resumed: events were missed (Reason says why).
	EventReset = "reset"
	// EventOverflow ends the stream of a subscriber that fell too far
	// behind; reconnect with the last id seen to resume.
	EventOverflow = "overflow"

	EventRoleChanged     = "role_changed"
	EventSDown           = "sdown"
	EventSDownCleared    = "sdown_cleared"
	EventODown           = "odown"
	EventElectionStarted = "election_started"
	EventElected         = "elected"
	EventEpochChanged    = "epoch_changed"
	// EventCortexChanged: the Cortex this node follows is new, another
	// node or the same one in a new epoch; once per epoch on every node.
	// Clients switch their writes on it.
	EventCortexChanged  = "cortex_changed"
	EventMemberAdded    = "member_added"
	EventMemberPromoted = "member_promoted"
	EventMemberRemoved  = "member_removed"
	EventDemoted        = "demoted"
	EventSteppedDown    = "stepped_down"
	EventHandoffStarted = "handoff_started"
	EventHandoffAborted = "handoff_aborted"
	EventQuarantined    = "quarantined"
)

// ClusterEvent is one event of GET /v1/cluster/events (the SSE data). The
// fields a type does not use are omitted, except Epoch.
type ClusterEvent struct {
	// ID is "<boot>-<seq>", the SSE id: Seq counts this node's events
	// from 1 and Boot is a random token of the node's process, so ids of
	// another node or an earlier run are told apart. Empty on reset and
	// overflow.
	ID   string `json:"id,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	Boot string `json:"boot"`
	// Source is the node that reports the event (the one streaming it).
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	// Epoch is the node's epoch when the event happened.
	Epoch uint64 `json:"epoch"`
	// Node is the node the event is about: the one whose role changed,
	// the candidate, the new Cortex (elected), the member added, promoted
	// or removed, the handoff's target.
	Node string `json:"node,omitempty"`
	// Role is the new role (role_changed, hello).
	Role string `json:"role,omitempty"`
	// Cortex is the Cortex this node follows (role_changed,
	// cortex_changed, hello) or the one found down (sdown, sdown_cleared,
	// odown); CortexAPI its API URL when known.
	Cortex    string `json:"cortex,omitempty"`
	CortexAPI string `json:"cortex_api,omitempty"`
	// PrevCortex and PrevEpoch are what cortex_changed and epoch_changed
	// replace ("" and 0 when none was known).
	PrevCortex string `json:"prev_cortex,omitempty"`
	PrevEpoch  uint64 `json:"prev_epoch,omitempty"`
	// Votes and Voters: elected (votes received of the voters), odown
	// (voters agreeing of the voters).
	Votes  int `json:"votes,omitempty"`
	Voters int `json:"voters,omitempty"`
	// Kind is the member's kind (member_added).
	Kind string `json:"kind,omitempty"`
	// Learner: member_added added it as a learner.
	Learner bool `json:"learner,omitempty"`
	// Reason says why (sdown, stepped_down, demoted, handoff_aborted,
	// quarantined, reset, overflow).
	Reason string `json:"reason,omitempty"`
	// Count, From and To: quarantined moved Count entries, From to To
	// (EPOCH.SEQ), into this node's quarantine; FromEpoch and ToEpoch
	// are their epochs.
	Count     int    `json:"count,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	FromEpoch uint64 `json:"from_epoch,omitempty"`
	ToEpoch   uint64 `json:"to_epoch,omitempty"`
	// LastEventID is the id a reset could not resume after.
	LastEventID string `json:"last_event_id,omitempty"`
}

// CodeTooManySubscribers: GET /v1/cluster/events refused because the node
// already streams to its maximum of subscribers (503).
const CodeTooManySubscribers = "too_many_subscribers"
