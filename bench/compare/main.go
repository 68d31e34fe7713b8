//go:build linux

// Command compare runs one write workload (N closed-loop clients, 10 s,
// 256-byte values) against a 3-member etcd cluster, Redis with 2 replicas
// and 3 Sentinels, a 3-node muninn cluster and a standalone muninn node, all
// on 127.0.0.1, and prints write throughput (durable and async), p99 write
// latency and failover time (kill the leader by pid → first acknowledged
// write) as a table with ratios to muninn. bench/compare.sh installs the
// servers and runs it; see docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/muninndb/muninn/bench"
)

type loadShape struct {
	clients   int
	duration  time.Duration
	valueSize int
}

// result is one system's row.
type result struct {
	Name      string            `json:"name"`
	Durable   *bench.LoadResult `json:"durable,omitempty"`
	Async     *bench.LoadResult `json:"async,omitempty"`
	Failovers []time.Duration   `json:"failovers_ns,omitempty"`
	Failover  time.Duration     `json:"failover_median_ns,omitempty"`
	Notes     []string          `json:"notes,omitempty"`
	Errors    []string          `json:"errors,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	Date      string `json:"date"`
	Versions  map[string]string
}

type output struct {
	Machine machine   `json:"machine"`
	Clients int       `json:"clients"`
	Seconds float64   `json:"seconds"`
	Value   int       `json:"value_size"`
	Results []*result `json:"results"`
}

func main() {
	exe := flag.String("muninn", "", "the muninn binary (required)")
	clients := flag.Int("clients", 16, "closed-loop clients per run")
	duration := flag.Duration("duration", 10*time.Second, "length of each throughput run")
	valueSize := flag.Int("value-size", 256, "bytes per value")
	failovers := flag.Int("failovers", 3, "leader kills per system (the median is reported)")
	only := flag.String("only", "muninn,standalone,etcd,redis", "systems to run")
	pidFile := flag.String("pidfile", "", "append every started pid here (compare.sh kills them on exit)")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	mdOut := flag.String("markdown", "", "also write the table as Markdown to this file")
	workDir := flag.String("dir", "", "working directory for data and logs (default: a new temp dir, removed at the end)")
	flag.Parse()
	if *exe == "" || *clients < 1 || *duration <= 0 || *valueSize < 1 || *failovers < 0 || *failovers > 20 {
		fmt.Fprintln(os.Stderr, "usage: compare --muninn PATH [--clients 16] [--duration 10s] [--value-size 256] [--failovers 3] [--only muninn,standalone,etcd,redis]")
		os.Exit(2)
	}
	dir := *workDir
	keep := dir != ""
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "muninn-compare-"); err != nil {
			fail(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	ps := &procs{pidFile: *pidFile, dir: dir}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	code := run(ctx, ps, *exe, loadShape{*clients, *duration, *valueSize}, *failovers, strings.Split(*only, ","), *jsonOut, *mdOut)
	ps.stopAll()
	if !keep {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, ps *procs, exe string, shape loadShape, failovers int, only []string, jsonOut, mdOut string) int {
	out := output{Machine: describeMachine(exe), Clients: shape.clients, Seconds: shape.duration.Seconds(), Value: shape.valueSize}
	want := func(s string) bool { return slices.Contains(only, s) }
	settle := func() { time.Sleep(2 * time.Second) }
	loadRun := func(r *result, what string, f func() (bench.LoadResult, error)) *bench.LoadResult {
		logf("%s: %s, %d clients for %s", r.Name, what, shape.clients, shape.duration)
		lr, err := f()
		if err != nil {
			r.Errors = append(r.Errors, what+": "+err.Error())
			logf("%s: %s failed: %v", r.Name, what, err)
			return nil
		}
		logf("%s: %s: %.0f writes/s, p99 %s, errors: %s", r.Name, what, lr.WritesPerSec, bench.Ms(lr.Write.P99), bench.ErrorsLine(lr.Errors))
		if lr.ErrorCount > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s errors: %s", what, bench.ErrorsLine(lr.Errors)))
		}
		settle()
		return &lr
	}
	killRuns := func(r *result, f func() (time.Duration, error)) {
		for k := 1; k <= failovers && ctx.Err() == nil; k++ {
			d, err := f()
			if err != nil {
				r.Errors = append(r.Errors, fmt.Sprintf("failover %d: %v", k, err))
				logf("%s: failover %d failed: %v", r.Name, k, err)
				return
			}
			logf("%s: failover %d/%d: kill → first acknowledged write %s", r.Name, k, failovers, bench.Ms(d))
			r.Failovers = append(r.Failovers, d)
		}
		if len(r.Failovers) > 0 {
			r.Failover = bench.Summarize(slices.Clone(r.Failovers)).P50
		}
	}

	if want("muninn") && ctx.Err() == nil {
		r := &result{Name: "muninn, 3 nodes"}
		out.Results = append(out.Results, r)
		logf("starting a 3-node muninn cluster")
		ms, err := startMuninn(ps, exe, 3, false)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			// Failovers first, while the log is short: a Cortex killed after
			// the throughput runs is brought back with a snapshot, and
			// installing it currently stops the node (see
			// docs/benchmarks.md, "Known problems").
			killRuns(r, func() (time.Duration, error) { return ms.failover(ctx) })
			r.Durable = loadRun(r, "quorum writes", func() (bench.LoadResult, error) { return ms.load(ctx, shape, "quorum") })
			r.Async = loadRun(r, "local writes", func() (bench.LoadResult, error) { return ms.load(ctx, shape, "local") })
			r.Notes = append(r.Notes, "durable = quorum durability (fsync on a majority before the ack); async = local (fsync on the Cortex, replicated after the ack); heartbeat 1000 ms (Cortex down after 3 missed)")
		}
		if ms != nil {
			ms.stop(len(r.Errors) > 0)
		}
		settle()
	}
	if want("standalone") && ctx.Err() == nil {
		r := &result{Name: "muninn, standalone"}
		out.Results = append(out.Results, r)
		logf("starting a standalone muninn node")
		ms, err := startMuninn(ps, exe, 1, true)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Async = loadRun(r, "local writes", func() (bench.LoadResult, error) { return ms.load(ctx, shape, "local") })
			r.Notes = append(r.Notes, "one node, local durability (fsync before the ack, no replica): the baseline for the replication targets; no failover")
		}
		if ms != nil {
			ms.stop(len(r.Errors) > 0)
		}
		settle()
	}
	if want("etcd") && ctx.Err() == nil {
		r := &result{Name: "etcd, 3 members"}
		out.Results = append(out.Results, r)
		logf("starting a 3-member etcd cluster")
		ec, err := startEtcd(ps, 3)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Durable = loadRun(r, "puts", func() (bench.LoadResult, error) { return ec.load(ctx, shape) })
			killRuns(r, func() (time.Duration, error) { return ec.failover(ctx) })
			r.Notes = append(r.Notes, "every put is committed by a majority and fsynced (etcd has no async mode); etcd's Go client (go.etcd.io/etcd/client/v3, gRPC), one client shared by the workers, puts sent to the leader; heartbeat 600 ms, election timeout 3000 ms (randomized up to 6 s)")
		}
		if ec != nil {
			ec.close()
			ps.stop(ec.members)
		}
		settle()
	}
	if want("redis") && ctx.Err() == nil {
		r := &result{Name: "Redis, 1+2 replicas, 3 Sentinels"}
		out.Results = append(out.Results, r)
		logf("starting Redis without persistence (async)")
		rg, err := startRedis(ps, false, "async")
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Async = loadRun(r, "SET (async)", func() (bench.LoadResult, error) { return rg.load(ctx, shape) })
		}
		if rg != nil {
			ps.stop(rg.all())
		}
		settle()
		logf("starting Redis with appendfsync always (durable)")
		rg, err = startRedis(ps, true, "durable")
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Durable = loadRun(r, "SET + WAIT 1 (durable)", func() (bench.LoadResult, error) { return rg.load(ctx, shape) })
			killRuns(r, func() (time.Duration, error) { return rg.failover(ctx) })
			r.Notes = append(r.Notes, "durable = appendonly + appendfsync always on every node and WAIT 1 after each SET (one replica has it); async = no persistence, no WAIT; RESP over one TCP connection per client; down-after-milliseconds 3000; failover timed with the durable variant")
		}
		if rg != nil {
			ps.stop(rg.all())
		}
	}
	out.Machine.LoadEnd = loadavg()

	md := markdown(out, failovers)
	fmt.Println(md)
	if mdOut != "" {
		if err := os.WriteFile(mdOut, []byte(md), 0o644); err != nil {
			logf("writing %s: %v", mdOut, err)
		}
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			logf("writing %s: %v", jsonOut, err)
		}
	}
	for _, r := range out.Results {
		if len(r.Errors) > 0 {
			return 1
		}
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func firstLine(name string, args ...string) string {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "?"
	}
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func describeMachine(exe string) machine {
	m := machine{CPUs: runtime.NumCPU(), LoadStart: loadavg(), Date: time.Now().UTC().Format(time.RFC3339), Versions: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Kernel = firstLine("uname", "-sr")
	m.Versions["muninn"] = firstLine(exe, "version")
	m.Versions["etcd"] = firstLine("etcd", "--version")
	m.Versions["redis"] = firstLine("redis-server", "--version")
	return m
}

// cell formats v with its ratio to base ("12,345 (0.52×)").
func cell(v, base float64, format func(float64) string) string {
	if v == 0 {
		return "—"
	}
	s := format(v)
	if base > 0 {
		s += fmt.Sprintf(" (%.2f×)", v/base)
	}
	return s
}

func markdown(o output, failovers int) string {
	var b strings.Builder
	m := o.Machine
	fmt.Fprintf(&b, "Run %s on %d × %s (%s), load average %s at the start and %s at the end.\n", m.Date, m.CPUs, m.CPUModel, m.Kernel, m.LoadStart, m.LoadEnd)
	var vs []string
	for _, k := range []string{"muninn", "etcd", "redis"} {
		if v := m.Versions[k]; v != "" && v != "?" {
			vs = append(vs, v)
		}
	}
	fmt.Fprintf(&b, "Versions: %s.\n", strings.Join(vs, "; "))
	fmt.Fprintf(&b, "Workload: %d closed-loop clients, %s per run, %d-byte values, writes only, every process on 127.0.0.1 (load generator included).\n\n",
		o.Clients, time.Duration(o.Seconds*float64(time.Second)), o.Value)
	var base *result
	for _, r := range o.Results {
		if r.Name == "muninn, 3 nodes" {
			base = r
		}
	}
	tput := func(lr *bench.LoadResult) float64 {
		if lr == nil {
			return 0
		}
		return lr.WritesPerSec
	}
	p99 := func(lr *bench.LoadResult) float64 {
		if lr == nil {
			return 0
		}
		return float64(lr.Write.P99)
	}
	var bd, ba, bpd, bpa, bf float64
	if base != nil {
		bd, ba, bpd, bpa, bf = tput(base.Durable), tput(base.Async), p99(base.Durable), p99(base.Async), float64(base.Failover)
	}
	num := func(v float64) string { return bench.Thousands(int64(v + 0.5)) }
	dur := func(v float64) string { return bench.Ms(time.Duration(v)) }
	fmt.Fprintf(&b, "| system | durable writes/s | async writes/s | durable p99 write | async p99 write | failover: kill → first write (median of %d) |\n", failovers)
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, r := range o.Results {
		fo := "—"
		if r.Failover > 0 {
			fo = cell(float64(r.Failover), bf, dur)
			var all []string
			for _, d := range r.Failovers {
				all = append(all, bench.Ms(d))
			}
			fo += " [" + strings.Join(all, ", ") + "]"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Name,
			cell(tput(r.Durable), bd, num), cell(tput(r.Async), ba, num), cell(p99(r.Durable), bpd, dur), cell(p99(r.Async), bpa, dur), fo)
	}
	b.WriteString("\nRatios in parentheses are to the 3-node muninn cluster's figure in the same column (throughput: higher is better; latency and failover: lower is better).\n")
	// muninn's own targets.
	var st *result
	for _, r := range o.Results {
		if r.Name == "muninn, standalone" {
			st = r
		}
	}
	if base != nil && st != nil && tput(st.Async) > 0 {
		s := tput(st.Async)
		fmt.Fprintf(&b, "\nmuninn 3-node vs standalone (%s writes/s): local %.0f%% (target ≥ 90%%), quorum %.0f%% (target ≥ 70%%).\n",
			num(s), 100*tput(base.Async)/s, 100*tput(base.Durable)/s)
	}
	b.WriteString("\nNotes:\n")
	for _, r := range o.Results {
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s: %s\n", r.Name, n)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s: ERROR %s\n", r.Name, e)
		}
	}
	return b.String()
}
