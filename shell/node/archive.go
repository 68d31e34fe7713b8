package node

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/store"
)

// archiver writes the node's committed log entries to Options.ArchiveDir
// in segment files (shell/archive), as PostgreSQL archives its WAL: every
// ArchiveInterval, what was committed since its last segment, in segments
// of at most archive.MaxSegmentEntries entries or about
// archive.TargetSegmentBytes, read from the store at most that many bytes
// at a time (archiveReadBytes), so its memory does not grow with its
// backlog. It resumes after the highest seq this node's segments in the
// directory hold, once it has checked they are of this store's history
// (checkHistory: a restored node started with its source's archive_dir
// would mix two histories), and never rewrites one. The
// node's log is not pruned past what it has archived (nodeStorage.Prune),
// so nothing committed is lost to compaction while the archive lags. A
// failure to write (disk full, permissions) is logged at most once a
// minute with the path and the fix, counted in muninn_archive_errors_total,
// and retried; it never stops the node.
type archiver struct {
	n        *Node
	dir      string
	node     string
	interval time.Duration
	// archived is the last seq written (or skipped over: see pass); the
	// prune cap.
	archived atomic.Uint64
	// next is the next seq to write; owned by the archiver's goroutine.
	next core.Seq

	stopc    chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	lastErrLog time.Time
	failing    bool
	// cacheKey and cacheEntry: the last archived entry checkHistory read
	// (archivedEntry).
	cacheKey   string
	cacheEntry core.Entry
	waitLogged bool
	// holding is set while the archive refuses the directory (another
	// history): the prune cap then keeps at most archiveHoldMax entries
	// above the compaction point (pruneCap).
	holding atomic.Bool
}

// archiveReadBytes bounds the bytes of log entries one archiver round
// reads from the store (a variable for tests).
var archiveReadBytes = archive.TargetSegmentBytes

// archiveRead reads the log entries lo..hi for the archiver, at most
// maxBytes (a variable for tests, which count what it returns).
var archiveRead = func(st *store.Store, lo, hi core.Seq, maxBytes int) ([]core.Entry, error) {
	return st.EntriesMax(lo, hi, maxBytes)
}

// archiveHoldMax is how many log entries, beyond what the core keeps, the
// node holds unpruned while its archive_dir is refused as another
// history's: enough to point backup.archive_dir at a new directory and
// restart without a gap in the new archive, bounded so that a node left
// refused does not fill its disk. Past it the oldest are pruned, and the
// new archive starts with a gap (logged), which a backup taken after the
// fix covers.
const archiveHoldMax = 1 << 18

// archiveErrEvery is how often a persisting archive failure is logged.
const archiveErrEvery = time.Minute

// startArchiver starts the archiver of a data node with ArchiveDir set.
// It reads where its archive ends first; an unreadable directory is
// logged and retried by the passes.
func startArchiver(n *Node) *archiver {
	a := &archiver{n: n, dir: n.opts.ArchiveDir, node: string(n.opts.ID), interval: n.opts.ArchiveInterval,
		stopc: make(chan struct{}), done: make(chan struct{})}
	if a.interval <= 0 {
		a.interval = time.Second
	}
	_, _, base := n.store.State()
	a.archived.Store(uint64(base.Seq)) // until the archive is read: prune no further than today
	n.log.Info("log archiving enabled", "archive_dir", a.dir, "interval", a.interval.String())
	a.resume()
	go a.run()
	return a
}

// resume finds where this node's archive ends. It returns false (and has
// logged why) when the directory cannot be read, or holds another
// history (checkHistory): then nothing is archived, and it is looked at
// again each pass, so moving the other history's segments away (or a
// restart with a new archive_dir) resumes archiving. It also returns
// false, without an error, while the store is empty (a fresh node: judged
// once it holds data) or behind the archive in the same history (a node
// rejoining with an empty data directory, catching up).
func (a *archiver) resume() bool {
	if a.next != 0 {
		return true
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		a.fail(fmt.Errorf("cannot create the archive directory %s: %w", a.dir, err))
		return false
	}
	segs, err := archive.List(a.dir)
	if err == nil {
		err = archive.RemoveTemp(a.dir, a.node)
	}
	if err != nil {
		a.fail(fmt.Errorf("cannot read the archive directory %s: %w", a.dir, err))
		return false
	}
	var own []archive.Segment
	var last archive.Segment
	for _, sg := range segs {
		if sg.Node == a.node {
			own = append(own, sg)
			if sg.Last > last.Last {
				last = sg
			}
		}
	}
	if len(own) > 0 {
		wait, err := a.checkHistory(own, last)
		if err != nil {
			a.holding.Store(true)
			a.fail(err)
			return false
		}
		a.holding.Store(false)
		if wait {
			if _, end, _ := a.n.store.State(); !a.waitLogged && end.Seq > 0 {
				a.waitLogged = true
				a.n.log.Warn("log archive waits: this node's log ends before its last archived seq in backup.archive_dir, with the same entry there (a node catching up after a restart with an empty data directory); it archives once its log gets there. If this node's data directory is not of that history, point backup.archive_dir at a new directory",
					"archive_dir", a.dir, "log_seq", uint64(end.Seq), "archived_seq", uint64(last.Last))
			}
			return false
		}
	}
	a.holding.Store(false)
	a.next = last.Last + 1
	a.archived.Store(uint64(last.Last))
	if last.Last > 0 {
		a.n.log.Info("log archive resumes", "archive_dir", a.dir, "archived_seq", uint64(last.Last))
	}
	return true
}

// errOtherHistory is checkHistory's refusal.
var errOtherHistory = errors.New("the archive directory holds another history")

// checkHistory checks that last, this node's last segment in the
// directory (own are all its segments there), is of the store's history:
// same cluster id (a restore mints a new one), a log reaching its last
// seq, and the same entry there (or, for a seq the log has pruned, the
// same epoch by the store's epoch history). A node restored from a backup
// and started with its source's archive_dir fails it: resuming after the
// old history's last seq would leave the new history's entries up to
// there unarchived and append the rest to the old history's directory,
// and a later restore would replay a mix of both.
//
// wait (no error) is a store that cannot be judged yet: empty (a fresh
// node, which takes its cluster's id and log later), or behind the
// archive with the same entry at its last seq (catching up).
func (a *archiver) checkHistory(own []archive.Segment, last archive.Segment) (wait bool, err error) {
	other := func(why string, args ...any) error {
		return fmt.Errorf("%w: backup.archive_dir %s: %s. Point backup.archive_dir at a new directory and restart (a restored node or cluster archives into a new directory; docs/backup.md), or move that history's segments out of it", errOtherHistory, a.dir, fmt.Sprintf(why, args...))
	}
	_, end, base := a.n.store.State()
	if end.Seq == 0 && base.Seq == 0 {
		return true, nil
	}
	if cid := a.n.store.ClusterID(); last.Cluster != cid {
		return false, other("its last segment of node %s, %s, is of cluster %s, this node's store of cluster %s", a.node, last.Path, archive.FormatCluster(last.Cluster), archive.FormatCluster(cid))
	}
	at, seg := last.Last, last
	if end.Seq < last.Last {
		// Behind the archive: the same history only if the archive holds
		// this log's last entry.
		at, seg = end.Seq, archive.Segment{}
		for _, sg := range own {
			if sg.First <= at && at <= sg.Last {
				seg = sg
			}
		}
		if seg.Path == "" {
			return false, other("its last segment of node %s, %s, ends at seq %d, this node's log at seq %d, which no segment of this node there holds", a.node, last.Path, last.Last, end.Seq)
		}
	}
	want, err := a.archivedEntry(seg, at)
	if err != nil {
		return false, err
	}
	switch {
	case at > base.Seq:
		have, ok, err := a.n.store.Entry(at)
		if err != nil {
			return false, fmt.Errorf("reading log entry %d to compare with the archive: %w", at, err)
		}
		if !ok || have.Pos != want.Pos || have.Type != want.Type || string(have.Payload) != string(want.Payload) {
			return false, other("its entry at seq %d (%s, in %s) is not this node's log entry %s there", at, want.Pos, seg.Path, have.Pos)
		}
	case at == base.Seq:
		if base != want.Pos {
			return false, other("its entry at seq %d is %s (in %s), this node's log has %s there", at, want.Pos, seg.Path, base)
		}
	default:
		hist, err := a.n.store.EpochHistory()
		if err != nil {
			return false, fmt.Errorf("reading the store's epoch history to compare with the archive: %w", err)
		}
		if ep, ok := store.EpochAt(hist, at); ok && ep != want.Pos.Epoch {
			return false, other("its entry at seq %d is %s (in %s), this node's log had epoch %d there", at, want.Pos, seg.Path, ep)
		}
	}
	return at < last.Last, nil
}

// archivedEntry is the entry at seq in segment seg, read once per segment
// and seq (a refused or waiting archiver looks again every pass).
func (a *archiver) archivedEntry(seg archive.Segment, seq core.Seq) (core.Entry, error) {
	key := fmt.Sprintf("%s@%d", seg.Path, seq)
	if a.cacheKey == key {
		return a.cacheEntry, nil
	}
	_, es, err := archive.ReadFile(seg.Path)
	if err != nil {
		return core.Entry{}, fmt.Errorf("cannot read this node's archive segment: %w", err)
	}
	if seq < seg.First || int(seq-seg.First) >= len(es) {
		return core.Entry{}, fmt.Errorf("archive segment %s does not hold seq %d", seg.Path, seq)
	}
	a.cacheKey, a.cacheEntry = key, es[seq-seg.First]
	return a.cacheEntry, nil
}

func (a *archiver) run() {
	defer close(a.done)
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-a.stopc:
			return
		case <-t.C:
			a.pass()
		}
	}
}

// stop ends the goroutine and archives what is committed once more (the
// store is still open), so a clean stop leaves the archive complete.
func (a *archiver) stop() {
	a.stopOnce.Do(func() {
		close(a.stopc)
		<-a.done
		a.pass()
	})
}

// pass writes what was committed since the last segment.
func (a *archiver) pass() {
	if !a.resume() {
		return
	}
	// What is committed now is archived in this pass: the entries
	// committed meanwhile wait for the next (a busy node would otherwise
	// write a small segment after each one).
	hs0, last0, _ := a.n.store.State()
	target := min(hs0.Commit.Seq, last0.Seq)
	for range 1 << 16 { // bounded: one segment per round
		hs, last, base := a.n.store.State()
		committed := min(hs.Commit.Seq, last.Seq)
		upto := min(committed, max(target, base.Seq))
		if a.next <= base.Seq {
			// The log starts after what this node archived: a snapshot
			// install made it jump (or the node archives for the first
			// time, or its log was pruned before archiving was on).
			// Those entries are in another node's archive.
			a.n.log.Warn("log archive gap: this node's log jumped past entries it never archived (a snapshot install, or archiving switched on for an existing log); another data node's archive holds them, so restore with --archive for every node's directory",
				"archive_dir", a.dir, "missing_from", uint64(a.next), "missing_to", uint64(base.Seq))
			a.next = base.Seq + 1
			a.archived.Store(uint64(base.Seq))
		}
		a.n.metrics.archivedSeq.Set(float64(a.next - 1))
		a.n.metrics.archiveLag.Set(float64(committed) - float64(a.next-1))
		if a.next > upto {
			return
		}
		hi := min(upto, a.next+archive.MaxSegmentEntries-1)
		es, err := archiveRead(a.n.store, a.next, hi, archiveReadBytes)
		if errors.Is(err, store.ErrClosed) {
			return // a snapshot install is swapping the DB: the next pass reads again
		}
		if err != nil {
			a.fail(fmt.Errorf("reading log entries %d..%d to archive: %w", a.next, hi, err))
			return
		}
		if _, _, base2 := a.n.store.State(); base2 != base || len(es) == 0 || es[0].Pos.Seq != a.next {
			// The log changed under the read (a snapshot install): look again.
			if base2 == base {
				return
			}
			continue
		}
		n, size := 0, 0
		for n < len(es) && (n == 0 || size+es[n].Size() <= archive.TargetSegmentBytes) {
			if n > 0 && es[n].Pos.Seq != es[n-1].Pos.Seq+1 {
				break
			}
			size += es[n].Size()
			n++
		}
		seg, err := archive.Write(a.dir, a.node, a.n.store.ClusterID(), es[:n])
		if err != nil {
			a.fail(fmt.Errorf("writing archive segment %s: %w", seg.Name(), err))
			return
		}
		a.next = es[n-1].Pos.Seq + 1
		a.archived.Store(uint64(es[n-1].Pos.Seq))
		a.n.metrics.archivedSeq.Set(float64(es[n-1].Pos.Seq))
		a.n.metrics.archiveLag.Set(float64(committed) - float64(es[n-1].Pos.Seq))
		if a.failing {
			a.failing = false
			a.n.log.Info("log archive writes again", "archive_dir", a.dir, "archived_seq", uint64(es[n-1].Pos.Seq))
		}
	}
}

// fail counts an archive failure and logs it at most once a minute.
func (a *archiver) fail(err error) {
	a.n.metrics.archiveErrors.Inc()
	a.failing = true
	if now := time.Now(); now.Sub(a.lastErrLog) >= archiveErrEvery {
		a.lastErrLog = now
		if errors.Is(err, errOtherHistory) {
			a.n.log.Error("log archive refused: backup.archive_dir holds another history, and archiving this node's log there would mix the two (a later restore --archive would replay both). The node keeps running and archives nothing; it holds its log unpruned from the last archived entry on, at most 262144 entries beyond what it needs, until the archive works again. Fix: point backup.archive_dir at a new directory and restart",
				"archive_dir", a.dir, "err", err.Error(), "archived_seq", a.archived.Load())
			return
		}
		a.n.log.Error("log archive cannot be written; the node keeps running, and keeps its log from the last archived entry on until the archive works again (it grows meanwhile). Fix: make backup.archive_dir writable by the node's user and give it free space (or point it elsewhere and restart)",
			"archive_dir", a.dir, "err", err.Error(), "archived_seq", a.archived.Load())
	}
}

// pruneCap is the highest seq the log may be pruned to: the last seq
// archived (no cap without an archiver). While the archive_dir is refused
// as another history's, at most archiveHoldMax entries below upto are
// held.
func (n *Node) pruneCap(upto core.Seq) core.Seq {
	if n.archiver == nil {
		return upto
	}
	c := core.Seq(n.archiver.archived.Load())
	if n.archiver.holding.Load() && upto > archiveHoldMax {
		c = max(c, upto-archiveHoldMax)
	}
	return min(upto, c)
}
