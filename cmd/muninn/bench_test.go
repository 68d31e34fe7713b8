package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/bench"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/node"
)

// TestBenchArgumentErrors: bad bench flags are usage errors (exit 2) that
// name the flag; an unreachable node is a failure (exit 1).
func TestBenchArgumentErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--writes", "2"}, 2, "--writes 2"},
		{[]string{"bench", "--clients", "0"}, 2, "--clients 0"},
		{[]string{"bench", "--durability", "all"}, 2, `--durability must be one of "local","quorum"`},
		{[]string{"bench", "--consistency", "bounded"}, 2, "needs --max-lag-ms"},
		{[]string{"bench", "--duration", "soon"}, 2, "--duration"},
		{[]string{"bench", "--rate=-5"}, 2, "--rate -5"},
		{[]string{"bench", "--rate", "2000000"}, 2, "--rate 2e+06"},
		{[]string{"bench", "--rate", "fast"}, 2, "--rate"},
		{[]string{"bench", "--rate", "0.5", "--duration", "1s"}, 2, "schedules no operation"},
		{[]string{"bench", "--max-outstanding", "10"}, 2, "--max-outstanding goes only with --rate"},
		{[]string{"bench", "--rate", "100", "--max-outstanding=-1"}, 2, "--max-outstanding -1"},
		{[]string{"bench", "--batch", "5000"}, 2, "--batch 5000: use 1 to 1000"},
		{[]string{"bench", "--batch", "1000", "--value-size", "65536"}, 2, "limit of a batch request"},
		{[]string{"bench", "failover", "--nodes", "2"}, 2, "--nodes 2"},
		{[]string{"bench", "failover", "--kills", "0", "--graceful", "0"}, 2, "nothing to measure"},
		{[]string{"bench", "failover", "--stop", "1", "--stop-for", "10ms"}, 2, "--stop-for 10ms: use 100ms to 1m"},
		{[]string{"bench", "rolling", "--nodes", "2"}, 2, "--nodes 2: use 3 to 9"},
		{[]string{"bench", "rolling", "--rounds", "0"}, 2, "--rounds 0: use 1 to 100"},
		{[]string{"bench", "rolling", "--writers", "0", "--write-every", "0s"}, 2, "--writers 0: use 1 to 256; --write-every 0s: use 1ms to 10s"},
		{[]string{"bench", "rolling", "--down=-1s"}, 2, "--down -1s: use 0 to 5m"},
		{[]string{"bench", "--addr", "http://127.0.0.1:1", "--duration", "1s"}, 1, "cannot reach http://127.0.0.1:1"},
	}
	for _, c := range cases {
		code, _, stderr := cli(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("muninn %s: exit %d (want %d), stderr:\n%s\nwant %q", strings.Join(c.args, " "), code, c.code, stderr, c.want)
		}
	}
}

// TestBenchFlags: --rate makes the run open-loop and --max-outstanding
// bounds it; the report (text and JSON) has the schedule's accounting and
// the node's CPU per write read from its /metrics.
func TestBenchFlags(t *testing.T) {
	n, err := node.Start(node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(n, api.Options{})
	srv := httptest.NewServer(a)
	defer func() { srv.Close(); a.Close(); n.Close() }()
	for n.Status().Core.Role != core.RoleCortex {
		time.Sleep(5 * time.Millisecond)
	}

	code, out, stderr := cli(t, "bench", "--addr", srv.URL, "--rate", "200", "--max-outstanding", "50", "--clients", "2",
		"--duration", "500ms", "--json")
	if code != 0 || !strings.Contains(stderr, "200 ops/s open loop on 2 workers") {
		t.Fatalf("bench --rate --json: exit %d\n%s", code, stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	o := rep.Load.Open
	if rep.Config.Rate != 200 || rep.Config.MaxOutstanding != 50 || o == nil || o.Rate != 200 || o.MaxOutstanding != 50 ||
		o.Scheduled == 0 || o.Completed+o.Missed+o.Unfinished != o.Scheduled {
		t.Fatalf("open loop: %+v %+v", rep.Config, o)
	}
	if len(rep.CPU.Nodes) != 1 || rep.CPU.Nodes[0].Error != "" || rep.CPU.Nodes[0].ID != "standalone" || rep.CPU.Writes != int64(rep.Load.Write.Count) ||
		rep.CPU.Client == nil || rep.CPU.Client.Error != "" {
		t.Fatalf("cpu: %+v", rep.CPU)
	}
	if !strings.Contains(out, `"cpu_us_per_write"`) || !strings.Contains(out, `"open_loop"`) {
		t.Fatalf("json lacks fields:\n%s", out)
	}

	// Text; without --rate the run is closed-loop and has no schedule.
	code, out, stderr = cli(t, "bench", "--addr", srv.URL, "--rate", "100", "--clients", "2", "--duration", "300ms")
	if code != 0 {
		t.Fatalf("bench --rate: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"open loop at 100 ops/s on 2 workers (at most 100 outstanding)", "intended send time", "send delay", "schedule: ",
		"CPU per node", "CPU µs/write", "standalone", "load generator (this process)", "process_cpu_seconds_total"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	code, out, stderr = cli(t, "bench", "--addr", srv.URL, "--clients", "2", "--duration", "200ms")
	if code != 0 || strings.Contains(out, "schedule:") || !strings.Contains(out, "CPU per node") || strings.Contains(out, "engrams:") {
		t.Fatalf("closed loop: exit %d\n%s%s", code, out, stderr)
	}

	// --batch: every write request carries N engrams; engrams/s is
	// reported and CPU is per engram (with a per-request column).
	code, out, stderr = cli(t, "bench", "--addr", srv.URL, "--clients", "2", "--duration", "300ms", "--batch", "10", "--json")
	if code != 0 || !strings.Contains(stderr, "batches of 10") {
		t.Fatalf("bench --batch: exit %d\n%s", code, stderr)
	}
	rep = bench.Report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Config.Batch != 10 || rep.Load.Write.Count == 0 || rep.Engrams != 10*int64(rep.Load.Write.Count) || rep.EngramsPerSec <= 0 ||
		len(rep.ItemErrors) != 0 || rep.CPU.Writes != rep.Engrams || rep.CPU.Ops != int64(rep.Load.Write.Count) {
		t.Fatalf("batch: %+v engrams %d (%v/s) item errors %v cpu %+v", rep.Config, rep.Engrams, rep.EngramsPerSec, rep.ItemErrors, rep.CPU)
	}
	code, out, stderr = cli(t, "bench", "--addr", srv.URL, "--clients", "2", "--duration", "300ms", "--batch", "10", "--rate", "50")
	for _, want := range []string{"in batches of 10", "engrams: ", "write (batch of 10)", "CPU µs/op", "open loop at 50 ops/s"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("bench --batch --rate: exit %d, lacks %q:\n%s%s", code, want, out, stderr)
		}
	}
}
