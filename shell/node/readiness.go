package node

import (
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
)

// Node-level readiness of a restarted cluster member (issue 16, part 5).
// The seed's full-restart procedure says "start the Cortex, wait for it to
// be ready, then start the Lobes". A Cortex started alone cannot win an
// election, so it never knows a Cortex; what it can say is that its store
// is open, it listens for its peers, and how far it is from a quorum:
// "store open, waiting for a quorum: 1/3 voters". GET
// /v1/cluster/health?scope=node answers it (status waiting_for_quorum) and
// the log says it once, then again when the count changes.

// QuorumWait is how a node that holds a membership stands toward a quorum.
type QuorumWait struct {
	// Waiting: the node is a member of a cluster of more than one voter,
	// knows no Cortex, and is connected to fewer voters (itself included)
	// than a quorum, so no election can succeed yet.
	Waiting bool
	// Connected counts the voters of the membership this node is connected
	// to over MBP, itself included when it is a voter; Voters is the
	// membership's voter count and Quorum its majority.
	Connected, Voters, Quorum int
}

// QuorumWait computes the wait from the published snapshot.
// It allocates nothing: publish calls it on every turn of the loop.
func (s *Snapshot) QuorumWait() QuorumWait {
	connected := func(id core.NodeID) bool {
		for _, p := range s.Peers {
			if p.ID == id && p.Connected {
				return true
			}
		}
		return false
	}
	w := QuorumWait{Voters: s.Members.Voters(), Quorum: s.Core.Quorum}
	for _, m := range s.Members {
		if m.Voter() && (m.ID == s.Core.ID || connected(m.ID)) {
			w.Connected++
		}
	}
	if w.Quorum == 0 {
		w.Quorum = w.Voters/2 + 1
	}
	w.Waiting = !s.Joining && s.Core.Cortex == "" && w.Voters > 1 && w.Connected < w.Quorum
	return w
}

// Text is the readiness line: "store open, waiting for a quorum: 1/3
// voters", with what to do.
func (w QuorumWait) Text() string {
	return fmt.Sprintf("store open, waiting for a quorum: %d/%d voters (a quorum is %d; start the other members, "+
		"or if they are lost for good see muninn cluster recover)", w.Connected, w.Voters, w.Quorum)
}

// readinessLogEvery bounds how often the readiness line is repeated when
// the count changes (peers that connect and drop in a loop).
const readinessLogEvery = time.Second

// readinessLog is the loop's memory of the last readiness line it logged.
type readinessLog struct {
	logged bool
	last   QuorumWait
	at     time.Time
}

// noteReadiness logs the readiness line when a node first waits for a
// quorum, again when the count changes (at most once a readinessLogEvery;
// a change inside it is logged on a later turn), and once when a quorum is
// met. Called by publish, in the loop.
func (n *Node) noteReadiness(snap *Snapshot) {
	if !n.opts.Cluster {
		return
	}
	w := snap.QuorumWait()
	r := &n.readiness
	if !r.logged && !w.Waiting {
		return
	}
	if r.logged && w == r.last {
		return
	}
	if r.logged && r.last.Waiting && w.Waiting && time.Since(r.at) < readinessLogEvery {
		return // a changed count, logged once the interval has passed
	}
	switch {
	case w.Waiting:
		n.log.Info(w.Text(), "connected_voters", w.Connected, "voters", w.Voters, "quorum", w.Quorum)
	case r.last.Waiting:
		n.log.Info(fmt.Sprintf("quorum reached: %d/%d voters connected", w.Connected, w.Voters), "cortex", string(snap.Core.Cortex))
	}
	r.logged, r.last, r.at = true, w, time.Now()
}
