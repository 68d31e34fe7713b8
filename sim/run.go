package sim

import (
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
)

// Warmup is the fault-free start of every run: the cluster bootstraps and
// the register keys are created.
const Warmup = 2 * time.Second

// Stats counts what happened in a run.
type Stats struct {
	Ops, Acked, AckedLocal, AckedQuorum, Unknown, Failed int
	// LostLocal counts acknowledged local writes a failover cut off; each
	// was found in a quarantine (else it is a violation).
	LostLocal int
	Elections int
	Crashes   int
	// HostCrashes counts the crashes that gave no crash hints; Lies the
	// lying hints (fault_hint.go).
	HostCrashes, Lies int
	Pauses            int
	Partitions        int
	LossEpisodes      int
	Handoffs          int
	Wipes             int
	SlotsChecked      int // reused ids whose final state was checked (check_slots.go)
	// Replays of quarantined register writes, and how many applied.
	Replays, ReplaysApplied int
	// WipedLocal counts acknowledged local writes excused because the
	// only node that held them was wiped (the documented price of local).
	WipedLocal int
	Snapshots  int
	// SnapshotsInstalled counts snapshot streams that completed.
	SnapshotsInstalled int
	// StorageStops counts nodes stopped by a failed save; DiskErrors and
	// DiskFulls the disk faults injected.
	StorageStops, DiskErrors, DiskFulls int
	Messages                            uint64
	Dropped                             uint64
	LinearOps                           int
	LinearTimeouts                      int
	Quarantined                         int
	ApplyRejects                        int
	// Membership changes (workload_members.go): the add and remove requests
	// the operator made and how they ended (committed, refused by the core,
	// outcome unknown and retried); learners seen promoted; nodes removed
	// (then stopped), of which Cortexes handed off first; removed nodes
	// added again on a fresh store.
	MemberProposed, MemberCommitted, MemberRefused, MemberUnknown int
	LearnersPromoted, NodesRemoved, CortexesRemoved, NodesReadded int
	// RemovedLocal counts acknowledged local writes excused because they
	// were only on the store of a node the operator removed and stopped.
	RemovedLocal int
}

// Result is the outcome of one seed.
type Result struct {
	Seed       uint64
	Options    Options
	Settings   Settings
	SimTime    time.Duration
	Steps      uint64
	TraceHash  uint64
	Violations []Violation
	// Failovers are the clean failover times measured (crash to elected).
	Failovers []time.Duration
	// Demotions are the times from a Cortex's isolation to its demotion.
	Demotions []time.Duration
	Stats     Stats
}

// Safety reports whether a safety violation was found.
func (r *Result) Safety() bool {
	for _, v := range r.Violations {
		if !v.Liveness {
			return true
		}
	}
	return false
}

// Liveness reports whether a liveness violation was found.
func (r *Result) Liveness() bool {
	for _, v := range r.Violations {
		if v.Liveness {
			return true
		}
	}
	return false
}

// ReplayCommand is the one-line command that reproduces the run.
func (r *Result) ReplayCommand() string {
	s := fmt.Sprintf("go run ./cmd/muninn-sim replay --seed %d --duration %s --faults %s", r.Seed, r.Options.Duration, r.Options.Faults)
	if v := VariantName(r.Options); v != "none" {
		s += " --broken " + v
	}
	if r.Options.Store == "pebble" {
		s += " --store pebble"
	}
	if r.Options.Saves != "" {
		s += " --saves " + r.Options.Saves
	}
	return s + " --trace"
}

// Run simulates one seed: a fault phase of o.Duration after a short warmup,
// then phase 2 heals everything and requires convergence.
func Run(seed uint64, o Options) *Result {
	w := newWorld(seed, o)
	warm := int64(Warmup)
	end := warm + int64(o.Duration)
	w.work.start()
	w.faults.start(warm, end)
	w.members.start(warm, end)
	w.runUntil(end)
	if !w.stopped {
		w.phase = 2
		w.work.active = false
		w.faults.healAll()
		deadline := w.now + int64(ConvergeBound)
		finished := false
		w.chk.awaitConvergence(deadline, func(cx *SimNode) {
			finished = true
			w.chk.checkFinalWrites(cx)
			w.chk.checkSentinels()
			w.chk.checkMembership(cx)
			if !w.stopped {
				w.chk.checkLinearizable()
			}
			w.stopped = true
		})
		w.runUntil(deadline + int64(time.Second))
		_ = finished
	}
	r := w.result()
	// Every Pebble store opened in the run is closed (each holds memtables
	// and goroutines: a 10,000-seed soak ran out of memory without this).
	for _, p := range w.pebbles {
		p.Close()
	}
	return r
}

func newWorld(seed uint64, o Options) *World {
	w := &World{
		seed:     seed,
		opts:     o,
		set:      DrawSettings(seed, o),
		trace:    o.Trace,
		hash:     14695981039346656037,
		rngNet:   NewRand(Derive(seed, "network")),
		rngFault: NewRand(Derive(seed, "faults")),
		rngWork:  NewRand(Derive(seed, "workload")),
		byID:     map[core.NodeID]*SimNode{},
		phase:    1,
	}
	var boot core.Members
	for _, s := range w.set.Nodes {
		boot = append(boot, core.Member{ID: s.ID, Kind: s.Kind})
	}
	boot = boot.Normalize()
	add := func(s NodeSpec, boot core.Members) {
		sn := &SimNode{w: w, spec: s, id: s.ID, pending: map[uint64]reqCB{}, spinSince: -1, lastTickNow: -1}
		sn.cfg = core.Config{ID: s.ID, Kind: s.Kind, Heartbeat: w.set.Heartbeat, Seed: Derive(seed, "node/"+string(s.ID)), Bootstrap: boot, Broken: o.Broken, LogTail: w.set.LogTail}
		sn.disk = &diskFaults{w: w, node: s.ID}
		sn.st = w.newNodeStore(sn)
		// Clients reach the members; a spare is routed once it is promoted.
		sn.routed, sn.fresh = boot != nil, boot == nil
		w.nodes = append(w.nodes, sn)
		w.byID[s.ID] = sn
	}
	for _, s := range w.set.Nodes {
		add(s, boot)
	}
	// Spares start outside the membership (no bootstrap list), as a node
	// that finds a cluster already running does: it waits to be added.
	for _, s := range w.set.Spares {
		add(s, nil)
	}
	w.net = newNetwork(w)
	w.snapshots = newSnapshots(w)
	w.chk = newCheckers(w)
	w.work = newWorkload(w)
	w.faults = newFaults(w)
	w.members = newOperator(w)
	for _, sn := range w.nodes {
		sn.start()
	}
	for _, sn := range w.nodes {
		sn.drive(nil)
	}
	return w
}

func (w *World) result() *Result {
	r := &Result{Seed: w.seed, Options: w.opts, Settings: w.set, SimTime: w.Now(), Steps: w.steps, TraceHash: w.hash,
		Violations: w.chk.violations, Failovers: w.chk.failovers, Demotions: w.chk.demotions, Stats: w.stats}
	r.Options.Trace = nil
	for _, op := range w.work.ops {
		r.Stats.Ops++
		switch op.Outcome {
		case OK:
			if op.Kind.write() {
				r.Stats.Acked++
				if op.Dur == core.Quorum {
					r.Stats.AckedQuorum++
				} else {
					r.Stats.AckedLocal++
				}
			}
		case Unknown:
			r.Stats.Unknown++
		case Failed:
			r.Stats.Failed++
		}
	}
	for _, sn := range w.nodes {
		r.Stats.Quarantined += len(sn.st.Quarantined())
		r.Stats.ApplyRejects += sn.st.Rejects()
	}
	r.Stats.Messages, r.Stats.Dropped = w.net.sent, w.net.dropped
	return r
}
