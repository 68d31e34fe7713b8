package sim

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/store"
)

// Store is the model store (`--store model`): a node's durable state kept
// in memory, every save durable at once. The driver writes each Ready's
// Truncate, HardState and Entries here (one atomic batch). Data entries are applied on receipt to an
// engram.MemKV through the real engram.Apply; the undo of every applied entry
// is kept so a truncation can roll it back, and truncated entries are kept
// in the quarantine (rule 10).
type Store struct {
	hs          core.HardState
	snap        core.Pos
	snapMembers core.Members
	log         []core.Entry // after snap
	undo        []engram.Undo
	// epochs is the epoch history, as shell/store keeps it
	// (store.EpochHistory): a record per change of epoch in the log, the
	// compacted part included.
	epochs     []core.Pos
	kv         *engram.MemKV
	quarantine []Quarantined
	// rejects counts data entries engram.Apply refused (deterministic no-ops).
	rejects  int
	identity uint64
	staged   map[string]*Store // snapshots streamed in, by staging dir
	// uncappable: a checkpoint that shell/store could not cap at its
	// commit point (see Checkpoint).
	uncappable bool
	disk       *diskFaults
}

// Quarantined is one entry removed from the log by a truncation, with the
// state it had been applied on (a replay's precondition).
type Quarantined struct {
	Entry  core.Entry
	Reason string
	At     int64
	Base   *engram.Precondition
}

func newStore(bootstrap core.Members, identity uint64, disk *diskFaults) *Store {
	return &Store{kv: engram.NewMemKV(), snapMembers: bootstrap, identity: identity, disk: disk}
}

// Members returns the membership in force in the stored log.
func (s *Store) Members() core.Members {
	for i := len(s.log) - 1; i >= 0; i-- {
		if e := s.log[i]; e.Type == core.EntryMembership {
			if ms, err := core.DecodeMembers(e.Payload); err == nil {
				return ms
			}
		}
	}
	return s.snapMembers
}

// Copy returns a deep copy: an old copy of the store to put back later.
func (s *Store) Copy() nodeStore { return s.clone() }

func (s *Store) clone() *Store {
	c := *s
	c.staged = nil
	c.snapMembers = slices.Clone(s.snapMembers)
	c.log = slices.Clone(s.log)
	c.undo = slices.Clone(s.undo)
	c.epochs = slices.Clone(s.epochs)
	c.kv = s.kv.Clone()
	c.quarantine = slices.Clone(s.quarantine)
	return &c
}

func (s *Store) Last() core.Pos {
	if n := len(s.log); n > 0 {
		return s.log[n-1].Pos
	}
	return s.snap
}

// EntryAt returns the entry at seq, if the log holds it.
func (s *Store) EntryAt(seq core.Seq) (core.Entry, bool) {
	if seq <= s.snap.Seq || seq > s.Last().Seq {
		return core.Entry{}, false
	}
	return s.log[seq-s.snap.Seq-1], true
}

func chainHash(prev uint64, e core.Entry) uint64 {
	h := prev ^ 14695981039346656037
	mix := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	mix(uint64(e.Pos.Epoch))
	mix(uint64(e.Pos.Seq))
	mix(uint64(e.Type))
	for _, b := range e.Payload {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// truncate removes every entry after seq, newest first: rolls back its
// apply and quarantines it. It returns the removed entries, oldest first.
func (s *Store) truncate(seq core.Seq, reason string, now int64) []core.Entry {
	if seq >= s.Last().Seq {
		return nil
	}
	i := int(seq - s.snap.Seq)
	if i < 0 {
		i = 0
	}
	removed := slices.Clone(s.log[i:])
	for k := len(s.log) - 1; k >= i; k-- {
		if err := engram.Rollback(s.kv, s.undo[k]); err != nil {
			panic(err) // MemKV never fails
		}
	}
	for k, e := range removed {
		s.quarantine = append(s.quarantine, Quarantined{Entry: e, Reason: reason, At: now, Base: engram.PreconditionOf(s.undo[i+k])})
	}
	s.log = s.log[:i:i]
	s.undo = s.undo[:i:i]
	s.epochs = slices.DeleteFunc(s.epochs, func(p core.Pos) bool { return p.Seq > seq })
	return removed
}

// append persists and applies e, which must follow the log. It returns the
// state machine's refusal of the entry's command (a no-op), if any.
func (s *Store) append(e core.Entry) (rejected error) {
	e.Payload = bytes.Clone(e.Payload)
	var u engram.Undo
	if e.Type == core.EntryData {
		var err error
		u, err = engram.Apply(s.kv, e.Pos, e.Payload)
		if err != nil {
			if !engram.IsReject(err) {
				panic(err)
			}
			s.rejects++
			rejected = err
		} else if q, ok := engram.ReplayConsumes(e.Payload); ok {
			// A replay consumes its quarantined entry with its apply.
			s.quarantine = slices.DeleteFunc(s.quarantine, func(x Quarantined) bool { return x.Entry.Pos == q })
		}
	}
	if e.Pos.Epoch != s.Last().Epoch {
		s.epochs = append(s.epochs, e.Pos)
	}
	s.log = append(s.log, e)
	s.undo = append(s.undo, u)
	return rejected
}

// compact drops entries at or below upto (they are committed everywhere
// that matters); the state machine keeps them applied.
func (s *Store) compact(upto core.Pos, ms core.Members) {
	if upto.Seq <= s.snap.Seq || upto.Seq > s.Last().Seq {
		return
	}
	k := int(upto.Seq - s.snap.Seq)
	s.log = slices.Clone(s.log[k:])
	s.undo = slices.Clone(s.undo[k:])
	s.snap = upto
	s.snapMembers = ms
}

// dropUndo forgets the undo of committed entries (they never roll back).
func (s *Store) dropUndo(commit core.Seq) {
	for i := range s.undo {
		if s.log[i].Pos.Seq > commit {
			break
		}
		s.undo[i] = engram.Undo{}
	}
}

// Restored is what a restarting node reads back.
func (s *Store) Restored() core.Restored {
	return core.Restored{
		HardState:   s.hs,
		Snap:        s.snap,
		SnapMembers: slices.Clone(s.snapMembers),
		Entries:     slices.Clone(s.log),
	}
}

func (s *Store) HardState() core.HardState  { return s.hs }
func (s *Store) Base() core.Pos             { return s.snap }
func (s *Store) Data() engram.KV            { return s.kv }
func (s *Store) Quarantined() []Quarantined { return s.quarantine }
func (s *Store) Rejects() int               { return s.rejects }
func (s *Store) Identity() uint64           { return s.identity }
func (s *Store) Close()                     {}

// Crash: every save of the model is durable when it returns.
func (s *Store) Crash() (nodeStore, error) { return s, nil }

// Save is the driver's step 1: truncation, hard state, entries, in one
// batch; nothing of it is written when it fails.
func (s *Store) Save(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	if err := s.disk.beforeSave(sync); err != nil {
		return err
	}
	if len(rd.Entries) > 0 && s.disk != nil && s.disk.full {
		// As shell/store: entries are refused below half the reserve.
		return fmt.Errorf("%w: the disk of %s is full (%w)", core.ErrNoSpace, s.disk.node, errInjected)
	}
	last := s.Last()
	if t := rd.Truncate; t != nil {
		if t.After.Seq < s.snap.Seq || t.After.Seq > last.Seq {
			return fmt.Errorf("model store: truncation after %s outside the log (%s, %s]", t.After, s.snap, last)
		}
		last = t.After
	}
	for _, e := range rd.Entries {
		if e.Pos.Seq != last.Seq+1 {
			return fmt.Errorf("model store: entry %s does not follow %s", e.Pos, last)
		}
		last = e.Pos
	}
	if t := rd.Truncate; t != nil {
		s.truncate(t.After.Seq, t.Reason, s.disk.now())
	}
	if rd.HardState != nil {
		s.hs = *rd.HardState
	}
	for _, e := range rd.Entries {
		if err := s.append(e); err != nil && rejected != nil {
			rejected(e.Pos, err)
		}
	}
	return nil
}

// Prune drops entries at or below c.Upto; the state machine keeps them
// applied.
func (s *Store) Prune(c core.Compaction) error {
	s.compact(c.Upto, c.Members)
	return nil
}

func (s *Store) Admit(n int) error        { return s.disk.admit(n) }
func (s *Store) DiskFull() (bool, string) { return s.disk.isFull() }

// DropQuarantine removes a quarantined entry (CanaryDropQuarantine).
func (s *Store) DropQuarantine(p core.Pos) (bool, error) {
	n := len(s.quarantine)
	s.quarantine = slices.DeleteFunc(s.quarantine, func(q Quarantined) bool { return q.Entry.Pos == p })
	return len(s.quarantine) < n, nil
}

// Checkpoint freezes the whole store: log base at the last entry, state
// machine, membership, hard state.
func (s *Store) Checkpoint() (*snapImage, error) {
	c := s.clone()
	// As shell/store's capAtCommit: entries above the commit point are
	// rolled back, a snapshot holds only what is committed. Like the store,
	// which knows the membership only from its log and its current record,
	// a copy whose membership changes above the commit point with no change
	// at or below it cannot be capped: it fails to install.
	above, below := false, false
	for _, e := range c.log {
		if e.Type == core.EntryMembership {
			if e.Pos.Seq > c.hs.Commit.Seq {
				above = true
			} else {
				below = true
			}
		}
	}
	// shell/store knows the membership at its base once it has pruned
	// with the core's record of it, or from its bootstrap membership.
	c.uncappable = above && !below && c.snapMembers == nil
	if commit := c.hs.Commit.Seq; commit < c.Last().Seq && commit >= c.snap.Seq {
		c.truncate(commit, "snapshot capped at the sender's commit point", 0)
	}
	c.compact(c.Last(), c.Members())
	return &snapImage{model: c, size: dataSize(c.kv)}, nil
}

// Stage keeps a streamed snapshot for InstallSnapshot.
func (s *Store) Stage(img *snapImage) (string, error) {
	if s.staged == nil {
		s.staged = map[string]*Store{}
	}
	dir := "snapshot-in/" + itoa(uint64(len(s.staged)+1))
	s.staged[dir] = img.model
	return dir, nil
}

// InstallSnapshot replaces the log and the state machine with the staged
// snapshot's; the quarantine and the identity stay this store's. As
// shell/store does, every entry above the commit point that the snapshot
// may not hold (store.SnapshotHolds: a divergent suffix not yet truncated)
// is quarantined first, as a truncation would, so an acknowledged local
// write is never lost to a snapshot.
func (s *Store) InstallSnapshot(dir string, accept func(core.Pos) error) (core.Installed, error) {
	img := s.staged[dir]
	delete(s.staged, dir)
	if img == nil {
		return core.Installed{}, fmt.Errorf("model store: no snapshot staged at %s", dir)
	}
	if img.uncappable {
		return core.Installed{}, fmt.Errorf("model store: the snapshot's membership changes above its commit point")
	}
	if err := accept(img.snap); err != nil {
		return core.Installed{}, err
	}
	if img.snap.Seq < s.hs.Commit.Seq {
		// As shell/store, once the driver has accepted it.
		return core.Installed{}, fmt.Errorf("model store: snapshot at %s is behind the local commit point %s", img.snap, s.hs.Commit)
	}
	if s.disk != nil && s.disk.full {
		return core.Installed{}, fmt.Errorf("%w: the disk of %s has no room for a snapshot (%w)", core.ErrNoSpace, s.disk.node, errInjected)
	}
	if err := s.disk.beforeSave(true); err != nil {
		return core.Installed{}, err
	}
	now := s.disk.now()
	for k, e := range s.log {
		if e.Pos.Seq <= s.hs.Commit.Seq {
			continue
		}
		if held, reason := store.SnapshotHolds(img.snap, img.epochs, e.Pos); !held {
			s.quarantine = append(s.quarantine, Quarantined{Entry: e, Reason: reason, At: now, Base: engram.PreconditionOf(s.undo[k])})
		}
	}
	s.snap, s.snapMembers = img.snap, slices.Clone(img.snapMembers)
	s.log, s.undo = nil, nil
	s.epochs = slices.Clone(img.epochs)
	s.kv = img.kv.Clone()
	return core.Installed{Pos: img.snap, HardState: img.hs, Members: slices.Clone(img.snapMembers)}, nil
}
