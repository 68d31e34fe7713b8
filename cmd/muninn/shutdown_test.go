package main

import (
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
	"github.com/muninndb/muninn/shell/node"
)

// TestDataVoterConnected checks the shutdown's handoff condition: another
// data voter connected; not a Sentinel, not a disconnected one, not self.
func TestDataVoterConnected(t *testing.T) {
	ms := core.Members{{ID: "a"}, {ID: "b"}, {ID: "s", Kind: core.KindSentinel}}
	snap := func(peers ...mbp.PeerInfo) *node.Snapshot {
		return &node.Snapshot{Core: core.Status{ID: "a"}, Members: ms, Peers: peers}
	}
	for _, tc := range []struct {
		name string
		snap *node.Snapshot
		want bool
	}{
		{"b connected", snap(mbp.PeerInfo{ID: "b", Connected: true}), true},
		{"b down", snap(mbp.PeerInfo{ID: "b"}), false},
		{"only the Sentinel", snap(mbp.PeerInfo{ID: "s", Connected: true}), false},
		{"nobody", snap(), false},
	} {
		if got := dataVoterConnected(tc.snap); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
