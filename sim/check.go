package sim

import (
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
)

// Violation is one failed check.
type Violation struct {
	Checker  string
	Liveness bool
	At       time.Duration
	Node     core.NodeID
	Detail   string
}

func (v Violation) String() string {
	kind := "safety"
	if v.Liveness {
		kind = "liveness"
	}
	return fmt.Sprintf("%s violation [%s] at %.3fs on %s: %s", kind, v.Checker, v.At.Seconds(), v.Node, v.Detail)
}

// Checkers holds the state of every checker. Each checker lives in its own
// file (check_*.go) and hooks the driver at the points named on* here; the
// cheap ones run on every event.
type Checkers struct {
	w          *World
	violations []Violation

	cortexOf map[core.Epoch]core.NodeID // check_cortex.go
	posChain map[core.Pos]uint64        // check_log.go

	quorumAcks []*Op // check_writes.go
	localAcks  []*Op
	wiped      map[core.NodeID][]nodeStore // stores lost to wipes (fault_wipe.go)
	removed    map[core.NodeID][]nodeStore // stores of nodes removed and stopped (workload_members.go)
	ackedAt    map[core.Pos]*Op

	failover *failoverWatch // check_liveness.go
	// stalledUntil: the end of the latest fsync stall (check_liveness.go).
	stalledUntil int64
	demote       map[core.NodeID]*demoteWatch
	// lastReach[cortex,voter]: until when the two could last exchange
	// messages; reachUp: whether they could at the last evaluation. Kept
	// for every pair of nodes: the voters are whatever the Cortex's
	// membership says when it is evaluated.
	lastReach map[[2]core.NodeID]int64
	reachUp   map[[2]core.NodeID]bool
	failovers []time.Duration
	demotions []time.Duration
}

func newCheckers(w *World) *Checkers {
	c := &Checkers{w: w, cortexOf: map[core.Epoch]core.NodeID{}, posChain: map[core.Pos]uint64{},
		ackedAt: map[core.Pos]*Op{}, demote: map[core.NodeID]*demoteWatch{}, wiped: map[core.NodeID][]nodeStore{},
		removed: map[core.NodeID][]nodeStore{}, lastReach: map[[2]core.NodeID]int64{}, reachUp: map[[2]core.NodeID]bool{}}
	return c
}

// violate records a violation and stops the run: the first one is what the
// replay command reproduces.
func (c *Checkers) violate(checker string, liveness bool, node core.NodeID, detail string) {
	v := Violation{Checker: checker, Liveness: liveness, At: c.w.Now(), Node: node, Detail: detail}
	c.violations = append(c.violations, v)
	c.w.record("VIOLATION", node, 0, 0, v.String)
	c.w.stopped = true
}

func (c *Checkers) onEvent(sn *SimNode, e core.Event) {
	switch e.Kind {
	case core.EventViolation:
		c.violate("core-reported", false, sn.id, e.Detail)
	case core.EventElected:
		c.w.stats.Elections++
		c.onElected(sn, e.Epoch)
	case core.EventMembershipChanged:
		// The voters a Cortex needs to reach changed (check_liveness.go).
		if sn.n != nil && sn.n.Role() == core.RoleCortex {
			c.topologyChanged()
		}
	}
}

func (c *Checkers) onElected(sn *SimNode, epoch core.Epoch) {
	c.checkOneCortex(sn, epoch)
	c.resolveFailover(sn, epoch)
	c.topologyChanged()
}

// afterDrive runs after every batch of Readies a node carried out.
func (c *Checkers) afterDrive(sn *SimNode) {
	c.checkEpochMonotonic(sn)
	if sn.n.Role() == core.RoleCortex {
		c.checkOneCortex(sn, sn.n.Epoch())
		if sn.ledEpoch != sn.n.Epoch() {
			// Elected just now, as the core sees it. The elected event
			// may come later: a Ready held for disk space holds its
			// events too, and quorum writes acknowledged meanwhile by a
			// later epoch's Cortex are not this one's to hold.
			sn.ledEpoch, sn.ledSince = sn.n.Epoch(), c.w.now
			c.checkQuorumAcksOn(sn)
		}
		c.checkLeaseOverlap(sn)
	}
	if d := c.demote[sn.id]; d != nil && (sn.n.Role() != core.RoleCortex || sn.n.Epoch() != d.epoch) {
		c.resolveDemotion(sn, d)
	}
}
