package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

// SaveBatch is step 1 of a core.Ready: what must be durable before the
// Ready's messages are sent and its results answered.
type SaveBatch struct {
	HardState *core.HardState  // nil when unchanged
	Truncate  *core.Truncation // a divergent suffix to undo and quarantine
	Entries   []core.Entry     // new entries, appended and applied
	Members   core.Members     // the membership after this batch, nil when unchanged
	Now       int64            // unix ms: the quarantine time of removed entries
	// Rejected, if set, is told of every data entry the state machine
	// refused (engram.RejectError): a no-op entry, whose write must be
	// answered with the refusal, not acknowledged. Called before Save
	// returns, and only if the batch committed.
	Rejected func(pos core.Pos, why error)
}

type rejection struct {
	pos core.Pos
	err error
}

// Pending is a save applied to the store (visible to reads) whose fsync may
// still be under way.
type Pending struct {
	s      *Store
	b      *pebble.Batch
	synced bool
}

// Wait waits until the save is durable. A nil *Pending (an empty save) is
// done at once.
func (p *Pending) Wait() error {
	if p == nil {
		return nil
	}
	defer p.b.Close()
	if !p.synced {
		return nil
	}
	if err := p.b.SyncWait(); err != nil {
		p.s.mu.Lock()
		// After a failed fsync nothing already in the WAL can be trusted
		// to be on disk (fsyncgate): refuse every later write.
		p.s.failed = fmt.Errorf("store %s: sync failed, restart the node: %w", p.s.dir, err)
		p.s.mu.Unlock()
		return p.s.failed
	}
	return nil
}

// Save makes rd durable (sync) or applied (not sync) in one atomic Pebble
// batch: the truncation (rollback of each removed data entry through its undo
// record, deletion from the log, a quarantine record each), the new entries
// (log entry, engram.Apply of data entries, an undo record each while above
// the commit point), the hard state, membership, applied point and highest
// epoch. Either all of it survives a crash or none of it does.
//
// Group commit: a synced Save applies its batch under the store's lock, then
// waits for the WAL fsync outside it. Pebble's commit pipeline syncs the WAL
// once for every batch queued behind an fsync in progress, so concurrent
// Save callers share fsyncs.
//
// Fencing (docs/protocol.md, rule 6) is checked before anything is written: the hard
// state's epoch may not go below the highest epoch persisted, entries may not
// come from an epoch above the node's epoch, and an entry may not follow one
// of a higher epoch. Such a save fails with an error wrapping ErrFenced.
//
// A save with entries while the disk is below half the reserve fails with a
// *NoSpaceError (errors.Is ErrNoSpace) and writes nothing; the store stays
// usable. Any other failure to commit is fatal to the store (see Pending).
func (s *Store) Save(rd SaveBatch, sync bool) error {
	p, err := s.SaveNoWait(rd, sync)
	if err != nil {
		return err
	}
	return p.Wait()
}

// SaveNoWait is Save without waiting for the fsync: the batch is applied
// (visible to reads and to later saves) when it returns, and durable when
// the returned Pending's Wait returns nil. A pipelining runner applies the
// next Ready while the previous one syncs; no result may be delivered and no
// message sent for rd before Wait returns.
func (s *Store) SaveNoWait(rd SaveBatch, sync bool) (*Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if rd.HardState == nil && rd.Truncate == nil && len(rd.Entries) == 0 && rd.Members == nil {
		return nil, nil
	}
	hs := s.hs
	maxEpoch := s.maxEpoch
	if rd.HardState != nil {
		if rd.HardState.Epoch < maxEpoch {
			return nil, fmt.Errorf("store: hard state epoch %d is below the highest epoch recorded, %d: %w", rd.HardState.Epoch, maxEpoch, ErrFenced)
		}
		hs = *rd.HardState
		maxEpoch = hs.Epoch
	}
	b := s.db.NewIndexedBatch()
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	kv := batchKV{b}
	last := s.last
	var rejects []rejection
	var bootstrap core.Members
	if t := rd.Truncate; t != nil {
		var err error
		if last, err = s.truncate(b, kv, t, rd.Now); err != nil {
			return nil, err
		}
	}
	for _, e := range rd.Entries {
		if e.Pos.Seq != last.Seq+1 {
			return nil, fmt.Errorf("store: entry %s does not follow the last entry %s (log entries are contiguous)", e.Pos, last)
		}
		if e.Pos.Epoch < last.Epoch {
			return nil, fmt.Errorf("store: entry %s is from an epoch below the last entry %s: %w", e.Pos, last, ErrFenced)
		}
		if e.Pos.Epoch > hs.Epoch {
			return nil, fmt.Errorf("store: entry %s is from an epoch above the node's epoch %d (persist the hard state with it): %w", e.Pos, hs.Epoch, ErrFenced)
		}
		if e.Pos.Epoch != last.Epoch {
			if err := b.Set(seqKey(spaceEpochs, e.Pos.Seq), encodeEpoch(e.Pos.Epoch), nil); err != nil {
				return nil, err
			}
		}
		if e.Type == core.EntryData {
			u, err := engram.Apply(kv, e.Pos, e.Payload)
			if err != nil && !engram.IsReject(err) {
				return nil, fmt.Errorf("store: apply entry %s: %w", e.Pos, err)
			}
			if err != nil {
				rejects = append(rejects, rejection{e.Pos, err})
			} else if q, ok := engram.ReplayConsumes(e.Payload); ok {
				// A replay consumes its quarantined entry in the same
				// batch: replayed at most once.
				if err := b.Delete(quarantineKey(q), nil); err != nil {
					return nil, err
				}
			}
			// Rejected commands are no-ops everywhere; keep an (empty)
			// undo record anyway, so that every data entry above the
			// commit point has one.
			if e.Pos.Seq > hs.Commit.Seq {
				if err := b.Set(seqKey(spaceUndo, e.Pos.Seq), engram.EncodeUndo(u), nil); err != nil {
					return nil, err
				}
			}
		}
		if err := b.Set(seqKey(spaceLog, e.Pos.Seq), encodeEntry(e), nil); err != nil {
			return nil, err
		}
		last = e.Pos
		maxEpoch = max(maxEpoch, e.Pos.Epoch)
	}
	if rd.HardState != nil {
		if err := b.Set(metaHardState, encodeHardState(hs), nil); err != nil {
			return nil, err
		}
		// Undo records at or below the commit point are never needed again.
		if from, to := s.hs.Commit.Seq+1, min(hs.Commit.Seq, last.Seq); to >= from {
			if err := deleteSeqs(b, spaceUndo, from, to); err != nil {
				return nil, err
			}
		}
	}
	if rd.Members != nil {
		if err := b.Set(metaMembers, core.EncodeMembers(rd.Members), nil); err != nil {
			return nil, err
		}
		if s.base.Seq == 0 && s.last.Seq == 0 && s.baseMembers == nil && rd.Truncate == nil && len(rd.Entries) == 0 {
			// A new node's bootstrap membership: the membership at base 0.
			if err := b.Set(metaBaseMembers, core.EncodeMembers(rd.Members), nil); err != nil {
				return nil, err
			}
			bootstrap = rd.Members
		}
	}
	if maxEpoch != s.maxEpoch {
		if err := b.Set(metaMaxEpoch, binary.BigEndian.AppendUint64(nil, uint64(maxEpoch)), nil); err != nil {
			return nil, err
		}
	}
	if last != s.last {
		if err := b.Set(metaApplied, encodePos(last), nil); err != nil {
			return nil, err
		}
	}
	// Space (see Admit): new entries are refused once they would take the
	// disk below half the reserve — the node admits writes only above the
	// whole reserve, so this is reached only if the disk filled from
	// elsewhere. Saves without entries (hard state, votes, truncations)
	// are small and the protocol cannot do without them: the reserve is
	// kept for them.
	if len(rd.Entries) > 0 {
		if err := s.space.charge(uint64(b.Len())*2, atFloor); err != nil {
			return nil, err
		}
	}
	var err error
	if sync {
		err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	} else {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		s.failed = fmt.Errorf("store %s: commit failed, restart the node: %w", s.dir, err)
		return nil, s.failed
	}
	ok = true
	if rd.Rejected != nil {
		for _, r := range rejects {
			rd.Rejected(r.pos, r.err)
		}
	}
	s.hs, s.maxEpoch, s.last = hs, maxEpoch, last
	if rd.Members != nil {
		s.members = rd.Members
	}
	if bootstrap != nil {
		s.baseMembers = bootstrap
	}
	return &Pending{s: s, b: b, synced: sync}, nil
}

// deleteSeqs deletes the keys of space for seqs in [from, to].
func deleteSeqs(b *pebble.Batch, space byte, from, to core.Seq) error {
	if to-from < 1024 {
		for q := from; q <= to; q++ {
			if err := b.Delete(seqKey(space, q), nil); err != nil {
				return err
			}
		}
		return nil
	}
	return b.DeleteRange(seqKey(space, from), seqKey(space, to+1), nil)
}

// truncate removes every entry after t.After, newest first: it rolls back
// the entry's effect through its undo record, deletes it from the log and
// records it in the quarantine. It returns the new last position.
func (s *Store) truncate(b *pebble.Batch, kv batchKV, t *core.Truncation, now int64) (core.Pos, error) {
	if t.After.Seq < s.base.Seq {
		return core.Pos{}, fmt.Errorf("store: truncation after %s reaches below the retained log, which starts after %s", t.After, s.base)
	}
	if t.After.Seq < s.hs.Commit.Seq {
		return core.Pos{}, fmt.Errorf("store: truncation after %s would remove committed entries (commit point %s)", t.After, s.hs.Commit)
	}
	if t.After.Seq > s.last.Seq {
		return core.Pos{}, fmt.Errorf("store: truncation after %s is past the last entry %s", t.After, s.last)
	}
	if t.After.Seq == s.base.Seq {
		if t.After.Epoch != s.base.Epoch && t.After.Seq != 0 {
			return core.Pos{}, fmt.Errorf("store: truncation after %s does not match the log base %s", t.After, s.base)
		}
	} else {
		v, ok, err := kv.Get(seqKey(spaceLog, t.After.Seq))
		if err != nil {
			return core.Pos{}, err
		}
		if !ok {
			return core.Pos{}, fmt.Errorf("store: truncation after %s: entry %d is missing from the log", t.After, t.After.Seq)
		}
		e, err := decodeEntry(seqKey(spaceLog, t.After.Seq), v)
		if err != nil {
			return core.Pos{}, err
		}
		if e.Pos != t.After {
			return core.Pos{}, fmt.Errorf("store: truncation after %s, but the log holds %s there", t.After, e.Pos)
		}
	}
	// The epoch history forgets the removed entries' epochs.
	if err := b.DeleteRange(seqKey(spaceEpochs, t.After.Seq+1), []byte{spaceEpochs + 1}, nil); err != nil {
		return core.Pos{}, err
	}
	for q := s.last.Seq; q > t.After.Seq; q-- {
		key := seqKey(spaceLog, q)
		v, ok, err := kv.Get(key)
		if err != nil {
			return core.Pos{}, err
		}
		if !ok {
			return core.Pos{}, fmt.Errorf("store: truncation: entry %d is missing from the log", q)
		}
		e, err := decodeEntry(key, v)
		if err != nil {
			return core.Pos{}, err
		}
		var u *engram.Undo
		if e.Type == core.EntryData {
			if u, err = undoOf(kv, e.Pos); err != nil {
				return core.Pos{}, fmt.Errorf("store: truncation: %w", err)
			}
			if err := engram.Rollback(kv, *u); err != nil {
				return core.Pos{}, err
			}
			if err := b.Delete(seqKey(spaceUndo, q), nil); err != nil {
				return core.Pos{}, err
			}
		}
		qv, err := quarantineRecord(e, u, t.Reason, now)
		if err != nil {
			return core.Pos{}, err
		}
		if err := b.Set(quarantineKey(e.Pos), qv, nil); err != nil {
			return core.Pos{}, err
		}
		if err := b.Delete(key, nil); err != nil {
			return core.Pos{}, err
		}
	}
	return t.After, nil
}

// undoOf reads and decodes the undo record of the data entry at p, which
// every data entry above the commit point has.
func undoOf(kv engram.KV, p core.Pos) (*engram.Undo, error) {
	uv, ok, err := kv.Get(seqKey(spaceUndo, p.Seq))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the undo record of entry %s is missing: the store is damaged", p)
	}
	u, err := engram.DecodeUndo(uv)
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", p, err)
	}
	return &u, nil
}

// quarantineRecord is the quarantine record (JSON) of entry e, removed from
// the log for reason at now (unix ms). u is the undo record of a data
// entry: the state it was applied on, which a replay requires (Base).
// Truncations and snapshot installs write the same records.
func quarantineRecord(e core.Entry, u *engram.Undo, reason string, now int64) ([]byte, error) {
	rec := Quarantined{Epoch: e.Pos.Epoch, Seq: e.Pos.Seq, Type: e.Type.String(), Durability: e.Durability.String(), Payload: e.Payload, Reason: reason, TimeMS: now}
	if e.Type == core.EntryData {
		if c, err := engram.DecodeCommand(e.Payload); err == nil {
			rec.Vault, rec.Op, rec.ID = c.Vault, c.Op.String(), c.ID
		}
		if u != nil {
			rec.Base = engram.EncodePrecondition(engram.PreconditionOf(*u))
		}
	}
	return json.Marshal(rec)
}
