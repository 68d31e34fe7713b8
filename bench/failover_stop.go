package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// stopTrial freezes the Cortex with SIGSTOP for cfg.StopFor, resumes it,
// waits for a healthy cluster and a second more, and reports whether the
// epoch moved and how long the writes paused. A frozen process keeps its
// sockets open, so no crash hint fires (rule 18): within the SDOWN window
// nothing should be elected.
func stopTrial(ctx context.Context, cfg FailoverConfig, pc *ProcCluster, writers []*timedWriter, n int) (StopResult, error) {
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return StopResult{}, err
	}
	time.Sleep(500 * time.Millisecond) // steady writes before the stop
	idx, info, err := pc.Cortex(ctx)
	if err != nil {
		return StopResult{}, err
	}
	sr := StopResult{N: n, Victim: pc.Nodes[idx].ID, OldEpoch: info.Epoch}
	if err := pc.Freeze(idx); err != nil {
		return sr, err
	}
	t0 := time.Now()
	tm := time.NewTimer(cfg.StopFor)
	select {
	case <-tm.C:
	case <-ctx.Done():
		tm.Stop()
	}
	if err := pc.Thaw(idx); err != nil {
		return sr, err
	}
	sr.StoppedFor = time.Since(t0)
	if ctx.Err() != nil {
		return sr, ctx.Err()
	}
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		sr.Error = err.Error()
	}
	time.Sleep(time.Second) // a late election would show by now
	sr.NewEpoch, sr.Cortex = highestEpoch(ctx, pc)
	sr.Election = sr.NewEpoch > sr.OldEpoch
	end := time.Now()
	sr.Pause = writers[0].maxGap(t0, end)
	sr.Writes, sr.Failed = completedIn(writers, t0, end)
	what := "no election"
	if sr.Election {
		what = fmt.Sprintf("ELECTION: epoch %d, Cortex %s", sr.NewEpoch, orDash(sr.Cortex))
	}
	cfg.logf("stop %d/%d: SIGSTOP %s (Cortex, epoch %d) for %s, then SIGCONT: %s; longest gap between acknowledged quorum writes %s, %d of %d writes failed",
		n, cfg.Stops, sr.Victim, sr.OldEpoch, Ms(sr.StoppedFor), what, Ms(sr.Pause), sr.Failed, sr.Writes)
	return sr, nil
}

// highestEpoch asks every running node and returns the highest epoch any
// reports, and the Cortex it names.
func highestEpoch(ctx context.Context, pc *ProcCluster) (uint64, string) {
	var epoch uint64
	cortex := ""
	for _, p := range pc.Nodes {
		if !p.Running() {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := client.New(p.URL(), client.WithHTTPClient(probe)).Info(ictx)
		cancel()
		if err == nil && info.Epoch >= epoch {
			epoch, cortex = info.Epoch, info.Cortex
		}
	}
	return epoch, cortex
}
