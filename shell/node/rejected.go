package node

import (
	"fmt"

	"github.com/muninndb/muninn/core"
)

// An acknowledgement says what the state machine did with the write
// (docs/api.md, "What each answer guarantees"). The core acknowledges a
// write once its entry is durable; the entry's command may still have been
// refused when it was applied (the engram already exists, or no longer
// does), which makes it a no-op on every node. Such a write is answered
// with the refusal, never with success.

// noteRejected records a data entry the state machine refused (Save's
// Rejected callback; loop-owned).
func (n *Node) noteRejected(pos core.Pos, why error) {
	if n.rejected == nil {
		n.rejected = map[core.Pos]string{}
	}
	n.rejected[pos] = why.Error()
}

// applied turns a successful write result whose entry was refused into a
// conflict.
func (n *Node) applied(r core.Result) core.Result {
	if r.Kind != core.ResultWrite || r.Err != nil {
		return r
	}
	if why, ok := n.rejected[r.Pos]; ok {
		r.Err = &core.Error{Code: core.CodeConflict, Msg: fmt.Sprintf("the write was logged at %s as a no-op and changed nothing: %s", r.Pos, why)}
		r.Pos = core.Pos{}
	}
	return r
}

// forgetRejected drops refusals at or below the commit point: every write
// there has had its answer (local writes in the Ready that logged them,
// quorum writes at commit).
func (n *Node) forgetRejected(commit core.Seq) {
	for p := range n.rejected {
		if p.Seq <= commit {
			delete(n.rejected, p)
		}
	}
}
