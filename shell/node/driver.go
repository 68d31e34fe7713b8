package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

// The node's side of core.Driver: its store, its transport and its
// waiting clients. The ordering rules are the driver's; these adapters only
// translate.

// nodeStorage is the node's store as the driver sees it.
type nodeStorage struct{ n *Node }

func (s nodeStorage) Save(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	start := time.Now()
	err := s.n.store.Save(store.SaveBatch{HardState: rd.HardState, Truncate: rd.Truncate, Entries: rd.Entries, Members: rd.Members, Now: start.UnixMilli(), Rejected: rejected}, sync)
	if err != nil {
		if errors.Is(err, store.ErrNoSpace) {
			return fmt.Errorf("%w: %w", core.ErrNoSpace, err)
		}
		return err
	}
	s.n.metrics.saveSeconds.Observe(time.Since(start).Seconds())
	if t := rd.Truncate; t != nil {
		s.n.metrics.quarantined.Add(float64(len(t.Removed)))
		s.n.noteTruncation(t)
	}
	return nil
}

// Apply is core.Pipeline: the Ready is applied now and its fsync waited for
// by the syncer, beside the loop (persist.go).
func (s nodeStorage) Apply(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	start := time.Now()
	p, err := s.n.store.SaveNoWait(store.SaveBatch{HardState: rd.HardState, Truncate: rd.Truncate, Entries: rd.Entries, Members: rd.Members, Now: start.UnixMilli(), Rejected: rejected}, sync)
	if err != nil {
		if errors.Is(err, store.ErrNoSpace) {
			return fmt.Errorf("%w: %w", core.ErrNoSpace, err)
		}
		return err
	}
	if t := rd.Truncate; t != nil {
		s.n.metrics.quarantined.Add(float64(len(t.Removed)))
		s.n.noteTruncation(t)
	}
	s.n.sync.add(p, start)
	return nil
}

// Prune drops the log the core no longer needs, but never entries the
// archiver has not written yet (backup.archive_dir): the prune is capped at
// the archived seq, and the store keeps the rest of the log until a later
// compaction, once they are archived. The core tolerates a store that keeps
// more log than it compacted (its restart loads the retained log). Capped,
// the membership at the lower point is the last membership entry between
// the store's base and it, or the base's own (nil: kept), looked up with
// LastMembership, which copies no data entry: the node's loop holds no
// more memory for a large backlog.
func (s nodeStorage) Prune(c core.Compaction) error {
	const pruneScanMax = 1 << 16
	upto, members := s.n.pruneCap(c.Upto.Seq), c.Members
	if upto < c.Upto.Seq {
		_, _, base := s.n.store.State()
		if upto <= base.Seq {
			return nil
		}
		// Bounded: the scan passes at most pruneScanMax entries (the rest
		// is pruned by later compactions).
		upto = min(upto, base.Seq+pruneScanMax)
		e, ok, err := s.n.store.LastMembership(base.Seq+1, upto)
		if err != nil {
			return err
		}
		members = nil
		if ok {
			if ms, err := core.DecodeMembers(e.Payload); err == nil {
				members = ms
			}
		}
	}
	_, err := s.n.store.PruneAt(upto, members)
	return err
}

func (s nodeStorage) Admit(n int) error { return s.n.store.Admit(n) }

func (s nodeStorage) DiskFull() (bool, string) { return s.n.store.DiskFull() }

func (s nodeStorage) InstallSnapshot(dir string, accept func(core.Pos) error) (core.Installed, error) {
	before := s.n.quarantinedNow()
	pos, err := s.n.store.InstallSnapshotIf(dir, accept)
	if err != nil {
		return core.Installed{}, err
	}
	s.n.noteInstallQuarantine(before)
	r, err := s.n.store.Load()
	if err != nil {
		return core.Installed{}, fmt.Errorf("reading installed snapshot: %w", err)
	}
	return core.Installed{Pos: pos, HardState: r.HardState, Members: r.Members}, nil
}

// nodeTransport is the MBP transport; snapshots stream in the background.
type nodeTransport struct{ n *Node }

func (t nodeTransport) Send(m core.Message) { t.n.tr.Send(m.To, m) }

func (t nodeTransport) SendSnapshot(to core.NodeID) { t.n.sendSnapshot(to) }

// nodeReplies answers the clients waiting in Write, Read and the admin calls.
type nodeReplies struct{ n *Node }

func (r nodeReplies) Read(res core.Result) {
	n := r.n
	if fn := n.serves[res.ID]; fn != nil {
		delete(n.serves, res.ID)
		if res.Err == nil {
			fn()
		}
	}
	r.Answer(res)
}

func (r nodeReplies) Answer(res core.Result) {
	if ch, ok := r.n.waiters[res.ID]; ok {
		delete(r.n.waiters, res.ID)
		delete(r.n.serves, res.ID)
		ch <- res
	}
}

func (r nodeReplies) Event(e core.Event) { r.n.onEvent(e) }
