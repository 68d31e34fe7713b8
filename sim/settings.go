package sim

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
)

// FaultSet selects fault classes.
type FaultSet uint16

const (
	FaultCrash FaultSet = 1 << iota
	FaultPartition
	FaultPause
	FaultLoss
	FaultDrift
	FaultHandoff
	// FaultWipe restarts a node on an empty store, or on an older copy of
	// its store, with a new store identity (rule 16).
	FaultWipe
	// FaultDisk fails a node's next fsync, or fills its disk for a while.
	FaultDisk
	// FaultLie gives voters crash hints about a Cortex that still runs
	// (rule 18), half the time while cutting it off from them.
	FaultLie
	AllFaults = FaultCrash | FaultPartition | FaultPause | FaultLoss | FaultDrift | FaultHandoff | FaultWipe | FaultDisk | FaultLie
)

var faultNames = []struct {
	f    FaultSet
	name string
}{{FaultCrash, "crash"}, {FaultPartition, "partition"}, {FaultPause, "pause"}, {FaultLoss, "loss"}, {FaultDrift, "drift"}, {FaultHandoff, "handoff"}, {FaultWipe, "wipe"}, {FaultDisk, "disk"}, {FaultLie, "lie"}}

// ParseFaults reads a comma-separated list of fault classes ("all", "none").
func ParseFaults(s string) (FaultSet, error) {
	var f FaultSet
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "", "none":
			continue
		case "all":
			f |= AllFaults
			continue
		}
		found := false
		for _, fn := range faultNames {
			if fn.name == p {
				f |= fn.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown fault %q: use crash, partition, pause, loss, drift, handoff, wipe, disk, lie, all or none", p)
		}
	}
	return f, nil
}

func (f FaultSet) String() string {
	var ps []string
	for _, fn := range faultNames {
		if f&fn.f != 0 {
			ps = append(ps, fn.name)
		}
	}
	if len(ps) == 0 {
		return "none"
	}
	return strings.Join(ps, ",")
}

// ParseBroken reads a --broken value.
func ParseBroken(s string) (core.Broken, error) {
	switch s {
	case "", "none":
		return core.BrokenNone, nil
	case "no-log-check":
		return core.BrokenNoLogCheck, nil
	case "no-demotion":
		return core.BrokenNoDemotion, nil
	case "no-store-check":
		return core.BrokenNoStoreCheck, nil
	case "trust-hint":
		return core.BrokenTrustHint, nil
	}
	return 0, fmt.Errorf("unknown broken variant %q: use none, no-log-check, no-demotion, no-store-check or trust-hint", s)
}

// BrokenName is the --broken spelling of b.
func BrokenName(b core.Broken) string {
	switch b {
	case core.BrokenNoLogCheck:
		return "no-log-check"
	case core.BrokenNoDemotion:
		return "no-demotion"
	case core.BrokenNoStoreCheck:
		return "no-store-check"
	case core.BrokenTrustHint:
		return "trust-hint"
	}
	return "none"
}

// Options are the run-wide knobs; everything else is drawn from the seed.
type Options struct {
	// Duration is the simulated length of the fault phase.
	Duration time.Duration
	// Faults are the fault classes the swarm may draw from.
	Faults FaultSet
	// Broken selects a canary protocol variant on every node.
	Broken core.Broken
	// Canary breaks one ordering rule of the driver on every node.
	Canary core.Canary
	// Store is "pebble" (shell/store on Pebble over a crashable in-memory
	// file system: the code users run) or "model" (a fast in-memory model).
	// Default: model.
	Store string
	// Trace, when set, receives one line per delivered event.
	Trace io.Writer
	// Saves is "sync" or "pipelined" (Settings.Fsync); "": drawn per seed.
	Saves string
}

// NodeSpec is one simulated node.
type NodeSpec struct {
	ID   core.NodeID
	Kind core.Kind
	// Rate is the node clock's speed (1 ± drift); Offset its origin.
	Rate   float64
	Offset int64
}

// Settings are what a seed draws (swarm testing): cluster shape, network
// behaviour, fault mix and workload.
type Settings struct {
	Shape     string
	Nodes     []NodeSpec
	Heartbeat time.Duration
	// One-way latency is uniform in [LatencyMin, LatencyMax] per message.
	LatencyMin, LatencyMax time.Duration
	DupProb                float64
	// FaultGap is the mean time between injected faults.
	FaultGap time.Duration
	// Weights of crash, partition, pause, loss, handoff, wipe, disk, lie.
	Weights  [8]float64
	MaxDrift float64
	LossMax  float64
	Clients  int
	Think    time.Duration
	// LogTail is the core's retained log below every member (core.Config):
	// small, so that a node far behind is sent a snapshot.
	LogTail int
	// Spares are data nodes outside the bootstrap membership: they run from
	// the start, wait to be added, and join as learners
	// (workload_members.go).
	Spares []NodeSpec
	// MemberGap is the mean time between the operator's membership
	// changes; 0: the membership stays the bootstrap one.
	MemberGap time.Duration
	// Fsync is how long a node's fsync takes: saves are pipelined (the
	// driver applies a Ready, the sync completes this much later). 0: each
	// save is synced before the driver goes on.
	Fsync time.Duration
	// Inflight is the driver's MaxInflight under pipelined saves: 1 (as
	// the node runs) or 0 (no bound), drawn.
	Inflight int
	// StallProb is the chance that a synced save's fsync stalls for
	// 0.1–2 s (pipelined saves only).
	StallProb float64
}

// DrawSettings draws the settings of seed.
func DrawSettings(seed uint64, o Options) Settings {
	r := NewRand(Derive(seed, "settings"))
	var s Settings
	observer := r.Chance(0.3)
	switch r.Intn(3) {
	case 0:
		s.Shape = "3-node"
		s.Nodes = []NodeSpec{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}
	case 1:
		s.Shape = "2+sentinel"
		s.Nodes = []NodeSpec{{ID: "n1"}, {ID: "n2"}, {ID: "s1", Kind: core.KindSentinel}}
	default:
		s.Shape = "5-node"
		s.Nodes = []NodeSpec{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}, {ID: "n5"}}
	}
	if observer {
		s.Shape += "+observer"
		s.Nodes = append(s.Nodes, NodeSpec{ID: "o1", Kind: core.KindObserver})
	}
	s.Heartbeat = core.DefaultHeartbeat
	s.LatencyMin = time.Millisecond
	s.LatencyMax = r.Between(3*time.Millisecond, 20*time.Millisecond)
	s.DupProb = []float64{0, 0.005, 0.02}[r.Intn(3)]
	s.FaultGap = r.Between(1500*time.Millisecond, 5*time.Second)
	on := func(f FaultSet) float64 {
		if o.Faults&f == 0 {
			return 0
		}
		return 0.2 + r.Float64()
	}
	s.Weights = [8]float64{on(FaultCrash), on(FaultPartition), on(FaultPause), on(FaultLoss), on(FaultHandoff) / 3, on(FaultWipe) / 2, on(FaultDisk) / 2, on(FaultLie) / 2}
	s.LossMax = 0.05 + 0.25*r.Float64()
	if o.Faults&FaultDrift != 0 {
		s.MaxDrift = 0.01 * r.Float64()
	}
	for i := range s.Nodes {
		s.Nodes[i].Rate = 1 + s.MaxDrift*(2*r.Float64()-1)
		s.Nodes[i].Offset = int64(r.Between(0, 1000*time.Second))
	}
	s.Clients = 2 + r.Intn(3)
	s.Think = r.Between(20*time.Millisecond, 150*time.Millisecond)
	s.LogTail = core.DefaultLogTail
	if r.Chance(0.5) {
		s.LogTail = 10 + r.Intn(190)
	}
	// Drawn last, so the draws above are the same with or without them.
	// Not with a Sentinel: a Sentinel never learns a membership change (it
	// is sent no entries), an open bug (docs/simulation.md, "Membership
	// changes").
	if r.Chance(0.7) && !strings.HasPrefix(s.Shape, "2+sentinel") {
		s.MemberGap = r.Between(time.Second, 4*time.Second)
		spares := r.Intn(3)
		if !strings.HasPrefix(s.Shape, "5-node") {
			spares = 1 + r.Intn(2) // three voters: nothing to remove without a spare
		}
		for i := 0; i < spares; i++ {
			s.Spares = append(s.Spares, NodeSpec{ID: core.NodeID("j" + itoa(uint64(i+1))),
				Rate: 1 + s.MaxDrift*(2*r.Float64()-1), Offset: int64(r.Between(0, 1000*time.Second))})
		}
	}
	s.Fsync = fsyncTime(r)
	s.Inflight = 1 // as the node
	if r.Chance(0.25) {
		s.Inflight = 0 // no bound: deeper pipelines
	}
	s.StallProb = stallProb(r)
	switch o.Saves {
	case "sync":
		s.Fsync = 0
	case "pipelined":
		s.Fsync = max(s.Fsync, 100*time.Microsecond)
	}
	return s
}

func (s Settings) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shape=%s heartbeat_ms=%d latency_ms=%d-%d dup=%.3f fault_gap_ms=%d weights(crash,partition,pause,loss,handoff,wipe,disk,lie)=%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f loss_max=%.2f drift_max=%.4f clients=%d think_ms=%d log_tail=%d",
		s.Shape, s.Heartbeat.Milliseconds(), s.LatencyMin.Milliseconds(), s.LatencyMax.Milliseconds(), s.DupProb,
		s.FaultGap.Milliseconds(), s.Weights[0], s.Weights[1], s.Weights[2], s.Weights[3], s.Weights[4], s.Weights[5], s.Weights[6], s.Weights[7], s.LossMax, s.MaxDrift, s.Clients, s.Think.Milliseconds(), s.LogTail)
	fmt.Fprintf(&b, " fsync_us=%d inflight=%d stall=%.2f", s.Fsync.Microseconds(), s.Inflight, s.StallProb)
	b.WriteString(" clocks=")
	for i, n := range s.Nodes {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s:%s:%+.4f%%", n.ID, n.Kind, (n.Rate-1)*100)
	}
	if s.MemberGap > 0 {
		fmt.Fprintf(&b, " member_gap_ms=%d spares=", s.MemberGap.Milliseconds())
		for i, n := range s.Spares {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%s:%+.4f%%", n.ID, (n.Rate-1)*100)
		}
		if len(s.Spares) == 0 {
			b.WriteString("none")
		}
	}
	return b.String()
}

// canaryNames spells the runner canaries (core.Canary) for --broken.
var canaryNames = []struct {
	c    core.Canary
	name string
}{
	{core.CanaryAckBeforeSave, "ack-before-save"},
	{core.CanaryAppendAckBeforeSave, "append-ack-before-save"},
	{core.CanaryReadAfterSave, "read-after-save"},
	{core.CanaryDropQuarantine, "drop-quarantine"},
	{core.CanaryCountUnsaved, "count-unsaved"},
}

// ParseVariant reads a --broken value: a protocol canary (ParseBroken) or
// a runner canary that breaks one ordering rule of the driver.
func ParseVariant(s string) (core.Broken, core.Canary, error) {
	for _, c := range canaryNames {
		if c.name == s {
			return core.BrokenNone, c.c, nil
		}
	}
	b, err := ParseBroken(s)
	if err != nil {
		return 0, 0, fmt.Errorf("unknown broken variant %q: use none, no-log-check, no-demotion, no-store-check, trust-hint (protocol), ack-before-save, append-ack-before-save, read-after-save, drop-quarantine or count-unsaved (driver)", s)
	}
	return b, core.CanaryNone, nil
}

// VariantName is the --broken spelling of o's canary, "none" without one.
func VariantName(o Options) string {
	for _, c := range canaryNames {
		if c.c == o.Canary {
			return c.name
		}
	}
	return BrokenName(o.Broken)
}

// ParseStore reads a --store value.
func ParseStore(s string) (string, error) {
	switch s {
	case "", "model":
		return "model", nil
	case "pebble":
		return "pebble", nil
	}
	return "", fmt.Errorf("unknown store %q: use pebble (shell/store on Pebble over a crashable memory file system) or model (the fast in-memory model)", s)
}
