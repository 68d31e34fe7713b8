package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// Prune drops the log entries (and their undo records) at or below upTo,
// which is capped at the commit point: DESIGN §5, "log prefix pruned below
// what every member has, keeping a tail" (the core's Ready.Compact already
// keeps the tail). The dropped prefix's last position becomes the log base.
// It returns the new base.
func (s *Store) Prune(upTo core.Seq) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
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
	// Not synced: a crash may bring the pruned entries back, which is
	// harmless; they are pruned again.
	if err := b.Commit(pebble.NoSync); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: prune: %w", s.dir, err)
	}
	s.base = e.Pos
	return e.Pos, nil
}

// Checkpoint writes a consistent snapshot of the whole store (a Pebble
// checkpoint: hard links where possible, the WAL flushed and synced) into
// dir, which must not exist, and returns the applied point it holds. Saves
// wait while it runs (hard links make that short).
func (s *Store) Checkpoint(dir string) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
	}
	pos := s.last
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	if err := writeFileSync(filepath.Join(dir, markerFile), []byte(formatValue+"\n")); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	return pos, nil
}

// InstallSnapshot replaces the store's contents with the checkpoint in from
// (made by Checkpoint on another node, then transferred) and returns the
// snapshot's applied point. The node keeps its own quarantine and its vote;
// its epoch becomes the higher of its own and the snapshot's (the vote is
// cleared if the epoch moves). A snapshot behind the local commit point is
// refused.
//
// The swap is atomic: the snapshot is copied to <dir>.install and prepared
// and synced there, then <dir> is renamed to <dir>.old, <dir>.install to
// <dir>, the parent directory synced and <dir>.old removed. Open finishes or
// discards an install a crash interrupted. from is not modified.
func (s *Store) InstallSnapshot(from string) (core.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return core.Pos{}, err
	}
	tmp := s.dir + ".install"
	if err := os.RemoveAll(tmp); err != nil {
		return core.Pos{}, err
	}
	// The copy needs as much again as the snapshot: refuse it up front
	// rather than fill the disk (the sender retries).
	if size, err := dirSize(from); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	} else if err := s.space.charge(uint64(size), atReserve); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	if err := copyDir(from, tmp); err != nil {
		os.RemoveAll(tmp)
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	pos, err := s.prepareInstall(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return core.Pos{}, fmt.Errorf("store %s: install snapshot from %s: %w", s.dir, from, err)
	}
	s.closeDB()
	old := s.dir + ".old"
	if err := os.Rename(s.dir, old); err != nil {
		return core.Pos{}, s.reopenAfter(fmt.Errorf("install snapshot: %w", err))
	}
	if err := os.Rename(tmp, s.dir); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w (Open will finish the swap)", s.dir, err)
	}
	if err := syncDir(filepath.Dir(s.dir)); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w", s.dir, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return core.Pos{}, fmt.Errorf("store %s: install snapshot: %w", s.dir, err)
	}
	if err := s.open(); err != nil {
		return core.Pos{}, err
	}
	return pos, nil
}

func (s *Store) reopenAfter(err error) error {
	if oerr := s.open(); oerr != nil {
		return fmt.Errorf("store %s: %v; reopen: %w", s.dir, err, oerr)
	}
	return fmt.Errorf("store %s: %w", s.dir, err)
}

// prepareInstall rewrites the copied snapshot's meta for this node.
func (s *Store) prepareInstall(tmp string) (core.Pos, error) {
	snap := newStore(tmp, s.opts)
	if err := snap.open(); err != nil {
		return core.Pos{}, err
	}
	defer snap.closeDB()
	pos := snap.last
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
	if err := writeIdentity(tmp, s.identity); err != nil {
		return core.Pos{}, err
	}
	return pos, nil
}

// recoverInstall finishes or discards an InstallSnapshot a crash interrupted.
func recoverInstall(dir string) error {
	tmp, old := dir+".install", dir+".old"
	switch {
	case !fileExists(dir) && fileExists(tmp) && fileExists(old):
		// Crashed between the two renames: the install is complete.
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("store %s: finish interrupted snapshot install: %w", dir, err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	case fileExists(dir) && fileExists(tmp):
		// Crashed before the swap: the old store stands.
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	if fileExists(old) && fileExists(dir) {
		return os.RemoveAll(old)
	}
	return nil
}

// copyDir copies the regular files of src into a new directory dst, syncing
// each file and dst.
func copyDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			if e.IsDir() {
				return fmt.Errorf("%s: unexpected subdirectory %s", src, e.Name())
			}
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return syncDir(dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
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
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}
