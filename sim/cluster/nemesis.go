package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Nemeses are the fault kinds, in the order "all" runs them: the network
// and process faults, then the storage faults (storage.go), then
// lobe-down (lobedown.go: a Lobe killed for the fault window, the
// answers checked against what docs/api.md says they guarantee), then the
// membership nemeses (rolling.go, churn.go: they take as long as the
// cluster takes; churn runs in the netns runtime only, on topologies
// without a Sentinel, and is skipped elsewhere with the reason), then the
// operations under faults (backuppart.go, rotatekill.go: netns only).
var Nemeses = []string{"kill", "pause", "isolate", "split", "bridge", "oneway", "netem", "wipe", "restore-old", "corrupt-wal", "fill-disk", "lobe-down", "rolling", "churn", "snapshot-kill", "combo", "backup-partition", "rotate-kill"}

// NotInAll are nemeses that run only when named, with the reason: the
// product behaviour they expect has not landed yet, so "all" (what CI
// runs) leaves them out rather than fail on a known bug.
var NotInAll = map[string]string{}

// ParseNemeses parses a comma-separated list of nemeses or "all".
func ParseNemeses(s string) ([]string, error) {
	if s == "all" {
		var out []string
		for _, n := range Nemeses {
			if NotInAll[n] == "" {
				out = append(out, n)
			}
		}
		return out, nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(Nemeses, n) {
			return nil, fmt.Errorf("unknown nemesis %q: use %s or all", n, strings.Join(Nemeses, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

// Fault is one injected fault as the report shows it.
type Fault struct {
	Kind string `json:"kind"`
	// Targets are the nodes acted on (killed, paused, isolated, degraded).
	Targets []string `json:"targets"`
	// Sides describe a partition: who can still reach whom.
	Sides string `json:"sides,omitempty"`
	Note  string `json:"note,omitempty"`
	// Cortex and Epoch before the fault.
	Cortex string `json:"cortex"`
	Epoch  uint64 `json:"epoch"`
	// Start and End (healed) since the segment started.
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
	// WallStart is Start on the wall clock (the nodes' log times).
	WallStart time.Time `json:"wall_start"`
	// CutOff are the nodes that cannot reach a quorum during the fault:
	// their /v1/cluster/health must answer 503.
	CutOff []string `json:"cut_off,omitempty"`
	// FailsOver is true when the fault takes the Cortex away from the
	// quorum, so a failover is expected.
	FailsOver bool `json:"fails_over"`
}

// Inject applies nemesis kind with cortex as the current Cortex and
// returns the fault (Start and End are the caller's).
func (c *Cluster) Inject(ctx context.Context, kind, cortex string, epoch uint64) (Fault, error) {
	f := Fault{Kind: kind, Cortex: cortex, Epoch: epoch}
	// others are every node but the Cortex; voters the voting ones
	// among them, observers the rest (an Observer never counts toward a
	// quorum, so the partitions are planned on the voters and every
	// Observer goes to the side without the Cortex's quorum).
	var others, voters, observers []string
	for _, n := range c.Topo.Nodes {
		if n.ID == cortex {
			continue
		}
		others = append(others, n.ID)
		if n.Voter() {
			voters = append(voters, n.ID)
		} else {
			observers = append(observers, n.ID)
		}
	}
	nVoters := len(voters) + 1
	cut := func(a, b []string) error {
		for _, x := range a {
			if err := c.Drop(ctx, x, b...); err != nil {
				return err
			}
		}
		for _, y := range b {
			if err := c.Drop(ctx, y, a...); err != nil {
				return err
			}
		}
		return nil
	}
	switch kind {
	case "kill", "pause":
		f.Targets, f.FailsOver = []string{cortex}, true
		return f, c.rt.Do(ctx, kind, cortex)
	case "isolate":
		f.Targets, f.FailsOver, f.CutOff = []string{cortex}, true, []string{cortex}
		f.Sides = fmt.Sprintf("[%s] | [%s]", cortex, strings.Join(others, " "))
		return f, cut([]string{cortex}, others)
	case "split":
		// The Cortex keeps a majority; the minority is data Lobes first,
		// so writes through it are refused or held.
		minority := nVoters - c.Topo.Quorum
		byData := slices.Clone(voters)
		slices.SortStableFunc(byData, func(a, b string) int {
			na, _ := c.Topo.Node(a)
			nb, _ := c.Topo.Node(b)
			switch {
			case na.Sentinel == nb.Sentinel:
				return 0
			case na.Sentinel:
				return 1
			}
			return -1
		})
		minor := append(slices.Clone(byData[:minority]), observers...)
		major := append([]string{cortex}, without(others, minor)...)
		f.Targets, f.CutOff = minor, minor
		f.Sides = fmt.Sprintf("[%s] | [%s]", strings.Join(major, " "), strings.Join(minor, " "))
		return f, cut(major, minor)
	case "bridge":
		// sideA (with the Cortex) | bridge | sideB: the bridge sees both.
		bridge := voters[0]
		for _, n := range c.Topo.Nodes {
			if n.Sentinel {
				bridge = n.ID
			}
		}
		rest := without(voters, []string{bridge})
		nA := (nVoters - 1) / 2 // voters on the Cortex's side, Cortex included
		sideA := append([]string{cortex}, rest[:nA-1]...)
		sideB := append(slices.Clone(rest[nA-1:]), observers...)
		f.Targets, f.CutOff = append(slices.Clone(sideA), sideB...), sideB
		f.Sides = fmt.Sprintf("[%s] <-> %s <-> [%s]", strings.Join(sideA, " "), bridge, strings.Join(sideB, " "))
		return f, cut(sideA, sideB)
	case "oneway":
		f.Targets, f.FailsOver, f.CutOff = []string{cortex}, true, []string{cortex}
		f.Sides = fmt.Sprintf("%s -> [%s] only", cortex, strings.Join(others, " "))
		return f, c.Drop(ctx, cortex, others...)
	case "netem":
		var notes []string
		for _, n := range c.Topo.Nodes {
			note, err := c.Degrade(ctx, n.ID)
			if err != nil {
				return f, err
			}
			f.Targets = append(f.Targets, n.ID)
			notes = append(notes, note)
		}
		f.Note = notes[0]
		return f, nil
	}
	return f, fmt.Errorf("unknown nemesis %q", kind)
}

func without(xs, drop []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// HealAll undoes every fault: removes fill-disk's filler, wipes a store a
// storage nemesis left half-replaced or damaged on a stopped node (what
// the operator would do), unpauses paused nodes, starts stopped ones, and
// removes the network rules and qdiscs. It is safe to call at any time and
// more than once.
func (c *Cluster) HealAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(c.undo)) {
		if err := c.undo[k](ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		delete(c.undo, k)
	}
	for _, n := range c.Topo.Nodes {
		st, err := c.rt.State(ctx, n.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch st {
		case "paused":
			if err := c.rt.Do(ctx, "unpause", n.ID); err != nil {
				errs = append(errs, err)
			}
		case "exited", "created", "dead":
			if err := c.rt.Do(ctx, "start", n.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := c.HealNet(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
