package core

// Hint reports a crash hint at now: this node's connection to peer closed or
// was reset, and an immediate redial was refused (rule 18). A crashed
// process looks like that; a partition, a frozen process or a dead host
// do not (they are silent), and are left to the SDOWN window.
//
// A voter that follows peer as its Cortex takes it for SDOWN at once. The
// rest of the failover is unchanged: ODOWN still needs a quorum of voters
// reporting SDOWN, candidates still run by rank, votes still check
// freshness. The hint may lie (a firewall answering with resets, an
// asymmetric cut): the old Cortex may still run and hold a lease, so every
// vote granted on a hint tells its candidate how long that lease may still
// run, and the new Cortex commits nothing before it has run out.
func (n *Node) Hint(now Time, peer NodeID, why string) {
	n.advanceClock(now)
	if peer == "" || peer != n.cortex || n.role == RoleCortex || n.role == RoleCandidate || !n.isVoter() {
		return
	}
	if why == "" {
		why = "its connection was reset and a redial was refused"
	}
	n.hinted = true
	if !n.sdown {
		n.sdown = true
		n.event(Event{Kind: EventSDown, Node: n.cortex, Detail: "crash hint: " + why})
	}
	n.reportDue = n.now
	if n.cfg.Broken == BrokenTrustHint && n.mayRun() {
		// The canary: run at once, without waiting for ODOWN.
		n.campaign(false, 0)
		return
	}
	n.tickFollower()
}
