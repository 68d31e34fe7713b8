package core

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The test harness: a tiny deterministic world for the core's own tests
// (scenarios and properties). It persists each Ready the way the contract
// says, delivers messages after a fixed latency, and can crash, restart and
// partition nodes. The full simulator lives in sim/.

type tnode struct {
	id    NodeID
	cfg   Config
	n     *Node
	up    bool
	disk  Restored   // what a crash keeps
	quar  []Entry    // quarantined entries
	acked []Result   // results delivered to clients
	roles []roleSpan // Cortex spans, for checks
	drv   *Driver    // carries out n's Readys; renewed with n
}

type roleSpan struct {
	epoch Epoch
	at    Time
}

type flight struct {
	at  Time
	seq int
	m   Message
}

type tcluster struct {
	now     Time
	nodes   []*tnode
	queue   []flight
	seq     int
	latency time.Duration
	cut     map[[2]NodeID]bool // cut[from,to]: messages dropped
	lossy   func(m Message) bool
	trace   *strings.Builder
	verbose bool
	nextID  uint64
	// cortexOf records every (epoch → Cortex) ever seen: election safety.
	cortexOf map[Epoch]NodeID
	failures []string
	stores   uint64 // store identities handed out so far
}

// newStore hands out the next store identity (deterministic, non-zero).
func (c *tcluster) newStore() uint64 {
	c.stores++
	return 0x5700 + c.stores
}

func newCluster(members Members, hb time.Duration, latency time.Duration, seed uint64) *tcluster {
	c := &tcluster{latency: latency, cut: map[[2]NodeID]bool{}, trace: &strings.Builder{}, cortexOf: map[Epoch]NodeID{}}
	members = members.Normalize()
	for i, m := range members {
		cfg := Config{ID: m.ID, Kind: m.Kind, Heartbeat: hb, Seed: seed + uint64(i)*7919, Bootstrap: members, Store: c.newStore()}
		t := &tnode{id: m.ID, cfg: cfg, up: true}
		t.n = New(cfg, Restored{}, c.now)
		c.nodes = append(c.nodes, t)
	}
	return c
}

func (c *tcluster) node(id NodeID) *tnode {
	for _, t := range c.nodes {
		if t.id == id {
			return t
		}
	}
	panic("no node " + string(id))
}

func (c *tcluster) logf(format string, args ...any) {
	fmt.Fprintf(c.trace, "%s ", fmtTime(c.now))
	fmt.Fprintf(c.trace, format, args...)
	c.trace.WriteByte('\n')
}

func fmtTime(t Time) string { return fmt.Sprintf("%.3fs", time.Duration(t).Seconds()) }

// process carries out every Ready of t through the driver the node and the
// simulator run (driver.go), over the harness's model disk and network.
func (c *tcluster) process(t *tnode) {
	if !t.up {
		return
	}
	if t.drv == nil || t.drv.Node != t.n {
		h := tshell{c, t}
		t.drv = NewDriver(t.n, t.disk.HardState, h, h, h)
	}
	if err := t.drv.Drive(c.now); err != nil {
		panic(err) // the model disk never fails
	}
}

// tshell is a tnode's disk, network and clients, as the driver sees them.
type tshell struct {
	c *tcluster
	t *tnode
}

func (h tshell) Save(rd *Ready, sync bool, rejected func(Pos, error)) error {
	c, t := h.c, h.t
	if tr := rd.Truncate; tr != nil {
		keep := t.disk.Entries[:0]
		for _, e := range t.disk.Entries {
			if e.Pos.Seq <= tr.After.Seq {
				keep = append(keep, e)
			}
		}
		t.disk.Entries = keep
		t.quar = append(t.quar, tr.Removed...)
		c.logf("%s quarantined %d entries after %s: %s", t.id, len(tr.Removed), tr.After, tr.Reason)
	}
	if rd.HardState != nil {
		t.disk.HardState = *rd.HardState
	}
	t.disk.Entries = append(t.disk.Entries, slices.Clone(rd.Entries)...)
	if rd.Members != nil && len(t.disk.Entries) == 0 && t.disk.Snap.Seq == 0 {
		t.disk.SnapMembers = rd.Members
	}
	return nil
}

func (h tshell) Prune(cp Compaction) error {
	t := h.t
	keep := t.disk.Entries[:0]
	for _, e := range t.disk.Entries {
		if e.Pos.Seq > cp.Upto.Seq {
			keep = append(keep, e)
		}
	}
	t.disk.Entries, t.disk.Snap, t.disk.SnapMembers = keep, cp.Upto, cp.Members
	return nil
}

func (h tshell) Admit(int) error          { return nil }
func (h tshell) DiskFull() (bool, string) { return false, "" }
func (h tshell) InstallSnapshot(string, func(Pos) error) (Installed, error) {
	return Installed{}, fmt.Errorf("the harness streams no snapshots")
}

func (h tshell) Send(m Message) { h.c.sendMsg(m) }

// SendSnapshot: never completed here, only logged.
func (h tshell) SendSnapshot(to NodeID) { h.c.logf("%s snapshot to %s requested", h.t.id, to) }

func (h tshell) Read(r Result) { h.Answer(r) }

func (h tshell) Answer(r Result) {
	h.t.acked = append(h.t.acked, r)
	if h.c.verbose {
		h.c.logf("%s result id=%d %s", h.t.id, r.ID, describeResult(r))
	}
}

func (h tshell) Event(e Event) { h.c.noteEvent(h.t, e) }

func describeResult(r Result) string {
	if r.Err != nil {
		return "error " + string(r.Err.Code)
	}
	return "ok at " + r.Pos.String()
}

func (c *tcluster) noteEvent(t *tnode, e Event) {
	switch e.Kind {
	case EventElected:
		if prev, ok := c.cortexOf[e.Epoch]; ok && prev != t.id {
			c.failures = append(c.failures, fmt.Sprintf("two Cortexes in epoch %d: %s and %s", e.Epoch, prev, t.id))
		}
		c.cortexOf[e.Epoch] = t.id
		c.logf("%s elected cortex epoch=%d (received %d/%d votes)", t.id, e.Epoch, e.Votes, e.Voters)
	case EventSDown:
		if e.Detail != "" {
			c.logf("%s sdown: cortex %s (%s)", t.id, orUnknown(e.Node), e.Detail)
		} else {
			c.logf("%s sdown: no heartbeat from cortex %s", t.id, orUnknown(e.Node))
		}
	case EventODown:
		c.logf("%s odown: %d/%d voters report the cortex down", t.id, e.Votes, e.Voters)
	case EventElectionStarted:
		c.logf("%s participating in election, epoch=%d", t.id, e.Epoch)
	case EventSteppedDown, EventDemoted, EventHandoffStarted, EventHandoffAborted, EventCaughtUp, EventMembershipChanged, EventStoreChanged:
		c.logf("%s %s epoch=%d%s%s", t.id, e.Kind, e.Epoch, prefixed(e.Node), detail(e.Detail))
	case EventViolation:
		c.failures = append(c.failures, fmt.Sprintf("%s: violation: %s", t.id, e.Detail))
		c.logf("%s VIOLATION %s", t.id, e.Detail)
	case EventRoleChanged, EventSDownCleared:
		if c.verbose {
			c.logf("%s %s %s", t.id, e.Kind, e.Role)
		}
	}
}

func prefixed(id NodeID) string {
	if id == "" {
		return ""
	}
	return " " + string(id)
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func (c *tcluster) sendMsg(m Message) {
	if c.cut[[2]NodeID{m.From, m.To}] || (c.lossy != nil && c.lossy(m)) {
		return
	}
	m.Entries = slices.Clone(m.Entries)
	c.seq++
	c.queue = append(c.queue, flight{at: c.now.Add(c.latency), seq: c.seq, m: m})
}

// runUntil advances the world to end, delivering messages and ticking nodes
// at their deadlines.
func (c *tcluster) runUntil(end Time) {
	spins := 0
	last := c.now
	for {
		if c.now == last {
			spins++
			if spins > 100000 {
				for _, t := range c.nodes {
					if t.up && t.n.NextDeadline() <= c.now {
						c.failures = append(c.failures, fmt.Sprintf("%s spins: deadline %d <= now %d (%s)", t.id, t.n.NextDeadline(), c.now, t.n.Role()))
					}
				}
				c.failures = append(c.failures, "no progress at "+fmtTime(c.now))
				return
			}
		} else {
			spins, last = 0, c.now
		}
		next := end
		for _, f := range c.queue {
			next = min(next, f.at)
		}
		for _, t := range c.nodes {
			if t.up {
				next = min(next, max(t.n.NextDeadline(), c.now))
			}
		}
		if next > end {
			break
		}
		c.now = next
		sort.SliceStable(c.queue, func(i, j int) bool {
			if c.queue[i].at != c.queue[j].at {
				return c.queue[i].at < c.queue[j].at
			}
			return c.queue[i].seq < c.queue[j].seq
		})
		for len(c.queue) > 0 && c.queue[0].at <= c.now {
			f := c.queue[0]
			c.queue = c.queue[1:]
			t := c.node(f.m.To)
			if !t.up {
				continue
			}
			t.n.Step(c.now, f.m)
			c.process(t)
		}
		for _, t := range c.nodes {
			if t.up && t.n.NextDeadline() <= c.now {
				t.n.Tick(c.now)
				c.process(t)
			}
		}
		if c.now == end {
			break
		}
	}
	c.now = end
	c.checkInvariants()
}

func (c *tcluster) crash(id NodeID) {
	t := c.node(id)
	t.up = false
	c.logf("%s crashed", id)
}

// wipe restarts a crashed node on an empty store with a new identity, as
// after `rm -rf` of its data directory (rule 16).
func (c *tcluster) wipe(id NodeID) {
	t := c.node(id)
	t.disk, t.quar = Restored{}, nil
	t.cfg.Store = c.newStore()
	c.logf("%s store wiped (new store %x)", id, t.cfg.Store)
}

// loseTail drops the last k entries from a crashed node's disk, keeping its
// store identity: a log that went back without anyone noticing locally.
func (c *tcluster) loseTail(id NodeID, k int) {
	t := c.node(id)
	k = min(k, len(t.disk.Entries))
	t.disk.Entries = t.disk.Entries[:len(t.disk.Entries)-k]
	if t.disk.HardState.Commit.Seq > t.disk.Snap.Seq+Seq(len(t.disk.Entries)) {
		t.disk.HardState.Commit = Pos{}
		if n := len(t.disk.Entries); n > 0 {
			t.disk.HardState.Commit = t.disk.Entries[n-1].Pos
		}
	}
	c.logf("%s lost the last %d entries of its log", id, k)
}

func (c *tcluster) restart(id NodeID) {
	t := c.node(id)
	r := t.disk
	r.Entries = slices.Clone(r.Entries)
	t.n = New(t.cfg, r, c.now)
	t.up = true
	c.logf("%s restarted at epoch %d, last %s", id, t.n.Epoch(), t.n.Last())
	c.process(t)
}

// isolate cuts every link between the two sides.
func (c *tcluster) isolate(a, b []NodeID) {
	for _, x := range a {
		for _, y := range b {
			c.cut[[2]NodeID{x, y}] = true
			c.cut[[2]NodeID{y, x}] = true
		}
	}
}

func (c *tcluster) heal() { c.cut = map[[2]NodeID]bool{} }

// othersThan lists the ids of every node but t, in the cluster's order.
func (c *tcluster) othersThan(t *tnode) []NodeID {
	var out []NodeID
	for _, x := range c.nodes {
		if x != t {
			out = append(out, x.id)
		}
	}
	return out
}

func (c *tcluster) cortex() *tnode {
	var best *tnode
	for _, t := range c.nodes {
		if t.up && t.n.Role() == RoleCortex && (best == nil || t.n.Epoch() > best.n.Epoch()) {
			best = t
		}
	}
	return best
}

func (c *tcluster) propose(id NodeID, payload string, d Durability) uint64 {
	c.nextID++
	t := c.node(id)
	t.n.Propose(c.now, c.nextID, []byte(payload), d)
	c.process(t)
	return c.nextID
}

func (c *tcluster) resultOf(id uint64) (Result, bool) {
	for _, t := range c.nodes {
		for _, r := range t.acked {
			if r.ID == id {
				return r, true
			}
		}
	}
	return Result{}, false
}

// checkInvariants: logs of live nodes match on common positions; commit
// points never exceed the log.
func (c *tcluster) checkInvariants() {
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			la, lb := a.n.log, b.n.log
			hi := min(la.lastSeq(), lb.lastSeq())
			lo := max(la.snap.Seq, lb.snap.Seq) + 1
			agreeFrom := Seq(0)
			for s := hi; s >= lo; s-- {
				ea, _ := la.epochAt(s)
				eb, _ := lb.epochAt(s)
				if ea == eb && agreeFrom == 0 {
					agreeFrom = s
				}
				if agreeFrom != 0 && ea != eb {
					c.failures = append(c.failures, fmt.Sprintf("log matching: %s and %s agree at %d but differ at %d", a.id, b.id, agreeFrom, s))
					return
				}
			}
		}
	}
}

func (c *tcluster) statusLines() string {
	var b strings.Builder
	for _, t := range c.nodes {
		if !t.up {
			fmt.Fprintf(&b, "%s down\n", t.id)
			continue
		}
		s := t.n.Status()
		fmt.Fprintf(&b, "%s %s epoch=%d cortex=%s last=%s commit=%s", t.id, s.Role, s.Epoch, orDash(s.Cortex), s.Last, s.Commit)
		if len(t.quar) > 0 {
			fmt.Fprintf(&b, " quarantined=%d", len(t.quar))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func orDash(id NodeID) string {
	if id == "" {
		return "-"
	}
	return string(id)
}
