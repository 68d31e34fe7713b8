package core

import (
	"slices"
	"time"
)

// Restored is the durable state a node starts from.
type Restored struct {
	HardState HardState
	// Snap is the position of the last entry compacted away or installed by
	// snapshot; SnapMembers the membership in force there.
	Snap        Pos
	SnapMembers Members
	// Entries are the retained log entries after Snap, in order.
	Entries []Entry
}

// peerView is what this node knows of another node.
type peerView struct {
	kind      Kind
	last      Pos  // from its heartbeats, reports and votes
	down      bool // its latest SDOWN report
	downAt    Time // when that report arrived
	seenAt    Time // last message of any kind
	hasSeen   bool
	epoch     Epoch
	role      Role
	followed  NodeID
	store     uint64   // the store identity it last reported (rule 16)
	addr      string   // its MBP address, as the driver last saw it
	unheard   []NodeID // voters it reported not hearing
	priority  uint16   // its cluster.priority, from its messages (0: never runs, or unknown)
	prioHeard bool     // priority came from a message: 0 means never, not unknown
}

// progress is the Cortex's view of one peer's replication.
type progress struct {
	match        Seq    // highest seq known durable and matching on the peer
	next         Seq    // next seq to send
	inflight     int    // appends sent and not yet answered
	lastSend     Time   // when the last append went out
	pendingSince Time   // when the oldest unsent entry appeared (0: none)
	echo         Time   // newest SentAt the peer echoed
	matchAt      Time   // the SentAt echoed by the answer that last raised match
	store        uint64 // the store identity match was counted on (rule 16)
	storeSince   Time   // when this Cortex first heard store from the peer
	snapshot     bool   // a snapshot is streaming to it
	heard        bool   // it answered this Cortex: its position is known
	reported     Seq    // the last seq the peer reported (heartbeat answers, refusals)
	ackWait      Time   // since when appends to it went unanswered (0: none)
	snapshotAt   Time
	backAt       Time // when a refusal last stepped next back (rule 7)
}

type pendingWrite struct {
	id    uint64
	pos   Pos
	local bool // a local write held until commitFloor (rule 18)
}

type pendingRead struct {
	id    uint64
	at    Time // reads need echoes of heartbeats sent at or after at
	index Seq  // and commit at or beyond index
	lease bool // the lease already covered it
	// admin: not a read but an admin answer read from the membership
	// (confirmThen), given once the Cortex knows it still leads.
	admin *Error
}

// kind is the Result kind its answer takes.
func (r pendingRead) kind() ResultKind {
	if r.admin != nil {
		return ResultAdmin
	}
	return ResultRead
}

type transfer struct {
	target   NodeID
	deadline Time
	id       uint64
	sent     bool
}

// Node is one node's protocol state machine.
type Node struct {
	cfg Config
	now Time
	rng uint64

	hs       HardState
	prevHS   HardState // as of the last Ready
	log      raftLog
	base     Members // membership in force at log.snap
	members  Members
	changeAt Seq // seq of the membership entry in force (0: base)

	role      Role
	cortex    NodeID
	lastHeard Time
	// echoAt is the latest send time (the Cortex's clock) of what this
	// follower has heard from its Cortex: answers that are not echoes
	// carry it, so the Cortex never takes them for older than they are.
	echoAt Time
	// sanctioned: the latest word from the Cortex (by its send time) said
	// it had given up its lease for a handoff (rule 14), so no lease of it
	// counts on this node's echoes; a sanctioned vote then waits out
	// nothing.
	sanctioned bool
	sdown      bool
	odown      bool
	// hinted: the Cortex's connection reset and a redial was refused
	// (rule 18), and nothing has been heard from it since.
	hinted bool
	// echoedAt is when this node last answered a Cortex: that Cortex's
	// lease may count on it until echoedAt + Lease (rule 18).
	echoedAt   Time
	reportDue  Time
	electionAt Time
	electEnd   Time
	votes      map[NodeID]bool
	refusals   map[NodeID]bool
	freshAt    Time
	peers      map[NodeID]*peerView
	hbDue      Time

	// Cortex state.
	prog       map[NodeID]*progress
	since      Time // when this node became Cortex
	epochStart Seq  // the seq of its epoch-start entry
	leaseFloor Time
	// commitFloor: a Cortex elected on crash hints commits nothing before
	// it, when every lease the old Cortex could hold has run out (rule 18).
	// While a candidate, the latest such end its granted votes reported.
	commitFloor Time
	writes      []pendingWrite
	reads       []pendingRead
	held        []heldWrite // writes queued behind strong reads
	xfer        *transfer
	adminWait   []pendingWrite // membership changes waiting for commit

	rd Ready

	// durable: the log's entries at or below it are persisted (the driver
	// reports saves with Persisted). A Cortex sends its entries before its
	// own save completes and counts itself toward a commit only up to here
	// (rule 8; docs/protocol.md, "Pipelined persistence").
	durable Seq
}

// longAgo is a Time before any real event.
const longAgo Time = -1 << 62

// New returns a node restored from r, at time now.
func New(cfg Config, r Restored, now Time) *Node {
	cfg = cfg.WithDefaults()
	n := &Node{
		cfg:   cfg,
		now:   now,
		rng:   cfg.Seed*0x9E3779B97F4A7C15 + 1,
		hs:    r.HardState,
		log:   raftLog{snap: r.Snap, entries: slices.Clone(r.Entries)},
		peers: map[NodeID]*peerView{},
	}
	n.prevHS = n.hs
	n.durable = n.log.lastSeq()
	n.base = r.SnapMembers.Normalize()
	if len(n.base) == 0 && r.Snap.Seq == 0 && len(r.Entries) == 0 {
		n.base = cfg.Bootstrap.Normalize()
		if len(n.base) > 0 {
			n.rd.Members = n.base
		}
	}
	n.recomputeMembers()
	n.role = n.followerRole()
	if n.hs.Epoch == 0 && n.log.lastSeq() == 0 || n.members.Voters() == 1 && n.isVoter() {
		// A fresh node has never had a Cortex, and a lone voter's lease is
		// its own: nothing to wait out.
		n.lastHeard = now.Add(-cfg.DownAfter())
		n.echoedAt = longAgo
	} else {
		// A restarted voter may have acknowledged a Cortex's heartbeat just
		// before it crashed; that Cortex's lease counts on it staying quiet
		// for a whole SDOWN window, so it waits one out (rule 5), and a
		// vote it grants on a crash hint reports a whole lease (rule 18).
		n.lastHeard = now
		n.echoedAt = now
	}
	n.hbDue = now
	n.reportDue = Never
	n.electionAt = Never
	n.electEnd = Never
	return n
}

// ID returns the node's id.
func (n *Node) ID() NodeID { return n.cfg.ID }

// Role returns the node's current role.
func (n *Node) Role() Role { return n.role }

// Epoch returns the node's current epoch.
func (n *Node) Epoch() Epoch { return n.hs.Epoch }

// Cortex returns the Cortex this node follows ("" when none is known).
func (n *Node) Cortex() NodeID { return n.cortex }

// Members returns the membership in force.
func (n *Node) Members() Members { return slices.Clone(n.members) }

// Last returns the last log position.
func (n *Node) Last() Pos { return n.log.last() }

// Commit returns the highest position known committed.
func (n *Node) Commit() Pos { return n.hs.Commit }

// HasReady reports whether Ready holds something to do.
func (n *Node) HasReady() bool {
	n.flushHardState()
	return !n.rd.Empty()
}

// Ready returns what the driver must do; see the Ready type for the order.
// The driver calls Advance once it is done.
func (n *Node) Ready() Ready {
	n.flushHardState()
	return n.rd
}

// Advance tells the core the last Ready was carried out.
func (n *Node) Advance() {
	if n.rd.HardState != nil {
		n.prevHS = *n.rd.HardState
	}
	n.rd = Ready{}
}

// Persisted tells the core that its log up to p is durable: the driver's
// save of the Ready holding p completed. A Cortex may then count itself
// toward committing those entries (rule 8). A p the log no longer holds
// (truncated since it was handed out) changes nothing.
func (n *Node) Persisted(now Time, p Pos) {
	if p.Seq <= n.durable || !n.log.has(p) {
		return
	}
	n.advanceClock(now)
	n.durable = p.Seq
	if n.role == RoleCortex {
		n.advanceCommit()
		n.completeReads()
	}
}

// Durable is the last log position known persisted (see Persisted).
func (n *Node) Durable() Seq { return n.durable }

func (n *Node) flushHardState() {
	if n.hs != n.prevHS && (n.rd.HardState == nil || *n.rd.HardState != n.hs) {
		hs := n.hs
		n.rd.HardState = &hs
		// A Sentinel judges candidates by the commit point it heard (rule
		// 5): it must survive a crash, or a wiped data node with an empty
		// log gets its vote (Pebble seed 200019: a quorum write lost).
		n.rd.SyncCommit = n.cfg.Kind == KindSentinel && hs.Commit != n.prevHS.Commit
	}
}

func (n *Node) followerRole() Role {
	switch n.cfg.Kind {
	case KindSentinel:
		return RoleSentinel
	case KindObserver:
		return RoleObserver
	}
	return RoleLobe
}

func (n *Node) self() (Member, bool) { return n.members.Get(n.cfg.ID) }

func (n *Node) isVoter() bool {
	m, ok := n.self()
	return ok && m.Voter()
}

// isDataVoter reports whether this node may run: a data voter whose store
// is the one the membership records (rule 16).
func (n *Node) isDataVoter() bool {
	m, ok := n.self()
	return ok && m.DataVoter() && n.counts(m, n.cfg.Store)
}

// mayRun: a data voter runs for Cortex unless cluster.priority is 0 (rule 4).
func (n *Node) mayRun() bool { return !n.cfg.NeverCortex && n.isDataVoter() }

func (n *Node) peer(id NodeID) *peerView {
	p := n.peers[id]
	if p == nil {
		p = &peerView{}
		n.peers[id] = p
	}
	return p
}

func (n *Node) event(e Event) {
	e.At = n.now
	if e.Epoch == 0 {
		e.Epoch = n.hs.Epoch
	}
	n.rd.Events = append(n.rd.Events, e)
}

func (n *Node) setRole(r Role) {
	if n.role == r {
		return
	}
	n.role = r
	n.event(Event{Kind: EventRoleChanged, Role: r, Node: n.cortex})
}

func (n *Node) send(m Message) {
	m.From = n.cfg.ID
	m.Store = n.cfg.Store
	m.Epoch = n.hs.Epoch
	m.Kind = n.cfg.Kind
	m.Role = n.role
	if m.Type == MsgHeartbeat || m.Type == MsgSDown || m.Type == MsgVote {
		m.Priority = n.priority()
	}
	if n.role == RoleCortex && n.leaseFloor == Never && (m.Type == MsgHeartbeat || m.Type == MsgAppend) {
		m.Handoff = true // its lease is given up (rule 14)
	}
	n.rd.Messages = append(n.rd.Messages, m)
}

// priority is this node's cluster.priority as its messages carry it: 0 for
// a node that never runs (rule 4).
func (n *Node) priority() uint16 {
	if n.cfg.NeverCortex || n.cfg.Kind != KindAuto {
		return 0
	}
	return uint16(n.cfg.Priority)
}

// random returns a pseudo-random duration in [0, d), from the seeded source.
func (n *Node) random(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	n.rng ^= n.rng << 13
	n.rng ^= n.rng >> 7
	n.rng ^= n.rng << 17
	return time.Duration(n.rng % uint64(d))
}

// recomputeMembers sets members from the latest membership entry in the log,
// or the base membership when the log holds none.
func (n *Node) recomputeMembers() {
	n.members, n.changeAt = n.base, 0
	for i := len(n.log.entries) - 1; i >= 0; i-- {
		e := n.log.entries[i]
		if e.Type != EntryMembership {
			continue
		}
		if ms, err := DecodeMembers(e.Payload); err == nil {
			n.members, n.changeAt = ms.Normalize(), e.Pos.Seq
		}
		break
	}
}

// membersAt returns the membership in force at seq s (s >= log.snap.Seq).
func (n *Node) membersAt(s Seq) Members {
	for i := len(n.log.entries) - 1; i >= 0; i-- {
		e := n.log.entries[i]
		if e.Pos.Seq > s || e.Type != EntryMembership {
			continue
		}
		if ms, err := DecodeMembers(e.Payload); err == nil {
			return ms.Normalize()
		}
	}
	return n.base
}

// setEpoch moves to a higher epoch, forgetting the vote and the Cortex.
func (n *Node) setEpoch(e Epoch) {
	if e <= n.hs.Epoch {
		return
	}
	n.hs.Epoch = e
	n.hs.Vote, n.hs.VoteStore = "", 0
	n.cortex = ""
	n.sanctioned = false
}

// becomeFollower steps down (if needed) into epoch e following cortex.
func (n *Node) becomeFollower(e Epoch, cortex NodeID) {
	wasCortex := n.role == RoleCortex
	n.setEpoch(e)
	if wasCortex {
		n.stepDownCleanup(EventSteppedDown, "saw a higher epoch")
		// It led until now: that is contact, not an SDOWN window's silence.
		n.lastHeard = n.now
		n.sdown = false
	}
	n.cortex = cortex
	n.electEnd = Never
	n.votes = nil
	n.setRole(n.followerRole())
}

// stepDownCleanup fails what a Cortex was waiting on.
func (n *Node) stepDownCleanup(kind EventKind, why string) {
	n.event(Event{Kind: kind, Detail: why})
	for _, w := range n.writes {
		n.result(w.id, ResultWrite, Pos{}, errorf(CodeUnknownOutcome, "", "the Cortex stepped down before the write reached a quorum (%s); it may or may not survive: read it back", why))
	}
	for _, r := range n.reads {
		n.result(r.id, r.kind(), Pos{}, errorf(CodeNotCortex, "", "the Cortex stepped down (%s); retry", why))
	}
	n.failHeld(errorf(CodeNoCortex, "", "the Cortex stepped down (%s) before the write was logged; retry it", why))
	for _, a := range n.adminWait {
		n.result(a.id, ResultAdmin, Pos{}, errorf(CodeUnknownOutcome, "", "the Cortex stepped down before the membership change committed (%s); check muninn cluster info", why))
	}
	if n.xfer != nil {
		if kind == EventSteppedDown && n.xfer.sent {
			n.result(n.xfer.id, ResultAdmin, Pos{}, nil)
		} else {
			n.result(n.xfer.id, ResultAdmin, Pos{}, errorf(CodeUnknownOutcome, "", "handoff interrupted: %s", why))
		}
	}
	n.writes, n.reads, n.adminWait, n.xfer = nil, nil, nil, nil
	n.prog = nil
}

// TakeWaiters answers at once, outside any Ready, every request this node
// waits on for a commit or an echo, and forgets them: the driver calls it
// when it holds a Ready for disk space (Driver.Held), since a held node
// steps nothing and they would wait until space returns. A logged write or
// membership change may still commit later, so its outcome is unknown; a
// read and a write queued behind reads reached nothing and can be retried.
// The entries stay in the log: only their answers are given now.
func (n *Node) TakeWaiters(why string) []Result {
	var out []Result
	for _, w := range n.writes {
		out = append(out, Result{ID: w.id, Kind: ResultWrite, Err: errorf(CodeUnknownOutcome, "", "the write at %s is logged on this node but not yet committed, and %s; it may still commit: read it back", w.pos, why)})
	}
	for _, a := range n.adminWait {
		out = append(out, Result{ID: a.id, Kind: ResultAdmin, Err: errorf(CodeUnknownOutcome, "", "the membership change is logged on this node but not yet committed, and %s; check muninn cluster info", why)})
	}
	for _, r := range n.reads {
		out = append(out, Result{ID: r.id, Kind: r.kind(), Err: errorf(CodeUnavailable, "", "%s; the read served nothing: retry", why)})
	}
	for _, h := range n.held {
		out = append(out, Result{ID: h.id, Kind: ResultWrite, Err: errorf(CodeUnavailable, "", "%s; the write was not logged: retry it", why)})
	}
	n.writes, n.adminWait, n.reads, n.held = nil, nil, nil, nil
	return out
}

func (n *Node) result(id uint64, kind ResultKind, pos Pos, err *Error) {
	n.rd.Results = append(n.rd.Results, Result{ID: id, Kind: kind, Pos: pos, Err: err})
}
