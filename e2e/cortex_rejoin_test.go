package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// TestKilledCortexRejoinsAfterLoad: a Cortex killed with SIGKILL under
// load, after 25,000 writes (every node has compacted its log), with
// 25,000 more written on the new Cortex while it is down, comes back on its
// restart, catches up and counts toward quorum writes again.
// docs/benchmarks.md ("Known problems") reported a Cortex that did not come
// back after a few thousand writes: its snapshot install failed as
// "fenced" and its runner stopped for good.
func TestKilledCortexRejoinsAfterLoad(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	old := c.waitCortex(ns, 20*time.Second)
	cl := client.New(old.url())
	batch := func(cl *client.Client, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			req := apitypes.BatchWriteRequest{Vault: "rejoin"}
			for j := 0; j < apitypes.MaxBatchItems; j++ {
				req.Engrams = append(req.Engrams, apitypes.WriteRequest{Concept: "c", Content: fmt.Sprintf("engram %d.%d %s", i, j, strings.Repeat("x", 40))})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := cl.WriteBatch(ctx, req, client.Durability("quorum"))
			cancel()
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
		}
	}
	batch(cl, 25) // past the log tail: every node compacts
	// Killed under load: it may hold entries the others never got.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			req := apitypes.BatchWriteRequest{Vault: "inflight"}
			for j := 0; j < 200; j++ {
				req.Engrams = append(req.Engrams, apitypes.WriteRequest{Concept: "c", Content: fmt.Sprintf("in flight %d.%d", i, j)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := client.New(old.url(), client.WithRetryBudget(time.Millisecond)).WriteBatch(ctx, req, client.Durability("local"))
			cancel()
			if err != nil {
				return
			}
		}
	}()
	time.Sleep(30 * time.Millisecond)
	oi, _ := old.info()
	t.Logf("old Cortex %s at seq %d", old.id, oi.LastSeq)
	old.kill9()
	<-done
	rest := others(ns, old)
	cx := c.waitCortex(rest, 20*time.Second)
	cl2 := client.New(cx.url(), client.WithEndpoints(rest[0].url(), rest[1].url()))
	batch(cl2, 25) // past the log tail kept below the live members
	ci, _ := cx.info()
	t.Logf("new Cortex %s at seq %d", cx.id, ci.LastSeq)

	old.start()
	c.waitFor(old.id+" to catch up after its restart", 60*time.Second, func() (bool, string) {
		oi, err := old.info()
		if err != nil {
			return false, err.Error()
		}
		ci, err := cx.info()
		if err != nil {
			return false, err.Error()
		}
		return oi.Cortex == cx.id && oi.LastSeq >= ci.LastSeq, fmt.Sprintf("%s at %d following %q, the Cortex at %d", old.id, oi.LastSeq, oi.Cortex, ci.LastSeq)
	})
	out := old.logText()
	if strings.Contains(out, "storage failed") {
		t.Fatalf("%s: storage failed after the restart", old.id)
	}
	t.Logf("%s installed a snapshot: %v", old.id, strings.Contains(out, "installed snapshot"))
	// And it stays a working member: a quorum write with it counted.
	batch(cl2, 1)
}
