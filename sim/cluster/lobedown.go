package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// lobe-down (issue 19, "Every answer means what it says") kills one data
// node that is not the Cortex (docker kill) for the fault window and
// starts it again at the heal, while the workload keeps running strong
// reads, quorum writes and local writes. It runs on every topology but is
// aimed at the two data nodes + Sentinel one, whose write quorum is W = 2
// of 2 data nodes: there, once an SDOWN window (3 heartbeats) has passed
// without the Lobe, the Cortex cannot commit, and docs/api.md ("What each
// answer guarantees") and rule 17 of docs/protocol.md say what each answer
// must then be:
//
//   - strong reads and quorum writes are refused at once with 503
//     quorum_unavailable (a definite failure: nothing was written);
//   - quorum writes already waiting are answered 503 unknown_outcome;
//   - local writes keep being acknowledged;
//   - /v1/cluster/health on the Cortex answers 503 with a reason saying
//     the cluster cannot commit.
//
// On three and five data nodes the cluster keeps committing without one
// Lobe. On every topology no operation may wait past hangBound, and the
// usual checks (linearizability, no acknowledged quorum write missing,
// recovery after the heal) hold.

// LobeDown is what the lobe-down nemesis did and saw.
type LobeDown struct {
	Node string `json:"node"`
	// CannotCommit: the topology cannot commit without the node (the
	// Sentinel topology, W = 2 of 2 data nodes).
	CannotCommit bool `json:"cannot_commit"`
	// KilledAt: docker kill returned (the node had exited); SDownAt is an
	// SDOWN window (3 heartbeats) and one heartbeat of margin later, from
	// when the checks of the answers apply.
	KilledAt time.Duration `json:"killed_at_ns"`
	SDownAt  time.Duration `json:"sdown_at_ns"`
	// HealAt: the heal began (docker start of the node); the answers are
	// checked for operations invoked from SDownAt to HealAt.
	HealAt time.Duration `json:"heal_at_ns"`
	// The Cortex's /v1/cluster/health after SDownAt.
	HealthAt     time.Duration `json:"health_at_ns,omitempty"`
	Health       int           `json:"health_status,omitempty"`
	HealthReason string        `json:"health_reason,omitempty"`

	// Operations invoked through the surviving nodes between SDownAt and
	// HealAt: local writes acknowledged; strong reads and quorum writes
	// acknowledged, refused with quorum_unavailable, answered
	// unknown_outcome, or otherwise failed; the longest wait of any
	// operation invoked during the fault (the following client and the
	// killed node's clients aside).
	LocalAcked     int           `json:"local_acked"`
	QuorumOK       int           `json:"quorum_ok"`
	QuorumRefused  int           `json:"quorum_refused"`
	QuorumUnknown  int           `json:"quorum_unknown"`
	QuorumOther    int           `json:"quorum_other"`
	UnknownWaiting int           `json:"unknown_outcome_waiting"`
	Slowest        time.Duration `json:"slowest_ns"`
}

// injectLobeDown kills a data node other than the Cortex; HealAll starts
// it again (it is a stopped container then).
func (s *segment) injectLobeDown(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	f := Fault{Kind: s.nemesis, Cortex: cortex, Epoch: epoch}
	var lobes []Node
	hasSentinel := false
	for _, n := range c.Topo.Nodes {
		hasSentinel = hasSentinel || n.Sentinel
		if !n.Sentinel && !n.Observer && n.ID != cortex {
			lobes = append(lobes, n)
		}
	}
	if len(lobes) == 0 {
		return f, fmt.Errorf("lobe-down: %s has no data node besides the Cortex %s", c.Topo.Name, cortex)
	}
	n := lobes[s.rng.IntN(len(lobes))]
	ld := &LobeDown{Node: n.ID, CannotCommit: hasSentinel}
	s.lobe = ld
	f.Targets = []string{n.ID}
	if err := c.rt.Do(ctx, "kill", n.ID); err != nil {
		return f, err
	}
	if _, ok, err := c.rt.WaitExited(ctx, n.ID, 20*time.Second); err != nil || !ok {
		return f, fmt.Errorf("%s still running 20s after the kill (%v)", n.ID, err)
	}
	hb := time.Duration(s.o.HeartbeatMs) * time.Millisecond
	ld.KilledAt = s.w.now()
	ld.SDownAt = ld.KilledAt + 4*hb
	what := "the cluster keeps committing"
	if ld.CannotCommit {
		what = "W = 2 of 2 data nodes: the Cortex cannot commit"
	}
	f.Note = fmt.Sprintf("the Lobe %s killed (SIGKILL), started at the heal; %s", n.ID, what)
	return f, nil
}

// probeLobeDown reads the Cortex's health once the SDOWN window has passed
// (when that is before the heal).
func (s *segment) probeLobeDown(ctx context.Context, rep *Report, f Fault, heal time.Duration) {
	ld := s.lobe
	at := ld.SDownAt + 250*time.Millisecond
	if at >= heal-100*time.Millisecond {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("lobe-down: fault too short to probe the Cortex's health after the SDOWN window (%s); use a longer --duration", ms(ld.SDownAt)))
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(at - s.w.now()):
	}
	n, _ := s.c.Topo.Node(f.Cortex)
	ld.HealthAt = s.w.now()
	h, code, err := s.api.Health(ctx, n)
	ld.Health, ld.HealthReason = code, h.Reason
	if err != nil {
		ld.HealthReason = err.Error()
	}
}

// checkLobeDown checks the answers given while the Lobe was down.
func (s *segment) checkLobeDown(f Fault) []Anomaly {
	ld := s.lobe
	if ld == nil {
		return nil
	}
	var an []Anomaly
	add := func(check, format string, args ...any) {
		an = append(an, Anomaly{check, fmt.Sprintf(format, args...)})
	}
	bound := hangBound(s.o.HeartbeatMs)
	var hung, wrong, acked []string
	desc := func(op *Op) string {
		return fmt.Sprintf("%s %s via %s at %s (%s, %s)", op.Kind, op.ID, op.Node, ms(op.Call), (op.Return - op.Call).Round(time.Millisecond), orNone(truncate(op.Code, 60)))
	}
	for _, op := range s.w.Ops() {
		// The following client has its own 3 s budget and retries
		// elsewhere; the killed node's clients talk to a dead port.
		if op.Call < f.Start || op.Call > f.End || op.Client == FollowerClient || op.Node == ld.Node {
			continue
		}
		waited := op.Return - op.Call
		ld.Slowest = max(ld.Slowest, waited)
		if waited > bound || waited >= s.o.Workload.Timeout-50*time.Millisecond {
			hung = append(hung, desc(op))
		}
		if op.Code == apitypes.CodeUnknownOutcome && op.Call < ld.SDownAt {
			ld.UnknownWaiting++
		}
		if op.Call < ld.SDownAt || op.Call >= ld.HealAt {
			continue
		}
		switch op.Kind {
		case OpLocalWrite:
			if op.Outcome == OK {
				ld.LocalAcked++
			}
		case OpRegRead, OpRegWrite, OpQuorumWrite:
			switch {
			case op.Outcome == OK:
				ld.QuorumOK++
				acked = append(acked, desc(op))
			case op.Code == codeQuorumUnavailable:
				ld.QuorumRefused++
				if op.Outcome != Fail {
					wrong = append(wrong, desc(op)+" not classified a definite failure")
				}
			case op.Code == apitypes.CodeUnknownOutcome:
				ld.QuorumUnknown++
				wrong = append(wrong, desc(op))
			default:
				ld.QuorumOther++
				wrong = append(wrong, desc(op))
			}
		}
	}
	if len(hung) > 0 {
		add("lobe-down-hang", "%d operations invoked while the Lobe %s was down waited more than %s for an answer: %s",
			len(hung), ld.Node, bound, strings.Join(hung[:min(len(hung), 5)], "; "))
	}
	if !ld.CannotCommit {
		if ld.QuorumOK == 0 {
			add("lobe-down-commit", "no strong read or quorum write invoked from %s to %s (the Lobe %s down, the SDOWN window past) was acknowledged: %s must keep committing without one Lobe",
				ms(ld.SDownAt), ms(ld.HealAt), ld.Node, s.c.Topo.Name)
		}
		return an
	}
	if ld.LocalAcked == 0 {
		add("lobe-down-local", "no local write invoked from %s to %s through the Cortex %s was acknowledged: local writes must keep being acknowledged while the Lobe %s is down",
			ms(ld.SDownAt), ms(ld.HealAt), f.Cortex, ld.Node)
	}
	if len(acked) > 0 {
		add("lobe-down-acked", "%d strong reads or quorum writes invoked after the SDOWN window and before the heal were acknowledged with the Lobe %s down and W = 2 of 2 data nodes: %s",
			len(acked), ld.Node, strings.Join(acked[:min(len(acked), 5)], "; "))
	}
	if len(wrong) > 0 {
		add("lobe-down-answer", "%d strong reads or quorum writes invoked after the SDOWN window and before the heal (%s to %s, the Lobe %s down) were not refused with quorum_unavailable: %s",
			len(wrong), ms(ld.SDownAt), ms(ld.HealAt), ld.Node, strings.Join(wrong[:min(len(wrong), 5)], "; "))
	}
	switch {
	case ld.HealthAt == 0:
	case ld.Health != 503 || !strings.Contains(ld.HealthReason, "cannot commit"):
		add("lobe-down-health", "the Cortex %s's /v1/cluster/health answered %d %q at %s, the Lobe %s down: it must answer 503 saying the cluster cannot commit",
			f.Cortex, ld.Health, truncate(ld.HealthReason, 200), ms(ld.HealthAt), ld.Node)
	}
	return an
}

// lines describes the lobe-down nemesis for the text report.
func (ld *LobeDown) lines() []string {
	if ld == nil {
		return nil
	}
	out := []string{fmt.Sprintf("%s killed at %s; answers checked from %s (SDOWN window + a heartbeat) to the heal at %s; cannot commit: %v", ld.Node, ms(ld.KilledAt), ms(ld.SDownAt), ms(ld.HealAt), ld.CannotCommit)}
	if ld.HealthAt > 0 {
		out = append(out, fmt.Sprintf("Cortex health at %s: %d %s", ms(ld.HealthAt), ld.Health, truncate(ld.HealthReason, 160)))
	}
	out = append(out, fmt.Sprintf("in the window: %d local writes acknowledged; strong reads + quorum writes %d ok, %d quorum_unavailable, %d unknown_outcome, %d other; unknown_outcome for ones waiting at the kill: %d; slowest answer %s",
		ld.LocalAcked, ld.QuorumOK, ld.QuorumRefused, ld.QuorumUnknown, ld.QuorumOther, ld.UnknownWaiting, ld.Slowest.Round(time.Millisecond)))
	return out
}
