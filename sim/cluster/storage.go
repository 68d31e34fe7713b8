package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The storage nemeses act on a node's disk rather than its process or its
// network. Issue 11 ("Hardening") found three bugs no fault model had
// injected: a voter whose data directory was wiped voted again and lost
// quorum-acknowledged writes; a damaged write-ahead log was silently
// truncated; a full disk hung nodes. These nemeses cover the class:
//
//   - wipe: kill -9 a node (the Cortex half of the time), rm -rf its data
//     directory, start it. It must come back as a new store that rejoins:
//     shown rejoining (counting toward no quorum) until caught up, then
//     recorded with its new store identity; no quorum write lost.
//   - restore-old: copy a node's data directory early in the segment
//     (frozen by docker pause for the copy, so the copy is what a crash at
//     that instant would leave), later kill -9 it and put the old copy back
//     the documented way (without db/IDENTITY, so it rejoins as a new
//     store), start it. The same expectations as wipe.
//   - corrupt-wal: kill -9 a Lobe (a data node, not the Cortex), invert
//     16 bytes in the middle of the part of its newest db/*.log where
//     damage is provably not a torn tail (walProvenTo), start it: the process must exit non-zero and its log
//     name the file. Then the operator's fix
//     (wipe the data directory, start it) and the expectations of wipe.
//   - fill-disk: fill the filesystem of a node's data directory (the
//     Cortex half of the time) until it is full; heal by removing the
//     filler. No operation may wait past a bound, the node stays up
//     with its memory bounded, a full Cortex steps down, and the cluster
//     recovers once the space is free.
//
// Writes a node acknowledged with local durability as the Cortex and that
// were only on the store a nemesis destroyed are the designed price of
// local durability (the store was their only copy): they are counted, not
// reported as anomalies.

// isStorage reports whether kind is a storage nemesis.
func isStorage(kind string) bool {
	switch kind {
	case "wipe", "restore-old", "corrupt-wal", "fill-disk":
		return true
	}
	return false
}

// Storage is what a storage nemesis did and saw.
type Storage struct {
	Node string `json:"node"`
	// Role is the node's role when the nemesis chose it: cortex, lobe,
	// sentinel or observer.
	Role   string `json:"role"`
	DataFS string `json:"data_fs"`

	// restore-old: the copy, taken at CopiedAt while the node was frozen
	// for CopyPause.
	CopiedAt  time.Duration `json:"copied_at_ns,omitempty"`
	CopyPause time.Duration `json:"copy_pause_ns,omitempty"`
	CopyBytes int64         `json:"copy_bytes,omitempty"`

	// corrupt-wal: WAL (its path in the container) of WALSize bytes had
	// 16 bytes inverted at WALOffset. Exited: the process stopped by
	// itself within the bound (after ExitAfter, with ExitCode); LogLine is
	// the first line of its log naming the file.
	WAL       string `json:"wal,omitempty"`
	WALSize   int64  `json:"wal_size,omitempty"`
	WALOffset int64  `json:"wal_offset,omitempty"`
	// WALProven is how far damage to the log is provably not a torn
	// tail: the damage is put at half of it (walProvenTo).
	WALProven int64         `json:"wal_proven,omitempty"`
	Exited    bool          `json:"exited,omitempty"`
	ExitCode  int           `json:"exit_code,omitempty"`
	ExitAfter time.Duration `json:"exit_after_ns,omitempty"`
	LogLine   string        `json:"log_line,omitempty"`

	// wipe, restore-old, corrupt-wal: the store identities before and
	// after, when the node was started again, when it was first seen
	// rejoining (and by which node's view), and when the membership
	// recorded its new store.
	OldStore        string        `json:"old_store,omitempty"`
	NewStore        string        `json:"new_store,omitempty"`
	Restarted       time.Duration `json:"restarted_ns,omitempty"`
	SeenRejoining   bool          `json:"seen_rejoining,omitempty"`
	RejoiningAt     time.Duration `json:"rejoining_at_ns,omitempty"`
	RejoiningSeenBy string        `json:"rejoining_seen_by,omitempty"`
	Counted         bool          `json:"counted,omitempty"`
	CountedAt       time.Duration `json:"counted_at_ns,omitempty"`
	// CaughtUpLog is the Cortex's log line saying the node caught up on
	// its new store and counts again (NODE: line), when the window was
	// too short for the polls to see it rejoining.
	CaughtUpLog string `json:"caught_up_log,omitempty"`
	// LostStoreEpoch is the epoch in which the node was the Cortex when
	// its store was destroyed (0: it was not the Cortex).
	LostStoreEpoch uint64 `json:"lost_store_epoch,omitempty"`

	// fill-disk: the filler's size and what was left free; the node's
	// resident memory before and at its peak during the fault; whether
	// its process went away; when a full Cortex stopped being the Cortex.
	Filled        int64  `json:"filled,omitempty"`
	FreeAfterFill uint64 `json:"free_after_fill"`
	RSSBefore     uint64 `json:"rss_before,omitempty"`
	RSSPeak       uint64 `json:"rss_peak,omitempty"`
	// OtherGrowth is the largest growth of another node's resident memory
	// during the fault (OtherNode's): a Cortex keeps the log a Lobe that
	// takes no entries lacks (docs/storage.md), a measure, not checked.
	OtherGrowth   uint64        `json:"other_rss_growth,omitempty"`
	OtherNode     string        `json:"other_rss_node,omitempty"`
	Died          bool          `json:"died,omitempty"`
	DiedAt        time.Duration `json:"died_at_ns,omitempty"`
	SteppedDown   bool          `json:"stepped_down,omitempty"`
	SteppedDownAt time.Duration `json:"stepped_down_at_ns,omitempty"`
	// Answers507 counts answers 507 insufficient_storage; Slowest507 is
	// the longest such exchange.
	Answers507 int           `json:"answers_507"`
	Slowest507 time.Duration `json:"slowest_507_ns,omitempty"`
}

// Bounds of the storage checks.
const (
	// corruptExitWithin: a node started on a damaged log must have exited
	// by then.
	corruptExitWithin = 15 * time.Second
	// corruptSyncedWait bounds the wait for the target's log to hold
	// corruptSyncedMin bytes where damage is provable before it is killed.
	corruptSyncedWait = 3 * time.Second
	corruptSyncedMin  = 1 << 10
	// rssGrowthBound: a node with a full disk may grow its resident
	// memory by this much at most.
	rssGrowthBound = 256 << 20
	// rejoinPoll is how often the node's and the Cortex's views are read
	// while a node rejoins.
	rejoinPoll = 20 * time.Millisecond
)

// choose picks the node a storage nemesis acts on: the Cortex half of the
// time when allowCortex, else one of the other nodes (Lobes and Sentinels
// alike: a Sentinel's store holds its votes; only Lobes when lobes).
func (s *segment) choose(cortex string, allowCortex, lobes bool) *Storage {
	var others []Node
	for _, n := range s.c.Topo.Nodes {
		if n.ID != cortex && !(lobes && n.Sentinel) {
			others = append(others, n)
		}
	}
	st := &Storage{DataFS: s.c.data.kind}
	if (allowCortex && s.rng.IntN(2) == 0) || len(others) == 0 {
		st.Node, st.Role = cortex, "cortex"
		return st
	}
	n := others[s.rng.IntN(len(others))]
	st.Node, st.Role = n.ID, "lobe"
	if n.Sentinel {
		st.Role = "sentinel"
	}
	if n.Observer {
		st.Role = "observer"
	}
	return st
}

func (st *Storage) who() string {
	switch st.Role {
	case "cortex":
		return "the Cortex " + st.Node
	case "sentinel":
		return "the Sentinel " + st.Node
	case "observer":
		return "the Observer " + st.Node
	}
	return "the Lobe " + st.Node
}

// copyEarly is restore-old's first step, an eighth into the segment: it
// picks the node and copies its data directory aside while the node is
// frozen (docker pause: what is on disk then is what a crash would leave).
func (s *segment) copyEarly(ctx context.Context) error {
	c := s.c
	if c.data == nil {
		return fmt.Errorf("%s needs the data directories on the host", s.nemesis)
	}
	cortex, _, err := c.Cortex(ctx)
	if err != nil {
		return err
	}
	st := s.choose(cortex, true, false)
	dir := c.data.dir(st.Node)
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	t0 := time.Now()
	if err := c.rt.Do(ctx, "pause", st.Node); err != nil {
		return err
	}
	n, cerr := copyTree(dir, old)
	uerr := c.rt.Do(ctx, "unpause", st.Node)
	st.CopyPause, st.CopiedAt, st.CopyBytes = time.Since(t0), s.w.now(), n
	if cerr != nil {
		return fmt.Errorf("copying %s: %w", dir, cerr)
	}
	if uerr != nil {
		return uerr
	}
	s.stor = st
	s.logf("[%s] copied %s's data directory at %s (%d bytes; frozen %s for the copy)", s.name(), st.who(), ms(st.CopiedAt), n, st.CopyPause.Round(time.Millisecond))
	return nil
}

// injectStorage applies a storage nemesis with cortex the current Cortex.
func (s *segment) injectStorage(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	f := Fault{Kind: s.nemesis, Cortex: cortex, Epoch: epoch}
	if c.data == nil {
		return f, fmt.Errorf("%s needs the data directories on the host", s.nemesis)
	}
	var st *Storage
	switch s.nemesis {
	case "wipe", "fill-disk":
		st = s.choose(cortex, true, false)
	case "restore-old":
		st = s.stor // chosen when the copy was taken
		if st == nil {
			return f, fmt.Errorf("restore-old: no copy was taken")
		}
		if st.Node == cortex {
			st.Role = "cortex"
		} else if st.Role == "cortex" {
			st.Role = "lobe" // it lost the Cortex role since the copy
		}
	case "corrupt-wal":
		// A Lobe: a Sentinel's log holds a few small records (votes,
		// epochs), often too few for damage in the middle to have intact
		// records after it, which is what tells damage from a torn tail.
		st = s.choose(cortex, false, true)
	}
	s.stor = st
	f.Targets, f.FailsOver = []string{st.Node}, st.Node == cortex
	dir, id := c.data.dir(st.Node), st.Node
	var err error
	switch s.nemesis {
	case "wipe":
		err = s.replaceStore(ctx, st, cortex, epoch, func() error { return wipeDir(dir) })
		f.Note = fmt.Sprintf("%s killed, data directory removed, started (store %s before)", st.who(), st.OldStore)
	case "restore-old":
		old := dir + ".old"
		err = s.replaceStore(ctx, st, cortex, epoch, func() error {
			if err := wipeDir(dir); err != nil {
				return err
			}
			if _, err := copyTree(old, dir); err != nil {
				return err
			}
			// The documented procedure: an older copy put back in
			// service rejoins as a new store.
			if err := os.Remove(filepath.Join(dir, "db", "IDENTITY")); err != nil && !os.IsNotExist(err) {
				return err
			}
			return os.RemoveAll(old)
		})
		f.Note = fmt.Sprintf("%s killed, its data directory as copied at %s put back without db/IDENTITY, started (store %s before)", st.who(), ms(st.CopiedAt), st.OldStore)
	case "corrupt-wal":
		err = s.corruptWAL(ctx, st, cortex, epoch)
		f.Note = fmt.Sprintf("%s killed, 16 bytes inverted at offset %d of %s (%d bytes), started: exited=%v code %d; then wiped and started", st.who(), st.WALOffset, st.WAL, st.WALSize, st.Exited, st.ExitCode)
	case "fill-disk":
		err = s.fill(ctx, st, dir, id)
		f.Note = fmt.Sprintf("%s's data filesystem (%s) filled with %d MiB, %d bytes left free", st.who(), st.DataFS, st.Filled>>20, st.FreeAfterFill)
	}
	return f, err
}

// replaceStore kills the node, replaces its data directory with put, and
// starts it again, then watches it rejoin.
func (s *segment) replaceStore(ctx context.Context, st *Storage, cortex string, epoch uint64, put func() error) error {
	c := s.c
	dir, id := c.data.dir(st.Node), st.Node
	st.OldStore, _ = readStoreIdentity(dir)
	if st.Node == cortex {
		st.LostStoreEpoch = epoch
	}
	if err := s.kill(ctx, st.Node); err != nil {
		return err
	}
	if err := put(); err != nil {
		return fmt.Errorf("%s on %s: %w", s.nemesis, dir, err)
	}
	return s.restart(ctx, st, id)
}

// kill sends SIGKILL to a node and waits until its container has exited.
// Until the node runs again, healing wipes its data directory before
// starting it (never a half-replaced store).
func (s *segment) kill(ctx context.Context, node string) error {
	c := s.c
	dir := c.data.dir(node)
	c.undo["store "+node] = func(ctx context.Context) error {
		if e, err := c.rt.Inspect(ctx, node); err != nil || e.Status == "running" {
			return err
		}
		return wipeDir(dir)
	}
	if err := c.rt.Do(ctx, "kill", node); err != nil {
		return err
	}
	if _, ok, err := c.rt.WaitExited(ctx, node, 20*time.Second); err != nil || !ok {
		return fmt.Errorf("%s still running 20s after the kill (%v)", node, err)
	}
	return nil
}

// restart starts a killed node whose store was replaced and watches it
// rejoin (until stopWatch).
func (s *segment) restart(ctx context.Context, st *Storage, id string) error {
	if err := s.c.rt.Do(ctx, "start", id); err != nil {
		return err
	}
	delete(s.c.undo, "store "+st.Node)
	st.Restarted = s.w.now()
	s.watch(ctx, func(ctx context.Context) { s.watchRejoin(ctx, st) })
	return nil
}

// corruptWAL kills a node, damages its newest write-ahead log, starts it
// and records how it refuses; then wipes it and starts it again.
func (s *segment) corruptWAL(ctx context.Context, st *Storage, cortex string, epoch uint64) error {
	c := s.c
	dir, id := c.data.dir(st.Node), st.Node
	st.OldStore, _ = readStoreIdentity(dir)
	// Damage must land where a later record proves it is not a torn tail:
	// give a log that was just started (a restart, a rotation) a moment to
	// hold some (walProvenTo).
	for deadline := time.Now().Add(corruptSyncedWait); time.Now().Before(deadline); {
		if wal, _, err := newestWAL(dir, 64); err == nil {
			if proven, err := walProvenTo(wal); err == nil && proven >= corruptSyncedMin {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := s.kill(ctx, st.Node); err != nil {
		return err
	}
	wal, size, err := newestWAL(dir, 64)
	if err != nil {
		return err
	}
	proven, err := walProvenTo(wal)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(dir, wal)
	st.WAL, st.WALSize, st.WALProven = "/data/"+filepath.ToSlash(rel), size, proven
	if proven < 64 {
		return fmt.Errorf("corrupt-wal: %s's newest write-ahead log %s (%d bytes) holds no record after which damage would be provable, after %s: damage anywhere in it would read as a torn tail", st.Node, st.WAL, size, corruptSyncedWait)
	}
	st.WALOffset = proven/2 - 8
	if err := flipBytes(wal, st.WALOffset, 16); err != nil {
		return err
	}
	startAt := time.Now()
	if err := c.rt.Do(ctx, "start", id); err != nil {
		return err
	}
	e, exited, err := c.rt.WaitExited(ctx, id, corruptExitWithin)
	if err != nil {
		return err
	}
	st.Exited, st.ExitCode, st.ExitAfter = exited, e.Code, time.Since(startAt)
	if !exited {
		// It runs on the damaged log: the anomaly is reported; take it
		// down for the operator's fix all the same.
		if err := s.kill(ctx, st.Node); err != nil {
			return err
		}
	}
	logs, _ := c.rt.LogsSince(ctx, id, startAt.Add(-100*time.Millisecond))
	base := filepath.Base(wal)
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, base) {
			st.LogLine = truncate(strings.TrimSpace(l), 400)
			break
		}
	}
	s.logf("[%s] %s on a damaged %s: exited=%v code %d after %s; log: %s", s.name(), st.Node, st.WAL, st.Exited, st.ExitCode, st.ExitAfter.Round(time.Millisecond), truncate(st.LogLine, 200))
	// The operator's fix: remove the data directory, start the node.
	if err := wipeDir(dir); err != nil {
		return err
	}
	return s.restart(ctx, st, id)
}

// fill fills the node's data filesystem and watches the node until
// stopWatch: its memory, whether it stays up, and its role.
func (s *segment) fill(ctx context.Context, st *Storage, dir, id string) error {
	c := s.c
	if !c.data.sized() {
		return fmt.Errorf("fill-disk needs a filesystem per node (loop-mounted ext4 or tmpfs); the host allowed neither, see the log")
	}
	pid, err := c.rt.Pid(ctx, id)
	if err != nil {
		return err
	}
	st.RSSBefore, _ = rss(pid)
	st.RSSPeak = st.RSSBefore
	others := map[string]int{}
	for _, n := range c.Topo.Nodes {
		if n.ID != st.Node {
			if p, err := c.rt.Pid(ctx, n.ID); err == nil {
				others[n.ID] = p
			}
		}
	}
	node, _ := c.Topo.Node(st.Node)
	c.undo["filler "+st.Node] = func(context.Context) error { return unfillDisk(dir) }
	st.Filled, st.FreeAfterFill, err = fillDisk(dir)
	if err != nil {
		return fmt.Errorf("filling %s: %w", dir, err)
	}
	s.watch(ctx, func(ctx context.Context) { s.watchFull(ctx, st, node, pid, others) })
	return nil
}

// watch runs fn in the background until stopWatch.
func (s *segment) watch(ctx context.Context, fn func(context.Context)) {
	s.stopWatch()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.watchStop = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		fn(wctx)
	}()
}

// stopWatch stops the background watch, if any, and waits for it.
func (s *segment) stopWatch() {
	if s.watchStop != nil {
		s.watchStop()
		s.watchStop = nil
	}
}

// watchRejoin follows a node that came back on a new store: its own view
// and its Cortex's, every rejoinPoll, until the membership records the
// new store (or stopWatch).
func (s *segment) watchRejoin(ctx context.Context, st *Storage) {
	c := s.c
	target, _ := c.Topo.Node(st.Node)
	dir := c.data.dir(st.Node)
	cortex := ""
	t := time.NewTicker(rejoinPoll)
	defer t.Stop()
	look := func(n Node) {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err := s.api.Client(n).Info(ictx)
		if err != nil {
			return
		}
		if info.Cortex != "" {
			cortex = info.Cortex
		}
		for _, m := range info.Members {
			if m.ID != st.Node {
				continue
			}
			if m.Rejoining && !st.SeenRejoining {
				st.SeenRejoining, st.RejoiningAt, st.RejoiningSeenBy = true, s.w.now(), n.ID
			}
			if !m.Rejoining && st.NewStore != "" && m.Store == st.NewStore && !st.Counted {
				st.Counted, st.CountedAt = true, s.w.now()
			}
		}
	}
	for !st.Counted {
		if st.NewStore == "" {
			st.NewStore, _ = readStoreIdentity(dir)
		}
		look(target)
		if n, ok := c.Topo.Node(cortex); ok && cortex != st.Node {
			look(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchFull follows a node whose disk is full, every 200 ms: its resident
// memory, whether its process is still there, and whether it is still the
// Cortex.
func (s *segment) watchFull(ctx context.Context, st *Storage, n Node, pid int, others map[string]int) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	before := map[string]uint64{}
	for id, p := range others {
		before[id], _ = rss(p)
	}
	for {
		for id, p := range others {
			if r, err := rss(p); err == nil && before[id] > 0 && r > before[id] && r-before[id] > st.OtherGrowth {
				st.OtherGrowth, st.OtherNode = r-before[id], id
			}
		}
		if r, err := rss(pid); err != nil {
			if !st.Died {
				st.Died, st.DiedAt = true, s.w.now()
			}
		} else {
			st.RSSPeak = max(st.RSSPeak, r)
		}
		if st.Role == "cortex" && !st.SteppedDown {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := s.api.Client(n).Info(ictx)
			cancel()
			if err == nil && info.Role != "cortex" {
				st.SteppedDown, st.SteppedDownAt = true, s.w.now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rss returns a process's resident memory in bytes (from /proc).
func rss(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d (a zombie?)", pid)
}

// checkStorage checks a storage nemesis's expectations once the cluster
// has recovered (or not): final is the state read back.
func (s *segment) checkStorage(ctx context.Context, rep *Report, f Fault, final Final) []Anomaly {
	st := s.stor
	if st == nil {
		return nil
	}
	var an []Anomaly
	add := func(check, format string, args ...any) {
		an = append(an, Anomaly{check, fmt.Sprintf(format, args...)})
	}
	switch s.nemesis {
	case "corrupt-wal":
		switch {
		case !st.Exited:
			add("corrupt-wal-accepted", "%s was started on a write-ahead log with 16 bytes inverted below its last record (%s, offset %d of %d) and was still running %s later: a damaged log must stop the node",
				st.Node, st.WAL, st.WALOffset, st.WALSize, corruptExitWithin)
		case st.ExitCode == 0:
			add("corrupt-wal-exit", "%s stopped on the damaged %s with exit status 0: it must exit non-zero", st.Node, st.WAL)
		}
		if st.Exited && st.LogLine == "" {
			add("corrupt-wal-unnamed", "%s stopped on the damaged %s (exit %d) but its log does not name %s", st.Node, st.WAL, st.ExitCode, filepath.Base(st.WAL))
		}
		fallthrough
	case "wipe", "restore-old":
		before := len(an)
		if st.NewStore == "" {
			st.NewStore, _ = readStoreIdentity(s.c.data.dir(st.Node))
		}
		switch {
		case st.NewStore == "":
			add("rejoin", "%s has no store identity (db/IDENTITY) after it was started again", st.Node)
		case st.NewStore == st.OldStore:
			add("rejoin", "%s came back with the store identity it had before (%s) although its store was replaced", st.Node, st.OldStore)
		case rep.Unrecovered || final.Cortex == "":
			// The recovery anomaly says it.
		default:
			n, _ := s.c.Topo.Node(final.Cortex)
			info, err := s.api.Info(ctx, n)
			if err != nil {
				add("rejoin", "reading the membership on the Cortex %s: %v", final.Cortex, err)
				break
			}
			found := false
			for _, m := range info.Members {
				if m.ID != st.Node {
					continue
				}
				found = true
				if m.Store != st.NewStore || m.Rejoining {
					add("rejoin", "after recovery the Cortex %s records store %q for %s, which holds store %s (rejoining: %v): the membership must record the new store once it has caught up",
						final.Cortex, m.Store, st.Node, st.NewStore, m.Rejoining)
				}
			}
			if !found {
				add("rejoin", "%s is no longer a member on the Cortex %s", st.Node, final.Cortex)
			}
		}
		if len(an) > before || rep.Unrecovered {
			break
		}
		if !st.SeenRejoining {
			st.CaughtUpLog = s.c.logLine(ctx, f.WallStart, "caught up on its new store "+st.NewStore)
		}
		if !st.SeenRejoining && st.CaughtUpLog == "" {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s was never seen rejoining (polled every %s from its restart) and no Cortex logged that it caught up on its new store", st.Node, rejoinPoll))
		}
	case "fill-disk":
		if st.Died {
			add("disk-full-exit", "%s's process was gone at %s, with its disk full: a full disk must refuse writes, not stop the node", st.Node, ms(st.DiedAt))
		}
		if st.RSSPeak > st.RSSBefore+rssGrowthBound {
			add("disk-full-memory", "%s's resident memory grew from %d MiB to %d MiB with its disk full (bound: +%d MiB)", st.Node, st.RSSBefore>>20, st.RSSPeak>>20, rssGrowthBound>>20)
		}
		if st.Role == "cortex" && !st.SteppedDown {
			add("disk-full-cortex", "the Cortex %s, whose disk was full from %s to %s, was still the Cortex: a Cortex that cannot persist must step down", st.Node, ms(f.Start), ms(f.End))
		}
		bound := hangBound(s.o.HeartbeatMs)
		var hung []string
		for _, op := range s.ops {
			if op.Status == 507 {
				st.Answers507++
				st.Slowest507 = max(st.Slowest507, op.Return-op.Call)
			}
			// The Cortex-following client has its own 3 s budget and
			// retries elsewhere: its waits say nothing of one node.
			// A client timeout counts however long the bound (the error
			// text is cut short in the history, so by its length).
			waited := op.Return - op.Call
			if op.Call < f.Start || op.Call > f.End || op.Client == FollowerClient || (waited <= bound && waited < s.o.Workload.Timeout-50*time.Millisecond) {
				continue
			}
			hung = append(hung, fmt.Sprintf("%s %s via %s at %s (%s, %s)", op.Kind, op.ID, op.Node, ms(op.Call), (op.Return-op.Call).Round(time.Millisecond), orNone(truncate(op.Code, 60))))
		}
		if len(hung) > 0 {
			add("disk-full-hang", "%d operations invoked while %s's disk was full waited more than %s for an answer (quorum writes included: a full node the write quorum needs must not count toward it, rule 17): %s",
				len(hung), st.Node, bound, strings.Join(hung[:min(len(hung), 5)], "; "))
		}
	}
	return an
}

// logLine returns the first log line of any node since since that holds
// text, as "NODE: line" ("" if none).
func (c *Cluster) logLine(ctx context.Context, since time.Time, text string) string {
	for _, n := range c.Topo.Nodes {
		logs, err := c.rt.LogsSince(ctx, n.ID, since)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, text) {
				return n.ID + ": " + strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// hangBound is how long an operation may wait for its answer while a
// node's disk is full: writes to a full Cortex are refused at once and a
// full Cortex hands its role over (no election), so 2 s, or four
// heartbeats when they are longer.
func hangBound(heartbeatMs int) time.Duration {
	return max(2*time.Second, 4*time.Duration(heartbeatMs)*time.Millisecond)
}

// storageLines describes a storage nemesis for the text report.
func (st *Storage) lines() []string {
	if st == nil {
		return nil
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("%s (%s data filesystem)", st.who(), st.DataFS)
	if st.CopyBytes > 0 {
		add("copy of %d bytes taken at %s (frozen %s)", st.CopyBytes, ms(st.CopiedAt), st.CopyPause.Round(time.Millisecond))
	}
	if st.WAL != "" {
		exit := fmt.Sprintf("still running after %s", corruptExitWithin)
		if st.Exited {
			exit = fmt.Sprintf("exited %d after %s", st.ExitCode, st.ExitAfter.Round(time.Millisecond))
		}
		line := "its log does not name the file"
		if st.LogLine != "" {
			line = "log: " + truncate(st.LogLine, 240)
		}
		add("16 bytes inverted at %d of %s (%d bytes): %s; %s", st.WALOffset, st.WAL, st.WALSize, exit, line)
	}
	if st.Restarted > 0 {
		rj, ct := "never seen", "not seen"
		if st.SeenRejoining {
			rj = fmt.Sprintf("%s (%s's view)", ms(st.RejoiningAt), st.RejoiningSeenBy)
		}
		if st.Counted {
			ct = ms(st.CountedAt)
		}
		if !st.SeenRejoining && st.CaughtUpLog != "" {
			rj = "not seen by the polls; logged: " + truncate(st.CaughtUpLog, 160)
		}
		add("store %s → %s; started %s; rejoining %s; new store recorded %s", orNone(st.OldStore), orNone(st.NewStore), ms(st.Restarted), rj, ct)
	}
	if st.Filled > 0 {
		add("filler %d MiB, %d bytes left free; RSS %d MiB → peak %d MiB (others: at most +%d MiB, %s); died: %v; answers 507: %d (slowest %s)",
			st.Filled>>20, st.FreeAfterFill, st.RSSBefore>>20, st.RSSPeak>>20, st.OtherGrowth>>20, orNone(st.OtherNode), st.Died, st.Answers507, st.Slowest507.Round(time.Millisecond))
		if st.Role == "cortex" {
			sd := "never"
			if st.SteppedDown {
				sd = ms(st.SteppedDownAt)
			}
			add("the full Cortex stepped down: %s", sd)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
