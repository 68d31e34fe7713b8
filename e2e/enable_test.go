package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// TestEnableDisableRunningNode is issue 17 part 3 with real processes:
// `muninn cluster enable` switches a running standalone node (with data,
// and a client writing through the switch) to the Cortex of a one-node
// cluster; two nodes join with add-node; the first node is killed and the
// others elect; it comes back in cluster mode although its config file
// still says standalone (the data directory's record wins, and it says
// so); the two others are removed; `muninn cluster disable` makes it
// standalone again, and after a restart it still is, with all the data.
func TestEnableDisableRunningNode(t *testing.T) {
	// The standalone node's config has no cluster section: its timing
	// after enable comes from the environment, the same as the others'.
	t.Setenv("MUNINN_CLUSTER_HEARTBEAT_MS", strconv.Itoa(fastHB))
	t.Setenv("MUNINN_CLUSTER_LEASE_TTL", strconv.Itoa(fastLease))
	c := newCluster(t, fastHB, fastLease)
	a := c.add("muninn-01")
	a.standalone = true
	a.start()
	c.waitFor("the standalone node to serve", 10*time.Second, func() (bool, string) {
		i, err := a.info()
		if err != nil {
			return false, err.Error()
		}
		return !i.ClusterEnabled && i.Role == "cortex", fmt.Sprintf("cluster_enabled=%v role=%s", i.ClusterEnabled, i.Role)
	})
	want := writeN(t, client.New(a.url()), "en", "local", 30)

	// Without --node-id and --bind-addr it changes nothing and says how.
	out, e, code := cli(t, "cluster", "enable", "--addr", a.url())
	if code != 1 || !strings.Contains(out, "--node-id") || !strings.Contains(e, "was not enabled") {
		t.Fatalf("enable without flags: exit %d\n%s\n%s", code, out, e)
	}

	// Enable, with a client writing through the switch: every write it
	// was told succeeded must be there after.
	w := startWriter(t, client.New(a.url()), "through", "local", 5*time.Millisecond)
	c.waitAcks(w, 5, 10*time.Second)
	secretFile := filepath.Join(c.dir, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte(c.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, e, code = cli(t, "cluster", "enable", "--addr", a.url(), "--node-id", a.id, "--bind-addr", a.mbpAddr(), "--secret-file", secretFile)
	if code != 0 || !strings.Contains(out, "Cluster mode enabled: muninn-01 is the cortex of a one-node cluster") {
		t.Fatalf("enable: exit %d\n%s\n%s", code, out, e)
	}
	t.Logf("enable: %s", strings.TrimSpace(out))
	c.waitAcks(w, 5, 10*time.Second)
	w.stop()
	acks, fails := w.snapshot()
	i := a.mustInfo()
	if !i.ClusterEnabled || i.Role != "cortex" || i.NodeID != a.id || len(i.Members) != 1 || i.Members[0].ID != a.id {
		t.Fatalf("after enable: cluster_enabled=%v role=%s node=%s members=%+v; want the Cortex of a one-node cluster of %s", i.ClusterEnabled, i.Role, i.NodeID, i.Members, a.id)
	}
	got, err := a.listIDs("through", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, a.id+" after enable", acks, got)
	checkRefused(t, a.id+" after enable", fails, got)
	through := ackIDs(acks)
	c.waitHasAll(a, "en", want, 5*time.Second)
	if _, e, code := cli(t, "cluster", "enable", "--addr", a.url(), "--node-id", a.id, "--bind-addr", a.mbpAddr()); code != 1 || !strings.Contains(e, "already enabled") {
		t.Fatalf("enable again: exit %d, stderr %s; want 1 and already enabled", code, e)
	}

	// Two nodes join it.
	b, d := c.add("muninn-02"), c.add("muninn-03")
	for _, n := range []*node{b, d} {
		n.seeds = []*node{a}
		n.start()
		c.waitFor(n.id+" to wait to be added", 10*time.Second, func() (bool, string) {
			i, err := n.info()
			return err == nil && i.Joining, fmt.Sprint(err)
		})
		if out, e, code := cli(t, "cluster", "add-node", "--node", n.id, "--addr", a.url()); code != 0 {
			t.Fatalf("add-node %s: exit %d\n%s\n%s", n.id, code, out, e)
		}
		c.waitFor(n.id+" to become a voter", 15*time.Second, func() (bool, string) {
			m := memberOf(a.mustInfo(), n.id)
			return m != nil && !m.Learner, fmt.Sprintf("%+v", m)
		})
	}
	all := []*node{a, b, d}
	// Disable is refused while others are members, naming them.
	if _, e, code := cli(t, "cluster", "disable", "--addr", a.url()); code != 1 || !strings.Contains(e, "muninn-02") || !strings.Contains(e, "muninn-03") || !strings.Contains(e, "conflict") {
		t.Fatalf("disable with members: exit %d, stderr %s; want 1 naming muninn-02 and muninn-03", code, e)
	}
	want = append(want, writeN(t, client.New(a.url()), "en", "quorum", 10)...)

	// Failover: the first node dies, the others elect and hold the data.
	a.kill9()
	cx := c.waitCortex([]*node{b, d}, 15*time.Second)
	c.waitHasAll(cx, "en", want, 10*time.Second)
	c.waitHasAll(cx, "through", through, 10*time.Second)
	// It comes back in cluster mode: its config file still has no cluster
	// section, the data directory's record decides.
	a.start()
	c.waitFor(a.id+" to rejoin as a lobe", 15*time.Second, func() (bool, string) {
		i, err := a.info()
		if err != nil {
			return false, err.Error()
		}
		return i.ClusterEnabled && i.NodeID == a.id && i.Role == "lobe" && i.Cortex != "" && i.Cortex != a.id, fmt.Sprintf("cluster_enabled=%v node=%s role=%s cortex=%s", i.ClusterEnabled, i.NodeID, i.Role, i.Cortex)
	})
	if a.countMsg("the data directory wins") == 0 {
		t.Errorf("%s's log does not say that its data directory's recorded cluster mode overrides its standalone config", a.id)
	}

	// Hand the Cortex role back to it, remove the others, disable.
	if cx = c.cortexNow(all); cx != a {
		if out, e, code := cli(t, "cluster", "failover", "--yes", "--to", a.id, "--addr", cx.url()); code != 0 {
			t.Fatalf("failover to %s: exit %d\n%s\n%s", a.id, code, out, e)
		}
		c.waitFor(a.id+" to be the Cortex", 15*time.Second, func() (bool, string) {
			cx, why := c.cortexOf(all)
			return cx == a, why
		})
	}
	for _, gone := range []*node{b, d} {
		if out, e, code := cli(t, "cluster", "remove-node", "--node", gone.id, "--yes", "--addr", a.url()); code != 0 {
			t.Fatalf("remove-node %s: exit %d\n%s\n%s", gone.id, code, out, e)
		}
		gone.kill9()
	}
	out, e, code = cli(t, "cluster", "disable", "--addr", a.url())
	if code != 0 || !strings.Contains(out, "Cluster mode disabled: muninn-01 runs standalone") {
		t.Fatalf("disable: exit %d\n%s\n%s", code, out, e)
	}
	t.Logf("disable: %s", strings.TrimSpace(out))
	if i := a.mustInfo(); i.ClusterEnabled || i.Role != "cortex" || i.NodeID != a.id {
		t.Fatalf("after disable: cluster_enabled=%v role=%s node=%s; want standalone %s", i.ClusterEnabled, i.Role, i.NodeID, a.id)
	}
	if conn, err := net.DialTimeout("tcp", a.mbpAddr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("after disable, %s still accepts connections on its MBP address %s", a.id, a.mbpAddr())
	}

	// A restart keeps it standalone, under its node id, with every write.
	a.signal(syscall.SIGTERM)
	if st := a.waitExit(15 * time.Second); !st.Success() {
		t.Fatalf("%s exited with %v after SIGTERM; want 0", a.id, st)
	}
	a.start()
	c.waitFor(a.id+" to serve standalone after the restart", 10*time.Second, func() (bool, string) {
		i, err := a.info()
		if err != nil {
			return false, err.Error()
		}
		return !i.ClusterEnabled && i.Role == "cortex" && i.NodeID == a.id, fmt.Sprintf("cluster_enabled=%v role=%s node=%s", i.ClusterEnabled, i.Role, i.NodeID)
	})
	c.waitHasAll(a, "en", want, 5*time.Second)
	c.waitHasAll(a, "through", through, 5*time.Second)
}
