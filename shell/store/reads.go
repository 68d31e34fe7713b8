package store

import (
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// Reads go straight to the DB (no lock): they see every applied save,
// including one whose fsync is still under way. Consistency levels are the
// runner's business (docs/protocol.md, rule 12).

// Get returns a live engram.
func (s *Store) Get(vault, id string) (engram.Engram, bool, error) {
	if err := s.readable(); err != nil {
		return engram.Engram{}, false, err
	}
	return engram.Get(readKV{s}, vault, id)
}

// List returns a page of a vault's live engrams (see engram.List).
func (s *Store) List(vault string, o engram.ListOptions) (engram.Page, error) {
	if err := s.readable(); err != nil {
		return engram.Page{}, err
	}
	return engram.List(readKV{s}, vault, o)
}

// Activate ranks a vault's engrams against query text (see engram.Activate).
func (s *Store) Activate(vault, query string, limit int) ([]engram.Hit, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	return engram.Activate(readKV{s}, vault, query, limit)
}

// Check reports whether cmd would apply now, without applying it: the
// Cortex's shell calls it before proposing, so that a write refused by the
// state machine (a duplicate id, a missing engram) is answered with an error
// instead of becoming a no-op entry. A nil error is advisory: an earlier
// entry not yet applied can still make the command a no-op.
func (s *Store) Check(cmd []byte) error {
	if err := s.readable(); err != nil {
		return err
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	_, err := engram.Apply(batchKV{b}, core.Pos{}, cmd)
	return err
}
