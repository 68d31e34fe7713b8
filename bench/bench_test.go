package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/node"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, ms(i))
	}
	for p, want := range map[float64]time.Duration{0.5: ms(50), 0.9: ms(90), 0.99: ms(99), 0.999: ms(100), 1: ms(100), 0.001: ms(1), 0: ms(1)} {
		if got := Percentile(s, p); got != want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty input must give 0")
	}
	if got := Percentile([]time.Duration{ms(7)}, 0.99); got != ms(7) {
		t.Errorf("one sample: %v", got)
	}
	// 1000 samples: p99.9 is the 999th, not the max.
	s = s[:0]
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	if got := Percentile(s, 0.999); got != 999 {
		t.Errorf("p99.9 of 1..1000 = %v", got)
	}
}

func TestSummarize(t *testing.T) {
	in := []time.Duration{ms(5), ms(1), ms(3), ms(2), ms(4)}
	s := Summarize(in)
	if s.Count != 5 || s.P50 != ms(3) || s.P90 != ms(5) || s.Max != ms(5) || s.Mean != ms(3) {
		t.Fatalf("%+v", s)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("empty summary")
	}
	b, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b), `"p50_ms":3`) || !strings.Contains(string(b), `"p50_ns":3000000`) {
		t.Fatalf("json %s %v", b, err)
	}
	is := SummarizeInts([]int64{0, 0, 0, 9, 1})
	if is.Count != 5 || is.P50 != 0 || is.P99 != 9 || is.Max != 9 {
		t.Fatalf("%+v", is)
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0ms", 420 * time.Microsecond: "0.42ms", 3140 * time.Microsecond: "3.1ms", ms(250): "250ms", ms(3520): "3.52s"} {
		if got := Ms(d); got != want {
			t.Errorf("Ms(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q", n, got)
		}
	}
	if got := ErrorsLine(map[string]int64{"unavailable": 3, "not_found": 12, "conflict": 3}); got != "not_found 12, conflict 3, unavailable 3" {
		t.Errorf("ErrorsLine: %q", got)
	}
	if ErrorsLine(nil) != "none" {
		t.Error("no errors")
	}
	line := ProgressLine(Tick{Elapsed: 3 * time.Second, Interval: time.Second, Writes: 4000, Reads: 512, Errors: 2}, 1)
	if line != "[  3s] 4,512 ops/s (writes 4,000, reads 512)  errors 2  lag max 1ms" {
		t.Errorf("progress %q", line)
	}
	if strings.Contains(ProgressLine(Tick{Interval: time.Second}, -1), "lag") {
		t.Error("no lag sampled: no lag shown")
	}
}

func TestErrorCode(t *testing.T) {
	cases := map[string]error{
		"unavailable":        fmt.Errorf("w: %w", &client.Error{Code: "unavailable"}),
		"timeout":            context.DeadlineExceeded,
		"canceled":           context.Canceled,
		"connection_refused": fmt.Errorf("dial: %w", syscall.ECONNREFUSED),
		"no_ids":             errNoIDs,
		"other":              errors.New("boom"),
	}
	for want, err := range cases {
		if got := ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Clients = 0 }, "--clients 0"},
		{func(c *Config) { c.Duration = time.Millisecond }, "--duration 1ms"},
		{func(c *Config) { c.ValueSize = 70000 }, "--value-size 70000"},
		{func(c *Config) { c.Writes = 1.5 }, "--writes 1.5"},
		{func(c *Config) { c.Durability = "all" }, `--durability "all"`},
		{func(c *Config) { c.Consistency = "bounded" }, "needs --max-lag-ms"},
		{func(c *Config) { c.MaxLagMs = 5 }, "only with --consistency bounded"},
		{func(c *Config) { c.Consistency = "linear" }, `--consistency "linear"`},
		{func(c *Config) { c.LagEvery = time.Second }, "50ms to 100ms"},
		{func(c *Config) { c.Rate = -1 }, "--rate -1"},
		{func(c *Config) { c.Rate = 0.05 }, "schedules no operation"},
		{func(c *Config) { c.MaxOutstanding = 5 }, "goes only with --rate"},
		{func(c *Config) { c.Batch = 1001 }, "--batch 1001"},
		{func(c *Config) { c.Batch, c.ValueSize = 1000, 60000 }, "limit of a batch request"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	fc := FailoverConfig{Exe: "x", Nodes: 2, HeartbeatMs: 5, Kills: 0, Graceful: 0}
	err := fc.Validate()
	for _, want := range []string{"--nodes 2", "--heartbeat-ms 5", "nothing to measure"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("failover config: want %q in %v", want, err)
		}
	}
}

func TestLagSampler(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	i := func(v int64) *int64 { return &v }
	s := newLagSampler(nil, 75*time.Millisecond)
	if s.takeMax() != -1 {
		t.Fatal("nothing sampled yet")
	}
	for k := range 10 {
		s.record(apitypes.Status{View: "cortex", Cortex: "a", LastSeq: 100, Members: []apitypes.MemberStatus{
			{ID: "a", Role: "cortex", LastSeq: u(100)},
			{ID: "b", Role: "lobe", LastSeq: u(100 - uint64(k)), LagMs: i(int64(k))},
			{ID: "c", Role: "lobe", LastSeq: u(90)},
			{ID: "s", Role: "sentinel", Kind: "sentinel"},
		}}, nil)
	}
	s.record(apitypes.Status{View: "local"}, nil)
	s.record(apitypes.Status{}, errors.New("down"))
	if s.takeMax() != 9 {
		t.Fatal("max lag")
	}
	r := s.report()
	if r.Samples != 10 || r.Failed != 2 || len(r.Members) != 2 {
		t.Fatalf("%+v", r)
	}
	b, cm := r.Members[0], r.Members[1]
	if b.ID != "b" || b.LagMs.P50 != 4 || b.LagMs.Max != 9 || b.SeqBehind.Max != 9 || b.Unknown != 0 {
		t.Fatalf("b: %+v", b)
	}
	if cm.ID != "c" || cm.Unknown != 10 || cm.LagMs.Count != 0 || cm.SeqBehind.P50 != 10 {
		t.Fatalf("c: %+v", cm)
	}
}

func TestWriterGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := &timedWriter{}
	for _, a := range []struct {
		off   int
		epoch uint64
	}{{0, 3}, {10, 3}, {20, 3}, {300, 3}, {320, 4}, {330, 0}, {340, 4}} {
		w.acks = append(w.acks, ackRec{at: t0.Add(ms(a.off)), epoch: a.epoch})
	}
	if at, ok := w.firstAckAfter(t0.Add(ms(15)), 3); !ok || !at.Equal(t0.Add(ms(320))) {
		t.Fatalf("first ack from a later epoch: %v %v", at, ok)
	}
	// Acks of the killed Cortex's epoch do not count; epoch 0 (a retry
	// found the write applied) does.
	if at, ok := w.firstAckAfter(t0.Add(ms(325)), 4); !ok || !at.Equal(t0.Add(ms(330))) {
		t.Fatalf("epoch-0 ack: %v %v", at, ok)
	}
	if _, ok := w.firstAckAfter(t0.Add(ms(335)), 4); ok {
		t.Fatal("an ack of the old epoch must not count")
	}
	if got := w.maxGap(t0.Add(ms(15)), t0.Add(ms(400))); got != ms(280) {
		t.Fatalf("maxGap %v", got)
	}
	if got := w.maxGap(t0.Add(ms(305)), t0.Add(ms(400))); got != ms(20) {
		t.Fatalf("maxGap after %v", got)
	}
}

// lateHandler serves h once set (the API needs its own URL first).
type lateHandler struct{ h atomic.Pointer[api.Server] }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// TestRunStandalone: a one-second `muninn bench` against an in-process
// standalone node (shell/node + shell/api over httptest) writes and reads
// without errors and reports both.
func TestRunStandalone(t *testing.T) {
	lh := &lateHandler{}
	srv := httptest.NewServer(lh)
	defer srv.Close()
	n, err := node.Start(node.Options{DataDir: t.TempDir(), APIAddr: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := api.New(n, api.Options{})
	defer a.Close()
	lh.h.Store(a)
	for deadline := time.Now().Add(5 * time.Second); n.Status().Core.Role != core.RoleCortex; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the standalone node did not become its own Cortex")
		}
	}

	cfg := DefaultConfig()
	cfg.Addr, cfg.Clients, cfg.Duration, cfg.Writes, cfg.ValueSize = srv.URL, 4, time.Second, 0.5, 100
	var ticks atomic.Int32
	rep, err := Run(context.Background(), cfg, func(Tick, int64) { ticks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Load
	if l.Write.Count == 0 || l.Read.Count == 0 || l.ErrorCount != 0 || rep.Prefill == 0 {
		t.Fatalf("writes %d reads %d errors %v prefill %d", l.Write.Count, l.Read.Count, l.ErrorSamples, rep.Prefill)
	}
	if rep.Target.Cluster || rep.Target.Cortex != "standalone" || len(rep.Target.ReadFrom) != 1 {
		t.Fatalf("target %+v", rep.Target)
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	// The node's /metrics has the process collector: its CPU is reported.
	if len(rep.CPU.Nodes) != 1 || rep.CPU.Nodes[0].Error != "" || rep.CPU.Nodes[0].CPUSeconds <= 0 || rep.CPU.Writes != int64(l.Write.Count) {
		t.Fatalf("cpu %+v", rep.CPU)
	}
	for _, want := range []string{"(standalone)", "throughput:", "write", "read", "p99.9", "replication lag: none", "errors: none", "CPU per node", "CPU µs/op"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	// The engrams were written with the value size asked for.
	c := client.New(srv.URL)
	lr, err := c.List(context.Background(), "bench", client.ListOptions{Limit: 1})
	if err != nil || len(lr.Engrams) != 1 || len(lr.Engrams[0].Content) != 100 {
		t.Fatalf("list: %v %+v", err, lr)
	}
	t.Logf("%d ticks; %.0f ops/s (not asserted)", ticks.Load(), l.OpsPerSec)
}
