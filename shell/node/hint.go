package node

import (
	"fmt"

	"github.com/muninndb/muninn/shell/mbp"
)

// hint hands the core a crash hint from the transport (rule 18) and logs
// it once, saying whether it made the Cortex SDOWN at once. The core
// ignores a hint about any peer but the Cortex this voter follows.
func (n *Node) hint(h mbp.Hint) {
	before := n.core.Status()
	n.drv.Hint(n.now(), h.Peer, h.Why)
	after := n.core.Status()
	switch {
	case !before.SDown && after.SDown:
		n.log.Info(fmt.Sprintf("crash hint: cortex %s: %s; taken for SDOWN at once", h.Peer, h.Why), "epoch", after.Epoch)
	case before.Cortex == h.Peer && after.SDown:
		n.log.Info(fmt.Sprintf("crash hint: cortex %s: %s; already SDOWN", h.Peer, h.Why), "epoch", after.Epoch)
	default:
		n.log.Info(fmt.Sprintf("crash hint: %s: %s; ignored (only the Cortex a voter follows is taken for down)", h.Peer, h.Why))
	}
}
