// Package apitypes holds the JSON bodies of MuninnDB's REST API (port
// 8475), shared by the server (shell/api) and the Go client (shell/client).
// It imports only core/engram (pure), so a client does not pull in Pebble.
//
// Field names are the wire contract: they are documented in docs/api.md
// and must only ever be added to.
package apitypes

import "github.com/muninndb/muninn/core/engram"

// Header names.
const (
	// HeaderForwardedBy marks a request one node forwarded to the Cortex
	// (docs/protocol.md, rule 13). A request carrying it is never
	// forwarded again.
	HeaderForwardedBy = "X-Muninn-Forwarded-By"
	// HeaderForwardTime, HeaderForwardNonce and HeaderForwardSig
	// authenticate a forwarded admin request with the cluster secret, so the
	// Cortex trusts the admin check the forwarding node already made. The
	// signature binds the forwarder, the target node, the request, the time
	// and a one-time nonce the target remembers while the time is valid.
	HeaderForwardTime  = "X-Muninn-Forward-Time"
	HeaderForwardNonce = "X-Muninn-Forward-Nonce"
	HeaderForwardSig   = "X-Muninn-Forward-Sig"
	// HeaderNode names the node that produced a response (the Cortex's id
	// when the request was forwarded).
	HeaderNode = "X-Muninn-Node"
	// HeaderQuarantineCount is the number of entries a quarantine export
	// holds.
	HeaderQuarantineCount = "X-Muninn-Quarantine-Count"
	// HeaderFencedCount is HeaderQuarantineCount on the deprecated
	// /v1/cluster/fenced/export.
	HeaderFencedCount = "X-Muninn-Fenced-Count"
)

// DefaultVault is the vault used when a request names none.
const DefaultVault = "default"

// MaxBody is the largest request body the API reads (1 MiB); more is 413.
const MaxBody = 1 << 20

// Batch limits (POST /api/engrams/batch): at most MaxBatchItems engrams
// and MaxBatchBody bytes of body per request; more is 413 too_large.
const (
	MaxBatchItems = 1000
	MaxBatchBody  = 8 << 20
)

// Stable error codes (the "code" of an ErrorBody). The protocol's codes
// (core.Code*) are passed through unchanged.
const (
	CodeBadRequest        = "bad_request"
	CodeNotFound          = "not_found"
	CodeConflict          = "conflict"
	CodeTooLarge          = "too_large"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeNotCortex         = "not_cortex"
	CodeNoCortex          = "no_cortex"
	CodeReadOnlyNode      = "read_only_node"
	CodeHandoff           = "handoff_in_progress"
	CodeQuorumImpossible  = "quorum_impossible"
	CodeUnknownOutcome    = "unknown_outcome"
	CodeTooStale          = "too_stale"
	CodeChangeInProgress  = "change_in_progress"
	CodeUnavailable       = "unavailable"
	CodeStandalone        = "standalone"
	CodeNotImplemented    = "not_implemented"
	CodeInternal          = "internal"
	CodeForwardFailed     = "forward_failed"
	CodeStarting          = "starting"
	CodeQuarantineMissing = "quarantine_entry_not_found"
	// CodeFencedEntryNotFound is CodeQuarantineMissing on the deprecated
	// /v1/cluster/fenced paths.
	CodeFencedEntryNotFound = "fenced_entry_not_found"
)

// ErrorBody is every error response: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Cortex and CortexAPI name the Cortex when the error is about where a
	// request must go (not_cortex, read_only_node).
	Cortex    string `json:"cortex,omitempty"`
	CortexAPI string `json:"cortex_api,omitempty"`
}

// Engram is an engram as the API returns it.
type Engram = engram.Engram

// Hit is one activation result: an engram and its score.
type Hit = engram.Hit

// WriteRequest is the body of POST /api/engrams.
type WriteRequest struct {
	// Vault defaults to the vault query parameter, then "default".
	Vault string `json:"vault,omitempty"`
	// ID is optional: a client that sets it (a 26-character ULID, see
	// engram.NewID) can retry the write safely; a replay answers 409.
	ID      string   `json:"id,omitempty"`
	Concept string   `json:"concept"`
	Content string   `json:"content"`
	Tags    []string `json:"tags,omitempty"`
	// Confidence is in [0, 1]; omitted means 1.
	Confidence *float64 `json:"confidence,omitempty"`
}

// BatchWriteRequest is the body of POST /api/engrams/batch: engrams to
// create, each its own write (docs/api.md, "Batch writes").
type BatchWriteRequest struct {
	// Vault is the vault of every engram that names none (default: the
	// vault query parameter, then "default").
	Vault string `json:"vault,omitempty"`
	// Engrams are written in order; each is a WriteRequest, and may name
	// its own vault and id.
	Engrams []WriteRequest `json:"engrams"`
}

// BatchItemResult is one engram's outcome in a BatchWriteResult.
type BatchItemResult struct {
	ID    string `json:"id"`
	Vault string `json:"vault"`
	// Status is the HTTP status a single write of this engram would have
	// been answered: 201 when written, else the status of Error's code.
	Status int `json:"status"`
	// Epoch and Seq are the write's position in the log (written only;
	// zero when the Go client found it written by an earlier attempt).
	Epoch uint64 `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	// Error is nil when the engram was written. Its code unknown_outcome
	// says the write may or may not have been applied; any other code
	// says it was not.
	Error *ErrorDetail `json:"error,omitempty"`
}

// BatchWriteResult answers POST /api/engrams/batch: one result per engram,
// in the order of the request.
type BatchWriteResult struct {
	Durability string `json:"durability"`
	// Written counts the engrams written; Failed the others, of which
	// Unknown have an unknown outcome (code unknown_outcome).
	Written int               `json:"written"`
	Failed  int               `json:"failed"`
	Unknown int               `json:"unknown"`
	Results []BatchItemResult `json:"results"`
}

// UpdateRequest is the body of PATCH /api/engrams/{id}: only the fields
// present are changed.
type UpdateRequest struct {
	Vault      string    `json:"vault,omitempty"`
	Concept    *string   `json:"concept,omitempty"`
	Content    *string   `json:"content,omitempty"`
	Tags       *[]string `json:"tags,omitempty"`
	Confidence *float64  `json:"confidence,omitempty"`
}

// WriteResult answers a write, update or forget: where the command sits in
// the replicated log.
type WriteResult struct {
	ID         string `json:"id"`
	Vault      string `json:"vault"`
	Epoch      uint64 `json:"epoch"`
	Seq        uint64 `json:"seq"`
	Durability string `json:"durability"`
}

// ListResult answers GET /api/engrams.
type ListResult struct {
	Engrams []Engram `json:"engrams"`
	// NextCursor is passed as cursor for the next page; "" on the last.
	NextCursor string `json:"next_cursor"`
}

// ActivateRequest is the body of POST /api/activate.
type ActivateRequest struct {
	Vault string `json:"vault,omitempty"`
	Query string `json:"query"`
	Limit int    `json:"limit,omitempty"`
}

// ActivateResult answers POST /api/activate.
type ActivateResult struct {
	Hits []Hit `json:"hits"`
}

// Member is one member in GET /v1/cluster/info.
type Member struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Learner bool   `json:"learner"`
	// Role is the member's role as this node last heard it.
	Role string `json:"role,omitempty"`
	// API is the member's REST URL; MBP its replication address.
	API string `json:"api,omitempty"`
	MBP string `json:"mbp,omitempty"`
	// Store is the member's store identity as recorded in the membership
	// (hex; empty until recorded). Rejoining: it reports another store, so
	// it counts toward no quorum until it has caught up (rule 16).
	Store     string `json:"store,omitempty"`
	Rejoining bool   `json:"rejoining,omitempty"`
	// Priority is the member's cluster.priority as this node knows it:
	// among equally up-to-date candidates the lower runs for Cortex first,
	// 0 never does. Omitted when unknown (a peer not heard from yet) and
	// for Sentinels and Observers, which never run.
	Priority *int `json:"priority,omitempty"`
	// Version is the member's binary version and Protocol the protocol
	// versions it speaks ("2..3"), from its last hello to this node
	// (this node's own for itself); empty when never heard from.
	// docs/upgrades.md.
	Version  string `json:"version,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// Info answers GET /v1/cluster/info.
type Info struct {
	NodeID         string `json:"node_id"`
	Role           string `json:"role"`
	Kind           string `json:"kind"`
	ClusterEnabled bool   `json:"cluster_enabled"`
	// ClusterID is this node's cluster id, 16 hex digits; absent while it
	// has none (docs/protocol.md, rule 19).
	ClusterID string `json:"cluster_id,omitempty"`
	// Cortex is the Cortex this node follows ("" during an election).
	Cortex    string `json:"cortex"`
	CortexAPI string `json:"cortex_api,omitempty"`
	Epoch     uint64 `json:"epoch"`
	// FencingToken is the Cortex's epoch: writes of older epochs are fenced.
	FencingToken uint64   `json:"fencing_token"`
	LastSeq      uint64   `json:"last_seq"`
	LastEpoch    uint64   `json:"last_epoch"`
	CommitSeq    uint64   `json:"commit_seq"`
	Quorum       int      `json:"quorum"`
	WriteQuorum  int      `json:"write_quorum"`
	Joining      bool     `json:"joining"`
	Handoff      string   `json:"handoff,omitempty"`
	Members      []Member `json:"members"`
	UptimeMs     int64    `json:"uptime_ms"`
	// HeartbeatMs is cluster.heartbeat_ms. DownAfterMs is the SDOWN window,
	// min(3 × heartbeat_ms, lease_ttl): a Cortex silent this long is taken
	// for down. LeaseMs is the Cortex's read lease (half a heartbeat).
	HeartbeatMs int64 `json:"heartbeat_ms"`
	DownAfterMs int64 `json:"down_after_ms"`
	LeaseMs     int64 `json:"lease_ms"`
	// LeaseWaitMs: this node is a Cortex elected on crash hints and commits
	// nothing until the old Cortex's lease has run out, this long from now
	// (0 when it does not wait).
	LeaseWaitMs int64 `json:"lease_wait_ms"`
	// Version is this node's binary version, Protocol the protocol
	// versions it speaks ("2..3"), ActiveProtocol the cluster's active
	// protocol version as this node sees it: the highest every voter
	// speaks (docs/protocol.md, rule 21).
	Version        string `json:"version"`
	Protocol       string `json:"protocol"`
	ActiveProtocol uint16 `json:"active_protocol"`
	// Features lists the protocol-gated features on at ActiveProtocol
	// ("health_versions" from protocol 3); empty in a cluster of older
	// voters.
	Features []string `json:"features"`
}

// Health values.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
	// Member health values.
	MemberHealthy    = "healthy"
	MemberCatchingUp = "catching_up"
	// MemberRejoining: the member reports another store than the one the
	// membership records (wiped, replaced or restored): it replicates but
	// counts toward no quorum until it has caught up.
	MemberRejoining   = "rejoining"
	MemberUnreachable = "unreachable"
	MemberUnknown     = "unknown"
)

// Health answers GET /v1/cluster/health (200 when Status is "ok", else 503).
type Health struct {
	Status string `json:"status"`
	// Reason says why the cluster is degraded ("" when ok).
	Reason string `json:"reason,omitempty"`
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	Cortex string `json:"cortex"`
	Epoch  uint64 `json:"epoch"`
	Quorum int    `json:"quorum"`
	Voters int    `json:"voters"`
	// ReachableVoters counts voters (this node included) heard within the
	// SDOWN window: on the Cortex, from heartbeat echoes.
	ReachableVoters int            `json:"reachable_voters"`
	Members         []MemberHealth `json:"members"`
	// ActiveProtocol is Info's; with each member's Version, only while
	// the active protocol is at least 3 (feature "health_versions").
	ActiveProtocol uint16 `json:"active_protocol,omitempty"`
}

// MemberHealth is one member's health in Health.
type MemberHealth struct {
	ID     string `json:"id"`
	Health string `json:"health"`
	// Version is Member's (protocol 3 on; see Health.ActiveProtocol).
	Version string `json:"version,omitempty"`
}

// Status answers GET /v1/cluster/status.
type Status struct {
	// NodeID is the node that answered; View is "cortex" when the lags are
	// the Cortex's measurements, "local" when a non-Cortex node answered
	// alone (it knows only its own lag).
	NodeID       string         `json:"node_id"`
	View         string         `json:"view"`
	Cortex       string         `json:"cortex"`
	Epoch        uint64         `json:"epoch"`
	FencingToken uint64         `json:"fencing_token"`
	LastSeq      uint64         `json:"last_seq"`
	CommitSeq    uint64         `json:"commit_seq"`
	Quorum       int            `json:"quorum"`
	Health       string         `json:"health"`
	Reason       string         `json:"reason,omitempty"`
	Members      []MemberStatus `json:"members"`
	// LeaseWaitMs is Info's: how long the answering Cortex still waits out
	// its predecessor's lease before committing (0 when it does not).
	LeaseWaitMs int64 `json:"lease_wait_ms"`
	// ActiveProtocol is Info's, as the answering node sees it.
	ActiveProtocol uint16 `json:"active_protocol"`
}

// MemberStatus is one member's row of Status.
type MemberStatus struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Kind    string `json:"kind"`
	Learner bool   `json:"learner"`
	Health  string `json:"health"`
	// LastSeq is the member's last sequence number: on the Cortex, what it
	// knows the member holds (its match). Null for Sentinels (no data).
	LastSeq *uint64 `json:"last_seq"`
	// LagMs is how long ago the Cortex appended the oldest entry the member
	// lacks (0 when it has everything). Null when unknown or not applicable
	// (the Cortex itself, Sentinels).
	LagMs     *int64 `json:"lag_ms"`
	Connected bool   `json:"connected"`
	// LastHeardMs is how long ago this node last heard from the member.
	LastHeardMs *int64 `json:"last_heard_ms,omitempty"`
	// CatchUp describes a learner's progress (snapshot and log tail).
	CatchUp *CatchUp `json:"catch_up,omitempty"`
	API     string   `json:"api,omitempty"`
	// Version and Protocol are Member's.
	Version  string `json:"version,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// CatchUp is a joining node's progress toward the Cortex's log.
type CatchUp struct {
	MatchSeq  uint64  `json:"match_seq"`
	TargetSeq uint64  `json:"target_seq"`
	Percent   float64 `json:"percent"`
}

// FailoverRequest is the body of POST /v1/cluster/failover.
type FailoverRequest struct {
	// To is the Lobe to hand off to; "" picks the most caught-up one.
	To string `json:"to,omitempty"`
}

// FailoverResult answers POST /v1/cluster/failover.
type FailoverResult struct {
	From string `json:"from"`
	// To is the new Cortex, when it was known before the answer.
	To    string `json:"to,omitempty"`
	Epoch uint64 `json:"epoch"`
}

// MemberRequest is the body of POST /v1/cluster/members.
type MemberRequest struct {
	ID   string `json:"id"`
	Kind string `json:"kind,omitempty"` // auto (default), sentinel, observer
}

// MemberResult answers a membership change.
type MemberResult struct {
	ID      string   `json:"id"`
	Action  string   `json:"action"` // "added" or "removed"
	Members []Member `json:"members"`
}

// QuarantineEntry is one quarantined entry (docs/protocol.md, rule 10): a
// write a failover cut off, kept on the deposed node.
type QuarantineEntry struct {
	Epoch      uint64 `json:"epoch"`
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"`
	Durability string `json:"durability"`
	Vault      string `json:"vault,omitempty"`
	Op         string `json:"op,omitempty"`
	ID         string `json:"id,omitempty"`
	Payload    []byte `json:"payload"`
	Reason     string `json:"reason"`
	TimeMS     int64  `json:"time_ms"`
	// Base is the state the entry was applied on, encoded (a replay applies
	// only if it still holds); absent on entries quarantined before bases.
	Base []byte `json:"base,omitempty"`
}

// QuarantineList answers GET /v1/cluster/quarantine.
type QuarantineList struct {
	NodeID  string            `json:"node_id"`
	Entries []QuarantineEntry `json:"entries"`
}

// QuarantineRef names one quarantined entry (replay and drop bodies).
type QuarantineRef struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// FencedEntry, FencedList and FencedRef are the quarantine types under
// their old names.
//
// Deprecated: use QuarantineEntry, QuarantineList and QuarantineRef.
type (
	FencedEntry = QuarantineEntry
	FencedList  = QuarantineList
	FencedRef   = QuarantineRef
)

// ReplayResult answers POST /v1/cluster/quarantine/replay: the entry was
// written again, conditionally, at (Epoch, Seq); every node holding it
// drops it from its quarantine as it applies that write.
type ReplayResult struct {
	From  QuarantineRef `json:"from"`
	Epoch uint64        `json:"epoch"`
	Seq   uint64        `json:"seq"`
}

// ProposeRequest is the body of POST /v1/cluster/propose (internal: a
// node replaying a quarantined entry sends its payload to the Cortex).
type ProposeRequest struct {
	Payload    []byte `json:"payload"`
	Durability string `json:"durability,omitempty"`
}
