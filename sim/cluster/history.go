package cluster

import "time"

// OpKind is a client operation of the workload.
type OpKind string

const (
	// OpRegWrite writes a unique value to a register (quorum).
	OpRegWrite OpKind = "reg-write"
	// OpRegRead reads a register (strong).
	OpRegRead OpKind = "reg-read"
	// OpLocalWrite creates an engram with a unique id (local durability).
	OpLocalWrite OpKind = "local-write"
	// OpQuorumWrite creates an engram with a unique id (quorum durability).
	OpQuorumWrite OpKind = "quorum-write"
	// OpEventualRead reads an acknowledged engram (eventual).
	OpEventualRead OpKind = "eventual-read"
	// OpBoundedRead reads an acknowledged engram (bounded, max_lag_ms).
	OpBoundedRead OpKind = "bounded-read"
)

// OpKinds lists the kinds in report order.
var OpKinds = []OpKind{OpRegWrite, OpRegRead, OpLocalWrite, OpQuorumWrite, OpEventualRead, OpBoundedRead}

// Write reports whether the kind changes state.
func (k OpKind) Write() bool { return k == OpRegWrite || k == OpLocalWrite || k == OpQuorumWrite }

// Outcome is what the client learned of an operation.
type Outcome string

const (
	// OK: acknowledged (a read returned a value, possibly "absent").
	OK Outcome = "ok"
	// Fail: definitely not applied (refused before it was sent, or a
	// refusal that says nothing was done).
	Fail Outcome = "fail"
	// Unknown: a write that may or may not have been applied (timeout,
	// connection lost, unknown_outcome, unavailable).
	Unknown Outcome = "unknown"
)

// Op is one recorded client operation.
type Op struct {
	Client int    `json:"client"`
	Node   string `json:"node"` // the node the client sent it to
	Kind   OpKind `json:"kind"`
	Key    int    `json:"key,omitempty"` // register
	// ID is the engram written or read.
	ID string `json:"id,omitempty"`
	// Value is the value written (registers) or read ("absent" when the
	// engram was not found).
	Value string `json:"value,omitempty"`
	// Call and Return are times since the segment started.
	Call    time.Duration `json:"call_ns"`
	Return  time.Duration `json:"return_ns"`
	Outcome Outcome       `json:"outcome"`
	// Status and Code are the HTTP status and API error code (or the
	// transport error) of a failed or unknown operation.
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	// Epoch and Seq place an acknowledged write in the log; AnsweredBy is
	// X-Muninn-Node (the Cortex when the node forwarded).
	Epoch      uint64 `json:"epoch,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
	AnsweredBy string `json:"answered_by,omitempty"`
}

// Absent is the Value of a read that found nothing (404).
const Absent = "absent"
