//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/muninndb/muninn/bench"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// muninnSys is a muninn cluster (or a standalone node) of processes.
type muninnSys struct {
	pc *bench.ProcCluster
}

func startMuninn(ps *procs, exe string, n int, standalone bool) (*muninnSys, error) {
	pc, err := bench.NewProcCluster(exe, n, 1000, standalone)
	if err != nil {
		return nil, err
	}
	pc.OnStart = ps.recordPid
	ms := &muninnSys{pc: pc}
	if err := pc.StartAll(); err != nil {
		return ms, err
	}
	return ms, pc.WaitHealthy(context.Background(), 60*time.Second)
}

// stop stops the nodes; keep leaves their data and logs for a post-mortem.
func (ms *muninnSys) stop(keep bool) {
	ms.pc.Stop(keep)
	if keep {
		logf("muninn data and logs kept in %s", ms.pc.Root)
	}
}

// load runs the throughput workload through shell/client (writes go to
// the Cortex) with the given durability.
func (ms *muninnSys) load(ctx context.Context, o loadShape, durability string) (bench.LoadResult, error) {
	if err := ms.pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return bench.LoadResult{}, err
	}
	idx, _, err := ms.pc.Cortex(ctx)
	if err != nil {
		return bench.LoadResult{}, err
	}
	c := client.New(ms.pc.Nodes[idx].URL(), client.WithEndpoints(ms.pc.URLs()...), client.WithHTTPClient(bench.HTTPClient(o.clients)))
	value := bench.Value(o.valueSize, 7)
	dur := client.Durability(durability)
	return bench.RunLoad(ctx, bench.LoadOptions{Clients: o.clients, Duration: o.duration},
		func(ctx context.Context, w int) (bench.OpKind, error) {
			_, err := c.Write(ctx, apitypes.WriteRequest{Vault: "compare", Concept: "bench", Content: value}, dur)
			return bench.OpWrite, err
		}), nil
}

// failover kills the Cortex by pid while a writer sends a quorum write
// every 10 ms, moving to the next node after an error (the same policy as
// the etcd and Redis writers: no client backoff), and returns kill → the
// first write acknowledged in a later epoch. The node is restarted after.
func (ms *muninnSys) failover(ctx context.Context) (time.Duration, error) {
	pc := ms.pc
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return 0, err
	}
	idx, info, err := pc.Cortex(ctx)
	if err != nil {
		return 0, err
	}
	hc := &http.Client{Transport: bench.HTTPClient(2).Transport, Timeout: 10 * time.Second}
	var cs []*client.Client
	for _, u := range pc.URLs() {
		cs = append(cs, client.New(u, client.WithRetryBudget(0), client.WithHTTPClient(hc)))
	}
	value := bench.Value(256, 8)
	ack := make(chan time.Time, 1)
	killed := make(chan struct{})
	wctx, stop := context.WithTimeout(ctx, 60*time.Second)
	wdone := make(chan struct{})
	defer func() { stop(); <-wdone }()
	go func() {
		defer close(wdone)
		target := idx
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			res, err := cs[target].Write(wctx, apitypes.WriteRequest{Vault: "failover", Concept: "bench", Content: value}, client.Durability("quorum"))
			if err != nil {
				target = (target + 1) % len(cs)
				continue
			}
			select {
			case <-killed:
				if res.Epoch > info.Epoch || res.Epoch == 0 {
					ack <- time.Now()
					return
				}
			default:
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	t0, err := pc.Kill(idx)
	close(killed)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	select {
	case at := <-ack:
		d = at.Sub(t0)
	case <-wctx.Done():
		return 0, fmt.Errorf("muninn: no write acknowledged within 60 s of killing the Cortex")
	}
	stop()
	return d, pc.Start(idx)
}
