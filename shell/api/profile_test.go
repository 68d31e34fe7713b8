package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/bench"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/node"
)

// TestProfileStandalone runs `muninn bench` (32 clients, 256-byte values;
// seconds from MUNINN_PROFILE_SECONDS, default 8; durability local) against
// a standalone node on a temporary Pebble directory, served by this API on
// 127.0.0.1, so that a CPU profile of the write path can be taken without
// pprof in the API:
//
//	MUNINN_PROFILE=1 go test ./shell/api -run TestProfileStandalone -count=1 -v -cpuprofile /tmp/cpu.out
//	go tool pprof -top -tagfocus side=server /tmp/cpu.out
//
// The node's goroutines and the HTTP server's carry the pprof label
// side=server; the load generator's carry none. MUNINN_PROFILE_BATCH=N
// writes batches of N engrams instead (client.WriteBatch, 32 writers).
// Skipped unless MUNINN_PROFILE=1.
func TestProfileStandalone(t *testing.T) {
	if os.Getenv("MUNINN_PROFILE") != "1" {
		t.Skip("set MUNINN_PROFILE=1 to run (a profiling aid, not a test)")
	}
	secs := 8
	if s, err := strconv.Atoi(os.Getenv("MUNINN_PROFILE_SECONDS")); err == nil && s > 0 && s <= 120 {
		secs = s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n *node.Node
	pprof.Do(context.Background(), pprof.Labels("side", "server"), func(context.Context) {
		n, err = node.Start(node.Options{DataDir: t.TempDir()})
		if err != nil {
			return
		}
		a := New(n, Options{})
		srv := &http.Server{Handler: a}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close(); a.Close(); n.Close() })
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, n: n}
	e.waitCortex()
	if b, _ := strconv.Atoi(os.Getenv("MUNINN_PROFILE_BATCH")); b > 0 {
		profileBatches(t, "http://"+ln.Addr().String(), b, time.Duration(secs)*time.Second)
		return
	}
	cfg := bench.DefaultConfig()
	cfg.Addr = "http://" + ln.Addr().String()
	cfg.Clients = 32
	cfg.Duration = time.Duration(secs) * time.Second
	rep, err := bench.Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes, %.0f writes/s, p50 %s, p99 %s, errors: %s", rep.Load.Ops, rep.Load.WritesPerSec,
		bench.Ms(rep.Load.Write.P50), bench.Ms(rep.Load.Write.P99), bench.ErrorsLine(rep.Load.Errors))
}

// profileBatches writes batches of size engrams of 256 bytes from 32
// writers for d.
func profileBatches(t *testing.T, addr string, size int, d time.Duration) {
	c := client.New(addr)
	var engrams, batches, failed atomic.Int64
	content := strings.Repeat("x", 256)
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := apitypes.BatchWriteRequest{Vault: "bench", Engrams: make([]apitypes.WriteRequest, size)}
			for time.Now().Before(end) {
				for i := range req.Engrams {
					req.Engrams[i] = apitypes.WriteRequest{Content: content}
				}
				res, err := c.WriteBatch(context.Background(), req)
				if err != nil {
					failed.Add(int64(size))
					continue
				}
				batches.Add(1)
				engrams.Add(int64(res.Written))
				failed.Add(int64(res.Failed))
			}
		}()
	}
	wg.Wait()
	t.Logf("%d engrams in %d batches of %d: %.0f engrams/s, %d failed", engrams.Load(), batches.Load(), size,
		float64(engrams.Load())/d.Seconds(), failed.Load())
}
