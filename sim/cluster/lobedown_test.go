package cluster

import (
	"slices"
	"testing"
	"time"
)

// TestCheckLobeDown: on the Sentinel topology, after the SDOWN window and
// before the heal, strong reads and quorum writes must be refused with
// quorum_unavailable and local writes acknowledged; none may hang. Ops
// through the killed node and the following client are not judged.
func TestCheckLobeDown(t *testing.T) {
	s2 := time.Second
	run := func(cannot bool, ops ...*Op) []string {
		s := &segment{o: Options{HeartbeatMs: 250, Workload: WorkloadConfig{Timeout: 8 * time.Second}}, c: &Cluster{Topo: Topologies[1]},
			w: &Workload{ops: ops}, lobe: &LobeDown{Node: "muninn-02", CannotCommit: cannot, KilledAt: 1700 * time.Millisecond, SDownAt: 2700 * time.Millisecond, HealAt: 4500 * time.Millisecond}}
		var checks []string
		for _, a := range s.checkLobeDown(Fault{Cortex: "muninn-01", Start: 1500 * time.Millisecond, End: 5 * s2}) {
			checks = append(checks, a.Check)
		}
		return checks
	}
	at := func(kind OpKind, node string, call, took time.Duration, out Outcome, code string) *Op {
		return &Op{Kind: kind, Node: node, Call: call, Return: call + took, Outcome: out, Code: code}
	}
	good := []*Op{
		at(OpQuorumWrite, "muninn-01", 1600*time.Millisecond, 700*time.Millisecond, Unknown, "unknown_outcome"), // waiting at the kill
		at(OpLocalWrite, "muninn-01", 3*s2, 5*time.Millisecond, OK, ""),
		at(OpRegRead, "muninn-01", 3*s2, 2*time.Millisecond, Fail, codeQuorumUnavailable),
		at(OpRegWrite, "muninn-01", 3*s2, 2*time.Millisecond, Fail, codeQuorumUnavailable),
		at(OpRegWrite, "muninn-02", 3*s2, 3*s2, Unknown, "connection reset"),              // the dead node's port
		at(OpQuorumWrite, "muninn-01", 4600*time.Millisecond, 2*time.Millisecond, OK, ""), // after the heal began
	}
	if got := run(true, good...); len(got) != 0 {
		t.Errorf("good history: %v", got)
	}
	bad := append(slices.Clone(good[:1]),
		at(OpRegRead, "muninn-01", 3*s2, 2*time.Millisecond, OK, ""),
		at(OpQuorumWrite, "muninn-01", 3*s2, 3*s2, Unknown, "unknown_outcome"),
	)
	if got, want := run(true, bad...), []string{"lobe-down-hang", "lobe-down-local", "lobe-down-acked", "lobe-down-answer"}; !slices.Equal(got, want) {
		t.Errorf("bad history: %v, want %v", got, want)
	}
	committed := append(slices.Clone(good), at(OpRegWrite, "muninn-03", 3*s2, 4*time.Millisecond, OK, ""))
	if got, want := run(false, committed...), []string(nil); !slices.Equal(got, want) {
		t.Errorf("three, committing: %v", got)
	}
	if got, want := run(false, good[:4]...), []string{"lobe-down-commit"}; !slices.Equal(got, want) {
		t.Errorf("three, not committing: %v, want %v", got, want)
	}
}
