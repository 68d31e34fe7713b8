package cluster

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	Topologies []Topology
	Nemeses    []string
	// Duration is the length of one segment (one nemesis): the fault is
	// injected after a quarter of it and healed after three quarters.
	Duration time.Duration
	// Rounds repeats every nemesis (a longer soak).
	Rounds int
	// HeartbeatMs is the nodes' cluster.heartbeat_ms.
	HeartbeatMs int
	Workload    WorkloadConfig
	// ReportDir receives the reports ("" = none).
	ReportDir string
	// DeployDir holds build.sh and the compose files.
	DeployDir string
	// Image is the node image; Build runs deploy/build.sh first.
	Image string
	Build bool
	// Keep leaves the last topology running (for inspection).
	Keep bool
	// Out receives the progress and the text report.
	Out io.Writer
	// Seed picks the storage nemeses' targets (0: a random seed, printed).
	Seed uint64
	// Binary, in the netns runtime, is a muninn binary to run instead of
	// building cmd/muninn from the checkout ("" builds it).
	Binary string
	// Runtime runs the nodes: "docker" (the default: containers, compose
	// files, the image) or "netns" (processes of a binary built from the
	// checkout, in network namespaces the run makes; runtime_netns.go).
	Runtime string

	// Soak, when positive, runs a seeded random schedule of Soak rounds
	// (topology × nemesis, soak.go) instead of every topology under every
	// nemesis; OnlyRound (1-based) runs round OnlyRound of it alone;
	// Budget bounds the soak (no round starts after it; 0: none but the
	// run's own bound).
	Soak      int
	OnlyRound int
	Budget    time.Duration

	// soakRound is the soak round a runTopology call runs.
	soakRound *SoakRound

	// afterUp, when set (tests), sees every cluster once it is up.
	afterUp func(*Cluster)
}

// Runtimes are the values of Options.Runtime.
var Runtimes = []string{"docker", "netns"}

// DefaultWorkload is the workload of a short run.
var DefaultWorkload = WorkloadConfig{ClientsPerNode: 2, MaxOps: 4000, Think: 25 * time.Millisecond, Timeout: 8 * time.Second, MaxLagMs: 1000}

// Summary is a whole run: every segment's report.
type Summary struct {
	Started     time.Time     `json:"started"`
	Wall        time.Duration `json:"wall_ns"`
	HeartbeatMs int           `json:"heartbeat_ms"`
	Duration    string        `json:"segment_duration"`
	Seed        uint64        `json:"seed"`
	Runtime     string        `json:"runtime"`
	Segments    []*Report     `json:"segments"`
	// Error is a harness error that stopped the run early ("" if none).
	Error string `json:"error,omitempty"`
	// Soak is the number of rounds of a soak's schedule (0: not a soak);
	// SoakStopped says why it stopped early ("" if it did not).
	Soak        int    `json:"soak,omitempty"`
	SoakStopped string `json:"soak_stopped,omitempty"`
}

// Anomalies counts the anomalies of every segment.
func (s *Summary) Anomalies() int {
	n := 0
	for _, r := range s.Segments {
		n += len(r.Anomalies)
	}
	return n
}

// Run runs every topology under every nemesis. It returns the summary and
// a harness error (the docker engine failed, a topology did not start).
// Anomalies are in the summary, not the error.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Runtime == "" {
		o.Runtime = "docker"
	}
	s := &Summary{Started: time.Now(), HeartbeatMs: o.HeartbeatMs, Duration: o.Duration.String(), Runtime: o.Runtime}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Out, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	err := runAll(ctx, o, s, logf)
	s.Wall = time.Since(s.Started)
	if err != nil {
		s.Error = err.Error()
	}
	if o.ReportDir != "" {
		if werr := writeSummary(o.ReportDir, s); werr != nil && err == nil {
			err = werr
		}
	}
	printTable(o.Out, s)
	return s, err
}

func runAll(ctx context.Context, o Options, s *Summary, logf func(string, ...any)) error {
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64() | 1
	}
	s.Seed = o.Seed
	// Every run stops by itself: a bound from the plan.
	perSeg := o.Duration + o.Workload.Timeout + 2*time.Minute
	budget := time.Duration(len(o.Topologies))*(5*time.Minute+time.Duration(len(o.Nemeses)*o.Rounds)*perSeg) + 10*time.Minute
	if o.Soak > 0 {
		s.Soak = o.Soak
		rounds := o.Soak
		if o.OnlyRound > 0 {
			rounds = 1
		}
		// A round is a topology brought up, one segment, taken down.
		budget = time.Duration(rounds)*(5*time.Minute+perSeg) + 10*time.Minute
		if o.Budget > 0 {
			budget = min(budget, o.Budget+5*time.Minute+perSeg+10*time.Minute)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	switch o.Runtime {
	case "docker":
	case "netns":
		return runNetns(ctx, o, s, logf, budget)
	default:
		return fmt.Errorf("unknown runtime %q: use %s", o.Runtime, strings.Join(Runtimes, " or "))
	}

	d, err := FindDocker(ctx)
	if err != nil {
		return err
	}
	if err := EnsureTools(ctx, logf); err != nil {
		return err
	}
	logf("docker ok, compose command: %v; heartbeat %d ms, %s per nemesis, %d round(s), seed %d, run bounded by %s", d.Compose, o.HeartbeatMs, o.Duration, o.Rounds, o.Seed, budget)
	for _, n := range Nemeses {
		if why := NotInAll[n]; why != "" && !slices.Contains(o.Nemeses, n) {
			logf("nemesis %s is not part of all (name it to run it): %s", n, why)
		}
	}
	if o.Build {
		logf("building %s with %s", o.Image, filepath.Join(o.DeployDir, "build.sh"))
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(o.DeployDir, "build.sh"))
		cmd.Env = append(os.Environ(), "IMAGE="+o.Image)
		cmd.Stdout, cmd.Stderr = o.Out, o.Out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("deploy/build.sh: %w", err)
		}
	} else if _, err := runCmd(ctx, "docker", "image", "inspect", o.Image); err != nil {
		return fmt.Errorf("image %s not found: run deploy/build.sh (or drop --no-build)", o.Image)
	}
	token := randomHex(32)
	lease := leaseTTL(o.HeartbeatMs)
	d.Env = []string{
		"MUNINN_CLUSTER_SECRET=" + randomHex(32),
		"MUNINN_ADMIN_TOKEN=" + token,
		"MUNINN_CLUSTER_HEARTBEAT_MS=" + strconv.Itoa(o.HeartbeatMs),
		"MUNINN_CLUSTER_LEASE_TTL=" + strconv.Itoa(lease),
		"MUNINN_IMAGE=" + o.Image,
		"MUNINN_RESTART=no",
	}
	api := NewAPI(token)
	defer api.Close()
	up := func(ctx context.Context, t Topology) (*Cluster, error) { return Up(ctx, d, api, o.DeployDir, t, logf) }
	if o.Soak > 0 {
		return runSoak(ctx, o, s, api, up, logf)
	}
	for ti, t := range o.Topologies {
		if err := runTopology(ctx, o, s, api, up, t, logf, o.Keep && ti == len(o.Topologies)-1); err != nil {
			return err
		}
	}
	return nil
}

// runNetns is runAll for the netns runtime: root and the tools, one build
// of the muninn binary from the checkout (DeployDir's parent), then every
// topology as processes in namespaces.
func runNetns(ctx context.Context, o Options, s *Summary, logf func(string, ...any), budget time.Duration) error {
	if err := NetnsReady(); err != nil {
		return err
	}
	if err := EnsureTools(ctx, logf); err != nil {
		return err
	}
	if o.DeployDir == "" {
		return errors.New("the netns runtime needs the repository (Options.DeployDir: its deploy/ directory) to build cmd/muninn")
	}
	// The binary's directory, named after this process: a later run
	// removes those of runs that are gone.
	binPrefix := projectPrefix + "bin-"
	if stale, err := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*")); err == nil {
		live := liveRun(binPrefix)
		for _, d := range stale {
			if _, ok := netnsOwner(filepath.Base(d), binPrefix); ok && !live(filepath.Base(d)) {
				os.RemoveAll(d)
			}
		}
	}
	bin, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binPrefix, os.Getpid()))
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	t0 := time.Now()
	binary, what := o.Binary, "using"
	if binary == "" {
		what = "built"
		if binary, err = BuildMuninn(ctx, filepath.Dir(o.DeployDir), bin); err != nil {
			return err
		}
	} else if st, err := os.Stat(binary); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("--muninn-binary %s: not an executable file (%v)", binary, err)
	}
	logf("netns runtime: %s %s in %s; heartbeat %d ms, %s per nemesis, %d round(s), seed %d, run bounded by %s",
		what, binary, time.Since(t0).Round(time.Millisecond), o.HeartbeatMs, o.Duration, o.Rounds, o.Seed, budget)
	for _, n := range Nemeses {
		if why := NotInAll[n]; why != "" && !slices.Contains(o.Nemeses, n) {
			logf("nemesis %s is not part of all (name it to run it): %s", n, why)
		}
	}
	token := randomHex(32)
	env := &NetnsEnv{Binary: binary, Settings: netnsSettings{Secret: randomHex(32), Token: token, HeartbeatMs: o.HeartbeatMs,
		LeaseTTL: leaseTTL(o.HeartbeatMs), LogLevel: os.Getenv("MUNINN_LOG_LEVEL")}}
	api := NewAPI(token)
	defer api.Close()
	up := func(ctx context.Context, t Topology) (*Cluster, error) { return UpNetns(ctx, env, api, t, logf) }
	if o.Soak > 0 {
		return runSoak(ctx, o, s, api, up, logf)
	}
	for ti, t := range o.Topologies {
		if err := runTopology(ctx, o, s, api, up, t, logf, o.Keep && ti == len(o.Topologies)-1); err != nil {
			return err
		}
	}
	return nil
}

func runTopology(ctx context.Context, o Options, s *Summary, api *API, up func(context.Context, Topology) (*Cluster, error), t Topology, logf func(string, ...any), keep bool) (err error) {
	c, err := up(ctx, t)
	if err != nil {
		return err
	}
	if o.afterUp != nil {
		o.afterUp(c)
	}
	defer func() {
		if herr := c.HealAll(ctx); herr != nil {
			logf("healing %s: %v", t.Name, herr)
		}
		if keep {
			logf("--keep: topology %s left running; remove it with: %s; umount %s; rm -rf %s (the next run of %s also removes it)",
				t.Name, c.rt.KeepHint(), strings.Join(c.data.mounts, " "), c.data.root, t.Name)
			return
		}
		c.Down(ctx)
	}()
	cortex, epoch, err := c.Cortex(ctx)
	if err != nil {
		return err
	}
	logf("topology %s healthy: Cortex %s, epoch %d", t.Name, cortex, epoch)
	for round := 1; round <= o.Rounds; round++ {
		for _, nem := range o.Nemeses {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if why := notApplicable(nem, c.Topo, c.rt.Name()); why != "" {
				logf("skipping: %s", why)
				continue
			}
			seg := &segment{o: o, c: c, api: api, nemesis: nem, round: round, index: len(s.Segments), logf: logf,
				rng: rand.New(rand.NewPCG(o.Seed, uint64(len(s.Segments))))}
			if r := o.soakRound; r != nil {
				// A soak round: its own seed, whatever ran before it.
				seg.round, seg.rng = r.Index, rand.New(rand.NewPCG(r.Seed, 0))
			}
			rep, err := seg.run(ctx)
			if rep != nil && c.Topo.Mixed() {
				rep.Anomalies = append(rep.Anomalies, c.checkMixedVersion(ctx, rep)...)
			}
			if rep != nil {
				s.Segments = append(s.Segments, rep)
				printReport(o.Out, rep)
				// A soak keeps the files of its rounds with anomalies only.
				if o.ReportDir != "" && (o.soakRound == nil || len(rep.Anomalies) > 0) {
					if werr := writeReport(ctx, o.ReportDir, rep, seg); werr != nil {
						logf("writing the report: %v", werr)
					}
				}
			}
			if err != nil {
				return err
			}
			if rep != nil && rep.Unrecovered {
				logf("topology %s did not recover: skipping its remaining nemeses", t.Name)
				return nil
			}
		}
	}
	return nil
}

func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	return execOut(ctx, time.Minute, nil, name, args...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func joinCmd(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}
