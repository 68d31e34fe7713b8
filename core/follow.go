package core

import (
	"slices"
	"strconv"
)

// stepAppend is a follower receiving entries from the Cortex (rules 6, 7, 10).
func (n *Node) stepAppend(m Message) {
	if m.Epoch < n.hs.Epoch {
		// Fencing: a stale Cortex learns the new epoch from the refusal.
		n.send(Message{Type: MsgAppendResp, To: m.From, SentAt: m.SentAt, Reject: true, Hint: n.log.last()})
		return
	}
	n.heardCortex(m)
	if n.role == RoleCortex {
		return
	}
	if n.cfg.Kind == KindSentinel {
		// Sentinels hold no data; they only keep the commit point.
		n.learnCommit(m.Commit)
		n.send(Message{Type: MsgAppendResp, To: m.From, SentAt: m.SentAt, Match: m.Prev})
		return
	}
	reject := func(hint Pos) {
		n.send(Message{Type: MsgAppendResp, To: m.From, SentAt: m.SentAt, Reject: true, Hint: hint})
	}
	if m.Prev.Seq > n.log.lastSeq() {
		reject(n.log.last())
		return
	}
	es := m.Entries
	prev := m.Prev
	// Entries at or below our snapshot are committed and already here.
	if prev.Seq < n.log.snap.Seq {
		skip := int(n.log.snap.Seq - prev.Seq)
		if skip > len(es) {
			n.send(Message{Type: MsgAppendResp, To: m.From, SentAt: m.SentAt, Match: n.log.snap})
			return
		}
		if skip > 0 {
			prev = es[skip-1].Pos
			es = es[skip:]
		}
	}
	if !n.log.has(prev) {
		reject(n.log.hintBefore(prev.Seq-1, prev.Epoch))
		return
	}
	for i, e := range es {
		if ep, ok := n.log.epochAt(e.Pos.Seq); ok {
			if ep == e.Pos.Epoch {
				continue
			}
			// Divergence: everything from here on is a deposed Cortex's
			// suffix. Committed entries are never removed.
			if e.Pos.Seq <= n.hs.Commit.Seq {
				n.event(Event{Kind: EventViolation, Node: m.From, Detail: "asked to truncate committed entry " + e.Pos.String()})
				return
			}
			n.truncate(e.Pos.Seq-1, "divergent suffix replaced by Cortex "+string(m.From)+" in epoch "+itoa(uint64(m.Epoch)))
		}
		n.appendFollower(es[i:])
		break
	}
	var match Pos
	if len(es) > 0 {
		match = es[len(es)-1].Pos
	} else {
		match = prev
	}
	if c := m.Commit; c.Seq <= match.Seq {
		n.learnCommit(c)
	} else {
		n.learnCommit(match)
	}
	if m.Leased {
		n.noteFresh(m.Last)
	}
	n.send(Message{Type: MsgAppendResp, To: m.From, SentAt: m.SentAt, Match: match})
	n.maybeCompact()
}

func (n *Node) appendFollower(es []Entry) {
	n.log.append(es...)
	n.rd.Entries = append(n.rd.Entries, es...)
	for _, e := range es {
		if e.Type == EntryMembership {
			n.applyMembership()
		}
	}
}

// truncate removes entries after s for the quarantine (rule 10).
func (n *Node) truncate(s Seq, reason string) {
	removed := n.log.truncateAfter(s)
	if len(removed) == 0 {
		return
	}
	n.durable = min(n.durable, s)
	n.unackAppends(s)
	// Entries of this very Ready are not persisted yet: they are simply not
	// written, so they are not quarantined either, and a write of them that
	// this Ready would acknowledge is answered with an error instead (it
	// never became durable anywhere).
	if k := len(n.rd.Entries); k > 0 {
		kept := n.rd.Entries[:0]
		var unsaved []Pos
		for _, e := range n.rd.Entries {
			if e.Pos.Seq <= s {
				kept = append(kept, e)
			} else {
				unsaved = append(unsaved, e.Pos)
			}
		}
		n.rd.Entries = kept
		if len(unsaved) > 0 {
			n.unacknowledge(unsaved)
			saved := removed[:0]
			for _, e := range removed {
				if !slices.Contains(unsaved, e.Pos) {
					saved = append(saved, e)
				}
			}
			removed = saved
		}
	}
	if len(removed) == 0 {
		n.recomputeMembers()
		n.rd.Members = n.members
		return
	}
	after, _ := n.log.epochAt(s)
	if n.rd.Truncate != nil {
		// Two truncations in one Ready: keep the deeper one, all removed.
		prior := n.rd.Truncate
		if prior.After.Seq < s {
			after, s = prior.After.Epoch, prior.After.Seq
		}
		removed = mergeRemoved(prior.Removed, removed)
	}
	n.rd.Truncate = &Truncation{After: Pos{Epoch: after, Seq: s}, Removed: removed, Reason: reason}
	n.recomputeMembers()
	n.rd.Members = n.members
}

// unacknowledge turns this Ready's successful results for writes at the
// given positions into errors: those entries are being removed before they
// were ever persisted.
func (n *Node) unacknowledge(ps []Pos) {
	for i, r := range n.rd.Results {
		if r.Kind == ResultWrite && r.Err == nil && slices.Contains(ps, r.Pos) {
			n.rd.Results[i].Err = errorf(CodeNoCortex, "", "a new Cortex replaced this write before it was stored; it was not applied: retry it")
			n.rd.Results[i].Pos = Pos{}
		}
	}
}

// unackAppends drops this Ready's append answers for entries after s: they
// go out after the save that removes those entries, and would tell the old
// Cortex they are durable here (rule 8; sim seed 507710: an Observer took an
// epoch's entries and the next epoch's replacement in one Ready). Dropped as
// the network may drop them; the old Cortex is fenced by the next answer.
func (n *Node) unackAppends(s Seq) {
	kept := make([]Message, 0, len(n.rd.Messages)) // not in place: a taken Ready may share the array
	for _, m := range n.rd.Messages {
		if m.Type != MsgAppendResp || m.Reject || m.Match.Seq <= s {
			kept = append(kept, m)
		}
	}
	n.rd.Messages = kept
}

func mergeRemoved(a, b []Entry) []Entry {
	out := append([]Entry(nil), a...)
	for _, e := range b {
		dup := false
		for _, x := range out {
			if x.Pos == e.Pos {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// applyMembership puts the newest membership entry in force.
func (n *Node) applyMembership() {
	before := describeMembers(n.members)
	n.recomputeMembers()
	n.rd.Members = n.members
	if after := describeMembers(n.members); after != before {
		n.event(Event{Kind: EventMembershipChanged, Detail: after})
	}
}

func describeMembers(ms Members) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ","
		}
		s += string(m.ID) + ":" + m.Kind.String()
		if m.Learner {
			s += "(learner)"
		}
	}
	return s
}
