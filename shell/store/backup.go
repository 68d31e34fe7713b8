package store

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// BackupPoint is what a checkpoint taken for a backup covers: its last
// entry (the applied point), the commit point, the epoch and the
// membership in force, all read under the same lock as the checkpoint.
type BackupPoint struct {
	Last     core.Pos
	Commit   core.Pos
	Epoch    core.Epoch
	Members  core.Members
	Identity uint64 // the source store's identity (the backup's is new)
}

// CheckpointForBackup is Checkpoint, also returning the position and
// membership the checkpoint holds (docs/backup.md). The checkpoint holds
// no IDENTITY file: a store opened from it mints a new identity (rule 16).
func (s *Store) CheckpointForBackup(dir string) (BackupPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return BackupPoint{}, err
	}
	p := BackupPoint{Last: s.last, Commit: s.hs.Commit, Epoch: s.hs.Epoch, Members: slices.Clone(s.members), Identity: s.identity}
	err := s.db.Checkpoint(dir, pebble.WithFlushedWAL())
	s.settle()
	if err != nil {
		return BackupPoint{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	if err := writeFileSync(s.fs, s.fs.PathJoin(dir, markerFile), []byte(formatValue+"\n")); err != nil {
		return BackupPoint{}, fmt.Errorf("store %s: checkpoint to %s: %w", s.dir, dir, err)
	}
	return p, nil
}

// Members is the membership in force (the last membership entry applied).
func (s *Store) Members() core.Members {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members)
}
