package store

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// Restored is a node's durable state as found at start.
type Restored struct {
	HardState core.HardState
	// Base is the position just before Entries[0]: the last entry covered by
	// an installed snapshot or dropped by Prune (zero for a full log).
	Base core.Pos
	// Entries is the retained log, oldest first, contiguous from Base.Seq+1.
	Entries []core.Entry
	Members core.Members
	// Applied is the last entry whose effect is in the data: always the last
	// entry (or Base), since an entry and its effect commit together.
	Applied core.Pos
	// Snapshot is the position of the last installed snapshot, if any.
	Snapshot core.Pos
	// MaxEpoch is the highest epoch persisted in a hard state or an entry.
	MaxEpoch core.Epoch
}

// Load reads the durable state for the node runner to restart its core from.
// It checks that the log is contiguous and ends at the applied point.
func (s *Store) Load() (Restored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return Restored{}, err
	}
	r := Restored{HardState: s.hs, Base: s.base, Members: slices.Clone(s.members), Applied: s.last, Snapshot: s.snapshot, MaxEpoch: s.maxEpoch}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceLog}, UpperBound: []byte{spaceLog + 1}})
	if err != nil {
		return Restored{}, err
	}
	prev := s.base
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return Restored{}, fmt.Errorf("store %s: read log: %w", s.dir, err)
		}
		e, err := decodeEntry(it.Key(), v)
		if err != nil {
			it.Close()
			return Restored{}, fmt.Errorf("store %s: %w", s.dir, err)
		}
		if e.Pos.Seq != prev.Seq+1 || e.Pos.Epoch < prev.Epoch {
			it.Close()
			return Restored{}, fmt.Errorf("store %s: log entry %s does not follow %s: the log is damaged", s.dir, e.Pos, prev)
		}
		r.Entries = append(r.Entries, e)
		prev = e.Pos
	}
	if err := it.Close(); err != nil {
		return Restored{}, fmt.Errorf("store %s: read log: %w", s.dir, err)
	}
	if prev != s.last {
		return Restored{}, fmt.Errorf("store %s: the log ends at %s but the applied point is %s", s.dir, prev, s.last)
	}
	return r, nil
}

// Entries returns the retained log entries with lo <= seq <= hi, for
// replication to peers. It holds them all in memory: a caller reading a
// range of unknown size uses EntriesMax.
func (s *Store) Entries(lo, hi core.Seq) ([]core.Entry, error) {
	return s.EntriesMax(lo, hi, 0)
}

// EntriesMax is Entries that stops once the entries read hold maxBytes
// (core.Entry.Size) or more (0: no limit): it returns at least one entry
// when lo is retained, and a prefix of lo..hi. The archiver reads its
// backlog with it, so a round's memory is bounded by bytes, not by how far
// behind it is.
//
// The scan holds the store's DB open (dbLife) so an install swapping the
// DB, or a Close, waits for it rather than closing the DB under it.
func (s *Store) EntriesMax(lo, hi core.Seq, maxBytes int) ([]core.Entry, error) {
	s.dbLife.RLock()
	defer s.dbLife.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	upper := seqKey(spaceLog, hi+1)
	if hi == ^core.Seq(0) {
		upper = []byte{spaceLog + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: seqKey(spaceLog, lo), UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []core.Entry
	var derr error
	size := 0
	err = scan(it, func(k, v []byte) bool {
		e, err := decodeEntry(k, v)
		if err != nil {
			derr = err
			return false
		}
		out = append(out, e)
		size += e.Size()
		if len(out) == 1 && s.onScan != nil {
			s.onScan()
		}
		return maxBytes <= 0 || size < maxBytes
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// LastMembership returns the last membership entry with lo <= seq <= hi
// (ok false: none). It scans backwards from hi and copies no other
// entry's payload: its memory does not grow with the entries it passes
// (the node's prune looks up the membership at a capped point with it).
func (s *Store) LastMembership(lo, hi core.Seq) (e core.Entry, ok bool, err error) {
	s.dbLife.RLock()
	defer s.dbLife.RUnlock()
	if s.db == nil {
		return core.Entry{}, false, ErrClosed
	}
	if hi < lo {
		return core.Entry{}, false, nil
	}
	upper := seqKey(spaceLog, hi+1)
	if hi == ^core.Seq(0) {
		upper = []byte{spaceLog + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: seqKey(spaceLog, lo), UpperBound: upper})
	if err != nil {
		return core.Entry{}, false, err
	}
	for valid := it.Last(); valid; valid = it.Prev() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			it.Close()
			return core.Entry{}, false, fmt.Errorf("store %s: read log: %w", s.dir, verr)
		}
		if len(v) < 10 || core.EntryType(v[8]) != core.EntryMembership {
			continue
		}
		e, err = decodeEntry(it.Key(), v)
		if err != nil {
			it.Close()
			return core.Entry{}, false, fmt.Errorf("store %s: %w", s.dir, err)
		}
		ok = true
		break
	}
	if cerr := it.Close(); cerr != nil {
		return core.Entry{}, false, fmt.Errorf("store %s: read log: %w", s.dir, cerr)
	}
	return e, ok, nil
}

// Entry returns the retained log entry at seq, if there is one (a point
// read: cheaper than Entries for one entry).
func (s *Store) Entry(seq core.Seq) (core.Entry, bool, error) {
	s.dbLife.RLock()
	defer s.dbLife.RUnlock()
	if s.db == nil {
		return core.Entry{}, false, ErrClosed
	}
	k := seqKey(spaceLog, seq)
	v, ok, err := s.get(k)
	if err != nil || !ok {
		return core.Entry{}, false, err
	}
	e, err := decodeEntry(k, v)
	return e, err == nil, err
}

// State returns the persisted hard state, the last entry and the log base.
func (s *Store) State() (hs core.HardState, last, base core.Pos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hs, s.last, s.base
}

func (s *Store) readable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	return nil
}
