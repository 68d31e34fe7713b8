package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// reqCB answers a client request: the core's Result, and for an OK read the
// node's state machine at the moment the read is served.
type reqCB func(res core.Result, kv *engram.MemKV)

// CodeConnReset is the error a client sees when the node it waits on
// crashes: for a write the outcome is unknown.
const CodeConnReset core.Code = "connection_reset"

// SimNode is one simulated process: the real core.Node driven the way the
// runner drives it, over a Store that survives crashes, with its own
// drifting clock.
type SimNode struct {
	w    *World
	spec NodeSpec
	id   core.NodeID
	cfg  core.Config
	n    *core.Node // nil while crashed
	st   *Store

	paused bool
	inbox  []func() // deliveries held while paused, in arrival order

	timerArmed bool
	timerAt    int64
	timerGen   uint64

	lastTickNow int64 // global time of the last tick
	spinSince   int64 // since when the core wants ticks in the past (-1: not)

	pending     map[uint64]reqCB
	incarnation int
	maxEpoch    core.Epoch
	downAt      int64
	wiped       bool              // restarted on a regressed store, not yet seen rejoined
	rejected    map[core.Pos]bool // entries the state machine refused, until answered
}

// local converts global time to this node's clock.
func (sn *SimNode) local(g int64) core.Time {
	return core.Time(sn.spec.Offset + int64(float64(g)*sn.spec.Rate))
}

// global returns the earliest global time at which the node's clock reads d.
func (sn *SimNode) global(d core.Time) int64 {
	g := int64(float64(int64(d)-sn.spec.Offset) / sn.spec.Rate)
	for sn.local(g) < d {
		g++
	}
	return g
}

func (sn *SimNode) up() bool { return sn.n != nil }

// live reports whether the process is running (up and not paused).
func (sn *SimNode) live() bool { return sn.n != nil && !sn.paused }

// schedule arms the timer for the core's next deadline.
func (sn *SimNode) schedule() {
	if !sn.live() {
		return
	}
	d := sn.n.NextDeadline()
	if d == core.Never {
		return
	}
	g := max(sn.global(d), sn.w.now)
	if g == sn.w.now && sn.lastTickNow == sn.w.now {
		// The core just ticked and still wants a tick now: it would spin
		// (a busy loop in the runner). Tick again a millisecond later, and
		// report a livelock if it keeps spinning for a second.
		if sn.spinSince < 0 {
			sn.spinSince = sn.w.now
		} else if sn.w.now-sn.spinSince > int64(time.Second) {
			sn.w.chk.violate("tick-livelock", true, sn.id, fmt.Sprintf("NextDeadline stayed in the past for 1s (deadline %d, clock %d): %+v", d, sn.local(sn.w.now), sn.n.Status()))
			return
		}
		g = sn.w.now + int64(time.Millisecond)
	} else if g > sn.w.now {
		sn.spinSince = -1
	}
	if sn.timerArmed && sn.timerAt <= g {
		return // an earlier tick is armed; it reschedules
	}
	sn.timerGen++
	gen := sn.timerGen
	sn.timerArmed, sn.timerAt = true, g
	sn.w.at(g, func() {
		if gen != sn.timerGen {
			return
		}
		sn.timerArmed = false
		sn.tick()
	})
}

func (sn *SimNode) tick() {
	if !sn.live() {
		return
	}
	sn.lastTickNow = sn.w.now
	sn.w.record("tick", sn.id, 0, 0, nil)
	sn.n.Tick(sn.local(sn.w.now))
	sn.drive(nil)
}

// receive is the network handing over a message.
func (sn *SimNode) receive(m core.Message) {
	if sn.n == nil {
		return
	}
	if sn.paused {
		sn.inbox = append(sn.inbox, func() { sn.receive(m) })
		return
	}
	sn.w.record("deliver", sn.id, uint64(m.Type), uint64(m.Epoch), m.String)
	sn.w.chk.onReceive(sn, m)
	sn.n.Step(sn.local(sn.w.now), m)
	sn.drive(&m)
}

// request hands a client request to the node; false when the node is down
// (connection refused).
func (sn *SimNode) request(id uint64, cb reqCB, fn func(n *core.Node, now core.Time)) bool {
	if sn.n == nil {
		return false
	}
	if sn.paused {
		sn.inbox = append(sn.inbox, func() {
			if !sn.request(id, cb, fn) {
				cb(core.Result{ID: id, Err: &core.Error{Code: CodeConnReset, Msg: "node down"}}, nil)
			}
		})
		return true
	}
	sn.pending[id] = cb
	fn(sn.n, sn.local(sn.w.now))
	sn.drive(nil)
	return true
}

// drive carries out every Ready in the documented order, then re-arms the
// timer. cause is the message just stepped, if any.
func (sn *SimNode) drive(cause *core.Message) {
	for sn.n != nil && sn.n.HasReady() {
		rd := sn.n.Ready()
		sn.handleReady(&rd, cause)
		if sn.n == nil {
			return
		}
		sn.n.Advance()
	}
	if sn.n == nil {
		return
	}
	sn.w.chk.afterDrive(sn)
	sn.schedule()
}

func (sn *SimNode) handleReady(rd *core.Ready, cause *core.Message) {
	w, st, chk := sn.w, sn.st, sn.w.chk
	persisted := st.hs
	// 0. Reads the core allowed are served from the state before this
	// Ready's entries (the contract on core.Ready).
	for _, r := range rd.Results {
		if r.Kind != core.ResultRead {
			continue
		}
		if cb, ok := sn.pending[r.ID]; ok {
			delete(sn.pending, r.ID)
			cb(r, st.kv)
		}
	}
	// 1. Persist: truncation, hard state, entries, in one batch.
	if t := rd.Truncate; t != nil {
		removed := st.truncate(t.After.Seq, t.Reason, w.now)
		chk.onTruncate(sn, t, removed)
	}
	if rd.HardState != nil {
		chk.onHardState(sn, persisted, *rd.HardState)
		st.hs = *rd.HardState
	}
	if len(rd.Entries) > 0 {
		chk.onAppend(sn, rd.Entries, cause, persisted.Epoch)
		for _, e := range rd.Entries {
			if e.Pos.Seq != st.last().Seq+1 {
				chk.violate("log-gap", false, sn.id, "entry "+e.Pos.String()+" does not follow "+st.last().String())
				return
			}
			if st.append(e) {
				if sn.rejected == nil {
					sn.rejected = map[core.Pos]bool{}
				}
				sn.rejected[e.Pos] = true
			}
			chk.onPersisted(sn, e, st.lastChain())
		}
	}
	if rd.Compact != nil {
		st.compact(rd.Compact.Upto, rd.Compact.Members)
	}
	// 2. Send.
	for _, m := range rd.Messages {
		chk.onSend(sn, m)
		w.net.send(m)
	}
	// 3. Snapshots: not modelled; the transfer fails and the core retries.
	for _, s := range rd.Snapshots {
		w.stats.Snapshots++
		inc, to := sn.incarnation, s.To
		w.after(sn.cfg.Heartbeat, func() {
			if sn.n != nil && sn.incarnation == inc {
				sn.n.SnapshotFailed(sn.local(w.now), to)
				sn.drive(nil)
			}
		})
	}
	// 4. Results, after persistence. A write whose entry the state
	// machine refused is answered with the refusal, as the runner does.
	for _, r := range rd.Results {
		if cb, ok := sn.pending[r.ID]; ok {
			delete(sn.pending, r.ID)
			if r.Kind == core.ResultWrite && r.Err == nil && sn.rejected[r.Pos] {
				r = core.Result{ID: r.ID, Kind: r.Kind, Err: &core.Error{Code: core.CodeConflict, Msg: "refused when applied"}}
			}
			cb(r, st.kv)
		}
	}
	for p := range sn.rejected {
		if p.Seq <= sn.n.Commit().Seq {
			delete(sn.rejected, p)
		}
	}
	// 5. Events.
	for _, e := range rd.Events {
		w.record("event", sn.id, uint64(e.Kind), uint64(e.Epoch), func() string {
			return e.Kind.String() + " epoch=" + itoa(uint64(e.Epoch)) + " node=" + string(e.Node) + " " + e.Detail
		})
		chk.onEvent(sn, e)
	}
}

// crash kills the process: volatile state is gone, the Store stays.
func (sn *SimNode) crash() {
	if sn.n == nil {
		return
	}
	sn.w.record("crash", sn.id, 0, 0, nil)
	sn.n = nil
	sn.paused = false
	sn.inbox = nil
	sn.rejected = nil
	sn.timerGen++
	sn.timerArmed = false
	sn.incarnation++
	sn.downAt = sn.w.now
	sn.failPending()
}

func (sn *SimNode) failPending() {
	for _, id := range slices.Sorted(maps.Keys(sn.pending)) {
		cb := sn.pending[id]
		delete(sn.pending, id)
		cb(core.Result{ID: id, Err: &core.Error{Code: CodeConnReset, Msg: "node crashed"}}, nil)
	}
}

// restart starts a new process from the Store.
func (sn *SimNode) restart() {
	if sn.n != nil {
		return
	}
	sn.w.record("restart", sn.id, 0, 0, nil)
	sn.n = core.New(sn.cfg, sn.st.restored(), sn.local(sn.w.now))
	sn.drive(nil)
}

// pause freezes the process; its clock keeps running.
func (sn *SimNode) pause() {
	if !sn.live() {
		return
	}
	sn.w.record("pause", sn.id, 0, 0, nil)
	sn.paused = true
	sn.timerGen++
	sn.timerArmed = false
}

// resume wakes the process: it sees its clock jump, then the messages and
// requests that queued up while it was frozen.
func (sn *SimNode) resume() {
	if sn.n == nil || !sn.paused {
		return
	}
	sn.w.record("resume", sn.id, 0, 0, nil)
	sn.paused = false
	sn.n.Tick(sn.local(sn.w.now))
	sn.drive(nil)
	in := sn.inbox
	sn.inbox = nil
	for _, f := range in {
		f()
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
