package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// TestRestoredNodeKeptOutOfOldCluster: a restored backup starts a new
// cluster, with a new cluster id (docs/protocol.md, rule 19), and can
// never rejoin the old one by mistake. A 3-node cluster takes quorum
// writes; a Lobe is backed up (`muninn backup --addr`), killed, and its
// backup restored into a new data directory; the node is then started on
// it with its old configuration unchanged: same node id, same addresses,
// the old cluster's seeds and secret. The restored data is a single voter
// that elects itself in a later epoch than the old cluster's, which, let
// in, would depose the old Cortex. Instead every old node refuses it at
// the handshake, logging both cluster ids; the old cluster keeps its
// Cortex and epoch and takes quorum writes with its two nodes.
func TestRestoredNodeKeptOutOfOldCluster(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	cl := client.New(cx.url())
	quorumWrites(t, cl, "cid", "before the backup", 30)
	lobe := others(ns, cx)[0]
	old := others(ns, lobe)
	for _, n := range ns {
		if id := n.mustInfo().ClusterID; id != "" {
			t.Fatalf("%s has cluster id %s; a cluster made without a restore has none", n.id, id)
		}
	}

	out := filepath.Join(c.dir, "lobe.tar.zst")
	if stdout, stderr, code := cli(t, "backup", "--addr", lobe.url(), "--out", out); code != 0 {
		t.Fatalf("backup from %s: exit %d\n%s%s", lobe.id, code, stdout, stderr)
	}
	lobe.kill9()
	quorumWrites(t, cl, "cid", "after the Lobe died", 10)
	epoch := cx.mustInfo().Epoch

	// The restore goes into a new data directory, which the node's
	// unchanged configuration then names (the harness keeps data_dir at
	// <node dir>/data: the old one is moved aside).
	if err := os.Rename(lobe.dataDir(), lobe.dataDir()+".old"); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := cli(t, "restore", "--from", out, "--data-dir", lobe.dataDir()); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	lobe.start()
	var restoredID string
	c.waitFor("the restored node to lead its own cluster", 20*time.Second, func() (bool, string) {
		i, err := lobe.info()
		if err != nil {
			return false, err.Error()
		}
		restoredID = i.ClusterID
		return i.Role == "cortex", fmt.Sprintf("role %s, cluster id %q", i.Role, i.ClusterID)
	})
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(restoredID) {
		t.Fatalf("the restored node's cluster_id is %q, want 16 hex digits (a restore mints a new cluster id)", restoredID)
	}
	t.Logf("the restored node leads cluster %s in epoch %d; the old cluster is in epoch %d", restoredID, lobe.mustInfo().Epoch, epoch)

	// Every old node refuses it, naming both ids; so does the restored node.
	for _, n := range append(append([]*node{}, old...), lobe) {
		c.waitFor(n.id+" to log the refusal", 20*time.Second, func() (bool, string) {
			for _, l := range strings.Split(n.logText(), "\n") {
				if strings.Contains(l, "belongs to another cluster") && strings.Contains(l, restoredID) && strings.Contains(l, "0000000000000000") {
					return true, ""
				}
			}
			return false, "no refusal naming " + restoredID + " and 0000000000000000"
		})
	}

	// The old cluster is untouched: same Cortex, same epoch, no cluster
	// id, and it still commits quorum writes.
	quorumWrites(t, cl, "cid", "after the restored node started", 10)
	for _, n := range old {
		i := n.mustInfo()
		if i.Epoch != epoch || i.Cortex != cx.id || i.ClusterID != "" {
			t.Fatalf("%s: epoch %d (was %d), Cortex %q (was %s), cluster id %q: the restored node reached the old cluster", n.id, i.Epoch, epoch, i.Cortex, cx.id, i.ClusterID)
		}
		if m := memberOf(i, lobe.id); m == nil {
			t.Fatalf("%s no longer lists %s", n.id, lobe.id)
		}
	}
	for _, p := range lobe.mustInfo().Members {
		if p.ID != lobe.id {
			t.Fatalf("the restored node's membership lists %s", p.ID)
		}
	}
}
