package core

import (
	"fmt"
	"strings"
)

// Bounded waits (rule 17). A quorum write or a strong read needs a commit,
// and a commit needs W data voters that count (rules 8 and 16). The Cortex
// knows which of them answered a heartbeat within the SDOWN window; with
// fewer than W of them it cannot commit now, so it refuses new quorum
// writes and strong reads at once (quorum_unavailable), answers the ones
// waiting, and lets local writes flow.

// reachable lists the counted data voters that answered a heartbeat sent
// within the SDOWN window and left no append unanswered that long (this
// node included), and those that did not.
// Becoming Cortex counts as contact with everyone.
func (n *Node) reachable() (in, out []NodeID) {
	for _, m := range n.members {
		if !m.DataVoter() {
			continue
		}
		ok := n.peerCounts(m)
		if pr := n.prog[m.ID]; !ok && pr != nil && pr.store == 0 && n.now < n.since.Add(n.cfg.Heartbeat) {
			// Not heard from since this node became Cortex: which store it
			// runs on is not known yet, and it may yet count. For one
			// heartbeat (its first answer is a round trip away) a write
			// waits for it instead of failing; the commit itself still
			// counts only what answers (rule 16).
			ok = true
		}
		if ok && m.ID != n.cfg.ID {
			// It answers heartbeats, and stores what it is sent: a voter
			// that leaves appends unanswered for a whole window (its disk
			// is full, or stalled) cannot help a commit either.
			pr := n.prog[m.ID]
			ok = n.now < max(pr.echo, n.since).Add(n.cfg.DownAfter()) &&
				(pr.ackWait == 0 || n.now < pr.ackWait.Add(n.cfg.DownAfter()))
		}
		if ok {
			in = append(in, m.ID)
		} else {
			out = append(out, m.ID)
		}
	}
	return in, out
}

// commitBlocked says why the Cortex cannot commit now, or nil.
func (n *Node) commitBlocked() *Error {
	in, out := n.reachable()
	w := n.members.WriteQuorum()
	if len(in) >= w {
		return nil
	}
	return errorf(CodeQuorumUnavailable, "", "a commit needs %d data voters but only %d answer (%s; no answer, or appends left unanswered, within %s from %s): quorum writes and strong reads cannot complete now; write with durability=local, or retry when they return",
		w, len(in), strings.Join(ids(in), ", "), n.cfg.DownAfter(), strings.Join(ids(out), ", "))
}

func ids(xs []NodeID) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// reachDeadline is the next time a data voter's last answer leaves the
// SDOWN window, while something waits for a commit.
func (n *Node) reachDeadline() Time {
	if len(n.writes) == 0 && len(n.reads) == 0 {
		return Never
	}
	d := Never
	for _, m := range n.members {
		if pr := n.prog[m.ID]; pr != nil && m.DataVoter() {
			if t := max(pr.echo, n.since).Add(n.cfg.DownAfter()); t > n.now {
				d = min(d, t)
			}
			if t := pr.ackWait.Add(n.cfg.DownAfter()); pr.ackWait != 0 && t > n.now {
				d = min(d, t)
			}
			if t := n.since.Add(n.cfg.Heartbeat); pr.store == 0 && t > n.now {
				d = min(d, t) // the grace for a member not heard from yet
			}
		}
	}
	for _, r := range n.reads {
		d = min(d, r.at.Add(n.cfg.DownAfter()))
	}
	return d
}

// answerBlocked answers what waits for a commit that cannot come now, and
// strong reads that waited a whole SDOWN window: a quorum write is stored
// on the Cortex and may still commit when the voters return, so its outcome
// is unknown; a strong read served nothing and can be retried.
func (n *Node) answerBlocked() {
	blocked := n.commitBlocked()
	if blocked != nil && len(n.writes) > 0 {
		for _, w := range n.writes {
			n.result(w.id, ResultWrite, Pos{}, errorf(CodeUnknownOutcome, "", "the write at %s is stored on the Cortex but not on a quorum, and the quorum is gone (%s); it commits if they return before the Cortex fails: read it back", w.pos, blocked.Msg))
		}
		n.writes = nil
	}
	kept := n.reads[:0]
	for _, r := range n.reads {
		switch {
		case blocked != nil:
			n.result(r.id, r.kind(), Pos{}, blocked)
		case n.now >= r.at.Add(n.cfg.DownAfter()):
			n.result(r.id, r.kind(), Pos{}, errorf(CodeQuorumUnavailable, "", "no commit within %s: this Cortex cannot confirm it still leads; retry", n.cfg.DownAfter()))
		default:
			kept = append(kept, r)
		}
	}
	n.reads = kept
	n.releaseHeld()
}

// boundedOnCortex: a Cortex is current while it holds its lease; past it a
// rival may have been elected, so its data may be as old as the lease's end
// (rule 12). It serves a bounded read only within that bound.
func (n *Node) boundedOnCortex(maxLagMs int64) *Error {
	until := n.leaseUntil()
	if n.now < until || n.now.Sub(until).Milliseconds() <= maxLagMs {
		return nil
	}
	return errorf(CodeStale, "", "this Cortex has had no word from a quorum for %s and may have been replaced, so it cannot vouch for max_lag_ms=%d; retry shortly", fmt.Sprint(n.now.Sub(n.quorumContact(n.leaseFloor, false)).Round(1e6)), maxLagMs)
}
