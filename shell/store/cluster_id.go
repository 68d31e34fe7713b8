package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// The cluster id says which cluster a store's data belongs to
// (docs/protocol.md, rule 19). 0 means none: a fresh store, or one of a
// cluster made before cluster ids, which keeps 0 (both ends 0 talk as
// before). A restore mints a new one (MintClusterID), so a restored node
// never talks with the cluster its backup came from; a fresh node takes
// the id of the first cluster it meets (AdoptClusterID). It is a meta key
// of the Pebble DB, so a backup's checkpoint and a snapshot carry it.

// ErrClusterIDSet is returned (wrapped) when a store that already has a
// cluster id is asked to take another.
var ErrClusterIDSet = errors.New("the store already belongs to another cluster")

// ErrNotEmpty is returned (wrapped) by AdoptClusterID when the store holds
// an epoch or log entries: its data belongs to the cluster it came from.
var ErrNotEmpty = errors.New("the store is not empty")

// ClusterID returns the store's cluster id (0: none). Safe to call from any
// goroutine, at any time (the handshake asks it for every connection).
func (s *Store) ClusterID() uint64 { return s.clusterID.Load() }

// FormatClusterID is how a cluster id is shown: 16 hex digits, "" for 0.
func FormatClusterID(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%016x", id)
}

func (s *Store) loadClusterID() error {
	v, ok, err := s.get(metaClusterID)
	if err != nil {
		return fmt.Errorf("store %s: read meta clusterid: %w", s.dir, err)
	}
	if !ok {
		s.clusterID.Store(0)
		return nil
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
		return fmt.Errorf("store %s: meta clusterid is damaged (%x, want 8 bytes, not zero): the store is damaged", s.dir, v)
	}
	s.clusterID.Store(binary.BigEndian.Uint64(v))
	return nil
}

// SetClusterID records id as the store's cluster id, synced before it
// returns. It is allowed only while the store has none, or to the id it
// already has (a no-op): a store never moves from one cluster to another
// (MintClusterID is the one exception, for a restore).
func (s *Store) SetClusterID(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setClusterIDLocked(id, false)
}

// AdoptClusterID is SetClusterID for a node meeting a peer of cluster id:
// a store without a cluster id takes it only while it is empty (no epoch,
// no log entry, no snapshot: a fresh node joining), decided under the same
// lock as the saves, so no save slips in between. A store that holds data
// and no cluster id belongs to the cluster that wrote it, and is refused
// with ErrNotEmpty; one with another id with ErrClusterIDSet.
func (s *Store) AdoptClusterID(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setClusterIDLocked(id, true)
}

func (s *Store) setClusterIDLocked(id uint64, onlyEmpty bool) error {
	if id == 0 {
		return fmt.Errorf("store %s: cluster id 0 is not a cluster id", s.dir)
	}
	if err := s.usable(); err != nil {
		return err
	}
	cur := s.clusterID.Load()
	if cur == id {
		return nil
	}
	if cur != 0 {
		return fmt.Errorf("store %s: %w: it is in cluster %016x, not %016x; to join this node to cluster %016x, give it a fresh data directory",
			s.dir, ErrClusterIDSet, cur, id, id)
	}
	if onlyEmpty && !s.emptyLocked() {
		return fmt.Errorf("store %s: %w (epoch %d, last entry %s) and has no cluster id: its data belongs to the cluster that wrote it, not to cluster %016x",
			s.dir, ErrNotEmpty, max(s.hs.Epoch, s.maxEpoch), s.last, id)
	}
	return s.writeClusterIDLocked(id)
}

// emptyLocked: nothing was ever saved that a cluster could count on.
func (s *Store) emptyLocked() bool {
	return s.hs.Epoch == 0 && s.hs.Vote == "" && s.maxEpoch == 0 &&
		s.last == (core.Pos{}) && s.base == (core.Pos{}) && s.snapshot == (core.Pos{})
}

// MintClusterID gives the store a new random cluster id, replacing any it
// had, synced before it returns, and returns it. A restore calls it
// (shell/backup): the restored data starts a new cluster, which never
// talks with the one the backup came from. `cluster recover --force` does
// not: the survivors stay the same cluster, in a new epoch.
func (s *Store) MintClusterID() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return 0, err
	}
	cur := s.clusterID.Load()
	id := NewClusterID()
	for id == cur {
		id = NewClusterID()
	}
	if err := s.writeClusterIDLocked(id); err != nil {
		return 0, err
	}
	return id, nil
}

// writeClusterIDLocked writes id and waits for the fsync. As for a save, a
// failed commit or fsync leaves nothing in the WAL trustworthy: the store
// refuses every later write (the id is then not taken).
func (s *Store) writeClusterIDLocked(id uint64) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(metaClusterID, binary.BigEndian.AppendUint64(nil, id), nil); err != nil {
		return err
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		s.failed = fmt.Errorf("store %s: commit failed (writing the cluster id), restart the node: %w", s.dir, err)
		return s.failed
	}
	if err := b.SyncWait(); err != nil {
		s.failed = fmt.Errorf("store %s: sync failed (writing the cluster id), restart the node: %w", s.dir, err)
		return s.failed
	}
	s.clusterID.Store(id)
	return nil
}

// NewClusterID draws a fresh non-zero cluster id from crypto/rand.
func NewClusterID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("store: crypto/rand: " + err.Error())
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}
