package mbp

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
)

// Cluster ids (docs/protocol.md, rule 19). Each hello carries its sender's
// cluster id (0: none), covered by both proofs. Once the peer has proved
// the secret, each side checks the peer's id before anything else crosses
// the connection (the dialer before it sends its proof, the listener before
// it accepts), and refuses with a "cluster:" reason, so a refusal ends the
// handshake on both ends.

// FixCluster is what a cluster id refusal tells the operator to do.
const FixCluster = "one of the two nodes holds data from another cluster (a restored backup starts a new cluster, with a new cluster id); " +
	"to join a node to this cluster, give it a fresh data directory"

// clusterReasonPrefix marks a refusal for the cluster id.
const clusterReasonPrefix = "cluster:"

// ClusterError is a connection refused for its cluster ids. errors.Is(err,
// ErrCluster) holds for it.
type ClusterError struct {
	Local, Peer     core.NodeID
	LocalID, PeerID uint64
	// ByPeer: the peer refused (this side accepted the peer's id).
	ByPeer bool
	// Reason, when this side has no cluster id: why it did not take the
	// peer's (the store holds data of the cluster that wrote it).
	Reason string
}

func (e *ClusterError) Is(target error) bool { return target == ErrCluster }

func (e *ClusterError) Error() string {
	if e.ByPeer {
		return fmt.Sprintf("mbp: refused by peer %s, which is in cluster %s, while this node %s is in cluster %s: %s",
			e.Peer, fmtClusterID(e.PeerID), e.Local, fmtClusterID(e.LocalID), FixCluster)
	}
	if e.Reason != "" {
		return fmt.Sprintf("mbp: refused peer %s, which is in cluster %s, while this node %s is in cluster %s and keeps it (%s): %s",
			e.Peer, fmtClusterID(e.PeerID), e.Local, fmtClusterID(e.LocalID), e.Reason, FixCluster)
	}
	return fmt.Sprintf("mbp: refused peer %s, which is in cluster %s, while this node %s is in cluster %s: %s",
		e.Peer, fmtClusterID(e.PeerID), e.Local, fmtClusterID(e.LocalID), FixCluster)
}

// wireReason is the refusal sent to the peer (at most 256 bytes: node ids
// are at most 64).
func (e *ClusterError) wireReason() string {
	return fmt.Sprintf("%s node %s (cluster %s) refuses node %s (cluster %s)", clusterReasonPrefix,
		e.Local, fmtClusterID(e.LocalID), e.Peer, fmtClusterID(e.PeerID))
}

// fmtClusterID shows an id as 16 hex digits; 0 is shown as "none".
func fmtClusterID(id uint64) string {
	if id == 0 {
		return "none (0000000000000000)"
	}
	return fmt.Sprintf("%016x", id)
}

// checkCluster decides whether this side (hc) talks with an authenticated
// peer, by their cluster ids:
//
//   - equal (0 and 0 included: clusters made before cluster ids, or that
//     never had one): yes;
//   - the peer has none: yes here; the peer decides on its side (it takes
//     this side's id if its store is empty, else it refuses);
//   - this side has none, the peer has one: hc.AdoptCluster decides (nil
//     error: taken and persisted);
//   - both set and different: refused.
func checkCluster(hc HandshakeConfig, peer Hello) error {
	local := hc.Local.ClusterID
	if peer.ClusterID == local || peer.ClusterID == 0 {
		return nil
	}
	e := &ClusterError{Local: hc.Local.ID, Peer: peer.ID, LocalID: local, PeerID: peer.ClusterID}
	if local != 0 {
		return e
	}
	if hc.AdoptCluster == nil {
		e.Reason = "this node takes no cluster id"
		return e
	}
	if err := hc.AdoptCluster(peer); err != nil {
		e.Reason = err.Error()
		return e
	}
	return nil
}

// refusedCluster turns a "cluster:" refusal from the peer into a
// ClusterError naming both ids; any other error is returned as it is.
func refusedCluster(local, peer Hello, err error) error {
	if !errors.Is(err, ErrCluster) {
		return err
	}
	return &ClusterError{Local: local.ID, Peer: peer.ID, LocalID: local.ClusterID, PeerID: peer.ClusterID, ByPeer: true}
}

// clusterLogEvery rate-limits the warning for connections refused for
// their cluster id, per peer: a refused node redials every few seconds.
const clusterLogEvery = time.Minute

// clusterLog remembers when a refusal was last logged, per peer.
type clusterLog struct {
	mu    sync.Mutex
	last  map[core.NodeID]time.Time
	quiet map[core.NodeID]int // refusals not logged since
}

// allow reports whether a refusal of peer at now is logged, and how many
// were not since the last one that was. At most 256 peers are remembered.
func (l *clusterLog) allow(peer core.NodeID, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || len(l.last) >= 256 {
		l.last, l.quiet = map[core.NodeID]time.Time{}, map[core.NodeID]int{}
	}
	if t, ok := l.last[peer]; ok && now.Sub(t) < clusterLogEvery {
		l.quiet[peer]++
		return false, 0
	}
	n := l.quiet[peer]
	l.last[peer] = now
	delete(l.quiet, peer)
	return true, n
}

// logCluster logs a cluster id refusal with both ids, at most once a
// minute per peer.
func (t *Transport) logCluster(remote string, ce *ClusterError, err error) {
	ok, quiet := t.clusterLog.allow(ce.Peer, time.Now())
	if !ok {
		return
	}
	t.log.Warn("mbp connection refused: the peer belongs to another cluster (cluster ids differ)", "remote", remote, "peer", string(ce.Peer),
		"cluster_id", fmtClusterID(ce.LocalID), "peer_cluster_id", fmtClusterID(ce.PeerID), "not_logged_since", quiet, "err", err)
}
