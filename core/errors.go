package core

import "fmt"

// Code is a stable error code, shown to API clients.
type Code string

const (
	CodeNotCortex        Code = "not_cortex"     // ask Cortex (may be "")
	CodeNoCortex         Code = "no_cortex"      // an election is under way
	CodeReadOnly         Code = "read_only_node" // observers and sentinels
	CodeTransferring     Code = "handoff_in_progress"
	CodeQuorumImpossible Code = "quorum_impossible" // W > D
	CodeUnknownOutcome   Code = "unknown_outcome"   // deposed before commit
	CodeStale            Code = "too_stale"         // bounded read beyond bound
	CodeBusy             Code = "change_in_progress"
	CodeBadRequest       Code = "bad_request"
	CodeUnavailable      Code = "unavailable"
	// CodeQuorumUnavailable: a commit needs W data voters and fewer answer
	// now (rule 17); nothing was written.
	CodeQuorumUnavailable Code = "quorum_unavailable"
	// CodeConflict: the state machine refused the write's command when its
	// entry was applied (the engram exists, or is missing): the entry is a
	// no-op everywhere. The driver answers it; the core never does.
	CodeConflict Code = "conflict"
)

// Error is a protocol-level refusal with a stable code.
type Error struct {
	Code   Code
	Cortex NodeID // the known Cortex, for forwarding or the message
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(code Code, cortex NodeID, format string, args ...any) *Error {
	return &Error{Code: code, Cortex: cortex, Msg: fmt.Sprintf(format, args...)}
}
