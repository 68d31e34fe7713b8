package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// Operator changes the membership during the fault phase (rule 15) the way
// an operator does with muninn cluster add-node, remove-node and failover:
// one change at a time, sent to any node and redirected to the Cortex like
// any request. It adds a spare (a data node running outside the
// membership) as a learner and waits until the Cortex promotes it; it
// removes a data voter, and when that is the Cortex it hands off first and
// removes it from the new Cortex. A removed node is stopped a moment later
// and comes back only as a fresh node (an empty store, a new identity) to
// be added again. It keeps at least three voters, two of them data voters.
// Faults go on meanwhile; only a clean-failover watch makes it wait. Its
// randomness is its own source, so it shifts no other draw.
type Operator struct {
	w   *World
	r   *Rand
	end int64
	// leaving: removed (committed), to be stopped shortly.
	leaving map[core.NodeID]bool
	// routed: the nodes clients send to, in w.nodes order.
	routed []*SimNode
	// expect is what the settled changes made of each node
	// (check_members.go).
	expect map[core.NodeID]memberState
}

// memberState is whether a node should be a member, as far as the
// operator's answers settle it.
type memberState uint8

const (
	memberUnsettled memberState = iota // a change with an unknown outcome
	memberIn
	memberOut
)

const (
	// promoteWait bounds how long the operator watches for a promotion
	// before it moves on (the core promotes on its own either way).
	promoteWait = 20 * time.Second
	// changeTries bounds the retries of one change the core refused for
	// the moment (change_in_progress, handoff_in_progress, quorum
	// unavailable) or handed off for.
	changeTries = 4
	// CodeGaveUp is the operator's own timeout: the request may be pending
	// on a node, so its outcome is unknown.
	CodeGaveUp core.Code = "client_timeout"
)

func newOperator(w *World) *Operator {
	o := &Operator{w: w, r: NewRand(Derive(w.seed, "members")), leaving: map[core.NodeID]bool{}, expect: map[core.NodeID]memberState{}}
	for _, sn := range w.nodes {
		o.expect[sn.id] = memberOut
		if sn.routed {
			o.expect[sn.id] = memberIn
		}
	}
	o.reroute()
	return o
}

func (o *Operator) start(from, end int64) {
	o.end = end
	if o.w.set.MemberGap == 0 {
		return
	}
	o.w.at(from+int64(o.r.Exp(o.w.set.MemberGap)), o.step)
}

// running: the operator acts only in the fault phase.
func (o *Operator) running() bool { return o.w.work.active && !o.w.stopped && o.w.now < o.end }

// later plans the next change.
func (o *Operator) later() {
	if o.running() {
		o.w.after(o.r.Exp(o.w.set.MemberGap), o.step)
	}
}

// route sets whether clients send to sn.
func (o *Operator) route(sn *SimNode, on bool) {
	if sn.routed != on {
		sn.routed = on
		o.reroute()
	}
}

func (o *Operator) reroute() {
	o.routed = o.routed[:0]
	for _, sn := range o.w.nodes {
		if sn.routed {
			o.routed = append(o.routed, sn)
		}
	}
}

// step picks the next change from the membership the Cortex has in force.
func (o *Operator) step() {
	w := o.w
	if !o.running() {
		return
	}
	if w.chk.watching() {
		// A clean failover is being timed: wait, as the faults do.
		w.after(250*time.Millisecond, o.step)
		return
	}
	cx := w.cortex()
	if cx == nil || !cx.live() {
		w.after(500*time.Millisecond, o.step)
		return
	}
	ms := cx.n.Members()
	learner := false
	var adds, removes []*SimNode
	for _, sn := range w.nodes {
		m, in := ms.Get(sn.id)
		if in && !m.Learner && !o.leaving[sn.id] {
			o.route(sn, true) // promoted while the operator was not looking
		}
		learner = learner || in && m.Learner
		if sn.spec.Kind != core.KindAuto || o.leaving[sn.id] {
			continue
		}
		switch {
		case !in && (sn.fresh || sn.retired):
			adds = append(adds, sn)
		case in && m.DataVoter():
			removes = append(removes, sn)
		}
	}
	if learner {
		adds = nil // one learner at a time
	}
	canRemove := len(removes) > 0 && keepsQuorum(ms)
	switch {
	case len(adds) > 0 && (!canRemove || o.r.Chance(0.5)):
		o.add(adds[o.r.Intn(len(adds))])
	case canRemove:
		victim := removes[o.r.Intn(len(removes))]
		if o.r.Chance(0.3) {
			victim = cx // the Cortex: handed off first
		}
		o.remove(victim, 0, false)
	default:
		o.later()
	}
}

// keepsQuorum: removing one data voter from ms leaves at least three
// voters, two of them data voters, and quorum writes possible.
func keepsQuorum(ms core.Members) bool {
	if ms.Voters() <= 3 || ms.DataVoters() <= 2 {
		return false
	}
	v := ms.Voters() - 1
	w := v - (v/2 + 1) + 1
	return w <= ms.DataVoters()-1
}

// add adds sn as a learner. A node removed before comes back only as a
// fresh node: the operator starts it on an empty store (a new identity)
// and adds it a moment later.
func (o *Operator) add(sn *SimNode) {
	if sn.retired {
		o.w.stats.NodesReadded++
		sn.provision()
		o.w.after(o.r.Between(300*time.Millisecond, 2*time.Second), func() { o.proposeAdd(sn, 0) })
		return
	}
	o.proposeAdd(sn, 0)
}

func (o *Operator) proposeAdd(sn *SimNode, tries int) {
	w := o.w
	if !o.running() {
		return
	}
	w.stats.MemberProposed++
	prev := o.expect[sn.id]
	o.expect[sn.id] = memberUnsettled
	o.call(core.Request{Kind: core.RequestAdd, Member: core.Member{ID: sn.id, Kind: core.KindAuto}}, nil, func(res core.Result, ms core.Members, at *SimNode) {
		_, in := ms.Get(sn.id)
		switch {
		case res.Err == nil, res.Err.Code == core.CodeBadRequest && in:
			// Committed. "Already a member" answers a retry of an add
			// whose outcome was unknown: the core says so only once the
			// membership in force is committed.
			w.stats.MemberCommitted++
			o.expect[sn.id] = memberIn
			sn.fresh = false
			w.record("member-added", sn.id, 0, 0, nil)
			o.awaitPromotion(sn, w.now+int64(promoteWait))
		case unknownOutcome(res.Err):
			w.stats.MemberUnknown++
			o.retry(func() { o.proposeAdd(sn, tries) })
		default:
			w.stats.MemberRefused++
			o.expect[sn.id] = prev
			if retryable(res.Err) && tries+1 < changeTries {
				o.retry(func() { o.proposeAdd(sn, tries+1) })
				return
			}
			o.later()
		}
	})
}

// awaitPromotion watches the Cortex's membership until sn is a voter
// (rule 15: the Cortex promotes a learner once it has caught up), then
// routes clients to it.
func (o *Operator) awaitPromotion(sn *SimNode, deadline int64) {
	w := o.w
	if w.stopped {
		return
	}
	if cx := w.cortex(); cx != nil {
		if m, ok := cx.n.Members().Get(sn.id); ok && !m.Learner {
			w.stats.LearnersPromoted++
			w.record("member-promoted", sn.id, 0, 0, nil)
			o.route(sn, true)
			o.later()
			return
		}
	}
	if w.now >= deadline || !o.running() {
		o.later()
		return
	}
	w.after(200*time.Millisecond, func() { o.awaitPromotion(sn, deadline) })
}

// remove removes sn; the Cortex is first asked to hand off (it cannot
// remove itself), then sn is removed from the new Cortex.
func (o *Operator) remove(sn *SimNode, tries int, handedOff bool) {
	w := o.w
	if !o.running() {
		return
	}
	if tries >= changeTries {
		o.later()
		return
	}
	if cx := w.cortex(); cx == sn {
		o.call(core.Request{Kind: core.RequestTransfer}, sn, func(res core.Result, ms core.Members, at *SimNode) {
			if res.Err != nil {
				// No Lobe answers, a handoff or a disk fault is under way,
				// or the handoff was interrupted: plan again later.
				o.later()
				return
			}
			w.after(o.r.Between(100*time.Millisecond, time.Second), func() { o.remove(sn, tries+1, true) })
		})
		return
	}
	w.stats.MemberProposed++
	prev := o.expect[sn.id]
	o.expect[sn.id] = memberUnsettled
	o.call(core.Request{Kind: core.RequestRemove, Target: sn.id}, nil, func(res core.Result, ms core.Members, at *SimNode) {
		_, in := ms.Get(sn.id)
		switch {
		case res.Err == nil, res.Err.Code == core.CodeBadRequest && ms != nil && !in:
			// Committed ("not a member": a retry after an unknown outcome,
			// answered only from a committed membership).
			o.removed(sn, handedOff)
		case unknownOutcome(res.Err):
			w.stats.MemberUnknown++
			o.retry(func() { o.remove(sn, tries, handedOff) })
		default:
			w.stats.MemberRefused++
			o.expect[sn.id] = prev
			if retryable(res.Err) || res.Err.Code == core.CodeBadRequest && at == sn {
				// Refused for now, or it is the Cortex (again): hand off.
				o.retry(func() { o.remove(sn, tries+1, handedOff) })
				return
			}
			o.later()
		}
	})
}

// removed: the removal committed. Clients stop using sn and the operator
// stops it a moment later; it is not a member any more, so it must not
// count anywhere.
func (o *Operator) removed(sn *SimNode, handedOff bool) {
	w := o.w
	w.stats.MemberCommitted++
	w.stats.NodesRemoved++
	o.expect[sn.id] = memberOut
	if handedOff {
		w.stats.CortexesRemoved++
	}
	w.record("member-removed", sn.id, 0, 0, nil)
	o.route(sn, false)
	o.leaving[sn.id] = true
	w.after(o.r.Between(0, 3*time.Second), func() {
		delete(o.leaving, sn.id)
		sn.retire()
	})
	o.later()
}

func (o *Operator) retry(fn func()) {
	o.w.after(o.r.Between(500*time.Millisecond, 1500*time.Millisecond), func() {
		if o.running() {
			fn()
		}
	})
}

// unknownOutcome: the change may or may not have been logged; the
// operator retries it, and the retry's answer settles it.
func unknownOutcome(e *core.Error) bool {
	switch e.Code {
	case core.CodeUnknownOutcome, CodeConnReset, CodeGaveUp, core.CodeInsufficientStorage:
		return true
	}
	return false
}

// retryable: refused for the moment; nothing was logged.
func retryable(e *core.Error) bool {
	switch e.Code {
	case core.CodeBusy, core.CodeTransferring, core.CodeQuorumUnavailable, core.CodeUnavailable, core.CodeNoCortex:
		return true
	}
	return false
}

// opCall is one admin request in flight, redirected like a client's.
type opCall struct {
	req     core.Request
	start   int64
	hops    int
	attempt int
	over    bool
	done    func(core.Result, core.Members, *SimNode)
}

// call sends req to first (or a random routed node) and follows
// not_cortex to the Cortex named; no_cortex and refused connections are
// retried at a random node for up to holdFor. done gets the answer, the
// answering node and its membership in force when it answered (nil when it
// crashed).
func (o *Operator) call(req core.Request, first *SimNode, done func(core.Result, core.Members, *SimNode)) {
	c := &opCall{req: req, start: o.w.now, done: done}
	o.w.after(opTimeout, func() {
		if !c.over {
			o.finish(c, core.Result{Err: &core.Error{Code: CodeGaveUp, Msg: "no answer within " + opTimeout.String()}}, nil, nil)
		}
	})
	if first == nil {
		first = o.node()
	}
	o.send(c, first)
}

func (o *Operator) node() *SimNode {
	if len(o.routed) == 0 {
		return o.w.nodes[o.r.Intn(len(o.w.nodes))]
	}
	return o.routed[o.r.Intn(len(o.routed))]
}

func (o *Operator) latency() time.Duration {
	return o.r.Between(500*time.Microsecond, 2*time.Millisecond)
}

func (o *Operator) send(c *opCall, sn *SimNode) {
	w := o.w
	c.attempt++
	a := c.attempt
	w.after(o.latency(), func() {
		if c.over || a != c.attempt {
			return
		}
		w.nextReq++
		req := c.req
		req.ID = w.nextReq
		ok := sn.request(req, func(res core.Result, _ engram.KV) {
			var ms core.Members
			if sn.n != nil {
				ms = sn.n.Members()
			}
			w.after(o.latency(), func() { o.answer(c, a, sn, res, ms) })
		})
		if !ok {
			w.after(o.latency(), func() { o.hold(c, a) })
		}
	})
}

func (o *Operator) answer(c *opCall, a int, sn *SimNode, res core.Result, ms core.Members) {
	if c.over || a != c.attempt {
		return
	}
	if e := res.Err; e != nil {
		switch e.Code {
		case core.CodeNotCortex, core.CodeReadOnly:
			if cx := o.w.node(e.Cortex); cx != nil && c.hops < 8 {
				c.hops++
				o.send(c, cx)
				return
			}
			o.hold(c, a)
			return
		case core.CodeNoCortex:
			o.hold(c, a)
			return
		}
	}
	o.finish(c, res, ms, sn)
}

// hold retries at a random node shortly, within holdFor; then nothing was
// logged: no Cortex took the request.
func (o *Operator) hold(c *opCall, a int) {
	if c.over || a != c.attempt {
		return
	}
	if o.w.now-c.start >= int64(holdFor) {
		o.finish(c, core.Result{Err: &core.Error{Code: core.CodeNoCortex, Msg: "no Cortex took the request within " + holdFor.String()}}, nil, nil)
		return
	}
	o.w.after(o.r.Between(100*time.Millisecond, 300*time.Millisecond), func() {
		if !c.over && a == c.attempt {
			o.send(c, o.node())
		}
	})
}

func (o *Operator) finish(c *opCall, res core.Result, ms core.Members, at *SimNode) {
	c.over = true
	c.attempt++
	c.done(res, ms, at)
}
