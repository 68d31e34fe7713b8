package node

import (
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// TestClusterSize checks the ready line's cluster_size: the membership's
// size, else (a joining node, a Sentinel) itself and its peers, never 0.
func TestClusterSize(t *testing.T) {
	three := core.Members{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	peers := []mbp.PeerInfo{{ID: "a"}, {ID: "b"}}
	for _, tc := range []struct {
		members core.Members
		peers   []mbp.PeerInfo
		want    int
	}{
		{three, peers, 3},
		{nil, peers, 3},
		{nil, nil, 1},
	} {
		if got := clusterSize(tc.members, tc.peers); got != tc.want {
			t.Errorf("clusterSize(%d members, %d peers) = %d, want %d", len(tc.members), len(tc.peers), got, tc.want)
		}
	}
}
