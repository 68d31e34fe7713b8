package cluster

import (
	"context"
	"fmt"
	"time"
)

// The rolling nemesis: every node in turn, the Lobes (and Sentinels and
// Observers) first and the Cortex last, is sent SIGTERM (the runtime's
// stop: a Cortex hands off on SIGTERM), must exit within 10 s, is started
// again on the same store, and the cluster must be healthy again before
// the next one goes. What must hold: the workload's writes are
// acknowledged again after each restart, the checkers stay clean, and no
// node needs the SIGKILL that follows 10 s after SIGTERM (an anomaly:
// a graceful stop that hangs).

// injectRolling restarts every node in turn.
func (s *segment) injectRolling(ctx context.Context, cortex string, epoch uint64) (Fault, []Anomaly, error) {
	c := s.c
	s.memb = &Membership{}
	f := Fault{Kind: "rolling", Cortex: cortex, Epoch: epoch, FailsOver: true}
	var order []string
	for _, n := range c.Topo.Nodes {
		if n.ID != cortex {
			order = append(order, n.ID)
		}
	}
	order = append(order, cortex)
	f.Targets = order
	hb := time.Duration(s.o.HeartbeatMs) * time.Millisecond
	var an []Anomaly
	for _, id := range order {
		t0 := s.w.now()
		if err := c.rt.Do(ctx, "stop", id); err != nil {
			return f, an, err
		}
		e, err := c.rt.Inspect(ctx, id)
		if err != nil {
			return f, an, err
		}
		// 137 is 128+SIGKILL: the runtime's stop had to kill it.
		if e.Code == 137 {
			an = append(an, Anomaly{"rolling", fmt.Sprintf("%s did not exit within 10 s of SIGTERM (killed; log: %s)", id, truncate(c.rt.Logs(ctx, id, 5), 600))})
		}
		s.memb.step(s, t0, "stopped %s with SIGTERM (exit code %d)", id, e.Code)
		t1 := s.w.now()
		if err := c.rt.Do(ctx, "start", id); err != nil {
			return f, an, err
		}
		if err := c.WaitHealthy(ctx, 60*time.Second+20*hb); err != nil {
			return f, an, fmt.Errorf("after restarting %s: %w", id, err)
		}
		s.memb.step(s, t1, "restarted %s; cluster healthy", id)
	}
	f.Note = fmt.Sprintf("SIGTERM and restart, in turn: %v", order)
	return f, an, nil
}
