package node

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/archive"
)

// archiver writes the node's committed log entries to Options.ArchiveDir
// in segment files (shell/archive), as PostgreSQL archives its WAL: every
// ArchiveInterval, what was committed since its last segment, in segments
// of at most archive.MaxSegmentEntries entries or about
// archive.TargetSegmentBytes. It resumes after the highest seq this
// node's segments in the directory hold and never rewrites one. The
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
}

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
// logged why) when the directory cannot be read.
func (a *archiver) resume() bool {
	if a.next != 0 {
		return true
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		a.fail(fmt.Errorf("cannot create the archive directory %s: %w", a.dir, err))
		return false
	}
	last, err := archive.NodeLast(a.dir, a.node)
	if err == nil {
		err = archive.RemoveTemp(a.dir, a.node)
	}
	if err != nil {
		a.fail(fmt.Errorf("cannot read the archive directory %s: %w", a.dir, err))
		return false
	}
	a.next = last + 1
	a.archived.Store(uint64(last))
	if last > 0 {
		a.n.log.Info("log archive resumes", "archive_dir", a.dir, "archived_seq", uint64(last))
	}
	return true
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
		es, err := a.n.store.Entries(a.next, hi)
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
		seg, err := archive.Write(a.dir, a.node, es[:n])
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
		a.n.log.Error("log archive cannot be written; the node keeps running, and keeps its log from the last archived entry on until the archive works again (it grows meanwhile). Fix: make backup.archive_dir writable by the node's user and give it free space (or point it elsewhere and restart)",
			"archive_dir", a.dir, "err", err.Error(), "archived_seq", a.archived.Load())
	}
}

// pruneCap is the highest seq the log may be pruned to: the last seq
// archived (no cap without an archiver).
func (n *Node) pruneCap(upto core.Seq) core.Seq {
	if n.archiver == nil {
		return upto
	}
	return min(upto, core.Seq(n.archiver.archived.Load()))
}
