package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// Prune drops the log entries (and their undo records) at or below upTo,
// which is capped at the commit point: the log prefix below what every
// member has is pruned, keeping a tail (the core's Ready.Compact already
// keeps the tail; docs/protocol.md, rule 7). The dropped prefix's last position becomes the log base.
// It returns the new base.
func (s *Store) Prune(upTo core.Seq) (core.Pos, error) { return s.PruneAt(upTo, nil) }

// PruneAt is Prune told the membership in force at upTo (the core's
// core.Compaction), which it keeps as the membership at the new base: a
// checkpoint capped below a later change then still knows its membership
// (capAtCommit).
func (s *Store) PruneAt(upTo core.Seq, members core.Members) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
	}
	if upTo > min(s.hs.Commit.Seq, s.last.Seq) {
		members = nil // capped below: members is not the membership there
	}
	upTo = min(upTo, s.hs.Commit.Seq, s.last.Seq)
	if upTo <= s.base.Seq {
		return s.base, nil
	}
	v, ok, err := s.get(seqKey(spaceLog, upTo))
	if err != nil {
		return core.Pos{}, err
	}
	if !ok {
		return core.Pos{}, fmt.Errorf("store %s: prune: entry %d is missing from the log", s.dir, upTo)
	}
	e, err := decodeEntry(seqKey(spaceLog, upTo), v)
	if err != nil {
		return core.Pos{}, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.DeleteRange(seqKey(spaceLog, s.base.Seq+1), seqKey(spaceLog, upTo+1), nil)
	b.DeleteRange(seqKey(spaceUndo, 0), seqKey(spaceUndo, upTo+1), nil)
	b.Set(metaBase, encodePos(e.Pos), nil)
	if upTo == s.last.Seq {
		b.Set(metaApplied, encodePos(e.Pos), nil)
	}
	if members != nil {
		b.Set(metaBaseMembers, core.EncodeMembers(members), nil)
	}
	// Not synced: a crash may bring the pruned entries back, which is
	// harmless; they are pruned again.
	if err := b.Commit(pebble.NoSync); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: prune: %w", s.dir, err)
	}
	s.base = e.Pos
	if members != nil {
		s.baseMembers = members
	}
	return e.Pos, nil
}

// Checkpoint writes a consistent snapshot of the whole store (a Pebble
// checkpoint: hard links where possible, the WAL flushed and synced) into
// dir, on the store's FS, which must not exist, and returns the applied
// point it holds. Saves wait while it runs (hard links make that short).
// CheckpointFiles lists what to send to the installing node.
func (s *Store) Checkpoint(dir string) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
	}
	pos := s.last
	err := s.db.Checkpoint(dir, pebble.WithFlushedWAL())
	s.settle()
	if err != nil {
		return core.Pos{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	if err := writeFileSync(s.fs, s.fs.PathJoin(dir, markerFile), []byte(formatValue+"\n")); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	return pos, nil
}

// CheckpointFiles lists the regular files under dir on fs (a checkpoint,
// for one), as paths relative to dir joined with fs.PathJoin, in sorted
// order, subdirectories included: what a sender streams, in a
// deterministic order, to the node that installs it.
func CheckpointFiles(fs vfs.FS, dir string) ([]string, error) {
	var out []string
	err := walkFiles(fs, dir, "", func(rel string, _ vfs.FileInfo) error {
		out = append(out, rel)
		return nil
	})
	return out, err
}

// walkFiles calls fn for each regular file under dir (rel: its path below
// dir), depth first, each directory's entries in sorted order.
func walkFiles(fs vfs.FS, dir, rel string, fn func(rel string, info vfs.FileInfo) error) error {
	names, err := listDir(fs, fs.PathJoin(dir, rel))
	if err != nil {
		return err
	}
	for _, name := range names {
		r := name
		if rel != "" {
			r = fs.PathJoin(rel, name)
		}
		info, err := fs.Stat(fs.PathJoin(dir, r))
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			if err := walkFiles(fs, dir, r, fn); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := fn(r, info); err != nil {
				return err
			}
		}
	}
	return nil
}

// InstallSnapshot replaces the store's contents with the checkpoint in from
// (made by Checkpoint on another node, then transferred) and returns the
// snapshot's applied point. The node keeps its own quarantine and its vote;
// its epoch becomes the higher of its own and the snapshot's (the vote is
// cleared if the epoch moves). A snapshot behind the local commit point is
// refused.
//
// Every entry of the log it replaces that the snapshot may not hold (see
// SnapshotHolds: a divergent suffix, such as a deposed Cortex's local
// writes not yet truncated) is quarantined as a truncation would
// (docs/protocol.md, rule 10), with the same record and precondition, so
// it can be listed, exported and replayed: an acknowledged local write is
// never lost to a snapshot. Their time is the wall clock's; see
// InstallSnapshotAt.
//
// The swap is atomic: the snapshot is copied to <dir>.install and prepared
// and synced there (the quarantine included: the node's own records and
// the new ones), then <dir> is renamed to <dir>.old, <dir>.install to
// <dir>, the parent directory synced and <dir>.old removed. Open finishes or
// discards an install a crash interrupted: either the old store stands,
// its log still holding the entries, or the new one, its quarantine
// holding them. from is not modified.
func (s *Store) InstallSnapshot(from string) (core.Pos, error) {
	return s.InstallSnapshotIf(from, nil)
}

// InstallSnapshotIf is InstallSnapshot, asking accept first: once the
// checkpoint's position is known and before anything of the store changes,
// accept (if set) may refuse it, and its error is returned wrapped. The
// driver refuses a snapshot its node does not need, so a stream that
// arrives late never cuts back a log whose entries were acknowledged.
func (s *Store) InstallSnapshotIf(from string, accept func(core.Pos) error) (core.Pos, error) {
	return s.InstallSnapshotAt(from, time.Now().UnixMilli(), accept)
}

// InstallSnapshotAt is InstallSnapshotIf with the time (unix ms) recorded
// on the entries it quarantines, as SaveBatch.Now is for a truncation (the
// simulator passes its virtual clock).
func (s *Store) InstallSnapshotAt(from string, now int64, accept func(core.Pos) error) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
	}
	fs := s.fs
	tmp := s.dir + ".install"
	if err := fs.RemoveAll(tmp); err != nil {
		return core.Pos{}, err
	}
	// The copy needs as much again as the snapshot: refuse it up front
	// rather than fill the disk (the sender retries).
	if size, err := dirSize(fs, from); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	} else if err := s.space.charge(uint64(size), atReserve); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	if err := copyDir(fs, from, tmp); err != nil {
		fs.RemoveAll(tmp)
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	pos, err := s.prepareInstall(tmp, now, accept)
	if err != nil {
		fs.RemoveAll(tmp)
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	s.closeDB()
	s.installStep("prepared")
	old := s.dir + ".old"
	if err := fs.Rename(s.dir, old); err != nil {
		return core.Pos{}, s.reopenAfter(fmt.Errorf("install snapshot: %w", err))
	}
	s.installStep("renamed-old")
	if err := fs.Rename(tmp, s.dir); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w (Open will finish the swap)", s.dir, err)
	}
	if err := syncDir(fs, fs.PathDir(s.dir)); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w", s.dir, err)
	}
	if err := fs.RemoveAll(old); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w", s.dir, err)
	}
	if err := s.open(); err != nil {
		return core.Pos{}, err
	}
	return pos, nil
}

// installStep calls the test hook, if set, at a step of an install: a
// test crashes the file system there.
func (s *Store) installStep(step string) {
	if s.onInstallStep != nil {
		s.onInstallStep(step)
	}
}

func (s *Store) reopenAfter(err error) error {
	if oerr := s.open(); oerr != nil {
		return fmt.Errorf("store %s: %v; reopen: %w", s.dir, err, oerr)
	}
	return fmt.Errorf("store %s: %w", s.dir, err)
}

// prepareInstall rewrites the copied snapshot's meta for this node and
// carries its quarantine over, adding the entries of its log the snapshot
// may not hold (quarantineUnheld), all in one synced batch: the copy
// becomes the store only once they are in it.
func (s *Store) prepareInstall(tmp string, now int64, accept func(core.Pos) error) (core.Pos, error) {
	opts := s.opts
	// The copy keeps this node's identity (written below): mint none,
	// which would also draw from a simulator's seeded NewIdentity.
	opts.NewIdentity = func() uint64 { return s.identity }
	snap := newStore(tmp, opts)
	if err := snap.open(); err != nil {
		return core.Pos{}, err
	}
	defer snap.closeDB()
	if err := snap.capAtCommit(); err != nil {
		return core.Pos{}, err
	}
	pos := snap.last
	// The driver first (seed 301461): a node whose log already holds the
	// snapshot's position declines it as not needed, and tells the Cortex
	// so; refused below as behind the commit point, it answered with its
	// compacted prefix, and the Cortex sent the same snapshot forever.
	if accept != nil {
		if err := accept(pos); err != nil {
			return core.Pos{}, err
		}
	}
	if pos.Seq < s.hs.Commit.Seq {
		return core.Pos{}, fmt.Errorf("snapshot at %s is behind the local commit point %s", pos, s.hs.Commit)
	}
	hs := s.hs
	if snap.maxEpoch > hs.Epoch {
		hs.Epoch, hs.Vote = snap.maxEpoch, ""
	}
	if snap.hs.Commit.Seq > hs.Commit.Seq {
		hs.Commit = snap.hs.Commit
	}
	b := snap.db.NewBatch()
	defer b.Close()
	b.DeleteRange([]byte{spaceQuarantine}, []byte{spaceQuarantine + 1}, nil)
	err := s.scanQuarantineLocked(func(q Quarantined) error {
		v, _, err := s.get(quarantineKey(q.Pos()))
		if err != nil {
			return err
		}
		return b.Set(quarantineKey(q.Pos()), v, nil)
	})
	if err != nil {
		return core.Pos{}, err
	}
	history, err := snap.epochHistory()
	if err != nil {
		return core.Pos{}, err
	}
	if err := s.quarantineUnheld(b, pos, history, now); err != nil {
		return core.Pos{}, err
	}
	b.Set(metaHardState, encodeHardState(hs), nil)
	b.Set(metaMaxEpoch, binary.BigEndian.AppendUint64(nil, uint64(max(s.maxEpoch, snap.maxEpoch))), nil)
	b.Set(metaSnapshot, encodePos(pos), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return core.Pos{}, err
	}
	if err := snap.db.Flush(); err != nil {
		return core.Pos{}, err
	}
	// The node keeps its identity: installing moves it forward, never back.
	if err := writeIdentity(s.fs, tmp, s.identity); err != nil {
		return core.Pos{}, err
	}
	return pos, nil
}

// SnapshotHolds reports whether a snapshot ending at snap (its last entry,
// at its sender's commit point) holds the log entry at p, an entry above
// the installing node's commit point, and if not, why: the reason its
// quarantine record gives. history is the snapshot's epoch history
// (EpochHistory), by which it tells the epoch of an entry its sender
// compacted: a node is sent a snapshot when its log parts from the
// sender's below the sender's retained log, so the entries in question
// are mostly there. Two entries at one seq are the same entry exactly when
// their epochs are (one Cortex per epoch, which never rewrites an entry;
// rule 10's log matching), so:
//
//   - past snap.Seq: not in it;
//   - at or below it, where the history tells the snapshot's epoch at
//     that seq: held if the epochs are equal, divergent otherwise;
//   - where it does not (a history that starts later: a store written
//     before it kept one): held in snap's own epoch, divergent in a later
//     one (a log's epochs never go down), and in an earlier one it may
//     be held or not; such an entry is quarantined, since dropping an
//     acknowledged local write loses it, while a replay is conditional on
//     the entry's base and so is refused if the entry had been applied.
//
// The simulator's model store decides with this same function.
func SnapshotHolds(snap core.Pos, history []core.Pos, p core.Pos) (held bool, reason string) {
	at := "removed by a snapshot installed at " + snap.String()
	if p.Seq > snap.Seq {
		return false, at + ", which ends before it"
	}
	if e, ok := EpochAt(history, p.Seq); ok {
		if e == p.Epoch {
			return true, ""
		}
		return false, at + ", whose entry there is from epoch " + strconv.FormatUint(uint64(e), 10)
	}
	switch {
	case p.Epoch == snap.Epoch:
		return true, ""
	case p.Epoch > snap.Epoch:
		return false, at + ", whose entries there are from earlier epochs"
	default:
		return false, at + ", which may hold it (its epoch history does not reach back there)"
	}
}

// EpochAt is the epoch of the entry at seq by an epoch history (sorted by
// seq, as EpochHistory returns it): the epoch of the last record at or
// below seq. It is not known below the first record.
func EpochAt(history []core.Pos, seq core.Seq) (core.Epoch, bool) {
	i, found := slices.BinarySearchFunc(history, seq, func(p core.Pos, s core.Seq) int { return cmp.Compare(p.Seq, s) })
	if !found {
		i--
	}
	if i < 0 {
		return 0, false
	}
	return history[i].Epoch, true
}

// EpochHistory is the store's epoch history: one record (epoch, seq) per
// change of epoch in its log, saying that the entries from seq on are of
// that epoch, sorted by seq. It is written with the entries, cut back with
// a truncation, kept by Prune (so it covers the compacted log too: one
// record per epoch), and carried by a checkpoint, so a snapshot tells the
// epoch of every entry it covers (SnapshotHolds). A store written before
// the history was kept has it from its log base on.
func (s *Store) EpochHistory() ([]core.Pos, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	return s.epochHistory()
}

func (s *Store) epochHistory() ([]core.Pos, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceEpochs}, UpperBound: []byte{spaceEpochs + 1}})
	if err != nil {
		return nil, err
	}
	var out []core.Pos
	var derr error
	err = scan(it, func(k, v []byte) bool {
		if len(k) != 9 || len(v) != 8 {
			derr = fmt.Errorf("store %s: epoch record %x=%x is malformed", s.dir, k, v)
			return false
		}
		out = append(out, core.Pos{Epoch: core.Epoch(binary.BigEndian.Uint64(v)), Seq: core.Seq(binary.BigEndian.Uint64(k[1:]))})
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// quarantineUnheld writes into b (the prepared copy's batch) a quarantine
// record for every entry of this node's log above its commit point that a
// snapshot ending at snap, with epoch history history, may not hold
// (SnapshotHolds): the record a truncation writes, with the entry's base
// from its undo record. Entries at or below the commit point are
// committed, so the snapshot, which ends at or past it, holds them.
func (s *Store) quarantineUnheld(b *pebble.Batch, snap core.Pos, history []core.Pos, now int64) error {
	from := max(s.hs.Commit.Seq, s.base.Seq) + 1
	if from > s.last.Seq {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: seqKey(spaceLog, from), UpperBound: []byte{spaceLog + 1}})
	if err != nil {
		return err
	}
	var es []core.Entry
	var derr error
	err = scan(it, func(k, v []byte) bool {
		e, err := decodeEntry(k, v)
		if err != nil {
			derr = err
			return false
		}
		es = append(es, e)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("store %s: read log: %w", s.dir, err)
	}
	for _, e := range es {
		held, reason := SnapshotHolds(snap, history, e.Pos)
		if held {
			continue
		}
		var u *engram.Undo
		if e.Type == core.EntryData {
			if u, err = undoOf(readKV{s}, e.Pos); err != nil {
				return fmt.Errorf("store %s: quarantine before a snapshot: %w", s.dir, err)
			}
		}
		qv, err := quarantineRecord(e, u, reason, now)
		if err != nil {
			return err
		}
		if err := b.Set(quarantineKey(e.Pos), qv, nil); err != nil {
			return err
		}
	}
	return nil
}

// capAtCommit rolls a checkpoint back to its sender's commit point. A
// checkpoint holds the sender's whole log, entries above the commit point
// included (applied on receipt, rule 9); a failover may still remove those,
// while the node that installs a snapshot counts all of it committed (its
// log restarts at the snapshot's end, rule 7). So the entries above are
// undone here, through their undo records, and come again as appends. The
// sender's recorded commit point may lag: that only makes the snapshot
// end earlier.
func (s *Store) capAtCommit() error {
	c := s.hs.Commit
	if c.Seq >= s.last.Seq {
		return nil
	}
	at := s.base
	es, err := s.Entries(s.base.Seq+1, s.last.Seq)
	if err != nil {
		return err
	}
	// The membership in force at the cap: the current one, unless a change
	// above the cap is rolled back; then the last change at or below it
	// (TestStoresAgree seed 36: the copy kept the uncommitted one).
	members, above, below := s.members, false, false
	for _, e := range es {
		if e.Pos.Seq == c.Seq {
			at = e.Pos
		}
		if e.Type != core.EntryMembership {
			continue
		}
		if e.Pos.Seq > c.Seq {
			above = true
			continue
		}
		if ms, err := core.DecodeMembers(e.Payload); err == nil {
			members, below = ms, true
		}
	}
	if c.Seq > s.base.Seq && at.Seq != c.Seq {
		return fmt.Errorf("snapshot: the entry at its commit point %s is missing", c)
	}
	if above && !below && s.baseMembers != nil {
		// No change between the base and the cap: the membership at the
		// base is the one at the cap (seed 15: without it, a Cortex whose
		// commit lagged below an uncommitted change could send no
		// snapshot, and the node it needed to commit never caught up).
		members, below = s.baseMembers, true
	}
	if above && !below {
		return fmt.Errorf("snapshot: its sender's membership changes above its commit point %s and the membership at that point is not in the copy; the Cortex sends another once the change commits", c)
	}
	// The quarantine records this writes are replaced by the installing
	// node's own (prepareInstall).
	return s.Save(SaveBatch{Truncate: &core.Truncation{After: at, Reason: "snapshot capped at the sender's commit point"}, Members: members}, true)
}

// recoverInstall finishes or discards an InstallSnapshot a crash interrupted.
func recoverInstall(fs vfs.FS, dir string) error {
	tmp, old := dir+".install", dir+".old"
	switch {
	case !fileExists(fs, dir) && fileExists(fs, tmp) && fileExists(fs, old):
		// Crashed between the two renames: the install is complete.
		if err := fs.Rename(tmp, dir); err != nil {
			return fmt.Errorf("store %s: finish interrupted snapshot install: %w", dir, err)
		}
		if err := syncDir(fs, fs.PathDir(dir)); err != nil {
			return err
		}
	case fileExists(fs, dir) && fileExists(fs, tmp):
		// Crashed before the swap: the old store stands.
		if err := fs.RemoveAll(tmp); err != nil {
			return err
		}
	}
	if fileExists(fs, old) && fileExists(fs, dir) {
		return fs.RemoveAll(old)
	}
	return nil
}

// copyDir copies the regular files of src into a new directory dst, syncing
// each file and dst. (Pebble syncs dst's parent when it opens dst.)
func copyDir(fs vfs.FS, src, dst string) error {
	names, err := listDir(fs, src)
	if err != nil {
		return err
	}
	if err := fs.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		p := fs.PathJoin(src, name)
		info, err := fs.Stat(p)
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			if info.IsDir() {
				return fmt.Errorf("%s: unexpected subdirectory %s", src, name)
			}
			continue
		}
		if err := copyFile(fs, p, fs.PathJoin(dst, name)); err != nil {
			return err
		}
	}
	return syncDir(fs, dst)
}

func copyFile(fs vfs.FS, src, dst string) error {
	if _, err := fs.Stat(dst); err == nil {
		return &os.PathError{Op: "create", Path: dst, Err: os.ErrExist}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	in, err := fs.Open(src, vfs.SequentialReadsOption)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fs.Create(dst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dirSize is the total size of the regular files under dir.
func dirSize(fs vfs.FS, dir string) (int64, error) {
	var n int64
	err := walkFiles(fs, dir, "", func(_ string, info vfs.FileInfo) error {
		n += info.Size()
		return nil
	})
	return n, err
}
