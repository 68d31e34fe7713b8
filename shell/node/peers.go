package node

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// peerSync is the loop's bookkeeping for reaching every member (rule 15):
// the addresses already told to the core, the addresses already dialed.
type peerSync struct {
	at     time.Time
	noted  map[core.NodeID]string
	dialed map[string]bool
}

// syncPeersEvery bounds how often the loop looks at the transport's peers.
const syncPeersEvery = 200 * time.Millisecond

// syncPeers tells the core the MBP address each connected peer advertised
// (the Cortex records it in the membership), and dials every member whose
// recorded address this node is not connected to, so members that share no
// seed still reach each other: after the nodes they were seeded with are
// removed, the survivors can still elect.
func (n *Node) syncPeers() {
	if n.tr == nil || time.Since(n.peers.at) < syncPeersEvery {
		return
	}
	n.peers.at = time.Now()
	if n.peers.noted == nil {
		n.peers.noted, n.peers.dialed = map[core.NodeID]string{}, map[string]bool{}
	}
	connected := map[core.NodeID]bool{}
	for _, p := range n.tr.Peers() {
		if !p.Connected {
			continue
		}
		connected[p.ID] = true
		if p.MBPAddr != "" && n.peers.noted[p.ID] != p.MBPAddr && n.drv.NotePeerAddr(n.now(), p.ID, p.MBPAddr) {
			n.peers.noted[p.ID] = p.MBPAddr
		}
	}
	for _, m := range n.core.Members() {
		if m.ID == n.opts.ID || m.Addr == "" || connected[m.ID] || n.peers.dialed[m.Addr] || m.Addr == n.opts.AdvertiseAddr {
			continue
		}
		n.peers.dialed[m.Addr] = true
		n.log.Info("dialing member at its recorded address", "member", string(m.ID), "addr", m.Addr)
		if err := n.tr.Connect(m.Addr); err != nil {
			n.log.Warn("cannot dial member", "member", string(m.ID), "addr", m.Addr, "err", err)
		}
	}
}
