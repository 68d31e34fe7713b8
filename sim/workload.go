package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// OpKind is a client operation.
type OpKind uint8

const (
	OpCreate       OpKind = iota + 1 // create a register engram (quorum)
	OpRegWrite                       // write a unique value to a register (quorum)
	OpRegRead                        // read a register (strong)
	OpLocalWrite                     // create a unique engram (local)
	OpQuorumWrite                    // create a unique engram (quorum)
	OpEventualRead                   // read an engram (eventual)
	OpBoundedRead                    // read an engram (bounded, 1 s)
	OpSlotCreate                     // create one of a few reused ids with unique content (quorum)
	OpSlotForget                     // forget one of those ids (quorum)
	OpReplay                         // replay a quarantined register write (conditional, quorum)
)

func (k OpKind) write() bool {
	return k <= OpRegWrite || k == OpLocalWrite || k == OpQuorumWrite || k == OpSlotCreate || k == OpSlotForget || k == OpReplay
}

// Outcome is what the client learned.
type Outcome uint8

const (
	Pending Outcome = iota
	OK
	Failed  // definitely not applied
	Unknown // may or may not have been applied
)

// Op is one client operation and its recorded history.
type Op struct {
	ID      int
	Client  int
	Kind    OpKind
	Key     int
	Value   string
	Payload []byte
	Dur     core.Durability
	Call    int64
	Return  int64
	Outcome Outcome
	Pos     core.Pos // where an acknowledged write landed
	Read    string   // what a read returned
	Node    core.NodeID
	Replays core.Pos // OpReplay: the quarantined entry it replays

	hops    int
	attempt int
	start   int64
}

// Registers is the number of register keys of the linearizability workload.
const Registers = 3

// Slots is the number of ids that clients create, forget and create again
// concurrently, with unique contents (check_slots.go).
const Slots = 2

const (
	holdFor   = 5 * time.Second  // rule 13: hold writes while no Cortex is known
	opTimeout = 10 * time.Second // a client gives up (unknown outcome)
	regVault  = "reg"
	uniqVault = "w"
	slotVault = "ids"
)

// Workload runs the clients: each issues one operation at a time through a
// random node and follows redirections the way the node's shell does.
type Workload struct {
	w       *World
	r       *Rand
	ops     []*Op
	regIDs  []string
	slotIDs []string
	created []bool
	acked   []string // ids of acknowledged unique writes, for reads
	active  bool
}

func newWorkload(w *World) *Workload {
	wl := &Workload{w: w, r: w.rngWork, active: true}
	for k := 0; k < Registers; k++ {
		wl.regIDs = append(wl.regIDs, engram.NewID(uint64(k+1), [10]byte{byte(k)}))
		wl.created = append(wl.created, false)
	}
	for k := 0; k < Slots; k++ {
		wl.slotIDs = append(wl.slotIDs, engram.NewID(uint64(k+100), [10]byte{0x51, byte(k)}))
	}
	return wl
}

func (wl *Workload) start() {
	for c := 0; c < wl.w.set.Clients; c++ {
		wl.w.after(wl.r.Exp(wl.w.set.Think), func() { wl.next(c) })
	}
}

func (wl *Workload) allCreated() bool {
	for _, c := range wl.created {
		if !c {
			return false
		}
	}
	return true
}

func (wl *Workload) next(c int) {
	if !wl.active || wl.w.stopped {
		return
	}
	op := &Op{ID: len(wl.ops), Client: c}
	wl.ops = append(wl.ops, op)
	switch {
	case c == 0 && !wl.allCreated():
		op.Kind = OpCreate
		for k, done := range wl.created {
			if !done {
				op.Key = k
				break
			}
		}
	default:
		kinds := []OpKind{OpRegWrite, OpRegRead, OpLocalWrite, OpQuorumWrite, OpEventualRead, OpBoundedRead, OpSlotCreate, OpSlotForget, OpReplay}
		op.Kind = kinds[wl.r.Pick([]float64{0.25, 0.25, 0.2, 0.1, 0.1, 0.1, 0.08, 0.04, 0.03})]
		if !wl.allCreated() && (op.Kind == OpRegWrite || op.Kind == OpRegRead) {
			op.Kind = OpLocalWrite
		}
		op.Key = wl.r.Intn(Registers)
		if op.Kind == OpSlotCreate || op.Kind == OpSlotForget {
			op.Key = wl.r.Intn(Slots)
		}
	}
	at := uint64(wl.w.now / 1e6)
	var cmd engram.Command
	if op.Kind == OpReplay && !wl.pickReplay(op, &cmd) {
		op.Kind = OpRegRead
		if !wl.allCreated() {
			op.Kind = OpLocalWrite
		}
	}
	switch op.Kind {
	case OpCreate:
		cmd = engram.Command{Op: engram.OpWrite, Vault: regVault, ID: wl.regIDs[op.Key], At: at, Concept: "register", Content: "init", Confidence: 0.5}
		op.Dur = core.Quorum
	case OpRegWrite:
		op.Value = "v" + itoa(uint64(op.ID))
		cmd = engram.Command{Op: engram.OpUpdate, Vault: regVault, ID: wl.regIDs[op.Key], At: at, Content: op.Value, Set: engram.FieldContent}
		op.Dur = core.Quorum
	case OpLocalWrite, OpQuorumWrite:
		id := engram.NewID(uint64(op.ID+1), [10]byte{byte(op.ID), byte(op.ID >> 8), byte(op.ID >> 16), 0x5a})
		op.Value = id
		cmd = engram.Command{Op: engram.OpWrite, Vault: uniqVault, ID: id, At: at, Concept: "c" + itoa(uint64(op.ID)), Content: "x", Confidence: 0.5}
		if op.Kind == OpQuorumWrite {
			op.Dur = core.Quorum
		}
	case OpSlotCreate:
		op.Value = "s" + itoa(uint64(op.ID))
		cmd = engram.Command{Op: engram.OpWrite, Vault: slotVault, ID: wl.slotIDs[op.Key], At: at, Content: op.Value, Confidence: 0.5}
		op.Dur = core.Quorum
	case OpSlotForget:
		cmd = engram.Command{Op: engram.OpForget, Vault: slotVault, ID: wl.slotIDs[op.Key], At: at}
		op.Dur = core.Quorum
	case OpEventualRead, OpBoundedRead:
		if len(wl.acked) > 0 {
			op.Value = wl.acked[wl.r.Intn(len(wl.acked))]
		}
	}
	if op.Kind.write() {
		b, err := engram.EncodeCommand(cmd)
		if err != nil {
			panic(err)
		}
		op.Payload = b
	}
	op.Call, op.start = wl.w.now, wl.w.now
	wl.w.after(opTimeout, func() {
		if op.Outcome == Pending {
			wl.finish(op, wl.giveUp(op))
		}
	})
	wl.attempt(op, wl.randomNode())
}

// pickReplay chooses a quarantined register write on some node and makes
// op its conditional replay, as `muninn cluster fenced --replay` does: the
// same command, required to find the register as the entry found it, and
// consuming the entry. Two clients may replay one entry at once.
func (wl *Workload) pickReplay(op *Op, cmd *engram.Command) bool {
	var cands []Quarantined
	for _, sn := range wl.w.nodes {
		for _, q := range sn.st.Quarantined() {
			if q.Entry.Type != core.EntryData || q.Base == nil {
				continue
			}
			if c, err := engram.DecodeCommand(q.Entry.Payload); err == nil && c.Op == engram.OpUpdate && c.Vault == regVault && c.If == nil {
				cands = append(cands, q)
			}
		}
	}
	if len(cands) == 0 {
		return false
	}
	q := cands[wl.r.Intn(len(cands))]
	c, _ := engram.DecodeCommand(q.Entry.Payload)
	c.If, c.Consumes = q.Base, q.Entry.Pos
	for k, id := range wl.regIDs {
		if id == c.ID {
			op.Key = k
		}
	}
	op.Value, op.Dur, op.Replays = c.Content, core.Quorum, q.Entry.Pos
	*cmd = c
	return true
}

// giveUp is the outcome of an operation the client stops waiting for.
func (wl *Workload) giveUp(op *Op) Outcome {
	if op.Kind.write() {
		return Unknown
	}
	return Failed
}

// randomNode picks a node clients reach: a member (spares are reached
// once promoted, removed nodes no more; workload_members.go).
func (wl *Workload) randomNode() *SimNode {
	ns := wl.w.members.routed
	return ns[wl.r.Intn(len(ns))]
}

func (wl *Workload) clientLatency() time.Duration {
	return wl.r.Between(500*time.Microsecond, 2*time.Millisecond)
}

// attempt sends op to sn.
func (wl *Workload) attempt(op *Op, sn *SimNode) {
	op.attempt++
	a := op.attempt
	wl.w.after(wl.clientLatency(), func() {
		if op.Outcome != Pending || a != op.attempt {
			return
		}
		wl.w.nextReq++
		id := wl.w.nextReq
		op.Node = sn.id
		cb := func(res core.Result, kv engram.KV) {
			val := ""
			if res.Err == nil && res.Kind == core.ResultRead {
				val = wl.serve(op, kv)
			}
			wl.w.after(wl.clientLatency(), func() { wl.answer(op, a, res, val) })
		}
		req := core.Request{ID: id, Kind: core.RequestRead}
		switch op.Kind {
		case OpRegRead:
			req.Consistency = core.Strong
		case OpEventualRead:
			req.Consistency = core.Eventual
		case OpBoundedRead:
			req.Consistency, req.MaxLagMs = core.Bounded, 1000
		default:
			req.Kind, req.Payload, req.Durability = core.RequestWrite, op.Payload, op.Dur
		}
		ok := sn.request(req, cb)
		if !ok {
			// Connection refused: nothing was sent; try elsewhere.
			wl.w.after(wl.clientLatency(), func() { wl.hold(op, a) })
		}
	})
}

// serve reads the value an OK read returns from the node's state machine.
func (wl *Workload) serve(op *Op, kv engram.KV) string {
	switch op.Kind {
	case OpRegRead:
		e, ok, err := engram.Get(kv, regVault, wl.regIDs[op.Key])
		if err != nil || !ok {
			return "<absent>"
		}
		return e.Content
	default:
		if op.Value == "" {
			return ""
		}
		if _, ok, _ := engram.Get(kv, uniqVault, op.Value); ok {
			return "found"
		}
		return "missing"
	}
}

// hold retries op at a random node after a short wait, within the hold
// window (rule 13); after it the operation failed.
func (wl *Workload) hold(op *Op, a int) {
	if op.Outcome != Pending || a != op.attempt {
		return
	}
	if wl.w.now-op.start >= int64(holdFor) {
		wl.finish(op, Failed)
		return
	}
	wl.w.after(wl.r.Between(100*time.Millisecond, 300*time.Millisecond), func() {
		if op.Outcome == Pending && a == op.attempt {
			wl.attempt(op, wl.randomNode())
		}
	})
}

func (wl *Workload) answer(op *Op, a int, res core.Result, val string) {
	if op.Outcome != Pending || a != op.attempt {
		return
	}
	if res.Err == nil {
		op.Pos, op.Read = res.Pos, val
		wl.finish(op, OK)
		return
	}
	switch res.Err.Code {
	case core.CodeNotCortex, core.CodeReadOnly:
		if c := wl.w.node(res.Err.Cortex); c != nil && op.hops < 8 {
			op.hops++
			wl.attempt(op, c)
			return
		}
		wl.hold(op, a)
	case core.CodeNoCortex, core.CodeTransferring, core.CodeBusy, core.CodeUnavailable:
		wl.hold(op, a)
	case core.CodeUnknownOutcome, CodeConnReset:
		wl.finish(op, wl.giveUp(op))
	case core.CodeConflict:
		// The state machine refused it when applied: nothing changed. A
		// create refused this way found the engram there already.
		if op.Kind == OpCreate {
			wl.created[op.Key] = true
		}
		wl.finish(op, Failed)
	default:
		wl.finish(op, Failed)
	}
}

func (wl *Workload) finish(op *Op, o Outcome) {
	op.Outcome, op.Return = o, wl.w.now
	op.attempt++ // late answers are ignored
	wl.w.record("op", op.Node, uint64(op.ID), uint64(o), func() string {
		return "op " + itoa(uint64(op.ID)) + " kind=" + itoa(uint64(op.Kind)) + " outcome=" + itoa(uint64(o)) + " pos=" + op.Pos.String() + " read=" + op.Read
	})
	if o == OK {
		switch op.Kind {
		case OpCreate:
			wl.created[op.Key] = true
		case OpLocalWrite, OpQuorumWrite:
			wl.acked = append(wl.acked, op.Value)
		}
		if op.Kind.write() {
			wl.w.chk.onAck(op)
		}
	} else if op.Kind == OpCreate && o == Unknown {
		// Retried by the next create; an extra create is a no-op.
	}
	wl.w.after(wl.r.Exp(wl.w.set.Think), func() { wl.next(op.Client) })
}
