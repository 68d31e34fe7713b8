package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/node"
)

// TestProfileCortex runs `muninn bench` (its defaults; durability from
// BENCH_PROFILE_DURABILITY, seconds from BENCH_PROFILE_SECONDS, default 8)
// against a 3-node cluster started in this process on 127.0.0.1, so that
// a CPU profile of the Cortex can be taken without pprof in the API:
//
//	BENCH_PROFILE=1 go test ./bench -run TestProfileCortex -count=1 -v -cpuprofile /tmp/cpu.out
//	go tool pprof -top -tagfocus node=<the Cortex named in the log> /tmp/cpu.out
//
// Every goroutine of a node (its runner, transport, HTTP server and
// handlers) carries the pprof label node=<id>; the load generator's carry
// none. Skipped unless BENCH_PROFILE=1.
func TestProfileCortex(t *testing.T) {
	if os.Getenv("BENCH_PROFILE") != "1" {
		t.Skip("set BENCH_PROFILE=1 to run (a profiling aid, not a test)")
	}
	secs := 8
	if s, err := strconv.Atoi(os.Getenv("BENCH_PROFILE_SECONDS")); err == nil && s > 0 && s <= 120 {
		secs = s
	}
	const n = 3
	mbp := make([]string, n)
	lns := make([]net.Listener, n)
	for i := range n {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		mbp[i] = fmt.Sprintf("127.0.0.1:%d", p)
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	nodes := make([]*node.Node, n)
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		pprof.Do(context.Background(), pprof.Labels("node", id), func(context.Context) {
			go func() {
				url := "http://" + lns[i].Addr().String()
				var seeds []string
				for j, a := range mbp {
					if j != i {
						seeds = append(seeds, a)
					}
				}
				nd, err := node.Start(node.Options{ID: core.NodeID(id), Cluster: true, DataDir: t.TempDir(), APIAddr: url,
					Secret: []byte("0123456789abcdef-profile-secret"), BindAddr: mbp[i], Seeds: seeds, Heartbeat: time.Second})
				if err != nil {
					errs <- err
					return
				}
				nodes[i] = nd
				a := api.New(nd, api.Options{})
				srv := &http.Server{Handler: a}
				go srv.Serve(lns[i])
				t.Cleanup(func() { srv.Close(); a.Close() })
				errs <- nil
			}()
		})
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.Close()
		}
	})
	var cortex *node.Node
	for deadline := time.Now().Add(30 * time.Second); cortex == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no Cortex within 30 s")
		}
		for _, nd := range nodes {
			if nd.Status().Core.Role == core.RoleCortex {
				cortex = nd
			}
		}
	}
	cfg := DefaultConfig()
	cfg.Addr = "http://" + lns[0].Addr().String()
	cfg.Duration = time.Duration(secs) * time.Second
	if d := os.Getenv("BENCH_PROFILE_DURABILITY"); d != "" {
		cfg.Durability = d
	}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Cortex: %s (profile: go tool pprof -top -tagfocus node=%s)", cortex.ID(), cortex.ID())
	t.Logf("%.0f writes/s, p50 %s, p99 %s, errors: %s", rep.Load.WritesPerSec, Ms(rep.Load.Write.P50), Ms(rep.Load.Write.P99), ErrorsLine(rep.Load.Errors))
	for _, m := range rep.Lag.Members {
		t.Logf("lag %s: p50 %dms p99 %dms max %dms", m.ID, m.LagMs.P50, m.LagMs.P99, m.LagMs.Max)
	}
}
