package node

import (
	"fmt"

	"github.com/muninndb/muninn/core"
)

// onEvent logs what the core reports, in the seed's words where it has
// them, and counts it.
func (n *Node) onEvent(e core.Event) {
	switch e.Kind {
	case core.EventElectionStarted:
		n.metrics.elections.Inc()
		n.log.Info(fmt.Sprintf("participating in election, epoch=%d", e.Epoch))
	case core.EventElected:
		n.log.Info(fmt.Sprintf("elected as cortex (received %d/%d votes)", e.Votes, e.Voters))
	case core.EventRoleChanged:
		n.log.Info(fmt.Sprintf("role changed to %s", e.Role), "epoch", e.Epoch, "cortex", e.Node)
	case core.EventSDown:
		n.log.Warn(fmt.Sprintf("%s is SDOWN: no heartbeat for %d beats", cortexName(e.Node), core.MissedBeats), "epoch", e.Epoch)
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
