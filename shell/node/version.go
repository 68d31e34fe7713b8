package node

import (
	"strconv"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// Protocol-gated features: each is on only while the cluster's active
// protocol version is at least its own, so a mixed cluster answers as its
// oldest voter would, and the feature switches on once every voter runs a
// build that has it (and off again when one is rolled back).
const (
	// ProtocolHealthVersions (3): GET /v1/cluster/health reports the active
	// protocol version and each member's binary version, so a load
	// balancer's or an operator's health check shows what runs where.
	ProtocolHealthVersions uint16 = 3
)

// FeatureHealthVersions names ProtocolHealthVersions in Info.Features.
const FeatureHealthVersions = "health_versions"

// Features lists the protocol-gated features on at active protocol
// version active (never nil).
func Features(active uint16) []string {
	out := []string{}
	if active >= ProtocolHealthVersions {
		out = append(out, FeatureHealthVersions)
	}
	return out
}

// ActiveProtocol is the cluster's active protocol version as this node
// sees it (docs/protocol.md, rule 21): the highest version every voter of
// the membership speaks, by the range in each voter's last hello (this
// node's own range for itself). A voter never heard from counts as
// mbp.ProtocolMin, as does a voter whose hello had no range (it could not
// have connected). With no membership yet (a joining node) it is
// mbp.ProtocolMin. Behaviour added in a later protocol version is gated
// on it, so it switches on only once every voter has it.
func ActiveProtocol(self core.NodeID, members core.Members, peers []mbp.PeerInfo) uint16 {
	hi := map[core.NodeID]uint16{}
	for _, p := range peers {
		if p.ProtoMax != 0 {
			hi[p.ID] = p.ProtoMax
		}
	}
	active, voters := mbp.ProtocolMax, 0
	for _, m := range members {
		if !m.Voter() {
			continue
		}
		voters++
		v := mbp.ProtocolMax
		if m.ID != self {
			var ok bool
			if v, ok = hi[m.ID]; !ok {
				v = mbp.ProtocolMin
			}
		}
		active = min(active, v)
	}
	if voters == 0 {
		return mbp.ProtocolMin
	}
	return max(active, mbp.ProtocolMin)
}

// ActiveProtocol is the cluster's active protocol version as of the
// node's last published status (see the function ActiveProtocol).
func (n *Node) ActiveProtocol() uint16 {
	snap := n.Status()
	if snap == nil {
		return mbp.ProtocolMin
	}
	return snap.Protocol
}

// BinaryVersion is this node's binary version, as its hellos carry it.
func (n *Node) BinaryVersion() string { return mbp.BinaryVersion() }

// noteProtocol records the active protocol version in the snapshot being
// published and logs when it changes.
func (n *Node) noteProtocol(snap *Snapshot) {
	snap.Protocol = ActiveProtocol(n.opts.ID, snap.Members, snap.Peers)
	if snap.Protocol == n.protocol {
		return
	}
	if n.protocol != 0 {
		n.log.Info("cluster protocol version changed: the highest version every voter speaks", "protocol", snap.Protocol, "was", n.protocol,
			"this_node", mbp.BinaryVersion(), "range", fmtRange(mbp.ProtocolMin, mbp.ProtocolMax))
	}
	n.protocol = snap.Protocol
}

func fmtRange(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return strconv.Itoa(int(lo)) + ".." + strconv.Itoa(int(hi))
}
