package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Sync makes every save applied so far durable: one WAL fsync. A runner
// that applies Readys without syncing each (SaveNoWait with sync false)
// calls it before it counts them durable (docs/protocol.md, "Pipelined
// persistence"). As with a failed save's fsync, a failure leaves nothing in
// the WAL trustworthy, and the store refuses every later write.
func (s *Store) Sync() error {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	// An empty log record, committed synced, syncs the WAL up to it (a
	// commit error through DB.Apply would be fatal to Pebble; this way it
	// comes back, as a save's does).
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.LogData(nil, nil); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		s.failed = fmt.Errorf("store %s: commit failed, restart the node: %w", s.dir, err)
		s.mu.Unlock()
		return s.failed
	}
	s.mu.Unlock()
	if err := b.SyncWait(); err != nil {
		s.mu.Lock()
		s.failed = fmt.Errorf("store %s: sync failed, restart the node: %w", s.dir, err)
		s.mu.Unlock()
		return s.failed
	}
	return nil
}
