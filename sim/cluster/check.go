package cluster

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/muninndb/muninn/sim"
)

// Anomaly is a failed safety or liveness check.
type Anomaly struct {
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

// Final is the state read back after the faults healed.
type Final struct {
	// Cortex and Epoch after healing.
	Cortex string
	Epoch  uint64
	// Present are the unique-write vault's ids on the Cortex (strong list).
	Present map[string]bool
	// Quarantined maps a quarantined id of the unique-write vault to the
	// node whose quarantine holds it.
	Quarantined map[string]string
	// QuarantinedEntries counts all of this segment's quarantined entries
	// (both vaults, any operation).
	QuarantinedEntries int
	// QuarantineByNode counts every node's whole quarantine (all vaults,
	// all segments so far).
	QuarantineByNode map[string]int
	// StoreLostNode was the Cortex of StoreLostEpoch when a storage
	// nemesis destroyed its store: local writes it acknowledged in that
	// epoch may have been only there.
	StoreLostNode  string
	StoreLostEpoch uint64
}

// Writes counts what happened to the unique writes.
type Writes struct {
	QuorumAcked   int `json:"quorum_acked"`
	QuorumMissing int `json:"quorum_missing"`
	LocalAcked    int `json:"local_acked"`
	// LocalLost are acknowledged local writes missing at the end;
	// LocalQuarantined of them are in a quarantine (the rest are anomalies).
	LocalLost        int `json:"local_lost"`
	LocalQuarantined int `json:"local_quarantined"`
	// LocalLostWithStore of the lost ones were acknowledged by a Cortex
	// whose store a storage nemesis destroyed, in that epoch, and are in
	// no quarantine: their only copy went with the store (the designed
	// price of local durability, not an anomaly).
	LocalLostWithStore int `json:"local_lost_with_store,omitempty"`
	// Unknown writes (both durabilities) and how many of them took effect.
	Unknown        int `json:"unknown"`
	UnknownApplied int `json:"unknown_applied"`
}

// checkWrites checks that every quorum-acknowledged unique write is
// present at the end and every missing local-acknowledged one is
// quarantined, or was acknowledged by a Cortex whose store was destroyed
// (f.StoreLostNode), in that epoch.
func checkWrites(ops []*Op, f Final) (Writes, []Anomaly) {
	var w Writes
	var an []Anomaly
	for _, op := range ops {
		if op.Kind != OpLocalWrite && op.Kind != OpQuorumWrite {
			continue
		}
		who := op.AnsweredBy
		if who == "" {
			who = op.Node
		}
		switch op.Outcome {
		case Unknown:
			w.Unknown++
			if f.Present[op.ID] {
				w.UnknownApplied++
			}
		case OK:
			if op.Kind == OpQuorumWrite {
				w.QuorumAcked++
				if !f.Present[op.ID] {
					w.QuorumMissing++
					where := "in no quarantine"
					if n := f.Quarantined[op.ID]; n != "" {
						where = "quarantined on " + n
					}
					an = append(an, Anomaly{"quorum-write-lost", fmt.Sprintf("quorum write %s acknowledged at %s by %s (epoch %d seq %d) is missing on the Cortex %s, %s",
						op.ID, ms(op.Return), who, op.Epoch, op.Seq, f.Cortex, where)})
				}
				continue
			}
			w.LocalAcked++
			if f.Present[op.ID] {
				continue
			}
			w.LocalLost++
			if f.Quarantined[op.ID] != "" {
				w.LocalQuarantined++
				continue
			}
			if f.StoreLostEpoch != 0 && op.Epoch == f.StoreLostEpoch && (op.AnsweredBy == "" || op.AnsweredBy == f.StoreLostNode) {
				w.LocalLostWithStore++
				continue
			}
			an = append(an, Anomaly{"local-write-lost-unquarantined", fmt.Sprintf("local write %s acknowledged at %s by %s (epoch %d seq %d) is missing on the Cortex %s and in every quarantine",
				op.ID, ms(op.Return), who, op.Epoch, op.Seq, f.Cortex)})
		}
	}
	return w, an
}

// Linear is the linearizability check's result.
type Linear struct {
	Ops    int    `json:"ops"`
	Result string `json:"result"` // ok, illegal, timeout
	check  sim.RegisterCheck
}

// checkLinear runs porcupine over the quorum register writes (acknowledged
// or unknown) and the acknowledged strong reads, the final reads included.
func checkLinear(ops []*Op, timeout time.Duration) (Linear, []Anomaly, error) {
	var hist []sim.RegisterOp
	for _, op := range ops {
		switch {
		case op.Kind == OpRegWrite && op.Outcome != Fail:
			hist = append(hist, sim.RegisterOp{Client: op.Client, Key: op.Key, Write: true, Value: op.Value,
				Call: int64(op.Call), Return: int64(op.Return), Unknown: op.Outcome == Unknown})
		case op.Kind == OpRegRead && op.Outcome == OK:
			hist = append(hist, sim.RegisterOp{Client: op.Client, Key: op.Key, Value: op.Value, Call: int64(op.Call), Return: int64(op.Return)})
		}
	}
	rc, err := sim.CheckRegisters(hist, timeout)
	if err != nil {
		return Linear{}, nil, err
	}
	l := Linear{Ops: rc.Ops, check: rc}
	switch rc.Result {
	case porcupine.Ok:
		l.Result = "ok"
	case porcupine.Illegal:
		l.Result = "illegal"
		return l, []Anomaly{{"linearizability", fmt.Sprintf("the history of %d quorum register writes and strong reads is not linearizable (porcupine's visualization: SEGMENT.linear.html in the report directory)", rc.Ops)}}, nil
	default:
		l.Result = "timeout"
	}
	return l, nil, nil
}

// checkBounded checks that no bounded read missed a quorum write
// acknowledged more than max_lag_ms (plus slack) before the read began.
func checkBounded(ops []*Op, maxLag, slack time.Duration) []Anomaly {
	acked := map[string]time.Duration{}
	for _, op := range ops {
		if op.Kind == OpQuorumWrite && op.Outcome == OK {
			acked[op.ID] = op.Return
		}
	}
	var an []Anomaly
	for _, op := range ops {
		if op.Kind != OpBoundedRead || op.Outcome != OK || op.Value != Absent {
			continue
		}
		if t, ok := acked[op.ID]; ok && op.Call > t+maxLag+slack {
			an = append(an, Anomaly{"bounded-read-stale", fmt.Sprintf("bounded read (max_lag_ms %d) of %s on %s at %s answered by %s found nothing, though the quorum write was acknowledged at %s (%s earlier)",
				maxLag.Milliseconds(), op.ID, op.Node, ms(op.Call), op.AnsweredBy, ms(t), (op.Call - t).Round(time.Millisecond))})
		}
	}
	return an
}

// failover returns how long after f started the first write was
// acknowledged in an epoch newer than f's (from the client's view), and
// whether there was one before f healed.
func failover(ops []*Op, f Fault) (time.Duration, bool) {
	best := time.Duration(-1)
	for _, op := range ops {
		if op.Kind.Write() && op.Outcome == OK && op.Epoch > f.Epoch && op.Return >= f.Start {
			if d := op.Return - f.Start; best < 0 || d < best {
				best = d
			}
		}
	}
	if best < 0 || f.Start+best > f.End {
		return best, false
	}
	return best, true
}

// OpCounts counts operations by kind and outcome.
type OpCounts map[OpKind]map[Outcome]int

func countOps(ops []*Op) OpCounts {
	c := OpCounts{}
	for _, op := range ops {
		if c[op.Kind] == nil {
			c[op.Kind] = map[Outcome]int{}
		}
		c[op.Kind][op.Outcome]++
	}
	return c
}

// Percentiles are failover times in milliseconds.
type Percentiles struct {
	N      int     `json:"n"`
	Min    float64 `json:"min_ms"`
	Median float64 `json:"median_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	f := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Percentiles{N: len(s), Min: f(s[0]), Median: f(at(0.5)), P99: f(at(0.99)), Max: f(s[len(s)-1])}
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "-"
	}
	r := func(v float64) string {
		return (time.Duration(v * float64(time.Millisecond))).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%s/%s/%s/%s", r(p.Min), r(p.Median), r(p.P99), r(p.Max))
}

// MedMax formats the median and maximum ("-" when empty).
func (p Percentiles) MedMax() string {
	if p.N == 0 {
		return "-"
	}
	r := func(v float64) string {
		return (time.Duration(v * float64(time.Millisecond))).Round(time.Millisecond).String()
	}
	return r(p.Median) + "/" + r(p.Max)
}

func ms(d time.Duration) string { return fmt.Sprintf("t=%.3fs", d.Seconds()) }

// checkObserver checks what the Observers of t must never do: acknowledge
// a write (they answer 403 read_only_node: docs/api.md, rule 13 of
// docs/protocol.md) or be the Cortex (they never vote nor run). cortexes
// are the Cortexes seen (after healing, elected during the fault). Reads
// through an Observer are checked as a Lobe's are: strong ones by
// porcupine, bounded ones by checkBounded.
func checkObserver(t Topology, ops []*Op, cortexes ...string) []Anomaly {
	var an []Anomaly
	for _, n := range t.Nodes {
		if !n.Observer {
			continue
		}
		for _, c := range cortexes {
			if c == n.ID {
				an = append(an, Anomaly{"observer-cortex", fmt.Sprintf("the Observer %s was the Cortex: an Observer never votes nor runs for Cortex", n.ID)})
				break
			}
		}
		var acked []string
		for _, op := range ops {
			if op.Node == n.ID && op.Kind.Write() && op.Outcome == OK {
				acked = append(acked, fmt.Sprintf("%s %s at %s (HTTP %d, answered by %s)", op.Kind, op.ID, ms(op.Call), op.Status, orNone(op.AnsweredBy)))
			}
		}
		if len(acked) > 0 {
			an = append(an, Anomaly{"observer-write", fmt.Sprintf("the Observer %s acknowledged %d writes; it must refuse them with 403 read_only_node: %s",
				n.ID, len(acked), joinFirst(acked, 5))})
		}
	}
	return an
}

// joinFirst joins the first n of xs with "; ".
func joinFirst(xs []string, n int) string {
	s := ""
	for i, x := range xs {
		if i == n {
			s += fmt.Sprintf("; and %d more", len(xs)-n)
			break
		}
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}
