package cluster

import (
	"context"
	"fmt"
	"time"
)

// The snapshot-kill nemesis: the spare is started on an empty store and
// added, so it joins by snapshot (a learner is sent the Cortex's snapshot,
// then the log tail), and kill -9 hits, chosen by the segment's seed,
// either the joining node or the Cortex while the learner has not been
// promoted yet (with the harness's small stores a snapshot takes
// milliseconds, so "half-way" is: after the add, before the promotion;
// the record says whether the kill landed while it was still a learner).
// The killed node is started again after two heartbeats and the join must
// retry to completion: the learner becomes a voter within 90 s. The added
// node is then removed again (after a handoff if it became the Cortex),
// so the topology keeps its size. What must hold: the join completes,
// the cluster keeps serving, the checkers stay clean (the learner's and
// the Cortex's clients' strong reads included).

// injectSnapshotKill runs the nemesis.
func (s *segment) injectSnapshotKill(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	s.memb = &Membership{}
	m := s.memb
	killCortex := s.rng.IntN(2) == 1
	f := Fault{Kind: "snapshot-kill", Cortex: cortex, Epoch: epoch, FailsOver: killCortex}
	hb := time.Duration(s.o.HeartbeatMs) * time.Millisecond
	var victim string
	kill := func(sinceAdd time.Duration) error {
		victim = m.Added
		if killCortex {
			victim = cortex
		}
		t0 := s.w.now()
		learner := "unknown"
		if cn, ok := c.Topo.Node(cortex); ok {
			if mb, found, err := s.member(ctx, cn, m.Added); err == nil && found {
				learner = fmt.Sprint(mb.Learner)
			}
		}
		if err := c.rt.Do(ctx, "kill", victim); err != nil {
			return err
		}
		if _, ok, err := c.rt.WaitExited(ctx, victim, 10*time.Second); !ok {
			return fmt.Errorf("%s still running 10 s after SIGKILL (%v)", victim, err)
		}
		m.KilledLearner = learner == "true"
		m.step(s, t0, "kill -9 %s %s after adding %s (still a learner: %s)", victim, sinceAdd.Round(time.Millisecond), m.Added, learner)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * hb):
		}
		t1 := s.w.now()
		if err := c.rt.Do(ctx, "start", victim); err != nil {
			return err
		}
		m.step(s, t1, "restarted %s", victim)
		return nil
	}
	sp, err := s.addSpare(ctx, m, kill)
	f.Targets = []string{sp.ID}
	if victim != "" && victim != sp.ID {
		f.Targets = append(f.Targets, victim)
	}
	if err != nil {
		return f, err
	}
	if err := s.handOffAndRemove(ctx, m, sp); err != nil {
		return f, err
	}
	f.Note = fmt.Sprintf("added %s, killed %s during its join (learner then: %v), joined after %s; removed it again", sp.ID, victim, m.KilledLearner, m.Promoted.Round(time.Millisecond))
	return f, nil
}
