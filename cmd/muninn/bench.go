package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/muninndb/muninn/bench"
)

// BenchCmd is `muninn bench` (a load run against a running node or
// cluster) and `muninn bench failover` (kills the Cortex of a cluster of
// processes it starts itself) and `muninn bench rolling` (restarts each
// node of such a cluster in turn, bench_rolling.go). See
// docs/benchmarks.md.
type BenchCmd struct {
	Load     BenchLoadCmd     `cmd:"" name:"run" default:"withargs" help:"Measure throughput, latency and replication lag of a running node or cluster (the default: muninn bench [flags])."`
	Failover BenchFailoverCmd `cmd:"" help:"Start a cluster of muninn processes on 127.0.0.1, SIGKILL (and with --stop SIGSTOP) its Cortex repeatedly under writes, and report failover times, failed and lost writes."`
	Rolling  BenchRollingCmd  `cmd:"" help:"Start a cluster of muninn processes on 127.0.0.1 and restart each node in turn with SIGTERM under a steady quorum write load; report failed requests, lost writes and the longest write pause per node."`
}

// BenchLoadCmd is `muninn bench [run]`.
type BenchLoadCmd struct {
	Addr           string        `help:"API address of a node (writes follow the Cortex; reads are spread over the data members)." default:"http://127.0.0.1:8475" env:"MUNINN_ADDR" placeholder:"URL"`
	Clients        int           `help:"Concurrent clients: closed-loop clients, or with --rate the workers that send the scheduled operations." default:"16"`
	Duration       time.Duration `help:"How long to run." default:"10s"`
	ValueSize      int           `name:"value-size" help:"Bytes of content per write." default:"256"`
	Writes         float64       `help:"Fraction of operations that are writes (0 to 1; the rest are reads of engrams written earlier)." default:"1.0"`
	Durability     string        `help:"Write durability: local or quorum." enum:"local,quorum" default:"local"`
	Consistency    string        `help:"Read consistency: eventual, bounded or strong." enum:"eventual,bounded,strong" default:"eventual"`
	MaxLagMs       int64         `name:"max-lag-ms" help:"With --consistency bounded: the largest acceptable lag." default:"0"`
	Vault          string        `help:"Vault to write to." default:"bench"`
	Rate           float64       `help:"Open loop: operations per second in total, at fixed intervals, latency measured from each one's intended send time (0: closed loop)." default:"0"`
	MaxOutstanding int           `name:"max-outstanding" help:"With --rate: operations queued or in flight at most; one due while that many are outstanding is missed (0: one second of --rate)." default:"0"`
	Batch          int           `help:"Write N engrams per request (POST /api/engrams/batch through the Go client's WriteBatch); throughput is then also reported in engrams/s (0: one engram per request)." default:"0" placeholder:"N"`
	JSON           bool          `help:"Print the report as JSON (progress still goes to stderr)."`
}

// interruptible returns a context cancelled on SIGINT/SIGTERM (or g.stop in
// tests), so a run stops early and still reports.
func (g *Globals) interruptible() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	if g.stop != nil {
		go func() {
			select {
			case <-g.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		return ctx, cancel
	}
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	return sctx, func() { stop(); cancel() }
}

func (c BenchLoadCmd) Run(g *Globals) error {
	cfg := bench.DefaultConfig()
	cfg.Addr, cfg.Clients, cfg.Duration, cfg.ValueSize = c.Addr, c.Clients, c.Duration, c.ValueSize
	cfg.Writes, cfg.Durability, cfg.Consistency, cfg.MaxLagMs, cfg.Vault = c.Writes, c.Durability, c.Consistency, c.MaxLagMs, c.Vault
	cfg.Rate, cfg.MaxOutstanding, cfg.Batch = c.Rate, c.MaxOutstanding, c.Batch
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	ctx, cancel := g.interruptible()
	defer cancel()
	loop := fmt.Sprintf("%d clients", cfg.Clients)
	if cfg.Rate > 0 {
		loop = fmt.Sprintf("%g ops/s open loop on %d workers", cfg.Rate, cfg.Clients)
	}
	if cfg.Batch > 0 {
		loop += fmt.Sprintf(", batches of %d", cfg.Batch)
	}
	fmt.Fprintf(g.Err, "muninn bench: %s for %s against %s (durability %s, %.0f%% writes)\n",
		loop, cfg.Duration, cfg.Addr, cfg.Durability, cfg.Writes*100)
	rep, err := bench.Run(ctx, cfg, func(t bench.Tick, maxLag int64) {
		fmt.Fprintln(g.Err, bench.ProgressLine(t, maxLag))
	})
	if err != nil {
		return err
	}
	if c.JSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "%s\n", b)
	} else {
		rep.WriteText(g.Out)
	}
	if rep.Load.Ops == 0 {
		return errors.New("no operation succeeded (see errors above)")
	}
	return nil
}

// BenchFailoverCmd is `muninn bench failover`.
type BenchFailoverCmd struct {
	Nodes       int           `help:"Cluster size (data voters)." default:"3"`
	HeartbeatMs int           `name:"heartbeat-ms" help:"cluster.heartbeat_ms of the nodes (the Cortex is down after 3 missed heartbeats)." default:"1000"`
	Kills       int           `help:"How many times to SIGKILL the Cortex (restarting it after each)." default:"5"`
	Graceful    int           `help:"How many graceful handoffs (POST /v1/cluster/failover) to time after the kills." default:"3"`
	Stop        int           `help:"How many times to SIGSTOP the Cortex for --stop-for, then SIGCONT it, after the kills: reports whether that caused an election and how long writes paused." default:"0" placeholder:"N"`
	StopFor     time.Duration `name:"stop-for" help:"How long each --stop freezes the Cortex." default:"2s"`
	Local       bool          `help:"Also write with local durability and count local writes lost to the kills (quarantined on the old Cortex)." default:"true" negatable:""`
	Events      bool          `help:"The writers' Go clients follow GET /v1/cluster/events (client.WithEvents) and move to a new Cortex on its event; --no-events polls and backs off as a client behind a proxy would." default:"true" negatable:""`
	JSON        bool          `help:"Print the report as JSON (progress still goes to stderr)."`
	Keep        bool          `help:"Keep the nodes' data directories and logs (printed at the end)."`
}

func (c BenchFailoverCmd) Run(g *Globals) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the nodes: %w", err)
	}
	cfg := bench.FailoverConfig{Exe: exe, Nodes: c.Nodes, HeartbeatMs: c.HeartbeatMs, Kills: c.Kills,
		Graceful: c.Graceful, Stops: c.Stop, StopFor: c.StopFor, Local: c.Local, Events: c.Events, Keep: c.Keep, Log: g.Err}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	ctx, cancel := g.interruptible()
	defer cancel()
	rep, err := bench.Failover(ctx, cfg)
	if err != nil && rep == nil {
		return err
	}
	return printReport(g, rep, c.JSON, err)
}

// benchReport is what a bench mode prints and judges.
type benchReport interface {
	WriteText(w io.Writer)
	Verdict() error
}

// printReport prints rep as JSON or text, then returns runErr, else the
// report's verdict (a missed target fails the command).
func printReport(g *Globals, rep benchReport, asJSON bool, runErr error) error {
	if asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "%s\n", b)
	} else {
		rep.WriteText(g.Out)
	}
	if runErr != nil {
		return runErr
	}
	return rep.Verdict()
}
