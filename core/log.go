package core

// raftLog is the node's log in memory: the entries after snap, the position
// of the last compacted (or snapshot-installed) entry. The driver persists
// every change through Ready; the core keeps this copy so the protocol can
// be decided without I/O.
type raftLog struct {
	snap    Pos     // entries at or below snap.Seq are gone
	entries []Entry // entries[i].Pos.Seq == snap.Seq+1+i
}

func (l *raftLog) last() Pos {
	if n := len(l.entries); n > 0 {
		return l.entries[n-1].Pos
	}
	return l.snap
}

func (l *raftLog) lastSeq() Seq { return l.last().Seq }

// epochAt returns the epoch of the entry at s, and whether the log knows it.
func (l *raftLog) epochAt(s Seq) (Epoch, bool) {
	if s == l.snap.Seq {
		return l.snap.Epoch, true
	}
	if s < l.snap.Seq || s > l.lastSeq() {
		return 0, false
	}
	return l.entries[s-l.snap.Seq-1].Pos.Epoch, true
}

// has reports whether the log holds an entry at p (or p is the snapshot).
func (l *raftLog) has(p Pos) bool {
	e, ok := l.epochAt(p.Seq)
	return ok && e == p.Epoch
}

func (l *raftLog) entry(s Seq) Entry { return l.entries[s-l.snap.Seq-1] }

// slice returns entries in [lo, hi], capped at maxBytes (at least one).
func (l *raftLog) slice(lo, hi Seq, maxBytes int) []Entry {
	if lo > hi {
		return nil
	}
	es := l.entries[lo-l.snap.Seq-1 : hi-l.snap.Seq]
	size := 0
	for i, e := range es {
		size += e.Size()
		if size > maxBytes && i > 0 {
			return es[:i]
		}
	}
	return es
}

func (l *raftLog) append(es ...Entry) { l.entries = append(l.entries, es...) }

// truncateAfter removes and returns every entry after s.
func (l *raftLog) truncateAfter(s Seq) []Entry {
	if s >= l.lastSeq() {
		return nil
	}
	i := s - l.snap.Seq
	removed := append([]Entry(nil), l.entries[i:]...)
	l.entries = l.entries[:i:i]
	return removed
}

// compact drops entries at or below s.
func (l *raftLog) compact(s Seq) {
	if s <= l.snap.Seq || s > l.lastSeq() {
		return
	}
	e, _ := l.epochAt(s)
	l.entries = append([]Entry(nil), l.entries[s-l.snap.Seq:]...)
	l.snap = Pos{Epoch: e, Seq: s}
}

// hintBefore returns the last position at or before s whose epoch is at most
// epoch: where the sender's log may agree with one whose entry at s has it.
func (l *raftLog) hintBefore(s Seq, epoch Epoch) Pos {
	if s > l.lastSeq() {
		s = l.lastSeq()
	}
	for s > l.snap.Seq {
		e, _ := l.epochAt(s)
		if e <= epoch {
			return Pos{Epoch: e, Seq: s}
		}
		s--
	}
	return l.snap
}
