package node

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// A node whose store holds data and no cluster id (a cluster made before
// cluster ids, or never restored) is refused by a cluster that has one, on
// both ends, before any message: neither's epoch or log moves, and each
// logs both ids. A fresh node, instead, takes the cluster's id.
func TestClusterIDAtNodes(t *testing.T) {
	hb := 100 * time.Millisecond
	aLog := &syncBuf{}
	tc := startCluster(t, 1, hb, func(i int, o *Options) { o.Logger = slog.New(slog.NewTextHandler(aLog, nil)) })
	a := tc.cortex(10 * time.Second)
	// As a restore does (shell/backup): the restored data starts a new cluster.
	x, err := a.Store().MintClusterID()
	if err != nil {
		t.Fatal(err)
	}
	xs := fmt.Sprintf("%016x", x)

	// An old node: its own single-node cluster, which ran (epoch 1), then
	// restarted with the restored node as its seed.
	old := Options{ID: "old", Cluster: true, DataDir: t.TempDir(), Secret: tc.opts[0].Secret, BindAddr: freePort(t), Heartbeat: hb, ForwardWait: 5 * time.Second}
	o, err := Start(old)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the old node to lead its own cluster", func() bool { return o.Status().Core.Role == core.RoleCortex })
	o.Close()
	oLog := &syncBuf{}
	old.Seeds, old.Logger = []string{tc.opts[0].BindAddr}, slog.New(slog.NewTextHandler(oLog, nil))
	if o, err = Start(old); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// Alone in its membership, it leads again (a new epoch of its own).
	waitUntil(t, "the old node to lead again", func() bool { return o.Status().Core.Role == core.RoleCortex })
	oEpoch, aEpoch := o.Status().Core.Epoch, a.Status().Core.Epoch
	for who, l := range map[string]*syncBuf{"restored": aLog, "old": oLog} {
		waitUntil(t, who+" to log the refusal", func() bool {
			s := l.String()
			return strings.Contains(s, "belongs to another cluster") && strings.Contains(s, xs) && strings.Contains(s, "0000000000000000")
		})
	}
	if !strings.Contains(oLog.String(), "the store is not empty") {
		t.Fatalf("the old node's log does not say why it keeps its cluster:\n%s", oLog)
	}
	if o.Store().ClusterID() != 0 {
		t.Fatalf("the old node took cluster id %016x", o.Store().ClusterID())
	}
	for _, p := range append(a.Status().Peers, o.Status().Peers...) {
		if p.Connected {
			t.Fatalf("a peer connected: %+v", p)
		}
	}
	if e := o.Status().Core.Epoch; e != oEpoch {
		t.Fatalf("the old node's epoch moved from %d to %d", oEpoch, e)
	}
	if e := a.Status().Core.Epoch; e != aEpoch {
		t.Fatalf("the restored node's epoch moved from %d to %d", aEpoch, e)
	}

	// A fresh node takes the cluster's id at its first handshake.
	fresh := Options{ID: "fresh", Cluster: true, DataDir: t.TempDir(), Secret: tc.opts[0].Secret, BindAddr: freePort(t),
		Seeds: []string{tc.opts[0].BindAddr}, Heartbeat: hb, ForwardWait: 5 * time.Second}
	f, err := Start(fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitUntil(t, "the fresh node to take the cluster id", func() bool { return f.Store().ClusterID() == x })
}
