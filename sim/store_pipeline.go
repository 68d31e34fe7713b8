package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// Pipelined persistence, as the node runs it (core.Pipeline; docs/protocol.md,
// "Pipelined persistence"): a Ready is applied to the store at once, without
// a sync, and its fsync completes Settings.Fsync later, when the driver hears
// Saved. A crash in between keeps what the last completed sync covered: on
// Pebble the applied-but-unsynced tail is lost, as on a real disk (the model
// store keeps everything, so there only the ordering is exercised).

// applied is one Apply waiting for its fsync.
type applied struct {
	sync bool     // the Ready needed a sync
	seq  uint64   // the apply's number
	last core.Seq // the store's last entry after it
	cut  core.Seq // where its truncation cut the log (last when none)
	// epoch: the store's epoch after it.
	epoch core.Epoch
}

// syncer is a store that can sync what was applied without a sync.
type syncer interface{ Sync() error }

// Sync on the model store: every save of the model is durable at once; an
// armed fsync failure still hits it.
func (s *Store) Sync() error { return s.disk.beforeSave(true) }

// Sync on Pebble: one WAL fsync, which an armed fsync failure hits.
func (p *pebbleStore) Sync() error {
	if err := p.writable(); err != nil {
		return err
	}
	p.disk.saving = true
	defer func() { p.disk.saving = false }()
	return p.saw(p.db().Sync())
}

// Apply is core.Pipeline: the save goes to the store unsynced, and its
// completion is scheduled after the node's fsync time.
func (h simShell) Apply(rd *core.Ready, sync bool, rejected func(core.Pos, error)) error {
	sn := h.sn
	if err := h.save(rd, false, rejected); err != nil {
		return err
	}
	sn.applySeq++
	a := applied{sync: sync, seq: sn.applySeq, last: sn.st.Last().Seq, epoch: sn.st.HardState().Epoch}
	a.cut = a.last
	if t := rd.Truncate; t != nil {
		a.cut = t.After.Seq
	}
	sn.applies = append(sn.applies, a)
	inc := sn.incarnation
	delay := sn.w.set.Fsync
	switch {
	case !sync:
		delay = 0 // nothing to wait for (the node's syncer answers at once)
	case sn.w.set.StallProb > 0 && sn.w.rngFault.Chance(sn.w.set.StallProb):
		// A stalled fsync (a busy or filling disk): past the driver's
		// InflightWait, so Readys go through behind it.
		delay = sn.w.rngFault.Between(100*time.Millisecond, 2*time.Second)
		sn.w.record("fsync-stall", sn.id, uint64(delay.Milliseconds()), 0, nil)
	}
	// Completions in order, as the node's syncer waits for them.
	at := max(sn.w.now+int64(delay), sn.lastSaveAt)
	sn.lastSaveAt = at
	if delay > sn.w.set.Fsync {
		sn.w.chk.noteStall(at)
	}
	sn.w.at(at, func() {
		if sn.incarnation == inc {
			sn.saveDone()
		}
	})
	return nil
}

// saveDone is the oldest apply's fsync returning. A paused process hears it
// once it resumes.
func (sn *SimNode) saveDone() {
	if sn.n == nil {
		return
	}
	if sn.paused {
		sn.inbox = append(sn.inbox, sn.saveDone)
		return
	}
	a := sn.applies[0]
	sn.applies = sn.applies[1:]
	if a.sync && a.seq > sn.syncedApply {
		// One fsync covers every apply so far (the WAL is sequential).
		if err := sn.st.(syncer).Sync(); err != nil {
			sn.storageFailed(err)
			return
		}
		sn.syncedApply = sn.applySeq
	}
	// Durable now: the log as this apply left it, less what later applies
	// have cut off since (their entries are not synced yet).
	sn.synced, sn.syncedEpoch = a.last, a.epoch
	for _, b := range sn.applies {
		sn.synced = min(sn.synced, b.cut)
	}
	if a.sync {
		// (Only synced saves: a fresh Pebble store saves its bootstrap
		// membership, which the model holds from the start.)
		sn.w.record("saved", sn.id, uint64(a.last), 0, nil)
	}
	if err := sn.drv.Saved(sn.local(sn.w.now)); err != nil {
		sn.storageFailed(err)
		return
	}
	if len(sn.applies) == 0 && len(sn.idle) > 0 {
		run := sn.idle
		sn.idle = nil
		for _, f := range run {
			f()
		}
	}
	sn.drive(nil)
}

// whenIdle runs f once no save is in flight: a snapshot is installed over a
// store with nothing half-saved, as the node's loop waits for its fsyncs.
func (sn *SimNode) whenIdle(f func()) bool {
	if len(sn.applies) == 0 {
		return false
	}
	sn.idle = append(sn.idle, f)
	return true
}

// checkDurable: the core counts as durable only what was synced (the
// contract on core.Pipeline; CanaryCountUnsaved breaks it).
func (c *Checkers) checkDurable(sn *SimNode) {
	if d := sn.n.Durable(); d > sn.synced {
		c.violate("durable-overclaimed", false, sn.id, "the core counts its log durable up to "+itoa(uint64(d))+" but the store has synced only up to "+itoa(uint64(sn.synced)))
	}
}

// stallProb draws how often a synced save's fsync stalls: never for most
// seeds, 2% of synced saves for a quarter of them.
func stallProb(r *Rand) float64 {
	if r.Chance(0.25) {
		return 0.02
	}
	return 0
}

// fsyncTime draws a node's fsync latency: 0 (synchronous saves, no
// Pipeline) for a fifth of the seeds.
func fsyncTime(r *Rand) time.Duration {
	if r.Chance(0.2) {
		return 0
	}
	return r.Between(100*time.Microsecond, 8*time.Millisecond)
}
