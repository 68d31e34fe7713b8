package core

// CodeInsufficientStorage refuses a request that would add to a store that
// is out of space (the node's disk is below its reserve). Nothing of the
// request was written. The driver answers it; the core never does.
const CodeInsufficientStorage Code = "insufficient_storage"

// StepDown makes a Cortex give up the role at once, for a reason the
// driver knows and the protocol does not (its store cannot take new
// entries: the disk is full). It does what rule 11's demotion does: writes
// waiting for a quorum are answered unknown_outcome, strong reads
// not_cortex, queued writes no_cortex, membership changes and a handoff
// unknown_outcome; the node follows no Cortex and, having just led, neither
// votes for a rival nor reports the Cortex down for a whole SDOWN window.
// The event is EventDemoted with why as its detail.
//
// So that the cluster does not wait out that window for a Cortex that is
// alive, it first hands the role to Successor(), if there is one, as rule
// 14's handoff does: it gives up its lease and sends it timeout-now, and the
// successor runs at once with the sanction. On a node that is not Cortex
// StepDown does nothing.
func (n *Node) StepDown(now Time, why string) {
	n.advanceClock(now)
	if n.role != RoleCortex {
		return
	}
	if to := n.Successor(); to != "" {
		n.leaseFloor = Never
		n.broadcastHeartbeat() // says so (Handoff): votes wait out no lease
		n.send(n.timeoutNow(to))
	}
	n.demoteFor(why)
}

// Successor is the data voter a Cortex would hand the role to on StepDown:
// one that counts toward quorums (rule 16), holds every entry of the
// Cortex's log, and echoed a heartbeat within the SDOWN window — the
// freshest echo first, then the lowest id. It is "" when there is none,
// when this node is not Cortex, and while it is inside its commit floor
// (elected on crash hints: an older Cortex's lease may still run, and the
// successor's voters, who hear this Cortex give its lease up, would report
// none; a successor of the previous release would not take the floor from
// timeout-now either). The driver steps down once the floor has passed,
// as TransferCortex hands off (rule 18; seed 509376).
func (n *Node) Successor() NodeID {
	if n.role != RoleCortex || n.now < n.commitFloor {
		return ""
	}
	var best NodeID
	var bestEcho Time
	for _, m := range n.members {
		pr := n.prog[m.ID]
		if m.ID == n.cfg.ID || !m.DataVoter() || pr == nil || !n.peerCounts(m) {
			continue
		}
		if pr.match != n.log.lastSeq() || pr.echo == 0 || n.now.Sub(pr.echo) > n.cfg.DownAfter() {
			continue
		}
		if best == "" || pr.echo > bestEcho {
			best, bestEcho = m.ID, pr.echo
		}
	}
	return best
}

// timeoutNow is the sanction a Cortex gives its successor (rule 14). Both
// handoffs wait out the Cortex's commit floor first (maybeTimeoutNow,
// Successor); should one ever sanction inside it, the sanction carries
// what is left of the floor, and the successor commits nothing before it
// (rule 18; seed 509376: a Cortex demoted for a full disk 250 ms after a
// lying hint elected it handed off at once, and its successor committed
// while the first Cortex still held its lease).
func (n *Node) timeoutNow(to NodeID) Message {
	m := Message{Type: MsgTimeoutNow, To: to, Handoff: true}
	if n.commitFloor > n.now {
		m.LeaseWait = n.commitFloor.Sub(n.now)
	}
	return m
}
