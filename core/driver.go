package core

import (
	"errors"
	"fmt"
	"time"
)

// The driver carries out the core's Readys in the order of the contract on
// Ready (docs/protocol.md, "The driver"). It is the one place that persists
// a Ready: the node runner (shell/node) calls it from its goroutine loop,
// the simulator (sim) from its event queue, and the core's test harness from
// its tiny world. It is synchronous and does no I/O of its own: storage,
// network and replies are the interfaces below, so the simulator runs the
// same ordering over simulated disks and networks.

// Storage is a node's durable state as the driver needs it.
type Storage interface {
	// Save persists step 1 of rd in one atomic batch: the truncation (its
	// entries undone and quarantined), the hard state, the entries
	// (appended and applied) and the membership; durable before it
	// returns when sync. It calls rejected for every data entry the state
	// machine refused (a no-op at that position). An error means none of
	// it may be counted on: an error wrapping ErrNoSpace holds the Ready
	// (see Driver.Held), any other stops the driver.
	Save(rd *Ready, sync bool, rejected func(Pos, error)) error
	// Prune drops the log at or below c.Upto (best effort: an error is
	// logged and pruning is tried again at the next compaction).
	Prune(c Compaction) error
	// Admit reports whether n more bytes of entries may be stored; an
	// error (wrapping ErrNoSpace) says why not.
	Admit(n int) error
	// DiskFull reports whether the disk is below its reserve, and why.
	DiskFull() (bool, string)
	// InstallSnapshot replaces the store's state with the checkpoint in
	// dir, keeping the store's identity, and reports what it now holds.
	// It calls accept with the checkpoint's position before it changes
	// anything, and installs nothing when accept returns an error (which
	// it returns, wrapped).
	InstallSnapshot(dir string, accept func(Pos) error) (Installed, error)
}

// Pipeline is storage that applies a Ready at once and makes it durable
// later, beside the caller's loop (shell/store's SaveNoWait; docs/protocol.md,
// "Pipelined persistence"). With one, the driver never waits for an fsync:
// it applies each Ready, sends what may go before the save is durable, and
// leaves the rest of the Ready to Driver.Saved.
type Pipeline interface {
	// Apply writes step 1 of rd as Storage.Save does, visible to reads and
	// to later saves when it returns, durable (when sync) only once the
	// shell calls Driver.Saved for it. Errors as for Save.
	Apply(rd *Ready, sync bool, rejected func(Pos, error)) error
}

// Installed is what a store holds after installing a snapshot.
type Installed struct {
	Pos       Pos       // the snapshot's last entry
	HardState HardState // the sender's hard state, carried by the checkpoint
	Members   Members   // the membership in force at Pos
}

// Transport sends what the driver hands it; delivery is not guaranteed.
type Transport interface {
	Send(m Message)
	// SendSnapshot starts streaming a checkpoint of the store to a peer in
	// the background; if it fails, the caller calls Driver.SnapshotFailed.
	SendSnapshot(to NodeID)
}

// Replies is where results and events go.
type Replies interface {
	// Read answers a read. When r.Err is nil it first serves the read from
	// the state machine, which at that moment holds every earlier Ready
	// and none of this one (the contract on Ready, step 4).
	Read(r Result)
	// Answer delivers the result of a write or an admin command.
	Answer(r Result)
	// Event reports something an operator should see.
	Event(e Event)
}

// Logger receives the driver's messages for the operator (*slog.Logger
// satisfies it).
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// ErrNoSpace is what Storage errors wrap when the disk has no room.
var ErrNoSpace = errors.New("not enough disk space")

// ErrSnapshotBehind refuses a snapshot the node does not need (see
// Node.TakesSnapshot).
var ErrSnapshotBehind = errors.New("snapshot behind this node's log")

// HoldRetry is how often a held Ready's save is retried.
const HoldRetry = 250 * time.Millisecond

// RequestKind names a client request.
type RequestKind uint8

const (
	RequestWrite RequestKind = iota + 1
	RequestRead
	RequestTransfer
	RequestAdd
	RequestRemove
)

// Request is a client's request, handed to Driver.Request.
type Request struct {
	Kind        RequestKind
	ID          uint64
	Payload     []byte      // write
	Durability  Durability  // write
	Consistency Consistency // read
	MaxLagMs    int64       // bounded read
	Target      NodeID      // transfer, remove
	Member      Member      // add
}

func (k RequestKind) result() ResultKind {
	switch k {
	case RequestWrite:
		return ResultWrite
	case RequestRead:
		return ResultRead
	}
	return ResultAdmin
}

// Canary breaks one ordering rule of the driver on purpose, so the
// simulator can show that its checkers catch it (sim/canary_test.go). It is
// CanaryNone outside those tests.
type Canary uint8

const (
	CanaryNone Canary = iota
	// CanaryAckBeforeSave answers writes before their save returns.
	CanaryAckBeforeSave
	// CanaryAppendAckBeforeSave sends append answers before the entries
	// they acknowledge are persisted.
	CanaryAppendAckBeforeSave
	// CanaryReadAfterSave serves reads after the save, so they see the
	// entries of the Ready that released them.
	CanaryReadAfterSave
	// CanaryDropQuarantine deletes truncated entries instead of keeping
	// them in the quarantine.
	CanaryDropQuarantine
	// CanaryCountUnsaved tells the core its entries are durable as soon as
	// they are applied, before the save completes: a Cortex then counts
	// itself toward commits its disk may still lose.
	CanaryCountUnsaved
)

// Driver carries out a core Node's Readys. Its zero value is not usable:
// set Node, Storage, Transport and Replies.
type Driver struct {
	Node      *Node
	Storage   Storage
	Transport Transport // nil: standalone, nothing is sent
	Replies   Replies
	Log       Logger // nil: discarded
	Kind      Kind   // this node's kind: sentinels store nothing
	Canary    Canary
	// Pipeline, when set, makes saves asynchronous (see Pipeline and
	// Saved); nil: each Ready is saved, synced and finished in Drive.
	Pipeline Pipeline
	// MaxInflight bounds the applied Readys waiting for their fsync (0:
	// no bound). While that many wait, a Ready with something to save is
	// left to grow in the core (group commit: the writes arriving during
	// an fsync go out as one batch); one with nothing to save is taken.
	// Only for InflightWait: behind an fsync slower than that (a stalled
	// or full disk) the next Ready goes through anyway, so its requests are
	// answered (or refused for space) instead of waiting on the stall
	// (container fill-disk: a write waited 2.3 s behind one).
	MaxInflight  int
	InflightWait time.Duration

	prevHS  HardState // the hard state last persisted (with a Pipeline: applied)
	savedHS HardState // the hard state last known durable
	// rejected: entries the state machine refused, until their writes are
	// answered.
	rejected map[Pos]string
	held     *held
	// inflight: Readys applied or taken whose rest waits for Saved, oldest
	// first; saving marks those the shell will call Saved for.
	inflight []inflight
	report   Pos  // durable, not yet told to the core
	grouped  bool // Drive left a Ready for group commit (NextDeadline)
}

// inflight is a Ready whose steps 2 to 5 wait for its save (or, without a
// save of its own, for the saves taken before it).
type inflight struct {
	rd     Ready
	saving bool // applied: the shell calls Saved once it is durable
	commit Seq  // the commit point when the Ready was taken
	at     Time // when it was taken
	early  bool // its appends went out when it was taken (appendsEarly)
}

// held is a Ready whose save the disk refused (see Held).
type held struct {
	rd    Ready
	sync  bool
	early bool // its appends went out when it was taken
	since Time
	next  Time
	err   error
}

// NewDriver returns a driver for n, whose persisted hard state is hs.
func NewDriver(n *Node, hs HardState, s Storage, t Transport, r Replies) *Driver {
	return &Driver{Node: n, Storage: s, Transport: t, Replies: r, prevHS: hs, savedHS: hs}
}

// Held reports whether a Ready is held for lack of disk space. A held
// Ready is not carried out in part: nothing of it that its save vouches for
// goes out (not a vote, an acknowledgement, a result) until its save
// succeeds (what never waits for a save, heartbeats, SDOWN reports and a
// Cortex's appends, which it counts only once durable, has gone), and the
// core cannot take it back. So the
// node behaves as if paused between persisting and sending: peers'
// messages are dropped (as a lossy network would), every request is
// answered at once, and the save is retried every HoldRetry from Tick. The
// cluster sees a silent node and carries on without it.
func (d *Driver) Held() bool { return d.held != nil }

// HardState returns the hard state last persisted.
func (d *Driver) HardState() HardState { return d.prevHS }

func (d *Driver) logger() Logger {
	if d.Log == nil {
		return nopLogger{}
	}
	return d.Log
}

// Step hands a peer's message to the core, unless this node cannot store
// what it brings: appends carrying entries are dropped (not acknowledged,
// so the Cortex retransmits them later), and a handoff (timeout-now) is
// declined when this node's disk is below its reserve, since it could not
// lead (docs/storage.md, "Disk space").
func (d *Driver) Step(now Time, m Message) {
	if d.held != nil {
		return
	}
	if d.Kind != KindSentinel {
		switch {
		case m.Type == MsgAppend && len(m.Entries) > 0:
			need := 0
			for _, e := range m.Entries {
				need += len(e.Payload) + 32
			}
			if d.Storage.Admit(need) != nil {
				return
			}
		case m.Type == MsgTimeoutNow:
			if full, _ := d.Storage.DiskFull(); full {
				d.logger().Warn(fmt.Sprintf("declining the handoff from %s: this node's disk is below its reserve", m.From))
				return
			}
		}
	}
	d.Node.Step(now, m)
}

// Request hands a client request to the core. On a Cortex whose disk is
// below the reserve, a request that would append an entry is refused at
// once with insufficient_storage; while a Ready is held every request is.
// The shell registers the request's reply before calling Request: the
// answer may come before Request returns.
func (d *Driver) Request(now Time, r Request) {
	if d.held != nil {
		msg := fmt.Sprintf("%v: this node is holding entries it could not store and takes no requests until space is freed", d.held.err)
		code := CodeInsufficientStorage
		if r.Kind == RequestRead {
			code = CodeUnavailable
		}
		d.Replies.Answer(Result{ID: r.ID, Kind: r.Kind.result(), Err: &Error{Code: code, Msg: msg}})
		return
	}
	if d.refuseNoSpace(r) {
		return
	}
	n := d.Node
	switch r.Kind {
	case RequestWrite:
		n.Propose(now, r.ID, r.Payload, r.Durability)
	case RequestRead:
		n.Read(now, r.ID, r.Consistency, r.MaxLagMs)
	case RequestTransfer:
		n.TransferCortex(now, r.ID, r.Target)
	case RequestAdd:
		n.AddMember(now, r.ID, r.Member)
	case RequestRemove:
		n.RemoveMember(now, r.ID, r.Target)
	}
}

// refuseNoSpace answers, on a Cortex whose disk is below the reserve, a
// request that would append an entry, and reports whether it did. Other
// nodes leave the answer to the core: a Lobe's writes go to the Cortex,
// which judges its own disk.
func (d *Driver) refuseNoSpace(r Request) bool {
	var need int
	switch r.Kind {
	case RequestWrite:
		need = len(r.Payload)
	case RequestAdd, RequestRemove:
		need = 1024
	default:
		return false
	}
	if d.Node.Role() != RoleCortex {
		return false
	}
	if err := d.Storage.Admit(need); err != nil {
		d.Replies.Answer(Result{ID: r.ID, Kind: r.Kind.result(), Err: &Error{Code: CodeInsufficientStorage, Msg: err.Error()}})
		return true
	}
	return false
}

// Tick advances the core's clock. A Cortex whose disk is below the reserve
// steps down as soon as a data voter holds everything and can take over.
// While a Ready is held, Tick only retries its save.
func (d *Driver) Tick(now Time) error {
	if d.held != nil {
		return d.retryHeld(now)
	}
	d.Node.Tick(now)
	if d.Node.Role() == RoleCortex && d.Node.Successor() != "" {
		if full, why := d.Storage.DiskFull(); full {
			d.Node.StepDown(now, why)
		}
	}
	return nil
}

// NextDeadline is when Tick must next be called.
func (d *Driver) NextDeadline() Time {
	if d.held != nil {
		return d.held.next
	}
	if at, ok := d.groupUntil(); ok && d.grouped {
		// Only when Drive left a Ready for group commit: a truncation
		// waiting for the saves needs Saved, not a timer (a timer past
		// due would spin the loop through a stalled fsync; review).
		return min(at, d.Node.NextDeadline())
	}
	return d.Node.NextDeadline()
}

// SnapshotFailed tells the core a snapshot stream to a peer failed.
func (d *Driver) SnapshotFailed(now Time, to NodeID) {
	if d.held == nil {
		d.Node.SnapshotFailed(now, to)
	}
}

// InstallSnapshot installs the checkpoint in dir, streamed from the Cortex
// from. The checkpoint carries the sender's hard state; this node keeps its
// own vote (one vote per epoch) unless the snapshot is from a later epoch,
// whose vote it has not cast; the core adopts that epoch too, so its next
// hard state is never below what the store recorded. An error stops the
// node, as a failed save does.
func (d *Driver) InstallSnapshot(now Time, from NodeID, dir string) error {
	if d.held != nil {
		return nil // the stream is sent again once the node answers
	}
	if len(d.inflight) > 0 {
		return fmt.Errorf("driver: a snapshot install while %d saves are in flight (the shell waits for Saved first)", d.Pending())
	}
	var offered Pos
	in, err := d.Storage.InstallSnapshot(dir, func(pos Pos) error {
		offered = pos
		if !d.Node.TakesSnapshot(pos) {
			return fmt.Errorf("%w: the snapshot ends at %s, which this node's log already holds (up to %s)", ErrSnapshotBehind, pos, d.Node.Last())
		}
		return nil
	})
	if errors.Is(err, ErrSnapshotBehind) {
		d.logger().Info("snapshot not installed", "from", from, "reason", err)
		d.Node.SnapshotDeclined(now, offered)
		return d.Drive(now)
	}
	if err != nil {
		// Not installed (no room for it, a damaged stream): the Cortex,
		// which waits for an answer, is told what this node still holds
		// and sends it again later (seed 440: a Lobe with a full disk).
		d.logger().Error("installing snapshot failed; the Cortex will send it again", "from", from, "err", err)
		d.Node.SnapshotDeclined(now, Pos{})
		return d.Drive(now)
	}
	mine := d.prevHS
	if mine.Epoch < in.HardState.Epoch {
		mine.Epoch, mine.Vote, mine.VoteStore = in.HardState.Epoch, "", 0
	}
	mine.Commit = in.HardState.Commit
	if err := d.Storage.Save(&Ready{HardState: &mine}, true, nil); err != nil {
		return fmt.Errorf("restoring the hard state after a snapshot: %w", err)
	}
	d.prevHS, d.savedHS = mine, mine
	d.Node.SnapshotInstalled(now, in.Pos, mine.Epoch, in.Members)
	d.logger().Info(fmt.Sprintf("installed snapshot from %s at %s", from, in.Pos))
	return d.Drive(now)
}

// Drive carries out every Ready the core has, in the contract's order. It
// returns an error when storage failed: the node must stop, since nothing
// of that Ready may go out. A Ready refused for space is held instead
// (Held) and Drive returns nil.
func (d *Driver) Drive(now Time) error {
	d.grouped = false
	for d.held == nil && d.Node.HasReady() {
		rd := d.Node.Ready()
		d.grouped = d.groupCommit(now, &rd)
		if d.grouped {
			return nil // Saved, or Tick at NextDeadline, drives again
		}
		if rd.Truncate != nil && d.Pending() > 0 {
			// A truncation waits for the saves in flight: their answers
			// (append acknowledgements, local writes) go out once those
			// entries are durable, and must not go out for entries that
			// were never durable here, cut off before their fsync
			// returned (docs/protocol.md, "Pipelined persistence"). The
			// core keeps adding to this Ready meanwhile.
			return nil
		}
		done, err := d.carryOut(now, &rd)
		if err != nil || !done {
			return err
		}
		d.Node.Advance()
		d.reportDurable(now)
	}
	return nil
}

// carryOut does one Ready; done is false when it was held. With a
// Pipeline, steps 2 to 5 (but for what may go early) wait for Saved.
func (d *Driver) carryOut(now Time, rd *Ready) (done bool, err error) {
	// Reads first, from the state before this Ready (step 4's exception).
	// With a Pipeline the state holds every earlier Ready applied, some
	// perhaps not yet durable: a strong read is released only once all of
	// it is committed, so durable on a quorum (docs/protocol.md, "Pipelined
	// persistence").
	if d.Canary != CanaryReadAfterSave {
		d.answerReads(rd)
	}
	ae := d.appendsEarly(rd)
	d.send(rd, func(m Message) bool { return d.early(m, ae) })
	if d.Canary == CanaryAckBeforeSave {
		d.answer(rd)
	}
	// Step 1: persist (or, with a Pipeline, apply).
	sync := rd.MustSync(d.prevHS)
	commit := d.Node.Commit().Seq
	saves := rd.saves()
	if saves {
		var err error
		if d.Pipeline != nil {
			err = d.Pipeline.Apply(rd, sync, d.noteRejected)
		} else {
			err = d.Storage.Save(rd, sync, d.noteRejected)
		}
		if err != nil {
			if errors.Is(err, ErrNoSpace) {
				d.hold(now, rd, sync, ae, err)
				return false, nil
			}
			return false, err
		}
	}
	d.persisted(rd)
	if d.Pipeline != nil && (saves || len(d.inflight) > 0) {
		// Results and messages keep their order: a Ready without a save
		// of its own still waits for the saves taken before it. Events
		// promise nothing: they are reported now, so the log says what
		// the node's status already shows.
		d.events(rd)
		kept := *rd
		kept.Events = nil
		d.inflight = append(d.inflight, inflight{rd: kept, saving: saves, commit: commit, at: now, early: ae})
		if d.Canary == CanaryCountUnsaved {
			d.durable(now, rd)
		}
		return true, nil
	}
	d.complete(now, rd, commit, ae)
	return true, nil
}

// early reports whether m may be sent before rd's save is durable.
// Heartbeats, their answers and SDOWN reports depend on nothing persisted,
// and a slow fsync must not look like a dead Cortex (step 2's exception). A
// Cortex's appends may go out while its own save runs: it counts itself
// toward a commit only once the save is durable (rule 8, Persisted), as
// the Raft thesis (§10.2.1) allows. Not while an epoch or a vote is still
// unsaved, nor with a truncation: entries of an epoch this node's disk may
// not keep must reach nobody (a restart would lead that epoch again with
// another log).
//
// appendsEarly decides it for a Ready's appends once, when the Ready is
// taken: decided again at Saved, against the hard state saved by then, the
// appends were sent twice or not at all (review: a lone voter's first
// append to a learner waited for the retransmit).
func (d *Driver) early(m Message, appends bool) bool {
	switch {
	case m.Type.Urgent():
		return true
	case m.Type == MsgAppendResp:
		return d.Canary == CanaryAppendAckBeforeSave
	}
	return m.Type == MsgAppend && appends
}

func (d *Driver) appendsEarly(rd *Ready) bool {
	if rd.Truncate != nil {
		return false
	}
	hs := d.prevHS
	if rd.HardState != nil {
		hs = *rd.HardState
	}
	return hs.Epoch == d.savedHS.Epoch && hs.Vote == d.savedHS.Vote && hs.VoteStore == d.savedHS.VoteStore
}

// groupCommit reports whether rd waits for the saves in flight (see
// MaxInflight).
func (d *Driver) groupCommit(now Time, rd *Ready) bool {
	until, ok := d.groupUntil()
	return ok && rd.saves() && now < until
}

// groupUntil is until when a Ready with something to save waits, if the
// pipeline is full.
func (d *Driver) groupUntil() (Time, bool) {
	if d.MaxInflight <= 0 || d.Pending() < d.MaxInflight {
		return 0, false
	}
	if d.InflightWait <= 0 {
		return Never, true
	}
	// From the newest save in flight: behind a stalled fsync one more
	// Ready goes through each InflightWait, not all of them (review).
	for i := len(d.inflight) - 1; i >= 0; i-- {
		if f := d.inflight[i]; f.saving {
			return f.at.Add(d.InflightWait), true
		}
	}
	return 0, false
}

// Pending is how many applied Readys wait for Saved.
func (d *Driver) Pending() int {
	n := 0
	for _, f := range d.inflight {
		if f.saving {
			n++
		}
	}
	return n
}

// Saved tells the driver that the oldest applied Ready is durable. The
// shell calls it from its loop once for every Apply that returned nil, in
// order, when that save's fsync has returned (an fsync that fails stops the
// node instead). It carries out the rest of that Ready, and of the Readys
// taken after it that had nothing to save, then drives the core again.
func (d *Driver) Saved(now Time) error {
	if len(d.inflight) == 0 || !d.inflight[0].saving {
		return errors.New("driver: Saved called with no applied Ready waiting (the shell must call it once per successful Apply)")
	}
	for first := true; len(d.inflight) > 0 && (first || !d.inflight[0].saving); first = false {
		f := d.inflight[0]
		d.inflight[0] = inflight{}
		d.inflight = d.inflight[1:]
		d.complete(now, &f.rd, f.commit, f.early)
	}
	if len(d.inflight) == 0 {
		d.inflight = nil
	}
	if d.held == nil {
		// While a Ready is held the core's Ready is taken but not
		// advanced: what Persisted would add to it (answers, released
		// writes) would be dropped by the Advance after the retry
		// (review). retryHeld reports it after its Advance.
		d.reportDurable(now)
	}
	return d.Drive(now)
}

// complete carries out the rest of a Ready once its save is durable.
func (d *Driver) complete(now Time, rd *Ready, commit Seq, early bool) {
	if rd.HardState != nil {
		d.savedHS = *rd.HardState
	}
	if d.Canary != CanaryCountUnsaved {
		d.durable(now, rd)
	}
	if d.Canary == CanaryReadAfterSave {
		d.answerReads(rd)
	}
	d.finish(rd, commit, early)
}

// durable notes how far the log is durable, for the core (rule 8). The core
// hears it in reportDurable, once the Ready is advanced: what it answers
// goes into its next Ready.
func (d *Driver) durable(now Time, rd *Ready) {
	if k := len(rd.Entries); k > 0 {
		d.report = rd.Entries[k-1].Pos
	}
}

func (d *Driver) reportDurable(now Time) {
	if d.report != (Pos{}) {
		d.Node.Persisted(now, d.report)
		d.report = Pos{}
	}
}

// persisted notes what step 1 wrote.
func (d *Driver) persisted(rd *Ready) {
	if rd.HardState != nil {
		d.prevHS = *rd.HardState
	}
	if t := rd.Truncate; t != nil {
		d.logger().Warn(fmt.Sprintf("quarantined %d entries after %s: %s", len(t.Removed), t.After, t.Reason))
		if d.Canary == CanaryDropQuarantine {
			if q, ok := d.Storage.(interface{ DropQuarantine(Pos) (bool, error) }); ok {
				for _, e := range t.Removed {
					q.DropQuarantine(e.Pos)
				}
			}
		}
	}
}

// finish carries out steps 2 to 5 once step 1 is durable. commit is the
// commit point when the Ready was taken: every write at or below it has
// had its answer by the end of this Ready.
func (d *Driver) finish(rd *Ready, commit Seq, early bool) {
	if c := rd.Compact; c != nil {
		if err := d.Storage.Prune(*c); err != nil {
			d.logger().Warn("log pruning failed; will retry at the next compaction", "err", err)
		}
	}
	d.send(rd, func(m Message) bool { return !d.early(m, early) })
	if d.Transport != nil {
		for _, s := range rd.Snapshots {
			d.Transport.SendSnapshot(s.To)
		}
	}
	if d.Canary != CanaryAckBeforeSave {
		d.answer(rd)
	}
	d.forgetRejected(commit)
	d.events(rd)
}

func (d *Driver) events(rd *Ready) {
	for _, e := range rd.Events {
		d.Replies.Event(e)
	}
}

func (d *Driver) send(rd *Ready, which func(Message) bool) {
	if d.Transport == nil {
		return
	}
	for _, m := range rd.Messages {
		if which(m) {
			d.Transport.Send(m)
		}
	}
}

func (d *Driver) answerReads(rd *Ready) {
	for _, r := range rd.Results {
		if r.Kind == ResultRead {
			d.Replies.Read(r)
		}
	}
}

func (d *Driver) answer(rd *Ready) {
	for _, r := range rd.Results {
		if r.Kind != ResultRead {
			d.Replies.Answer(d.applied(r))
		}
	}
}

// hold keeps rd unsent (see Held). The clients it would have answered are
// answered now with unknown_outcome: the entries are held, not refused, and
// are applied if the save succeeds later (seed 5046: answered 507, a
// definite refusal, such a write later showed up in reads).
func (d *Driver) hold(now Time, rd *Ready, sync, early bool, err error) {
	d.logger().Error("the store refused this node's next entries: the disk filled past half its reserve from elsewhere. "+
		"The node holds them unsent and takes no requests until space is freed, then resumes on its own", "err", err)
	msg := fmt.Sprintf("%v; the node was storing this request's outcome when the disk filled: it is held until space is freed and may still be applied, so read it back before retrying", err)
	kept := *rd
	kept.Results = nil
	for _, r := range rd.Results {
		if r.Kind != ResultRead || d.Canary == CanaryReadAfterSave {
			d.Replies.Answer(Result{ID: r.ID, Kind: r.Kind, Err: &Error{Code: CodeUnknownOutcome, Msg: msg}})
		}
	}
	// What waits on a commit would wait as long: a held node steps nothing
	// (five x fill-disk: a quorum write held 3 s, past its client's budget).
	for _, r := range d.Node.TakeWaiters(fmt.Sprintf("this node holds entries it could not store (%v) and answers nothing until space is freed", err)) {
		if r.Kind == ResultRead {
			d.Replies.Read(r)
		} else {
			d.Replies.Answer(r)
		}
	}
	d.held = &held{rd: kept, sync: sync, early: early, since: now, next: now + Time(HoldRetry), err: err}
}

// retryHeld retries a held Ready's save once it is due; once it succeeds
// the rest of the Ready is carried out and the driver resumes.
func (d *Driver) retryHeld(now Time) error {
	h := d.held
	if now < h.next {
		return nil
	}
	if len(d.inflight) > 0 {
		// Saves applied before the held Ready finish first (Saved).
		h.next = now + Time(HoldRetry)
		return nil
	}
	if err := d.Storage.Save(&h.rd, h.sync, d.noteRejected); err != nil {
		if errors.Is(err, ErrNoSpace) {
			h.next = now + Time(HoldRetry)
			return nil
		}
		return err
	}
	d.held = nil
	d.logger().Info(fmt.Sprintf("disk space freed: stored the held entries after %s; resuming", time.Duration(now-h.since).Round(time.Millisecond)))
	d.persisted(&h.rd)
	d.complete(now, &h.rd, d.Node.Commit().Seq, h.early)
	d.Node.Advance()
	d.reportDurable(now)
	return d.Drive(now)
}

// An acknowledgement says what the state machine did with the write
// (docs/api.md, "What each answer guarantees"). The core acknowledges a
// write once its entry is durable; the entry's command may still have been
// refused when it was applied (the engram already exists, or no longer
// does), which makes it a no-op on every node. Such a write is answered
// with the refusal, never with success.

func (d *Driver) noteRejected(pos Pos, why error) {
	if d.rejected == nil {
		d.rejected = map[Pos]string{}
	}
	d.rejected[pos] = why.Error()
}

// applied turns a successful write result whose entry was refused into a
// conflict.
func (d *Driver) applied(r Result) Result {
	if r.Kind != ResultWrite || r.Err != nil {
		return r
	}
	if why, ok := d.rejected[r.Pos]; ok {
		r.Err = &Error{Code: CodeConflict, Msg: fmt.Sprintf("the write was logged at %s as a no-op and changed nothing: %s", r.Pos, why)}
		r.Pos = Pos{}
	}
	return r
}

// forgetRejected drops refusals at or below the commit point: every write
// there has had its answer (local writes in the Ready that logged them,
// quorum writes at commit).
func (d *Driver) forgetRejected(commit Seq) {
	for p := range d.rejected {
		if p.Seq <= commit {
			delete(d.rejected, p)
		}
	}
}

type nopLogger struct{}

func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// Hint reports a crash hint for peer (Node.Hint, rule 18). Like Step, the
// caller then calls Drive.
// NotePeerAddr hands the core a peer's advertised MBP address, unless a
// Ready is held: a Cortex records addresses in a membership entry, which
// would join the Ready already taken and be lost with it (review: a gap in
// the Cortex's log on disk). It reports whether the core took it; the
// shell offers it again later otherwise.
func (d *Driver) NotePeerAddr(now Time, peer NodeID, addr string) bool {
	if d.held != nil {
		return false
	}
	d.Node.NotePeerAddr(now, peer, addr)
	return true
}

func (d *Driver) Hint(now Time, peer NodeID, why string) {
	if d.held != nil {
		return
	}
	d.Node.Hint(now, peer, why)
}
