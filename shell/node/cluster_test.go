package node

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testCluster struct {
	t     *testing.T
	opts  []Options
	nodes []*Node
}

// startCluster starts n nodes in this process on 127.0.0.1 with a short
// heartbeat, each listing the others as seeds.
func startCluster(t *testing.T, n int, hb time.Duration, mod ...func(i int, o *Options)) *testCluster {
	tc := &testCluster{t: t}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freePort(t)
	}
	for i := 0; i < n; i++ {
		var seeds []string
		for j, a := range addrs {
			if j != i {
				seeds = append(seeds, a)
			}
		}
		tc.opts = append(tc.opts, Options{
			ID: core.NodeID(fmt.Sprintf("n%d", i+1)), Cluster: true, DataDir: t.TempDir(),
			Secret: []byte("0123456789abcdef-test-secret"), BindAddr: addrs[i], Seeds: seeds,
			Heartbeat: hb, ForwardWait: 5 * time.Second,
		})
		for _, f := range mod {
			f(i, &tc.opts[i])
		}
	}
	tc.nodes = make([]*Node, n)
	errs := make(chan error, n)
	for i := range tc.opts {
		go func(i int) {
			nd, err := Start(tc.opts[i])
			tc.nodes[i] = nd
			errs <- err
		}(i)
	}
	for range tc.opts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range tc.nodes {
			if nd != nil {
				nd.Close()
			}
		}
	})
	return tc
}

func (tc *testCluster) cortex(timeout time.Duration) *Node {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, nd := range tc.nodes {
			if nd != nil && nd.Status().Core.Role == core.RoleCortex {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc.t.Fatalf("no Cortex within %v", timeout)
	return nil
}

// TestClusterFailover: three nodes bootstrap from their seeds, elect a
// Cortex, replicate quorum writes to every node, and replace a stopped
// Cortex within 3 heartbeats plus a margin; the new Cortex has every
// quorum-acknowledged write.
func TestClusterFailover(t *testing.T) {
	hb := 100 * time.Millisecond
	tc := startCluster(t, 3, hb)
	cx := tc.cortex(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for i := 0; i < 20; i++ {
		id := NewEngramID()
		if _, err := cx.Write(ctx, writeCmd(t, id, fmt.Sprint(i)), core.Quorum); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Every node has them once replication settles.
	deadline := time.Now().Add(5 * time.Second)
	for _, nd := range tc.nodes {
		for _, id := range ids {
			for {
				if _, ok, _ := nd.Store().Get("default", id); ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s lacks %s", nd.ID(), id)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	old := cx
	killed := time.Now()
	old.Close()
	for i, nd := range tc.nodes {
		if nd == old {
			tc.nodes[i] = nil
		}
	}
	nx := tc.cortex(3*hb + 2*time.Second)
	took := time.Since(killed)
	t.Logf("failover to %s took %v (heartbeat %v)", nx.ID(), took, hb)
	for _, id := range ids {
		if _, ok, _ := nx.Store().Get("default", id); !ok {
			t.Fatalf("new Cortex %s lacks quorum write %s", nx.ID(), id)
		}
	}
	if _, err := nx.Write(ctx, writeCmd(t, NewEngramID(), "after"), core.Quorum); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
}
