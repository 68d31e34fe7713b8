// Command muninn-sim runs MuninnDB's deterministic simulator: the real
// protocol core and engram state machine under simulated crashes, pauses,
// partitions, message loss and clock drift, with safety and liveness
// checkers. Every run is reproducible from its seed.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"

	"github.com/muninndb/muninn/sim"
)

// Exit codes.
const (
	exitOK       = 0
	exitSafety   = 2
	exitLiveness = 3
	exitUsage    = 64
)

type common struct {
	Duration time.Duration `default:"60s" help:"Simulated length of the fault phase of each seed (a 2s warmup comes before it, healing and convergence after)."`
	Faults   string        `default:"crash,partition,pause,loss,drift,handoff,wipe,disk,lie" help:"Fault classes the swarm draws from: crash (a process crash with crash hints, or a silent host crash), partition, pause (a freeze: silence, connections open), loss, drift, handoff, wipe (restart on an empty or older store), disk (a failed fsync, a full disk), lie (crash hints about a Cortex that still runs, half the time while cutting it off), all or none."`
	Broken   string        `default:"none" help:"Canary variant: none; protocol: no-log-check (voters skip the up-to-date check), no-demotion (the Cortex never demotes itself), no-store-check (a wiped voter's vote counts), trust-hint (a crash hint starts an election at once and the new Cortex waits out no lease); driver: ack-before-save, append-ack-before-save, read-after-save, drop-quarantine, count-unsaved (the core counts a pipelined save durable before its fsync)."`
	Store    string        `default:"model" enum:"model,pebble" help:"Storage under each node: pebble (shell/store on Pebble over a crashable in-memory file system, the code users run) or model (a fast in-memory model)."`
	Saves    string        `default:"drawn" enum:"drawn,sync,pipelined" help:"How nodes persist: pipelined (a Ready is applied at once and its fsync completes later, as the node runs), sync (each save synced before the driver goes on), or drawn per seed (a fifth sync)."`
}

func (c common) options() (sim.Options, error) {
	f, err := sim.ParseFaults(c.Faults)
	if err != nil {
		return sim.Options{}, fmt.Errorf("--faults: %w", err)
	}
	b, canary, err := sim.ParseVariant(c.Broken)
	if err != nil {
		return sim.Options{}, fmt.Errorf("--broken: %w", err)
	}
	if c.Duration <= 0 {
		return sim.Options{}, fmt.Errorf("--duration %s: must be positive", c.Duration)
	}
	st, err := sim.ParseStore(c.Store)
	if err != nil {
		return sim.Options{}, fmt.Errorf("--store: %w", err)
	}
	saves := c.Saves
	if saves == "drawn" {
		saves = ""
	}
	return sim.Options{Duration: c.Duration, Faults: f, Broken: b, Canary: canary, Store: st, Saves: saves}, nil
}

type runCmd struct {
	common
	Seeds       int           `default:"100" help:"Number of seeds to run."`
	SeedStart   uint64        `default:"1" help:"First seed."`
	Workers     int           `default:"0" help:"Seeds run in parallel (0: one per CPU). Each seed runs on one goroutine; results do not depend on this."`
	Verbose     bool          `short:"v" help:"Print every seed's derived settings."`
	SeedTimeout time.Duration `default:"2m" help:"Wall time one seed may take before the run stops and names it (a hang in the code under test, e.g. a store waiting forever, is a failure, not a slow seed)."`
	CPUProfile  string        `name:"cpuprofile" help:"Write a CPU profile of the run to this file (go tool pprof)."`
}

type replayCmd struct {
	common
	Seed  uint64 `required:"" help:"The seed to reproduce."`
	Trace bool   `help:"Print the trace: one line per delivered event."`
}

type cli struct {
	Run     runCmd     `cmd:"" help:"Run a range of seeds and print a summary."`
	Replay  replayCmd  `cmd:"" help:"Reproduce one seed exactly, with its trace hash."`
	Cluster clusterCmd `cmd:"" help:"Fault-test real clusters, in containers (docker) or as processes in network namespaces (--runtime netns): kills, pauses, partitions, degraded links, disk faults, membership changes, operations; histories checked."`
}

// newLog logs to w in colour only when w is a terminal and NO_COLOR is
// unset (https://no-color.org): escape codes in a file or a pipe (CI logs,
// tee) are noise.
func newLog(w io.Writer, noColor bool) *slog.Logger {
	term := false
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		term = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return slog.New(tint.NewHandler(w, &tint.Options{Level: slog.LevelInfo, TimeFormat: time.TimeOnly, NoColor: noColor || !term}))
}

// simGCPercent is the garbage collector's target for run and replay. A
// seed allocates fast and keeps little (a few MB live per worker), so at
// Go's default (100) collection took a third of the CPU on the model
// store; GOGC in the environment still wins.
const simGCPercent = 800

func main() {
	log := newLog(os.Stderr, os.Getenv("NO_COLOR") != "")
	var c cli
	ctx := kong.Parse(&c, kong.Name("muninn-sim"), kong.Description("Deterministic simulation of the MuninnDB cluster protocol."), kong.UsageOnError())
	var code int
	if cmd := ctx.Command(); (cmd == "run" || cmd == "replay") && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(simGCPercent)
	}
	switch ctx.Command() {
	case "run":
		code = c.Run.run(os.Stdout, log)
	case "replay":
		code = c.Replay.run(os.Stdout, log)
	case "cluster":
		code = c.Cluster.run(os.Stdout, log)
	}
	os.Exit(code)
}

func (r *runCmd) run(out io.Writer, log *slog.Logger) int {
	o, err := r.options()
	if err != nil {
		log.Error("bad option", "err", err)
		return exitUsage
	}
	if r.Seeds <= 0 {
		log.Error("bad option", "err", "--seeds must be positive")
		return exitUsage
	}
	workers := r.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	fmt.Fprintf(out, "muninn-sim run: seeds %d..%d duration=%s faults=%s broken=%s store=%s workers=%d\n",
		r.SeedStart, r.SeedStart+uint64(r.Seeds)-1, o.Duration, o.Faults, sim.VariantName(o), o.Store, workers)
	if r.Verbose {
		for i := 0; i < r.Seeds; i++ {
			s := r.SeedStart + uint64(i)
			fmt.Fprintf(out, "seed %d: %s\n", s, sim.DrawSettings(s, o))
		}
	}
	if r.CPUProfile != "" {
		f, err := os.Create(r.CPUProfile)
		if err != nil {
			log.Error("bad option", "err", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error("cpu profile", "err", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	results := make([]*sim.Result, r.Seeds)
	start := time.Now()
	var mu sync.Mutex
	done, bad := 0, 0
	lastLog := start
	next := 0
	running := map[uint64]time.Time{} // seed → when it started
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-t.C:
			}
			mu.Lock()
			for seed, at := range running {
				if r.SeedTimeout > 0 && time.Since(at) > r.SeedTimeout {
					fmt.Fprintf(out, "\nFAIL seed %d: still running after %s of wall time: the code under test hangs (a seed takes well under a second)\n  replay:   %s\n",
						seed, r.SeedTimeout, (&sim.Result{Seed: seed, Options: o}).ReplayCommand())
					os.Exit(exitSafety)
				}
			}
			mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				seed := r.SeedStart + uint64(i)
				if i < r.Seeds {
					running[seed] = time.Now()
				}
				mu.Unlock()
				if i >= r.Seeds {
					return
				}
				res := sim.Run(seed, o)
				mu.Lock()
				delete(running, seed)
				results[i] = res
				done++
				if len(res.Violations) > 0 {
					bad++
				}
				if time.Since(lastLog) > time.Second || done == r.Seeds {
					lastLog = time.Now()
					log.Info("progress", "seeds", fmt.Sprintf("%d/%d", done, r.Seeds), "failing", bad, "wall", time.Since(start).Round(time.Millisecond))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	code := exitOK
	for _, res := range results {
		if len(res.Violations) == 0 {
			continue
		}
		fmt.Fprintf(out, "\nFAIL seed %d: %s\n  settings: %s\n  replay:   %s\n", res.Seed, res.Violations[0], res.Settings, res.ReplayCommand())
		if res.Safety() {
			code = exitSafety
		} else if code == exitOK {
			code = exitLiveness
		}
	}
	printSummary(out, results, wall)
	return code
}

func printSummary(out io.Writer, results []*sim.Result, wall time.Duration) {
	var simTime time.Duration
	var steps uint64
	var failovers, demotions []time.Duration
	byChecker := map[string]int{}
	var st sim.Stats
	for _, r := range results {
		simTime += r.SimTime
		steps += r.Steps
		failovers = append(failovers, r.Failovers...)
		demotions = append(demotions, r.Demotions...)
		for _, v := range r.Violations {
			byChecker[v.Checker]++
		}
		s := r.Stats
		st.Ops += s.Ops
		st.Acked += s.Acked
		st.AckedLocal += s.AckedLocal
		st.AckedQuorum += s.AckedQuorum
		st.Unknown += s.Unknown
		st.Failed += s.Failed
		st.LostLocal += s.LostLocal
		st.Elections += s.Elections
		st.Crashes += s.Crashes
		st.Pauses += s.Pauses
		st.HostCrashes += s.HostCrashes
		st.Lies += s.Lies
		st.Partitions += s.Partitions
		st.LossEpisodes += s.LossEpisodes
		st.Handoffs += s.Handoffs
		st.Wipes += s.Wipes
		st.SlotsChecked += s.SlotsChecked
		st.Replays += s.Replays
		st.ReplaysApplied += s.ReplaysApplied
		st.WipedLocal += s.WipedLocal
		st.Snapshots += s.Snapshots
		st.SnapshotsInstalled += s.SnapshotsInstalled
		st.StorageStops += s.StorageStops
		st.DiskErrors += s.DiskErrors
		st.DiskFulls += s.DiskFulls
		st.Messages += s.Messages
		st.LinearOps += s.LinearOps
		st.LinearTimeouts += s.LinearTimeouts
		st.Quarantined += s.Quarantined
		st.MemberProposed += s.MemberProposed
		st.MemberCommitted += s.MemberCommitted
		st.MemberRefused += s.MemberRefused
		st.MemberUnknown += s.MemberUnknown
		st.LearnersPromoted += s.LearnersPromoted
		st.NodesRemoved += s.NodesRemoved
		st.CortexesRemoved += s.CortexesRemoved
		st.NodesReadded += s.NodesReadded
		st.RemovedLocal += s.RemovedLocal
	}
	viol := "none"
	if len(byChecker) > 0 {
		var ks []string
		for k := range byChecker {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		var ps []string
		for _, k := range ks {
			ps = append(ps, fmt.Sprintf("%s=%d", k, byChecker[k]))
		}
		viol = strings.Join(ps, " ")
	}
	row := func(k, v string) { fmt.Fprintf(out, "  %-24s %s\n", k, v) }
	fmt.Fprintf(out, "\nsummary\n")
	row("seeds", fmt.Sprint(len(results)))
	row("simulated time", simTime.Round(time.Millisecond).String())
	row("wall time", wall.Round(time.Millisecond).String())
	row("sim-s per wall-s", fmt.Sprintf("%.0fx", simTime.Seconds()/wall.Seconds()))
	row("events", fmt.Sprint(steps))
	row("violations", viol)
	row("failover (clean)", pct(failovers))
	row("self-demotion", pct(demotions))
	row("elections", fmt.Sprint(st.Elections))
	row("faults", fmt.Sprintf("crash=%d (host %d) lie=%d pause=%d partition=%d loss=%d handoff=%d wipe=%d disk-error=%d disk-full=%d", st.Crashes, st.HostCrashes, st.Lies, st.Pauses, st.Partitions, st.LossEpisodes, st.Handoffs, st.Wipes, st.DiskErrors, st.DiskFulls))
	row("storage stops", fmt.Sprintf("%d (nodes stopped by a failed save, then restarted on what their disk kept)", st.StorageStops))
	row("client ops", fmt.Sprintf("%d (acked writes local=%d quorum=%d, unknown=%d, failed=%d)", st.Ops, st.AckedLocal, st.AckedQuorum, st.Unknown, st.Failed))
	row("reused ids checked", fmt.Sprintf("%d (created, forgotten and created again concurrently; final state = last acknowledged operation)", st.SlotsChecked))
	row("quarantine replays", fmt.Sprintf("%d (%d applied, the rest refused: the register changed since, or already replayed)", st.Replays, st.ReplaysApplied))
	row("lost local writes", fmt.Sprintf("%d (all quarantined: %v); %d more were only on a wiped store, %d only on a removed node's", st.LostLocal, byChecker["local-write-lost"] == 0, st.WipedLocal, st.RemovedLocal))
	row("quarantined entries", fmt.Sprint(st.Quarantined))
	row("linearizability", fmt.Sprintf("%d ops checked, %d porcupine timeouts", st.LinearOps, st.LinearTimeouts))
	row("snapshots", fmt.Sprintf("%d streamed, %d installed", st.Snapshots, st.SnapshotsInstalled))
	row("membership changes", fmt.Sprintf("%d proposed, %d committed, %d refused, %d unknown (retried)", st.MemberProposed, st.MemberCommitted, st.MemberRefused, st.MemberUnknown))
	row("members", fmt.Sprintf("%d learners promoted, %d nodes removed and stopped (%d Cortexes, handed off first), %d re-added on a fresh store", st.LearnersPromoted, st.NodesRemoved, st.CortexesRemoved, st.NodesReadded))
}

// pct formats p50/p99/max of ds.
func pct(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(s), r(at(0.5)), r(at(0.99)), r(s[len(s)-1]))
}

func (r *replayCmd) run(out io.Writer, log *slog.Logger) int {
	o, err := r.options()
	if err != nil {
		log.Error("bad option", "err", err)
		return exitUsage
	}
	fmt.Fprintf(out, "muninn-sim replay: seed %d duration=%s faults=%s broken=%s store=%s\n", r.Seed, o.Duration, o.Faults, sim.VariantName(o), o.Store)
	fmt.Fprintf(out, "settings: %s\n", sim.DrawSettings(r.Seed, o))
	if r.Trace {
		o.Trace = out
	}
	start := time.Now()
	res := sim.Run(r.Seed, o)
	wall := time.Since(start)
	code := exitOK
	for _, v := range res.Violations {
		fmt.Fprintf(out, "FAIL %s\n", v)
		if !v.Liveness {
			code = exitSafety
		} else if code == exitOK {
			code = exitLiveness
		}
	}
	printSummary(out, []*sim.Result{res}, wall)
	fmt.Fprintf(out, "trace hash %016x\n", res.TraceHash)
	if code != exitOK {
		fmt.Fprintf(out, "replay: %s\n", res.ReplayCommand())
	}
	return code
}
