package node

import (
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// The active protocol version is the lowest maximum among the voters, as
// their last hellos said; learners and Observers do not count; a voter
// never heard from counts as this build's minimum.
func TestActiveProtocol(t *testing.T) {
	lo, hi := mbp.ProtocolMin, mbp.ProtocolMax
	voters := core.Members{{ID: "a", Kind: core.KindAuto}, {ID: "b", Kind: core.KindAuto}, {ID: "c", Kind: core.KindSentinel}}
	peer := func(id core.NodeID, max uint16) mbp.PeerInfo {
		return mbp.PeerInfo{ID: id, ProtoMin: lo, ProtoMax: max}
	}
	for _, tc := range []struct {
		name    string
		members core.Members
		peers   []mbp.PeerInfo
		want    uint16
	}{
		{"no membership", nil, nil, lo},
		{"standalone", core.Members{{ID: "a", Kind: core.KindAuto}}, nil, hi},
		{"all at this build's", voters, []mbp.PeerInfo{peer("b", hi), peer("c", hi)}, hi},
		{"a voter one higher", voters, []mbp.PeerInfo{peer("b", hi+1), peer("c", hi)}, hi},
		{"a Sentinel older", voters, []mbp.PeerInfo{peer("b", hi), peer("c", lo)}, lo},
		{"a voter never heard", voters, []mbp.PeerInfo{peer("b", hi)}, lo},
		{"an old learner and Observer", append(core.Members{{ID: "l", Kind: core.KindAuto, Learner: true}, {ID: "o", Kind: core.KindObserver}}, voters...),
			[]mbp.PeerInfo{peer("b", hi), peer("c", hi), peer("l", 1), peer("o", 1)}, hi},
		{"not a member itself", core.Members{{ID: "b", Kind: core.KindAuto}}, []mbp.PeerInfo{peer("b", hi)}, hi},
	} {
		if got := ActiveProtocol("a", tc.members, tc.peers); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// A gated feature is on only from its protocol version on.
func TestFeatures(t *testing.T) {
	if f := Features(ProtocolHealthVersions - 1); len(f) != 0 || f == nil {
		t.Fatalf("at %d: %v, want an empty list", ProtocolHealthVersions-1, f)
	}
	if f := Features(ProtocolHealthVersions); len(f) != 1 || f[0] != FeatureHealthVersions {
		t.Fatalf("at %d: %v", ProtocolHealthVersions, f)
	}
	if mbp.ProtocolMax < ProtocolHealthVersions {
		t.Fatalf("this build speaks up to %d, below its own feature's %d", mbp.ProtocolMax, ProtocolHealthVersions)
	}
}
