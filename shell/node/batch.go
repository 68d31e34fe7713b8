package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/retry"
)

// WriteBatch proposes several state-machine commands at one durability
// level and returns one result per payload, in order. Each payload is its
// own write and its own log entry, answered as Write answers it (Pos, or
// an Err with the code a single write would get); nothing is shared but
// the trip into the loop.
//
// The requests are queued back to back, with one reply channel for all of
// them, so the loop, which takes up to maxBurst queued inputs per turn,
// proposes them together: they land in one Ready and one fsync (a
// concurrent turn may split them in two). No goroutine is started per
// payload.
//
// As Write does, WriteBatch holds payloads refused because no Cortex is
// known or a handoff is under way, and proposes them again for up to
// ForwardWait. A payload whose answer does not come within RequestWait,
// or whose wait ends with ctx or the node's shutdown after it was queued,
// is answered unknown_outcome: the loop still holds it and may apply it. A
// payload never queued is answered unavailable (not written).
func (n *Node) WriteBatch(ctx context.Context, payloads [][]byte, d core.Durability) []core.Result {
	res := make([]core.Result, len(payloads))
	if len(payloads) == 0 {
		return res
	}
	pending := make([]int, len(payloads))
	for i := range pending {
		pending[i] = i
	}
	wait, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopped, cancel)()
	first := true
	_ = retry.Do(wait, retry.Hold(n.opts.ForwardWait), func() error {
		if !first && !n.cortexKnown() {
			// Still between Cortexes: no need to ask the loop again.
			return errHeld
		}
		first = false
		if !n.callBatch(ctx, payloads, pending, d, res) {
			return retry.Permanent(errBatchDone)
		}
		held := pending[:0]
		for _, i := range pending {
			if e := res[i].Err; e != nil && (e.Code == core.CodeNoCortex || e.Code == core.CodeTransferring) {
				held = append(held, i)
			}
		}
		pending = held
		if len(pending) == 0 {
			return nil
		}
		return errHeld
	})
	return res
}

var (
	errHeld      = errors.New("held: no Cortex yet")
	errBatchDone = errors.New("batch wait ended")
)

// cortexKnown reports whether the loop last published a Cortex and no
// handoff, so a held batch is worth proposing again.
func (n *Node) cortexKnown() bool {
	snap := n.Status()
	return snap != nil && snap.Core.Cortex != "" && snap.Core.Handoff == ""
}

// callBatch queues payloads[i] for every i in idx and waits for their
// answers, writing each into res[i]. It reports false when it stopped
// waiting before every answer came (ctx, shutdown, RequestWait): the
// unanswered ones are then answered in res as WriteBatch says.
func (n *Node) callBatch(ctx context.Context, payloads [][]byte, idx []int, d core.Durability, res []core.Result) bool {
	k := len(idx)
	// Consecutive request ids: id - base is the position in idx.
	base := n.nextID.Add(uint64(k)) - uint64(k) + 1
	// One reply channel with room for every answer: the loop never blocks
	// on it, even after this call has stopped waiting.
	reply := make(chan core.Result, k)
	queued := 0
	if ctx.Err() == nil && n.stopped.Err() == nil {
		queued = n.enqueue(ctx, payloads, idx, d, base, reply)
	}
	answered := make([]bool, k)
	got := 0
	var why *core.Error
	if queued == k {
		wait := time.NewTimer(n.opts.RequestWait)
		defer wait.Stop()
	collect:
		for got < queued {
			select {
			case r := <-reply:
				j := int(r.ID - base)
				if j < 0 || j >= k || answered[j] {
					continue
				}
				answered[j] = true
				got++
				res[idx[j]] = r
			case <-ctx.Done():
				why = &core.Error{Code: core.CodeUnknownOutcome, Msg: fmt.Sprintf("the request ended (%v) while this write was in the node's loop: it may still be applied; read it back before retrying", ctx.Err())}
				break collect
			case <-n.stop:
				why = &core.Error{Code: core.CodeUnknownOutcome, Msg: ErrStopped.Error() + " (this write was in its loop: it may still be applied; read it back before retrying)"}
				break collect
			case <-wait.C:
				why = &core.Error{Code: core.CodeUnknownOutcome, Msg: fmt.Sprintf("no answer within %s (a commit is slow or stalled): it may still be applied; read it back before retrying", n.opts.RequestWait)}
				break collect
			}
		}
	} else {
		// Not everything could be queued: the queued ones may be applied;
		// wait no longer for them than the rest could be queued.
		why = &core.Error{Code: core.CodeUnknownOutcome, Msg: "the request ended while this write was queued for the node's loop: it may still be applied; read it back before retrying"}
		if n.stopped.Err() != nil {
			why.Msg = ErrStopped.Error() + " (this write was queued: it may still be applied; read it back before retrying)"
		}
	}
	if got == k {
		return true
	}
	notSent := &core.Error{Code: core.CodeUnavailable, Msg: "not written: the request ended before this write was queued; retry"}
	if n.stopped.Err() != nil {
		notSent.Msg = ErrStopped.Error()
	}
	for j := 0; j < k; j++ {
		switch {
		case answered[j]:
		case j < queued:
			res[idx[j]] = core.Result{ID: base + uint64(j), Kind: core.ResultWrite, Err: why}
		default:
			res[idx[j]] = core.Result{Kind: core.ResultWrite, Err: notSent}
		}
	}
	return false
}

// enqueue queues the write requests of callBatch back to back, and returns
// how many it queued before ctx ended or the node stopped.
func (n *Node) enqueue(ctx context.Context, payloads [][]byte, idx []int, d core.Durability, base uint64, reply chan core.Result) int {
	for j, i := range idx {
		select {
		case n.reqs <- request{kind: reqWrite, id: base + uint64(j), payload: payloads[i], dur: d, reply: reply}:
		case <-ctx.Done():
			return j
		case <-n.stop:
			return j
		}
	}
	return len(idx)
}
