package node

import (
	"fmt"

	"github.com/muninndb/muninn/core"
)

// onEvent logs what the core reports, in the seed's words where it has
// them, counts it, and hands it to the event hub (eventhub.go).
func (n *Node) onEvent(e core.Event) {
	var members func() core.Members
	if e.Kind == core.EventMembershipChanged {
		members = n.core.Members
	}
	n.events.fromCore(e, n.opts.APIAddr, members)
	switch e.Kind {
	case core.EventElectionStarted:
		n.metrics.elections.Inc()
		n.log.Info(fmt.Sprintf("participating in election, epoch=%d", e.Epoch))
	case core.EventElected:
		n.log.Info(fmt.Sprintf("elected as cortex (received %d/%d votes)", e.Votes, e.Voters))
	case core.EventRoleChanged:
		n.log.Info(fmt.Sprintf("role changed to %s", e.Role), "epoch", e.Epoch, "cortex", e.Node)
	case core.EventSDown:
		n.log.Warn(fmt.Sprintf("%s is SDOWN: %s", cortexName(e.Node), sdownReason(e)), "epoch", e.Epoch)
	case core.EventODown:
		n.log.Warn(fmt.Sprintf("%s is ODOWN: %d/%d voters agree it is unreachable", cortexName(e.Node), e.Votes, e.Voters), "epoch", e.Epoch)
	case core.EventSteppedDown:
		n.log.Warn("stepped down: "+e.Detail, "epoch", e.Epoch)
	case core.EventDemoted:
		n.metrics.demotions.Inc()
		n.log.Warn("demoted to lobe: "+e.Detail, "epoch", e.Epoch)
	case core.EventHandoffStarted:
		n.log.Info(fmt.Sprintf("handing off to %s", e.Node), "epoch", e.Epoch)
	case core.EventHandoffAborted:
		n.log.Warn(fmt.Sprintf("handoff to %s aborted: %s", e.Node, e.Detail), "epoch", e.Epoch)
	case core.EventMembershipChanged:
		n.log.Info("membership changed: " + e.Detail)
	case core.EventCaughtUp:
		if e.Detail != "" {
			n.log.Info(e.Detail)
		} else {
			n.log.Info(fmt.Sprintf("%s caught up; promoting it to voter", e.Node))
		}
	case core.EventStoreChanged:
		n.metrics.storeChanges.Inc()
		n.log.Warn(e.Detail, "epoch", e.Epoch)
	case core.EventViolation:
		n.log.Error("protocol violation refused: " + e.Detail)
	}
}

func cortexName(id core.NodeID) string {
	if id == "" {
		return "the cortex (none known since start)"
	}
	return "cortex " + string(id)
}

// noteTruncation reports entries a truncation moved to the quarantine.
func (n *Node) noteTruncation(t *core.Truncation) {
	if t == nil || len(t.Removed) == 0 {
		return
	}
	ps := make([]core.Pos, len(t.Removed))
	for i, e := range t.Removed {
		ps[i] = e.Pos
	}
	n.events.quarantined(ps, t.Reason)
}

// quarantinedNow lists the positions in the store's quarantine, so a
// snapshot install can tell which entries it quarantined (the store does
// not say). Installs are rare; nil when the quarantine cannot be read.
func (n *Node) quarantinedNow() map[core.Pos]bool {
	qs, err := n.store.Quarantine()
	if err != nil {
		return nil
	}
	out := make(map[core.Pos]bool, len(qs))
	for _, q := range qs {
		out[q.Pos()] = true
	}
	return out
}

// noteInstallQuarantine reports the entries a snapshot install added to the
// quarantine (before is quarantinedNow before the install).
func (n *Node) noteInstallQuarantine(before map[core.Pos]bool) {
	if before == nil {
		return
	}
	qs, err := n.store.Quarantine()
	if err != nil {
		return
	}
	var ps []core.Pos
	reason := ""
	for _, q := range qs {
		if !before[q.Pos()] {
			ps = append(ps, q.Pos())
			if reason == "" {
				reason = q.Reason
			}
		}
	}
	n.events.quarantined(ps, reason)
}
