package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/muninndb/muninn/sim/cluster"
)

// Exit codes of the cluster command: 0 no anomaly, 2 anomalies (the same
// code as a simulator safety violation), 1 harness error.
const exitHarness = 1

// clusterCmd runs the real-cluster fault driver (sim/cluster) against
// containers or processes in network namespaces: the seed's topologies
// under kills, pauses, partitions and degraded links, with the recorded
// histories checked.
type clusterCmd struct {
	Runtime        string        `default:"docker" enum:"docker,netns" help:"What runs the nodes: docker (containers of the image, the compose files) or netns (processes of a muninn built from this checkout, in network namespaces the run makes; needs root, iproute2, iptables). See docs/reliability.md."`
	Topology       string        `default:"all" help:"three, sentinel, five, observer, mixed (comma-separated) or all (every topology the runtime can run). mixed needs --runtime netns: three voters, muninn-01 on the previous release (e2e/testdata/previous-release, built from this repository's git history) and two on this build; see docs/reliability.md."`
	Nemesis        string        `default:"all" help:"kill, pause, isolate, split, bridge, oneway, netem, wipe, restore-old, corrupt-wal, fill-disk, lobe-down, rolling, churn, snapshot-kill, combo, backup-partition, rotate-kill (comma-separated) or all (docs/reliability.md; churn, snapshot-kill, backup-partition and rotate-kill need --runtime netns; churn and snapshot-kill skip the sentinel topology)."`
	Duration       time.Duration `default:"10s" help:"Length of each nemesis segment: the fault starts after a quarter of it and heals after three quarters; recovery and checks follow."`
	Rounds         int           `default:"1" help:"Repeat every nemesis this many times (a longer soak: e.g. --rounds 10 --duration 30s)."`
	HeartbeatMs    int           `name:"heartbeat-ms" default:"1000" help:"The nodes' cluster.heartbeat_ms (1000 is the product default; lease_ttl follows)."`
	ClientsPerNode int           `default:"2" help:"Clients bound to each data node."`
	MaxOps         int           `default:"4000" help:"Bound on the operations of one segment."`
	ReportDir      string        `type:"path" placeholder:"DIR" help:"Write per-segment reports (JSON, text, SVG timeline, history) and summary.{json,txt,md} here."`
	Image          string        `default:"muninn:local" help:"Node image (docker runtime)."`
	Build          bool          `default:"true" negatable:"" help:"Build the image with deploy/build.sh first (--no-build: use the existing image; docker runtime)."`
	DeployDir      string        `type:"path" placeholder:"DIR" help:"The repository's deploy/ directory (default: found above the working directory)."`
	Keep           bool          `help:"Leave the last topology running afterwards, for inspection (docker runtime)."`
	Seed           uint64        `help:"Seed of the storage nemeses' choice of node, or of the whole --soak schedule (0: random; every run prints its seed)."`
	MuninnBinary   string        `name:"muninn-binary" type:"path" placeholder:"FILE" help:"With --runtime netns: run this muninn binary instead of building cmd/muninn from the checkout."`
	Soak           int           `placeholder:"N" help:"Run a soak instead: N rounds drawn from --topology x --nemesis by one seed (printed), each on a fresh topology; rounds with anomalies leave their report, history and replay command in --report-dir (default: TMPDIR/muninn-soak-SEED). See docs/reliability.md."`
	OnlyRound      int           `placeholder:"I" help:"With --soak and --seed: run round I (1-based) of that schedule alone (the replay command of a round)."`
	Budget         time.Duration `help:"With --soak: start no round after this much time (0: no bound but the run's own); the soak stops by itself."`
}

func (c *clusterCmd) run(out io.Writer, log *slog.Logger) int {
	topos, err := cluster.ParseTopologies(c.Topology, c.Runtime)
	if err != nil {
		log.Error("bad option", "err", fmt.Errorf("--topology: %w", err))
		return exitUsage
	}
	nems, err := cluster.ParseNemeses(c.Nemesis)
	if err != nil {
		log.Error("bad option", "err", fmt.Errorf("--nemesis: %w", err))
		return exitUsage
	}
	if c.Duration < time.Second || c.Rounds < 1 || c.HeartbeatMs < 10 || c.HeartbeatMs > 60000 || c.ClientsPerNode < 1 || c.MaxOps < 1 {
		log.Error("bad option", "err", "--duration must be at least 1s, --rounds and --clients-per-node and --max-ops positive, --heartbeat-ms 10..60000")
		return exitUsage
	}
	if c.Soak < 0 || c.OnlyRound < 0 || c.Budget < 0 || (c.Soak == 0 && (c.OnlyRound > 0 || c.Budget > 0)) || (c.OnlyRound > 0 && (c.Seed == 0 || c.OnlyRound > c.Soak)) {
		log.Error("bad option", "err", "--only-round and --budget need --soak N; --only-round I needs the soak's --seed and 1 <= I <= N")
		return exitUsage
	}
	if c.Soak > 0 && c.Rounds != 1 {
		log.Error("bad option", "err", "--rounds does not apply to --soak: the soak draws its N rounds itself")
		return exitUsage
	}
	if c.Soak > 0 && c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	if c.Soak > 0 && c.ReportDir == "" {
		c.ReportDir = cluster.SoakReportDir(c.Seed)
	}
	if c.Keep && c.Runtime == "netns" {
		log.Error("bad option", "err", "--keep needs --runtime docker: the netns runtime's nodes log through the harness and stop with it")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Runtime == "netns" {
		if err := cluster.NetnsReady(); err != nil {
			if os.Getenv("CI") != "" {
				fmt.Fprintf(out, "FAIL: %v; CI is set, so the netns fault tests must run\n", err)
				return exitHarness
			}
			fmt.Fprintf(out, "SKIP: %v (set CI to make this a failure)\n", err)
			return exitOK
		}
	} else if _, err := cluster.FindDocker(ctx); err != nil {
		if errors.Is(err, cluster.ErrNoDocker) {
			if os.Getenv("CI") != "" {
				fmt.Fprintf(out, "FAIL: %v; CI is set, so the container fault tests must run\n", err)
				return exitHarness
			}
			fmt.Fprintf(out, "SKIP: %v: the container fault tests need a docker engine (set CI to make this a failure)\n", err)
			return exitOK
		}
		fmt.Fprintf(out, "FAIL: %v\n", err)
		return exitHarness
	}
	deploy, err := cluster.FindDeployDir(c.DeployDir)
	if err != nil {
		fmt.Fprintf(out, "FAIL: %v\n", err)
		return exitHarness
	}
	wl := cluster.DefaultWorkload
	wl.ClientsPerNode, wl.MaxOps = c.ClientsPerNode, c.MaxOps
	o := cluster.Options{Topologies: topos, Nemeses: nems, Duration: c.Duration, Rounds: c.Rounds, HeartbeatMs: c.HeartbeatMs,
		Workload: wl, ReportDir: c.ReportDir, DeployDir: deploy, Image: c.Image, Build: c.Build, Keep: c.Keep, Out: out, Seed: c.Seed, Runtime: c.Runtime,
		Soak: c.Soak, OnlyRound: c.OnlyRound, Budget: c.Budget, Binary: c.MuninnBinary}
	fmt.Fprintf(out, "muninn-sim cluster: runtime=%s topology=%s nemesis=%s duration=%s rounds=%d heartbeat_ms=%d\n", c.Runtime, c.Topology, c.Nemesis, c.Duration, c.Rounds, c.HeartbeatMs)
	if c.Soak > 0 {
		fmt.Fprintf(out, "soak: %d rounds, seed %d, budget %s, only round %d (0: all), reports of anomalies in %s\n", c.Soak, c.Seed, c.Budget, c.OnlyRound, c.ReportDir)
	}
	s, err := cluster.Run(ctx, o)
	if c.ReportDir != "" {
		fmt.Fprintf(out, "reports in %s\n", c.ReportDir)
	}
	if err != nil {
		fmt.Fprintf(out, "FAIL (harness): %v\n", err)
		return exitHarness
	}
	if n := s.Anomalies(); n > 0 {
		fmt.Fprintf(out, "FAIL: %d anomalies\n", n)
		return exitSafety
	}
	fmt.Fprintln(out, "PASS: no anomalies")
	return exitOK
}
