package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/muninndb/muninn/bench"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// BenchRollingCmd is `muninn bench rolling`: a rolling restart (issue 16,
// part 3) of a cluster of muninn processes it starts on 127.0.0.1, under a
// steady quorum write load through the Go client. Each node in turn gets
// SIGTERM (the Cortex hands off first; a Lobe drains), stays down for
// --down, and is started again; the next waits until the cluster is
// healthy. It reports failed requests, lost writes, and the longest write
// pause per node (target: 0 failed, 0 lost, ≤ 100 ms).
type BenchRollingCmd struct {
	Nodes       int           `help:"Cluster size (data voters)." default:"3"`
	HeartbeatMs int           `name:"heartbeat-ms" help:"cluster.heartbeat_ms of the nodes." default:"1000"`
	Rounds      int           `help:"How many times to restart every node in turn (Lobes first, then the Cortex)." default:"1"`
	Writers     int           `help:"Concurrent writers, each with its own Go client entering through a different node." default:"4"`
	WriteEvery  time.Duration `name:"write-every" help:"Each writer's period between writes (a slow write delays its next)." default:"10ms"`
	Down        time.Duration `help:"How long each node stays down before it is started again." default:"1s"`
	Events      bool          `help:"The writers' Go clients follow GET /v1/cluster/events (client.WithEvents); --no-events only retries." default:"true" negatable:""`
	Control     bool          `help:"After each restart, two windows as long as its restart window: one with nothing happening (idle), then one in which an unrelated standalone muninn starts on a copy of the restarted node's data directory (control); tells CPU/disk contention from a protocol effect."`
	JSON        bool          `help:"Print the report as JSON (progress still goes to stderr)."`
	Keep        bool          `help:"Keep the nodes' data directories and logs (printed at the end)."`
}

// rollingConfig checks the flags; the first bad one is named.
func (c BenchRollingCmd) validate() error {
	var errs []string
	if c.Nodes < 3 || c.Nodes > 9 {
		errs = append(errs, fmt.Sprintf("--nodes %d: use 3 to 9 (a node can be stopped only with a quorum left)", c.Nodes))
	}
	if c.HeartbeatMs < 10 || c.HeartbeatMs > 60000 {
		errs = append(errs, fmt.Sprintf("--heartbeat-ms %d: use 10 to 60000 (cluster.heartbeat_ms)", c.HeartbeatMs))
	}
	if c.Rounds < 1 || c.Rounds > 100 {
		errs = append(errs, fmt.Sprintf("--rounds %d: use 1 to 100", c.Rounds))
	}
	if c.Writers < 1 || c.Writers > 256 {
		errs = append(errs, fmt.Sprintf("--writers %d: use 1 to 256", c.Writers))
	}
	if c.WriteEvery < time.Millisecond || c.WriteEvery > 10*time.Second {
		errs = append(errs, fmt.Sprintf("--write-every %s: use 1ms to 10s", c.WriteEvery))
	}
	if c.Down < 0 || c.Down > 5*time.Minute {
		errs = append(errs, fmt.Sprintf("--down %s: use 0 to 5m", c.Down))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// RollingNode is one restart of one node.
type RollingNode struct {
	Round int    `json:"round"`
	Node  string `json:"node"`
	Role  string `json:"role"` // its role when it got SIGTERM
	// Exit is SIGTERM → the process exited (the Cortex hands off first).
	Exit time.Duration `json:"exit_ns"`
	// Healthy is the restart → every node reports a healthy cluster.
	Healthy time.Duration `json:"healthy_ns"`
	// StopPause is the longest any writer went without an acknowledgement
	// from SIGTERM to the restart; RestartPause from the restart until a
	// second after the cluster was healthy again. Pause is the larger.
	StopPause    time.Duration `json:"stop_pause_ns"`
	RestartPause time.Duration `json:"restart_pause_ns"`
	Pause        time.Duration `json:"pause_ns"`
	// RestartPauseAt is when the restart's longest pause began, from the
	// restart (the last acknowledgement before it; negative: before the
	// restart).
	RestartPauseAt time.Duration `json:"restart_pause_at_ns"`
	// Failed counts the writes that returned an error to a writer from
	// SIGTERM to the end of the round.
	Failed int `json:"failed_writes"`
	// With --control, after the restart window: IdlePause is the longest
	// pause over a window as long as the restart's with nothing
	// happening; ControlPause over the same length from the start of an
	// unrelated standalone muninn on a copy of this node's data directory
	// (the same store open and WAL replay, no cluster), which served
	// ControlServing after its start; ControlPauseAt is when that pause
	// began, from the control's start. Both zero without --control.
	IdlePause      time.Duration `json:"idle_pause_ns,omitempty"`
	ControlPause   time.Duration `json:"control_pause_ns,omitempty"`
	ControlPauseAt time.Duration `json:"control_pause_at_ns,omitempty"`
	ControlServing time.Duration `json:"control_serving_ns,omitempty"`
}

// RollingReport is the outcome of `muninn bench rolling`.
type RollingReport struct {
	Nodes       int            `json:"nodes"`
	HeartbeatMs int            `json:"heartbeat_ms"`
	Writers     int            `json:"writers"`
	WriteEvery  time.Duration  `json:"write_every_ns"`
	Down        time.Duration  `json:"down_ns"`
	Restarts    []RollingNode  `json:"restarts"`
	Attempted   int            `json:"attempted"`
	Acked       int            `json:"acked"`
	Failed      int            `json:"failed"`
	Ambiguous   int            `json:"ambiguous"`
	Errors      map[string]int `json:"errors"`
	// Lost: acknowledged, and absent from the cluster afterwards (a strong
	// list of every writer's vault on the Cortex).
	Lost    int           `json:"lost"`
	LostIDs []string      `json:"lost_ids,omitempty"`
	Pause   time.Duration `json:"max_pause_ns"`
	// Baseline is the longest write pause over baselineFor before the
	// first SIGTERM, with every node up: the machine's own jitter.
	Baseline time.Duration `json:"baseline_pause_ns"`
	Target   time.Duration `json:"pause_target_ns"`
	Control  bool          `json:"control"`
	Dir      string        `json:"dir,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// rollingTarget is issue 16's target for the longest write pause per node.
const rollingTarget = 100 * time.Millisecond

// baselineFor is how long the writers run with every node up before the
// first restart (about one restart's length), for the baseline pause.
const baselineFor = 3 * time.Second

type rollAck struct {
	start, end time.Time
	id         string
}

type rollFail struct {
	at   time.Time
	code string
	amb  bool
}

// rollWriter writes one engram every period (sequentially) until stopped.
type rollWriter struct {
	c     *client.Client
	vault string
	every time.Duration

	mu    sync.Mutex
	acks  []rollAck
	fails []rollFail
}

func (w *rollWriter) run(ctx context.Context) {
	content := bench.Value(256, 16)
	for n := 0; n < 100_000_000 && ctx.Err() == nil; n++ { // bounded by count as well as ctx
		id := client.NewID()
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := w.c.Write(wctx, apitypes.WriteRequest{Vault: w.vault, ID: id, Concept: "rolling", Content: content}, client.Durability("quorum"))
		cancel()
		end := time.Now()
		if ctx.Err() != nil {
			return // cut short by the end of the run: not counted
		}
		w.mu.Lock()
		if err != nil {
			w.fails = append(w.fails, rollFail{at: end, code: bench.ErrorCode(err), amb: errors.Is(err, client.ErrAmbiguous)})
		} else {
			w.acks = append(w.acks, rollAck{start: start, end: end, id: id})
		}
		w.mu.Unlock()
		if d := w.every - time.Since(start); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

// pause is the longest this writer went without an acknowledgement in
// [from, to]: between consecutive acknowledgements ending in it, counting
// from the last one before from. at is when that gap began (the
// acknowledgement before it).
func (w *rollWriter) pause(from, to time.Time) (gap time.Duration, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.acks, from, func(a rollAck, t time.Time) int { return a.end.Compare(t) })
	if i > 0 {
		i--
	}
	for j := i + 1; j < len(w.acks) && !w.acks[j].end.After(to); j++ {
		if g := w.acks[j].end.Sub(w.acks[j-1].end); g > gap {
			gap, at = g, w.acks[j-1].end
		}
	}
	// A write still waiting at to counts too.
	if k := len(w.acks); k > 0 && !w.acks[k-1].end.Before(from) && w.acks[k-1].end.Before(to) {
		if g := to.Sub(w.acks[k-1].end); g > gap {
			gap, at = g, w.acks[k-1].end
		}
	}
	return gap, at
}

func (w *rollWriter) failedIn(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, f := range w.fails {
		if !f.at.Before(from) && !f.at.After(to) {
			k++
		}
	}
	return k
}

func maxPause(ws []*rollWriter, from, to time.Time) time.Duration {
	p, _ := maxPauseAt(ws, from, to)
	return p
}

// maxPauseAt is maxPause and when that pause began, as an offset from
// from (negative when it began before from).
func maxPauseAt(ws []*rollWriter, from, to time.Time) (time.Duration, time.Duration) {
	var p, off time.Duration
	for _, w := range ws {
		if g, at := w.pause(from, to); g > p {
			p, off = g, at.Sub(from)
		}
	}
	return p, off
}

func (c BenchRollingCmd) Run(g *Globals) error {
	if err := c.validate(); err != nil {
		return usageError{err}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the nodes: %w", err)
	}
	ctx, cancel := g.interruptible()
	defer cancel()
	rep, err := c.run(ctx, exe, g.Err)
	if rep == nil {
		return err
	}
	return printReport(g, rep, c.JSON, err)
}

// sigterm sends SIGTERM to node i by pid and waits (bounded) for it to
// exit.
func sigterm(pc *bench.ProcCluster, i int, timeout time.Duration) (time.Duration, error) {
	p := pc.Nodes[i]
	pid := p.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", p.ID)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return 0, err
	}
	at := time.Now()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM to %s (pid %d): %w", p.ID, pid, err)
	}
	for p.Running() {
		if time.Since(at) > timeout {
			return time.Since(at), fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM; its log ends with:\n%s", p.ID, pid, timeout, pc.TailLog(i, 1500))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(at), nil
}

func (c BenchRollingCmd) run(ctx context.Context, exe string, log io.Writer) (*RollingReport, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) }
	pc, err := bench.NewProcCluster(exe, c.Nodes, c.HeartbeatMs, false)
	if err != nil {
		return nil, err
	}
	defer pc.Stop(c.Keep)
	rep := &RollingReport{Nodes: c.Nodes, HeartbeatMs: c.HeartbeatMs, Writers: c.Writers, WriteEvery: c.WriteEvery, Down: c.Down,
		Target: rollingTarget, Errors: map[string]int{}, Restarts: []RollingNode{}, Control: c.Control}
	if c.Keep {
		rep.Dir = pc.Root
	}
	logf("starting %d nodes on 127.0.0.1 (heartbeat %dms, data and logs in %s)", c.Nodes, c.HeartbeatMs, pc.Root)
	if err := pc.StartAll(); err != nil {
		return nil, err
	}
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	fail := func(err error) (*RollingReport, error) {
		rep.Error = err.Error()
		return rep, err
	}

	urls := pc.URLs()
	var ws []*rollWriter
	for i := range c.Writers {
		cl := client.New(urls[i%len(urls)], client.WithEndpoints(urls...), client.WithHTTPClient(bench.HTTPClient(4)),
			client.WithRetryBudget(30*time.Second), client.WithEvents(c.Events))
		ws = append(ws, &rollWriter{c: cl, vault: fmt.Sprintf("rolling-%d", i), every: c.WriteEvery})
	}
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	logf("%d writers, one write each every %s (quorum durability); restarting each node in turn, %d round(s)", c.Writers, c.WriteEvery, c.Rounds)
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	// Steady writes first: their longest pause, with no restart, is the
	// baseline the pauses below compare with (this machine's jitter).
	steady := time.Now()
	sleep(baselineFor)
	rep.Baseline = maxPause(ws, steady.Add(100*time.Millisecond), time.Now())
	logf("baseline: longest write pause %s over %s with every node up", ms(rep.Baseline), baselineFor)

	for round := 1; round <= c.Rounds && ctx.Err() == nil; round++ {
		cx, _, err := pc.Cortex(ctx)
		if err != nil {
			return fail(err)
		}
		var order []int
		for i := range pc.Nodes {
			if i != cx {
				order = append(order, i)
			}
		}
		order = append(order, cx)
		for _, i := range order {
			if ctx.Err() != nil {
				break
			}
			role := "lobe"
			if now, _, err := pc.Cortex(ctx); err == nil && now == i {
				role = "cortex"
			}
			rn := RollingNode{Round: round, Node: pc.Nodes[i].ID, Role: role}
			t0 := time.Now()
			if rn.Exit, err = sigterm(pc, i, 30*time.Second); err != nil {
				return fail(err)
			}
			down := time.Now()
			var cc *bench.ProcCluster // the control's standalone node, on a copy of this one's stopped data
			if c.Control {
				if cc, err = controlCopy(exe, pc.Nodes[i].Dir); err != nil {
					return fail(err)
				}
				defer cc.Stop(false)
			}
			sleep(c.Down - time.Since(down))
			restart := time.Now()
			if err := pc.Start(i); err != nil {
				return fail(err)
			}
			if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
				return fail(fmt.Errorf("after restarting %s: %w", rn.Node, err))
			}
			rn.Healthy = time.Since(restart)
			sleep(time.Second) // writes settle with every node back
			end := time.Now()
			rn.StopPause = maxPause(ws, t0, restart)
			rn.RestartPause, rn.RestartPauseAt = maxPauseAt(ws, restart, end)
			rn.Pause = max(rn.StopPause, rn.RestartPause)
			if c.Control {
				// Same-length windows, interleaved with the restart: the
				// machine's jitter now, then a process start without a
				// cluster.
				span := end.Sub(restart)
				idle := time.Now()
				sleep(span)
				rn.IdlePause = maxPause(ws, idle, time.Now())
				if rn.ControlPause, rn.ControlPauseAt, rn.ControlServing, err = controlStart(ctx, cc, span, sleep, ws); err != nil {
					return fail(fmt.Errorf("control start after %s: %w", rn.Node, err))
				}
				end = time.Now()
			}
			for _, w := range ws {
				rn.Failed += w.failedIn(t0, end)
			}
			logf("round %d: %s (%s) exited %s after SIGTERM, healthy %s after its restart; longest write pause %s (stop %s, restart %s beginning %s after the restart); %d failed",
				round, rn.Node, role, ms(rn.Exit), ms(rn.Healthy), ms(rn.Pause), ms(rn.StopPause), ms(rn.RestartPause), ms(rn.RestartPauseAt), rn.Failed)
			if c.Control {
				logf("round %d: control for %s: longest write pause %s with nothing happening, %s across a standalone start on a copy of its data (beginning %s after its start; serving after %s)",
					round, rn.Node, ms(rn.IdlePause), ms(rn.ControlPause), ms(rn.ControlPauseAt), ms(rn.ControlServing))
			}
			rep.Restarts = append(rep.Restarts, rn)
			rep.Pause = max(rep.Pause, rn.Pause)
		}
	}
	stopWriters()
	wg.Wait()
	for _, w := range ws {
		w.c.Close()
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}

	// What survived: every writer's vault listed with strong reads.
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return fail(err)
	}
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	lc := client.New(urls[0], client.WithEndpoints(urls...), client.WithHTTPClient(bench.HTTPClient(2)))
	defer lc.Close()
	for _, w := range ws {
		present := map[string]bool{}
		cursor := ""
		for page := 0; page < 100_000; page++ {
			lr, err := lc.List(vctx, w.vault, client.ListOptions{Limit: 1000, Cursor: cursor}, client.Consistency("strong"))
			if err != nil {
				return fail(fmt.Errorf("listing vault %s: %w", w.vault, err))
			}
			for _, e := range lr.Engrams {
				present[e.ID] = true
			}
			if cursor = lr.NextCursor; cursor == "" {
				break
			}
		}
		w.mu.Lock()
		rep.Attempted += len(w.acks) + len(w.fails)
		rep.Acked += len(w.acks)
		rep.Failed += len(w.fails)
		for _, f := range w.fails {
			rep.Errors[f.code]++
			if f.amb {
				rep.Ambiguous++
			}
		}
		for _, a := range w.acks {
			if !present[a.id] {
				rep.Lost++
				if len(rep.LostIDs) < 20 {
					rep.LostIDs = append(rep.LostIDs, a.id)
				}
			}
		}
		w.mu.Unlock()
	}
	return rep, nil
}

// controlCopy prepares the control: a standalone node (its own temp
// directory, no cluster) whose data directory is a copy of dataDir, taken
// while that node is stopped (the same store to open and WAL to replay).
func controlCopy(exe, dataDir string) (*bench.ProcCluster, error) {
	cc, err := bench.NewProcCluster(exe, 1, 0, true)
	if err != nil {
		return nil, err
	}
	if err := copyDir(dataDir, cc.Nodes[0].Dir); err != nil {
		cc.Stop(false)
		return nil, fmt.Errorf("copying %s for the control: %w", dataDir, err)
	}
	return cc, nil
}

// controlStart starts the control's standalone muninn. It returns the
// longest write pause over span from that start, and how long the process
// took to answer HTTP. The process gets SIGTERM after the window.
func controlStart(ctx context.Context, cc *bench.ProcCluster, span time.Duration, sleep func(time.Duration), ws []*rollWriter) (pause, pauseAt, serving time.Duration, err error) {
	at := time.Now()
	if err := cc.Start(0); err != nil {
		return 0, 0, 0, err
	}
	hc := &http.Client{Timeout: time.Second}
	for deadline := at.Add(30 * time.Second); serving == 0; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("the control process did not answer HTTP within 30s; its log ends with:\n%s", cc.TailLog(0, 1500))
		}
		if res, err := hc.Get(cc.Nodes[0].URL() + "/v1/cluster/health"); err == nil {
			res.Body.Close()
			serving = time.Since(at) // any answer: it has opened its store and serves
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rest := span - time.Since(at); rest > 0 {
		sleep(rest)
	}
	pause, pauseAt = maxPauseAt(ws, at, at.Add(span))
	if _, err := sigterm(cc, 0, 30*time.Second); err != nil {
		return 0, 0, 0, err
	}
	return pause, pauseAt, serving, nil
}

// copyDir copies the regular files under src to dst (created), keeping the
// tree.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// median of ds (0 when empty).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(10 * time.Millisecond).String()
}

// Verdict is an error when a write failed or an acknowledged write was
// lost. The pause target is reported, not enforced (it depends on the
// machine).
func (r *RollingReport) Verdict() error {
	var bad []string
	if r.Failed > 0 {
		bad = append(bad, fmt.Sprintf("%d write(s) failed (%s)", r.Failed, errorsText(r.Errors)))
	}
	if r.Lost > 0 {
		bad = append(bad, fmt.Sprintf("%d acknowledged write(s) lost (e.g. %s)", r.Lost, strings.Join(r.LostIDs, ", ")))
	}
	if len(bad) > 0 {
		return errors.New("rolling restart: " + strings.Join(bad, "; "))
	}
	return nil
}

func errorsText(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the report.
func (r *RollingReport) WriteText(out io.Writer) {
	fmt.Fprintf(out, "rolling restart: %d nodes, heartbeat %dms, %d writers every %s (quorum), each node down %s\n",
		r.Nodes, r.HeartbeatMs, r.Writers, r.WriteEvery, r.Down)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := "round\tnode\trole\tsigterm→exit\thealthy after\tpause (stop)\tpause (restart)"
	if r.Control {
		head += "\tpause (idle)\tpause (control)"
	}
	fmt.Fprintln(tw, head+"\tfailed")
	for _, n := range r.Restarts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s", n.Round, n.Node, n.Role, ms(n.Exit), ms(n.Healthy), ms(n.StopPause), ms(n.RestartPause))
		if r.Control {
			fmt.Fprintf(tw, "\t%s\t%s", ms(n.IdlePause), ms(n.ControlPause))
		}
		fmt.Fprintf(tw, "\t%d\n", n.Failed)
	}
	tw.Flush()
	fmt.Fprintf(out, "writes: %d attempted, %d acknowledged, %d failed (%d ambiguous), %d lost\n", r.Attempted, r.Acked, r.Failed, r.Ambiguous, r.Lost)
	if r.Failed > 0 {
		fmt.Fprintf(out, "errors: %s\n", errorsText(r.Errors))
	}
	met := "met"
	if r.Pause > r.Target {
		met = "NOT met"
	}
	fmt.Fprintf(out, "longest write pause: %s (target ≤ %s per node: %s); with no restart, over %s before the first: %s\n",
		ms(r.Pause), ms(r.Target), met, baselineFor, ms(r.Baseline))
	if r.Control && len(r.Restarts) > 0 {
		var st, rs, id, ct []time.Duration
		for _, n := range r.Restarts {
			st, rs, id, ct = append(st, n.StopPause), append(rs, n.RestartPause), append(id, n.IdlePause), append(ct, n.ControlPause)
		}
		fmt.Fprintf(out, "median pause per node: stop %s, restart %s, idle %s, control (a standalone start, no cluster) %s\n",
			ms(median(st)), ms(median(rs)), ms(median(id)), ms(median(ct)))
	}
	if r.Error != "" {
		fmt.Fprintf(out, "stopped early: %s\n", r.Error)
	}
	if r.Dir != "" {
		fmt.Fprintf(out, "data and logs kept in %s\n", r.Dir)
	}
}
