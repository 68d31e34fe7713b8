package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The soak (muninn-sim cluster --soak N): a seeded random schedule of N
// rounds, each a topology × a nemesis drawn from the lists given (pairs
// that cannot run, notApplicable, are never drawn), each round on a
// topology brought up fresh and taken down after. ONE seed for the whole
// schedule, printed at the start; round i (1-based) is drawn from
// (seed, i) alone, so `--seed S --only-round i` (with the same
// --topology and --nemesis lists) reruns round i by itself, with the
// same topology, nemesis and segment seed (the storage nemeses' choice of
// node). The soak stops by itself after N rounds or once --budget is
// spent (no round starts after it). Every round with an anomaly leaves
// its report, history, logs and the exact replay command
// (NAME.replay.txt) in the report directory.
//
// Operations are drawn as nemeses (backup-partition, rotate-kill) and the
// mixed-version cluster as a topology (mixed), so the schedule stays
// topologies × nemeses.

// SoakRound is one round of a soak's schedule.
type SoakRound struct {
	// Index is 1-based.
	Index    int    `json:"index"`
	Topology string `json:"topology"`
	Nemesis  string `json:"nemesis"`
	// Seed is the round's segment seed (the storage nemeses' choices).
	Seed uint64 `json:"seed"`
}

// SoakRoundOf draws round i (1-based) of the soak seeded seed over the
// topologies and nemeses given, in the runtime given: a function of
// (seed, i) and the lists alone.
func SoakRoundOf(seed uint64, i int, topos []Topology, nems []string, runtime string) (SoakRound, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	// The pairs that can run, in list order.
	type pair struct{ t, n string }
	var pairs []pair
	for _, t := range topos {
		for _, n := range nems {
			if notApplicable(n, t, runtime) == "" {
				pairs = append(pairs, pair{t.Name, n})
			}
		}
	}
	if len(pairs) == 0 {
		return SoakRound{}, fmt.Errorf("no topology × nemesis pair of --topology and --nemesis can run in the %s runtime", runtime)
	}
	p := pairs[rng.IntN(len(pairs))]
	return SoakRound{Index: i, Topology: p.t, Nemesis: p.n, Seed: rng.Uint64() | 1}, nil
}

// SoakSchedule is rounds 1 to n of the soak seeded seed.
func SoakSchedule(seed uint64, n int, topos []Topology, nems []string, runtime string) ([]SoakRound, error) {
	var out []SoakRound
	for i := 1; i <= n; i++ {
		r, err := SoakRoundOf(seed, i, topos, nems, runtime)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// soakName names a soak round's files in the report directory.
func soakName(r SoakRound) string {
	return fmt.Sprintf("soak-%04d-%s-%s", r.Index, r.Topology, r.Nemesis)
}

// replayCommand is the command that reruns round r alone.
func (o Options) replayCommand(r SoakRound) string {
	var topos []string
	for _, t := range o.Topologies {
		topos = append(topos, t.Name)
	}
	return fmt.Sprintf("muninn-sim cluster --runtime %s --soak %d --seed %d --only-round %d --topology %s --nemesis %s --duration %s --heartbeat-ms %d --clients-per-node %d --max-ops %d --report-dir DIR",
		o.Runtime, o.Soak, o.Seed, r.Index, strings.Join(topos, ","), strings.Join(o.Nemeses, ","), o.Duration, o.HeartbeatMs, o.Workload.ClientsPerNode, o.Workload.MaxOps)
}

// runSoak runs the soak's schedule (or its round o.OnlyRound) with up
// bringing each round's topology up.
func runSoak(ctx context.Context, o Options, s *Summary, api *API, up func(context.Context, Topology) (*Cluster, error), logf func(string, ...any)) error {
	first, last := 1, o.Soak
	if o.OnlyRound > 0 {
		if o.OnlyRound > o.Soak {
			return fmt.Errorf("--only-round %d: the soak has %d rounds (--soak)", o.OnlyRound, o.Soak)
		}
		first, last = o.OnlyRound, o.OnlyRound
	}
	logf("soak: seed %d, rounds %d..%d of %d, budget %s (replay one: --seed %d --only-round I)", o.Seed, first, last, o.Soak, o.Budget, o.Seed)
	start := time.Now()
	for i := first; i <= last; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if o.Budget > 0 && time.Since(start) >= o.Budget && i > first {
			logf("soak: budget %s spent after %d rounds; stopping", o.Budget, i-first)
			s.SoakStopped = fmt.Sprintf("budget %s spent after %d of %d rounds", o.Budget, i-first, last-first+1)
			return nil
		}
		r, err := SoakRoundOf(o.Seed, i, o.Topologies, o.Nemeses, o.Runtime)
		if err != nil {
			return err
		}
		ti := slices.IndexFunc(o.Topologies, func(t Topology) bool { return t.Name == r.Topology })
		ro := o
		ro.Topologies, ro.Nemeses, ro.Rounds, ro.soakRound = []Topology{o.Topologies[ti]}, []string{r.Nemesis}, 1, &r
		logf("soak round %d/%d: %s × %s (segment seed %d)", i, o.Soak, r.Topology, r.Nemesis, r.Seed)
		n := len(s.Segments)
		err = runTopology(ctx, ro, s, api, up, o.Topologies[ti], logf, false)
		if len(s.Segments) > n {
			rep := s.Segments[len(s.Segments)-1]
			rep.Replay = o.replayCommand(r)
			if len(rep.Anomalies) > 0 && o.ReportDir != "" {
				p := filepath.Join(o.ReportDir, soakName(r)+".replay.txt")
				if werr := writeFileSync(p, []byte(rep.Replay+"\n"), 0o644); werr != nil {
					logf("writing %s: %v", p, werr)
				}
				logf("soak round %d: %d anomalies; replay: %s", i, len(rep.Anomalies), rep.Replay)
			}
		}
		if err != nil {
			return fmt.Errorf("soak round %d (%s × %s; replay: %s): %w", i, r.Topology, r.Nemesis, o.replayCommand(r), err)
		}
	}
	return nil
}

// SoakReportDir is where a soak writes when no --report-dir is given.
func SoakReportDir(seed uint64) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("muninn-soak-%d", seed))
}
