package node

import (
	"fmt"

	"github.com/muninndb/muninn/shell/mbp"
)

// Cluster ids (docs/protocol.md, rule 19): the transport sends the store's
// cluster id in every hello (mbp.Config.ClusterID) and checks the peer's
// in the handshake, on both ends, before any message is delivered. A node
// whose store has no id takes the id of a peer that has one only while its
// store is empty (a fresh node joining), through adoptClusterID; a node
// whose store holds data and no id keeps 0, the id of the cluster that
// wrote it (clusters made before cluster ids, and new clusters, whose ids
// stay 0 until a restore mints one), and refuses such a peer.

// adoptClusterID is mbp.Config.AdoptClusterID: the store takes the peer's
// cluster id, synced, if it is empty; its error refuses the connection.
func (n *Node) adoptClusterID(peer mbp.Hello) error {
	before := n.store.ClusterID()
	if err := n.store.AdoptClusterID(peer.ClusterID); err != nil {
		return err
	}
	if before == 0 {
		n.log.Info(fmt.Sprintf("this node joins cluster %016x: its store was empty and peer %s is in that cluster", peer.ClusterID, peer.ID),
			"cluster_id", fmt.Sprintf("%016x", peer.ClusterID))
	}
	return nil
}
