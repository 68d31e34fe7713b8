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
type reqCB func(res core.Result, kv engram.KV)

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
	drv  *core.Driver
	st   nodeStore
	disk *diskFaults
	// cause is the message being stepped, for the checkers (onAppend).
	cause *core.Message
	// strong: pending strong reads, for the checkers (onStrongRead).
	strong map[uint64]bool

	paused bool
	inbox  []func() // deliveries held while paused, in arrival order

	timerArmed bool
	timerAt    int64
	timerGen   uint64

	lastTickNow int64 // global time of the last tick
	spinSince   int64 // since when the core wants ticks in the past (-1: not)

	pending     map[uint64]reqCB
	incarnation int
	// commitSeen is the last commit point checkLeaseOverlap saw.
	commitSeen core.Pos
	maxEpoch   core.Epoch
	downAt     int64
	wiped      bool // restarted on a regressed store, not yet seen rejoined

	// Membership (workload_members.go). routed: clients send to it (the
	// bootstrap members, and added nodes once promoted). fresh: it runs on
	// a store that was never a member's, waiting to be added. retired: the
	// operator removed it from the membership and stopped it; it never
	// restarts on that store.
	routed, fresh, retired bool
	// ledSince is when the node last became Cortex (in ledEpoch): the core
	// counts it as contact with every voter (rule 11), members added later
	// included.
	ledSince int64
	ledEpoch core.Epoch

	// Pipelined saves (store_pipeline.go): applies waiting for their
	// fsync, oldest first; synced is how far the log is durable; idle runs
	// once none is in flight.
	applies     []applied
	applySeq    uint64
	syncedApply uint64
	synced      core.Seq
	syncedEpoch core.Epoch
	idle        []func()
	lastSaveAt  int64 // when the last apply's fsync completes
}

// start runs a new process on the node's store: the core restored from
// it, and the driver over it.
func (sn *SimNode) start() {
	r := sn.st.Restored()
	sn.cfg.Store = sn.st.Identity()
	sn.n = core.New(sn.cfg, r, sn.local(sn.w.now))
	sh := simShell{sn}
	sn.drv = core.NewDriver(sn.n, r.HardState, sh, sh, sh)
	sn.drv.Kind, sn.drv.Canary = sn.spec.Kind, sn.w.opts.Canary
	if sn.w.set.Fsync > 0 {
		sn.drv.Pipeline, sn.drv.MaxInflight, sn.drv.InflightWait = sh, sn.w.set.Inflight, 50*time.Millisecond
	}
	sn.applies, sn.idle, sn.lastSaveAt = nil, nil, 0
	sn.synced, sn.syncedEpoch = sn.st.Last().Seq, r.HardState.Epoch
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
	d := sn.drv.NextDeadline()
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
	if err := sn.drv.Tick(sn.local(sn.w.now)); err != nil {
		sn.storageFailed(err)
		return
	}
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
	sn.drv.Step(sn.local(sn.w.now), m)
	sn.drive(&m)
}

// request hands a client request to the node; false when the node is down
// (connection refused).
func (sn *SimNode) request(req core.Request, cb reqCB) bool {
	id := req.ID
	if sn.n == nil {
		return false
	}
	if sn.paused {
		sn.inbox = append(sn.inbox, func() {
			if !sn.request(req, cb) {
				cb(core.Result{ID: id, Err: &core.Error{Code: CodeConnReset, Msg: "node down"}}, nil)
			}
		})
		return true
	}
	sn.pending[id] = cb
	if req.Kind == core.RequestRead && req.Consistency == core.Strong {
		if sn.strong == nil {
			sn.strong = map[uint64]bool{}
		}
		sn.strong[id] = true
	}
	sn.drv.Request(sn.local(sn.w.now), req)
	sn.drive(nil)
	return true
}

// drive has the driver carry out every Ready (core.Driver: the same code
// the node runs), then re-arms the timer. cause is the message just
// stepped, if any.
func (sn *SimNode) drive(cause *core.Message) {
	if sn.n == nil {
		return
	}
	sn.cause = cause
	err := sn.drv.Drive(sn.local(sn.w.now))
	sn.cause = nil
	if err != nil {
		sn.storageFailed(err)
		return
	}
	if sn.n == nil {
		return
	}
	sn.w.chk.afterDrive(sn)
	sn.w.chk.checkDurable(sn)
	sn.schedule()
}

// storageFailed is the node stopping on a failed save, as the runner does:
// the process exits, and comes back later on what its disk kept.
func (sn *SimNode) storageFailed(err error) {
	w := sn.w
	if !sn.disk.injected(err) {
		w.chk.violate("storage-failed", false, sn.id, "the store refused a save no fault explains: "+err.Error())
		return
	}
	w.stats.StorageStops++
	w.record("storage-stop", sn.id, 0, 0, err.Error)
	sn.crash()
	w.chk.topologyChanged()
	w.after(w.rngFault.Between(500*time.Millisecond, 3*time.Second), func() {
		w.faults.guarded(func() {
			sn.restart()
			w.chk.topologyChanged()
		})
	})
}

// crash kills the process: volatile state is gone, the Store stays.
func (sn *SimNode) crash() {
	if sn.n == nil {
		return
	}
	sn.w.record("crash", sn.id, 0, 0, nil)
	st, err := sn.st.Crash()
	if err != nil {
		sn.w.chk.violate("store-reopen", false, sn.id, "the store does not reopen after a crash: "+err.Error())
		return
	}
	sn.st = st
	sn.n, sn.drv = nil, nil
	sn.paused = false
	sn.inbox = nil
	sn.strong = nil
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
	if sn.n != nil || sn.retired {
		return
	}
	sn.w.record("restart", sn.id, 0, 0, nil)
	sn.start()
	sn.drive(nil)
}

// retire is the operator stopping a node it removed from the membership:
// the process ends and never restarts on that store. What the store holds
// is kept for the checkers (a local write only it had is excused, as with
// a wipe).
func (sn *SimNode) retire() {
	w := sn.w
	w.record("stop", sn.id, 0, 0, nil)
	sn.crash()
	sn.retired, sn.fresh = true, false
	w.members.route(sn, false)
	w.chk.noteRemoved(sn.id, sn.st)
	delete(w.faults.copies, sn.id) // its old copies are another cluster's past
	w.chk.topologyChanged()
}

// provision starts a removed node again as a fresh node to be added: an
// empty store with a new identity, no bootstrap membership (it waits to be
// added, as a node that finds a cluster running does).
func (sn *SimNode) provision() {
	w := sn.w
	sn.cfg.Bootstrap = nil
	sn.st = w.newNodeStore(sn)
	sn.cfg.Store = sn.st.Identity()
	sn.retired, sn.fresh, sn.wiped = false, true, false
	sn.maxEpoch = 0
	w.record("provision", sn.id, sn.cfg.Store, 0, nil)
	sn.restart()
	w.chk.topologyChanged()
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
	if err := sn.drv.Tick(sn.local(sn.w.now)); err != nil {
		sn.storageFailed(err)
		return
	}
	sn.drive(nil)
	in := sn.inbox
	sn.inbox = nil
	for _, f := range in {
		f()
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
