package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// FailoverConfig is one `muninn bench failover` run.
type FailoverConfig struct {
	// Exe is the muninn binary to start the nodes from (os.Executable).
	Exe         string `json:"-"`
	Nodes       int    `json:"nodes"`
	HeartbeatMs int    `json:"heartbeat_ms"`
	Kills       int    `json:"kills"`
	Graceful    int    `json:"graceful"`
	// Stops SIGSTOPs the Cortex for StopFor (default 2 s), then SIGCONTs
	// it: a frozen process, which must not be taken for a crash.
	Stops   int           `json:"stops"`
	StopFor time.Duration `json:"stop_for_ns"`
	// Local adds a second writer with local durability.
	Local bool `json:"local_writer"`
	// Events: the writers follow the cluster event stream
	// (client.WithEvents) instead of only retrying.
	Events bool `json:"client_events"`
	// Keep keeps the data directories and logs.
	Keep bool `json:"keep"`
	// WriteEvery is the writers' period (default 10 ms).
	WriteEvery time.Duration `json:"write_every_ns"`
	// Log receives progress lines.
	Log io.Writer `json:"-"`
}

// Validate explains the first bad setting.
func (c FailoverConfig) Validate() error {
	var errs []string
	if c.Nodes < 3 || c.Nodes > 9 {
		errs = append(errs, fmt.Sprintf("--nodes %d: use 3 to 9 (a Cortex can be killed only with a quorum left)", c.Nodes))
	}
	if c.HeartbeatMs < 10 || c.HeartbeatMs > 60000 {
		errs = append(errs, fmt.Sprintf("--heartbeat-ms %d: use 10 to 60000 (cluster.heartbeat_ms)", c.HeartbeatMs))
	}
	if c.Kills < 0 || c.Kills > 100 {
		errs = append(errs, fmt.Sprintf("--kills %d: use 0 to 100", c.Kills))
	}
	if c.Graceful < 0 || c.Graceful > 100 {
		errs = append(errs, fmt.Sprintf("--graceful %d: use 0 to 100", c.Graceful))
	}
	if c.Stops < 0 || c.Stops > 100 {
		errs = append(errs, fmt.Sprintf("--stop %d: use 0 to 100", c.Stops))
	}
	if c.StopFor != 0 && (c.StopFor < 100*time.Millisecond || c.StopFor > time.Minute) {
		errs = append(errs, fmt.Sprintf("--stop-for %s: use 100ms to 1m", c.StopFor))
	}
	if c.Kills == 0 && c.Graceful == 0 && c.Stops == 0 {
		errs = append(errs, "nothing to measure: --kills, --graceful and --stop are all 0")
	}
	if c.Exe == "" {
		errs = append(errs, "the muninn binary to start is not known")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// KillResult is one SIGKILL of the Cortex.
type KillResult struct {
	N        int    `json:"n"`
	Victim   string `json:"victim"`
	OldEpoch uint64 `json:"old_epoch"`
	// Elected is kill → a surviving node names a Cortex of a later epoch
	// (polling GET /v1/cluster/info every 10 ms).
	Elected time.Duration `json:"elected_ns"`
	// FirstWrite is kill → the first quorum write acknowledged by the new
	// Cortex, as the writer (shell/client) saw it.
	FirstWrite time.Duration `json:"first_write_ns"`
	// FirstLocalWrite is the same for the local writer.
	FirstLocalWrite time.Duration `json:"first_local_write_ns,omitempty"`
	// Event is kill → the first subscriber of GET /v1/cluster/events on a
	// surviving node receives cortex_changed (or elected) naming a new
	// Cortex; EventType says which. 0 when the endpoint is absent.
	Event     time.Duration `json:"event_ns,omitempty"`
	EventType string        `json:"event_type,omitempty"`
	// Writes and Failed count the writes (every writer) that completed
	// from the kill to the end of the trial, and those that returned an
	// error to the client, ambiguous or not.
	Writes   int  `json:"writes"`
	Failed   int  `json:"failed_writes"`
	TimedOut bool `json:"timed_out"`
}

// StopResult is one SIGSTOP of the Cortex, resumed with SIGCONT.
type StopResult struct {
	N        int    `json:"n"`
	Victim   string `json:"victim"`
	OldEpoch uint64 `json:"old_epoch"`
	// StoppedFor is SIGSTOP → SIGCONT as sent.
	StoppedFor time.Duration `json:"stopped_for_ns"`
	// NewEpoch is the highest epoch a node reports once the cluster is
	// healthy again, a second after SIGCONT at least; Election is whether
	// it moved (a frozen Cortex within the SDOWN window should not).
	NewEpoch uint64 `json:"new_epoch"`
	Election bool   `json:"election"`
	Cortex   string `json:"cortex_after"`
	// Pause is the longest gap between acknowledged quorum writes from
	// the SIGSTOP until the cluster was checked.
	Pause  time.Duration `json:"pause_ns"`
	Writes int           `json:"writes"`
	Failed int           `json:"failed_writes"`
	Error  string        `json:"error,omitempty"`
}

// HandoffResult is one graceful failover.
type HandoffResult struct {
	N     int    `json:"n"`
	From  string `json:"from"`
	To    string `json:"to"`
	Epoch uint64 `json:"epoch"`
	// Call is how long POST /v1/cluster/failover took.
	Call time.Duration `json:"call_ns"`
	// Pause is the longest gap between consecutive acknowledged quorum
	// writes from just before the call until 1 s after it returned.
	Pause time.Duration `json:"pause_ns"`
	Error string        `json:"error,omitempty"`
}

// WriteCounts are a writer's totals and what survived.
type WriteCounts struct {
	Durability string `json:"durability"`
	Attempted  int    `json:"attempted"`
	Acked      int    `json:"acked"`
	// Failed writes returned an error to the writer (not acknowledged;
	// they may or may not have been applied, and are not "lost").
	Failed int `json:"failed"`
	// Ambiguous of the failed: the client could not know whether they
	// took effect (client.ErrAmbiguous).
	Ambiguous int              `json:"ambiguous"`
	Errors    map[string]int64 `json:"errors"`
	Survived  int              `json:"survived"`
	// Quarantined: acknowledged, absent from the cluster, and in a node's
	// quarantine (GET /v1/cluster/quarantine): the documented fate of a local
	// write the Cortex acknowledged but did not replicate before dying.
	Quarantined int `json:"quarantined"`
	// Lost: acknowledged, absent, and in no quarantine.
	Lost    int      `json:"lost"`
	LostIDs []string `json:"lost_ids,omitempty"`
}

// FailoverReport is the outcome of `muninn bench failover`.
type FailoverReport struct {
	Config FailoverConfig `json:"config"`
	// Bound is the target for kill → first write, p99: with crash hints
	// (rule 18) max(heartbeat, 250 ms) — 1 s at the default heartbeat,
	// 250 ms at 100 ms. A silent failure needs 3 × heartbeat + 100 ms.
	Bound            time.Duration `json:"bound_ns"`
	Kills            []KillResult  `json:"kills"`
	KillToWrite      Summary       `json:"kill_to_first_write"`
	KillToLocalWrite Summary       `json:"kill_to_first_local_write"`
	KillToElect      Summary       `json:"kill_to_elected"`
	// KillToEvent: kill → a subscriber of GET /v1/cluster/events on a
	// survivor hears of the new Cortex; EventsNote says why it is empty.
	KillToEvent  Summary         `json:"kill_to_event"`
	EventsNote   string          `json:"events_note,omitempty"`
	MinToWrite   time.Duration   `json:"kill_to_first_write_min_ns"`
	Stops        []StopResult    `json:"stops"`
	StopPause    Summary         `json:"stop_pause"`
	StopElection int             `json:"stop_elections"`
	Handoffs     []HandoffResult `json:"handoffs"`
	HandoffPause Summary         `json:"handoff_pause"`
	Quorum       WriteCounts     `json:"quorum_writes"`
	Local        *WriteCounts    `json:"local_writes,omitempty"`
	// Writes and Failed total every writer over the whole run: writes
	// completed, and those that returned an error (ambiguous or not).
	Writes int    `json:"writes"`
	Failed int    `json:"failed_writes"`
	Dir    string `json:"dir,omitempty"`
	Error  string `json:"error,omitempty"`
}

type ackRec struct {
	at    time.Time
	id    string
	epoch uint64
}

// timedWriter writes one engram every period until stopped.
type timedWriter struct {
	c     *client.Client
	dur   string
	vault string
	every time.Duration

	mu        sync.Mutex
	acks      []ackRec
	fails     []time.Time // when each failed write returned
	attempts  int
	failed    int
	ambiguous int
	errs      map[string]int64
}

func (w *timedWriter) run(ctx context.Context) {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	content := Value(256, 42)
	for n := 0; n < 10_000_000; n++ { // bounded by count as well as ctx
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := client.NewID()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := w.c.Write(wctx, apitypes.WriteRequest{Vault: w.vault, ID: id, Concept: "failover", Content: content}, client.Durability(w.dur))
		cancel()
		now := time.Now()
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.attempts++
		if err != nil {
			w.failed++
			w.fails = append(w.fails, now)
			if errors.Is(err, client.ErrAmbiguous) {
				w.ambiguous++
			}
			w.errs[ErrorCode(err)]++
		} else {
			w.acks = append(w.acks, ackRec{at: now, id: id, epoch: res.Epoch})
		}
		w.mu.Unlock()
	}
}

// firstAckAfter returns the first acknowledgement received after t that
// did not come from an epoch at or before old (epoch 0: a retry found the
// write already applied, answered by whoever serves writes now).
func (w *timedWriter) firstAckAfter(t time.Time, old uint64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.acks, t, func(a ackRec, t time.Time) int { return a.at.Compare(t) })
	for ; i < len(w.acks); i++ {
		a := w.acks[i]
		if a.epoch == 0 || a.epoch > old {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// maxGap is the longest interval between consecutive acknowledgements
// received in [from, to], counting from the last one before from.
func (w *timedWriter) maxGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.acks, from, func(a ackRec, t time.Time) int { return a.at.Compare(t) })
	if i > 0 {
		i--
	}
	var gap time.Duration
	for j := i + 1; j < len(w.acks) && !w.acks[j-1].at.After(to); j++ {
		gap = max(gap, w.acks[j].at.Sub(w.acks[j-1].at))
	}
	return gap
}

func (w *timedWriter) counts() WriteCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WriteCounts{Durability: w.dur, Attempted: w.attempts, Acked: len(w.acks), Failed: w.failed, Ambiguous: w.ambiguous, Errors: maps.Clone(w.errs)}
}

// completedIn counts the writes that returned in [from, to], and those of
// them that failed.
func (w *timedWriter) completedIn(from, to time.Time) (writes, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in := func(t time.Time) bool { return !t.Before(from) && !t.After(to) }
	for _, a := range w.acks {
		if in(a.at) {
			writes++
		}
	}
	for _, f := range w.fails {
		if in(f) {
			writes++
			failed++
		}
	}
	return writes, failed
}

// completedIn sums timedWriter.completedIn over writers.
func completedIn(ws []*timedWriter, from, to time.Time) (writes, failed int) {
	for _, w := range ws {
		n, f := w.completedIn(from, to)
		writes, failed = writes+n, failed+f
	}
	return writes, failed
}

func (c FailoverConfig) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Failover runs `muninn bench failover`. It returns a report whenever the
// cluster started (with Error set if the run stopped early) and an error
// when it could not run at all or stopped early.
func Failover(ctx context.Context, cfg FailoverConfig) (*FailoverReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WriteEvery == 0 {
		cfg.WriteEvery = 10 * time.Millisecond
	}
	if cfg.StopFor == 0 {
		cfg.StopFor = 2 * time.Second
	}
	hb := time.Duration(cfg.HeartbeatMs) * time.Millisecond
	pc, err := NewProcCluster(cfg.Exe, cfg.Nodes, cfg.HeartbeatMs, false)
	if err != nil {
		return nil, err
	}
	defer pc.Stop(cfg.Keep)
	rep := &FailoverReport{Config: cfg, Bound: max(hb, 250*time.Millisecond)}
	if cfg.Keep {
		rep.Dir = pc.Root
	}
	cfg.logf("starting %d nodes on 127.0.0.1 (heartbeat %s, data and logs in %s)", cfg.Nodes, hb, pc.Root)
	if err := pc.StartAll(); err != nil {
		return nil, err
	}
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	fail := func(err error) (*FailoverReport, error) {
		rep.Error = err.Error()
		return rep, err
	}

	urls := pc.URLs()
	newWriter := func(dur string) *timedWriter {
		c := client.New(urls[0], client.WithEndpoints(urls...), client.WithHTTPClient(HTTPClient(4)), client.WithRetryBudget(30*time.Second), client.WithEvents(cfg.Events))
		return &timedWriter{c: c, dur: dur, vault: "failover-" + dur, every: cfg.WriteEvery, errs: map[string]int64{}}
	}
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var wg sync.WaitGroup
	writers := []*timedWriter{newWriter("quorum")}
	if cfg.Local {
		writers = append(writers, newWriter("local"))
	}
	for _, w := range writers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	qw := writers[0]
	time.Sleep(time.Second)
	events := &eventsProbe{}
	defer func() { rep.EventsNote = events.note }()

	for k := 1; k <= cfg.Kills; k++ {
		if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
			return fail(err)
		}
		time.Sleep(500 * time.Millisecond) // steady writes before the kill
		idx, info, err := pc.Cortex(ctx)
		if err != nil {
			return fail(err)
		}
		kr := KillResult{N: k, Victim: pc.Nodes[idx].ID, OldEpoch: info.Epoch}
		watch := events.watch(ctx, pc, idx, info.Epoch)
		t0, err := pc.Kill(idx)
		if err != nil {
			watch.stop()
			return fail(err)
		}
		deadline := t0.Add(30 * time.Second)
		var elected, wrote, wroteLocal, evented bool
		// The event is waited for at most 10 s: a stream that broke must
		// not hold up the run.
		waitEvent := func() bool { return watch != nil && !evented && time.Since(t0) < 10*time.Second }
		for time.Now().Before(deadline) && ctx.Err() == nil && (!elected || !wrote || (cfg.Local && !wroteLocal) || waitEvent()) {
			if !elected && pc.NewCortexSince(ctx, idx, info.Epoch) {
				elected, kr.Elected = true, time.Since(t0)
			}
			if watch != nil && !evented {
				if at, typ, ok := watch.first(); ok {
					evented, kr.Event, kr.EventType = true, at.Sub(t0), typ
				}
			}
			if !wrote {
				if at, ok := qw.firstAckAfter(t0, info.Epoch); ok {
					wrote, kr.FirstWrite = true, at.Sub(t0)
				}
			}
			if cfg.Local && !wroteLocal {
				if at, ok := writers[1].firstAckAfter(t0, info.Epoch); ok {
					wroteLocal, kr.FirstLocalWrite = true, at.Sub(t0)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		events.done(watch, cfg)
		kr.TimedOut = !wrote
		kr.Writes, kr.Failed = completedIn(writers, t0, time.Now())
		rep.Kills = append(rep.Kills, kr)
		ev := ""
		if evented {
			ev = fmt.Sprintf(", %s event after %s", kr.EventType, Ms(kr.Event))
		}
		cfg.logf("kill %d/%d: SIGKILL %s (Cortex, epoch %d): new Cortex named after %s%s, first quorum write after %s, %d of %d writes failed%s",
			k, cfg.Kills, kr.Victim, kr.OldEpoch, Ms(kr.Elected), ev, Ms(kr.FirstWrite), kr.Failed, kr.Writes, map[bool]string{true: " (TIMED OUT)"}[kr.TimedOut])
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if err := pc.Start(idx); err != nil {
			return fail(err)
		}
	}

	for n := 1; n <= cfg.Stops; n++ {
		sr, err := stopTrial(ctx, cfg, pc, writers, n)
		if err != nil {
			return fail(err)
		}
		rep.Stops = append(rep.Stops, sr)
	}

	for g := 1; g <= cfg.Graceful; g++ {
		if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
			return fail(err)
		}
		time.Sleep(500 * time.Millisecond)
		idx, _, err := pc.Cortex(ctx)
		if err != nil {
			return fail(err)
		}
		hr := HandoffResult{N: g, From: pc.Nodes[idx].ID}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		t0 := time.Now()
		res, err := client.New(pc.Nodes[idx].URL()).Failover(fctx, "")
		t1 := time.Now()
		cancel()
		hr.Call = t1.Sub(t0)
		if err != nil {
			hr.Error = err.Error()
		} else {
			hr.To, hr.Epoch = res.To, res.Epoch
		}
		time.Sleep(time.Second)
		hr.Pause = qw.maxGap(t0, t1.Add(time.Second))
		rep.Handoffs = append(rep.Handoffs, hr)
		cfg.logf("handoff %d/%d: %s -> %s: call %s, longest gap between acknowledged writes %s %s", g, cfg.Graceful, hr.From, orDash(hr.To), Ms(hr.Call), Ms(hr.Pause), hr.Error)
	}

	stopWriters()
	wg.Wait()
	for _, w := range writers {
		w.c.Close()
	}

	// What survived: list each writer's vault on the Cortex (strong reads)
	// and every node's quarantine.
	if err := pc.WaitHealthy(ctx, 60*time.Second); err != nil {
		return fail(err)
	}
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	quarantined := map[string]bool{}
	for _, p := range pc.Nodes {
		fl, err := client.New(p.URL()).Quarantine(vctx)
		if err != nil {
			return fail(fmt.Errorf("reading %s's quarantine: %w", p.ID, err))
		}
		for _, e := range fl.Entries {
			if e.ID != "" {
				quarantined[e.ID] = true
			}
		}
	}
	lc := client.New(urls[0], client.WithEndpoints(urls...), client.WithHTTPClient(HTTPClient(2)))
	for i, w := range writers {
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
		wc := w.counts()
		w.mu.Lock()
		for _, a := range w.acks {
			switch {
			case present[a.id]:
				wc.Survived++
			case quarantined[a.id]:
				wc.Quarantined++
			default:
				wc.Lost++
				if len(wc.LostIDs) < 20 {
					wc.LostIDs = append(wc.LostIDs, a.id)
				}
			}
		}
		w.mu.Unlock()
		if i == 0 {
			rep.Quorum = wc
		} else {
			rep.Local = &wc
		}
		rep.Writes += wc.Attempted
		rep.Failed += wc.Failed
	}

	var toWrite, toLocal, toElect, toEvent, pauses, stopPauses []time.Duration
	for _, k := range rep.Kills {
		if !k.TimedOut {
			toWrite = append(toWrite, k.FirstWrite)
		}
		if k.FirstLocalWrite > 0 {
			toLocal = append(toLocal, k.FirstLocalWrite)
		}
		if k.Elected > 0 {
			toElect = append(toElect, k.Elected)
		}
		if k.Event > 0 {
			toEvent = append(toEvent, k.Event)
		}
	}
	for _, s := range rep.Stops {
		if s.Error == "" {
			stopPauses = append(stopPauses, s.Pause)
		}
		if s.Election {
			rep.StopElection++
		}
	}
	rep.KillToLocalWrite = Summarize(toLocal)
	rep.KillToEvent = Summarize(toEvent)
	rep.StopPause = Summarize(stopPauses)
	for _, h := range rep.Handoffs {
		if h.Error == "" {
			pauses = append(pauses, h.Pause)
		}
	}
	rep.KillToWrite = Summarize(toWrite)
	if len(toWrite) > 0 {
		rep.MinToWrite = toWrite[0]
	}
	rep.KillToElect = Summarize(toElect)
	rep.HandoffPause = Summarize(pauses)
	return rep, nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// Verdict is an error when an acknowledged quorum write was lost, an
// acknowledged local write vanished without being quarantined, or writes
// never resumed after a kill.
func (r *FailoverReport) Verdict() error {
	var bad []string
	if r.Quorum.Lost > 0 {
		bad = append(bad, fmt.Sprintf("%d acknowledged quorum write(s) lost (e.g. %s)", r.Quorum.Lost, strings.Join(r.Quorum.LostIDs, ", ")))
	}
	if r.Local != nil && r.Local.Lost > 0 {
		bad = append(bad, fmt.Sprintf("%d acknowledged local write(s) neither in the cluster nor in any quarantine (e.g. %s)", r.Local.Lost, strings.Join(r.Local.LostIDs, ", ")))
	}
	for _, k := range r.Kills {
		if k.TimedOut {
			bad = append(bad, fmt.Sprintf("kill %d: no write acknowledged within 30 s", k.N))
		}
	}
	for _, h := range r.Handoffs {
		if h.Error != "" {
			bad = append(bad, fmt.Sprintf("handoff %d failed: %s", h.N, h.Error))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// WriteText prints the report for people.
func (r *FailoverReport) WriteText(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\nmuninn bench failover: %d nodes on 127.0.0.1, heartbeat %dms, a quorum writer", c.Nodes, c.HeartbeatMs)
	if c.Local {
		fmt.Fprint(w, " and a local writer")
	}
	fmt.Fprintf(w, " every %s\n\n", c.WriteEvery)
	if len(r.Kills) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "kill\tvictim\tepoch\tnew Cortex named\tevent received\tfirst quorum write\tfirst local write\tfailed/writes\t")
		for _, k := range r.Kills {
			fw := Ms(k.FirstWrite)
			if k.TimedOut {
				fw = "timed out"
			}
			lw, ev := "-", "-"
			if k.FirstLocalWrite > 0 {
				lw = Ms(k.FirstLocalWrite)
			}
			if k.Event > 0 {
				ev = Ms(k.Event)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%d/%d\t\n", k.N, k.Victim, k.OldEpoch, Ms(k.Elected), ev, fw, lw, k.Failed, k.Writes)
		}
		tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "from the kill to\tn\tmin\tp50\tp90\tp99\tmax\t")
		row := func(what string, s Summary, lo time.Duration) {
			if s.Count == 0 {
				return
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", what, s.Count, Ms(lo), Ms(s.P50), Ms(s.P90), Ms(s.P99), Ms(s.Max))
		}
		mins := func(pick func(KillResult) time.Duration) time.Duration {
			var m time.Duration
			for _, k := range r.Kills {
				if d := pick(k); d > 0 && (m == 0 || d < m) {
					m = d
				}
			}
			return m
		}
		row("a survivor names the new Cortex", r.KillToElect, mins(func(k KillResult) time.Duration { return k.Elected }))
		row("a cluster event announces it", r.KillToEvent, mins(func(k KillResult) time.Duration { return k.Event }))
		row("first acknowledged quorum write", r.KillToWrite, r.MinToWrite)
		row("first acknowledged local write", r.KillToLocalWrite, mins(func(k KillResult) time.Duration { return k.FirstLocalWrite }))
		tw.Flush()
		fmt.Fprintf(w, "target for the first quorum write after a kill (crash hints), p99: ≤ max(heartbeat, 250ms) = %s (a silent failure: 3 × heartbeat + 100ms)\n", Ms(r.Bound))
		if r.EventsNote != "" {
			fmt.Fprintf(w, "note: %s\n", r.EventsNote)
		}
	}
	if len(r.Stops) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "stop\tvictim\tepoch\tstopped for\telection\tepoch after\twrite pause\tfailed/writes\t")
		for _, s := range r.Stops {
			el := "no"
			if s.Election {
				el = "YES"
			}
			p := Ms(s.Pause)
			if s.Error != "" {
				p += " (" + s.Error + ")"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%d/%d\t\n", s.N, s.Victim, s.OldEpoch, Ms(s.StoppedFor), el, s.NewEpoch, p, s.Failed, s.Writes)
		}
		tw.Flush()
		sp := r.StopPause
		fmt.Fprintf(w, "SIGSTOP of the Cortex for %s: %d of %d stops caused an election; write pause p50 %s, p90 %s, max %s\n",
			Ms(c.StopFor), r.StopElection, len(r.Stops), Ms(sp.P50), Ms(sp.P90), Ms(sp.Max))
	}
	if len(r.Handoffs) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "handoff\tfrom\tto\tcall\twrite pause\t")
		for _, h := range r.Handoffs {
			p := Ms(h.Pause)
			if h.Error != "" {
				p = "failed: " + h.Error
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t\n", h.N, h.From, orDash(h.To), Ms(h.Call), p)
		}
		tw.Flush()
		fmt.Fprintf(w, "graceful failover write pause (longest gap between acknowledged writes): median %s, max %s (target ≤ 300ms)\n",
			Ms(r.HandoffPause.P50), Ms(r.HandoffPause.Max))
	}
	counts := func(wc WriteCounts) {
		fmt.Fprintf(w, "%s writes: %d attempted, %d acknowledged, %d failed, %d of them ambiguous (%s); of the acknowledged: %d present, %d quarantined, %d LOST\n",
			wc.Durability, wc.Attempted, wc.Acked, wc.Failed, wc.Ambiguous, ErrorsLine(wc.Errors), wc.Survived, wc.Quarantined, wc.Lost)
	}
	fmt.Fprintln(w)
	counts(r.Quorum)
	if r.Local != nil {
		counts(*r.Local)
	}
	fmt.Fprintf(w, "failed writes as the Go client saw them, over the whole run: %d of %d\n", r.Failed, r.Writes)
	if r.Dir != "" {
		fmt.Fprintf(w, "data and logs kept in %s\n", r.Dir)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "stopped early: %s\n", r.Error)
	}
}
