package backup

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/store"
)

// RestoreOptions are a restore's: how to read the backup, and the
// point-in-time recovery (docs/backup.md, "Point-in-time recovery").
type RestoreOptions struct {
	ReadOptions
	// Archive are log archive directories (backup.archive_dir of one or
	// more nodes): their entries above the backup's position are replayed.
	Archive []string
	// ToSeq stops the replay at this seq (0: no limit). It may not be below
	// the backup's position, nor beyond the archive's end.
	ToSeq uint64
	// ToTime stops the replay before the first data entry whose command
	// time (engram Command.At) is after it (zero: no limit). Membership and
	// epoch-start entries carry no time and are replayed up to that point.
	ToTime time.Time
}

func (o RestoreOptions) check() error {
	if o.ToSeq != 0 && !o.ToTime.IsZero() {
		return errors.New("give --to-seq or --to-time, not both")
	}
	if (o.ToSeq != 0 || !o.ToTime.IsZero()) && len(o.Archive) == 0 {
		return errors.New("--to-seq and --to-time need --archive DIR: the log archive (backup.archive_dir) to replay from; without it a restore gives the backup's own point")
	}
	return nil
}

// Replayed is what an archive replay did.
type Replayed struct {
	// Applied is how many archived entries were applied, From..To their
	// positions (zero when none).
	Applied  int
	From, To Pos
	// Files is how many segment files were read.
	Files int
	// Undone is how many entries the backup held above its commit point
	// that the archive's committed history replaced (undone through their
	// undo records, kept in the quarantine).
	Undone int
	// StoppedAt is the first data entry left out by ToTime (zero: none).
	StoppedAt Pos
	// Gap, when not nil, is where a replay without ToSeq/ToTime stopped:
	// the archive continues after a hole.
	Gap *archive.GapError
}

// replayChunk is how many entries one store batch applies.
const replayChunk = 1024

// replay applies the archived entries above the restored store's position,
// as committed entries, with its hard state's commit point advanced with
// them. Entries the backup holds above its commit point (a Lobe's backup
// may hold some) are compared with the archive where it covers them: from
// the first one that differs, the backup's suffix is undone (a truncation:
// rolled back through the undo records and quarantined, as a failover
// would) and the archive's committed entries take its place. The archive
// must be of the backup's history: one cluster id, the backup store's;
// where it holds the backup's commit point, the same entry there. It must
// cover every seq from the backup's commit point + 1 to the target (a hole
// just above the commit point is refused, not skipped); an archive that
// ends before the backup's position, or holds no segment, is refused, and
// so is a ToTime after the archive's last write (nothing shows the archive
// holds every write up to it).
func replay(st *store.Store, m Manifest, o RestoreOptions) (Replayed, error) {
	var r Replayed
	if len(o.Archive) == 0 {
		return r, nil
	}
	hs, last, base := st.State()
	if o.ToSeq != 0 && core.Seq(o.ToSeq) < last.Seq {
		return r, fmt.Errorf("--to-seq %d is below the backup's position: the backup is at seq %d (%s); use an older backup, taken at or below seq %d", o.ToSeq, last.Seq, pos(last), o.ToSeq)
	}
	if !o.ToTime.IsZero() {
		if at, p, err := lastDataTime(st, base.Seq+1, last.Seq); err != nil {
			return r, err
		} else if at > o.ToTime.UnixMilli() {
			return r, fmt.Errorf("--to-time %s is before the backup's point: the backup holds the write at %s, made at %s; use an older backup", o.ToTime.UTC().Format(time.RFC3339Nano), pos(p), time.UnixMilli(at).UTC().Format(time.RFC3339Nano))
		}
	}
	segs, err := archive.List(o.Archive...)
	if err != nil {
		return r, err
	}
	// The archive must be of the backup's history: one cluster id, the
	// backup's (a restored cluster archives under a new one), holding the
	// backup's position or continuing right after it.
	if len(segs) == 0 {
		return r, fmt.Errorf("--archive %s holds no archive segment (FIRST-LAST.CLUSTER.NODE.mseg files): give the backup.archive_dir of the backup's cluster, or restore without --archive to get the backup's own point", strings.Join(o.Archive, ", "))
	}
	cid, err := archive.OneCluster(segs)
	if err != nil {
		return r, err
	}
	if want := st.ClusterID(); cid != want {
		return r, fmt.Errorf("the archive is of another cluster: %s is of cluster %s, the backup of cluster %s (a restored cluster archives under its new cluster id): give the backup.archive_dir of the backup's cluster", segs[0].Path, archive.FormatCluster(cid), archive.FormatCluster(want))
	}
	// Where to start: at the backup's commit point c, whose entry must be
	// the archive's (or another history was given), when the archive holds
	// it; else right after it. The backup's entries above c (a Lobe's
	// backup may hold some) are checked against the archive, which must
	// hold every seq after c: a hole there is refused, not skipped.
	c := max(min(hs.Commit.Seq, last.Seq), base.Seq)
	end, endFile := core.Seq(0), ""
	covered := false
	for _, s := range segs {
		if s.Last > end {
			end, endFile = s.Last, s.Path
		}
		covered = covered || (c > 0 && s.First <= c && c <= s.Last)
	}
	if end < c || (end == c && !covered) {
		return r, fmt.Errorf("the archive ends at seq %d (%s), before the backup's position %s: it holds nothing after the backup; give the archive directories that continue from it (every node's backup.archive_dir), or restore without --archive", end, endFile, pos(last))
	}
	from := c + 1
	if covered {
		from = c
	}
	top := last.Seq // the backup's last entry (lowered by an undo)
	var pending []core.Entry
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		h, _, _ := st.State()
		var ms core.Members
		for _, e := range pending {
			h.Epoch = max(h.Epoch, e.Pos.Epoch)
			if e.Type == core.EntryMembership {
				d, err := core.DecodeMembers(e.Payload)
				if err != nil {
					return fmt.Errorf("archived membership entry %s: %w", e.Pos, err)
				}
				ms = d
			}
		}
		h.Commit = pending[len(pending)-1].Pos
		if err := st.Save(store.SaveBatch{HardState: &h, Entries: pending, Members: ms, Now: time.Now().UnixMilli()}, true); err != nil {
			return fmt.Errorf("replaying archived entries %s..%s: %w", pending[0].Pos, h.Commit, err)
		}
		if r.Applied == 0 {
			r.From = pos(pending[0].Pos)
		}
		r.Applied += len(pending)
		r.To = pos(h.Commit)
		pending = pending[:0]
		return nil
	}
	toT := int64(0)
	if !o.ToTime.IsZero() {
		toT = o.ToTime.UnixMilli()
	}
	lastAt, lastAtPos, err := lastDataTime(st, base.Seq+1, last.Seq)
	if err != nil {
		return r, err
	}
	res, werr := archive.Walk(segs, from, core.Seq(o.ToSeq), func(e core.Entry, file string) error {
		if e.Pos.Seq <= c {
			// The backup's commit point: the same entry, or another history.
			have, ok := base, e.Pos.Seq == base.Seq
			if !ok {
				h, found, err := st.Entry(e.Pos.Seq)
				if err != nil {
					return err
				}
				have, ok = h.Pos, found && h.Type == e.Type && string(h.Payload) == string(e.Payload)
			}
			if !ok || have != e.Pos {
				return fmt.Errorf("the archive is of another history: its entry at seq %d (%s, in %s) is not the backup's committed entry %s there: give the backup.archive_dir of the backup's own cluster (not one a restored cluster, or another, also wrote into)", e.Pos.Seq, e.Pos, file, have)
			}
			return nil
		}
		if e.Pos.Seq <= top {
			have, ok, err := st.Entry(e.Pos.Seq)
			if err != nil {
				return err
			}
			if ok && have.Pos == e.Pos && have.Type == e.Type && string(have.Payload) == string(e.Payload) {
				return nil
			}
			if !ok {
				return fmt.Errorf("the restored log has no entry at seq %d to compare with %s", e.Pos.Seq, file)
			}
			// The backup's entry above its commit point is not the one
			// committed: undo the backup's suffix from here.
			after := base
			if e.Pos.Seq-1 > base.Seq {
				prev, ok, err := st.Entry(e.Pos.Seq - 1)
				if err != nil || !ok {
					return fmt.Errorf("the restored log has no entry at seq %d: %v", e.Pos.Seq-1, err)
				}
				after = prev.Pos
			}
			if err := st.Save(store.SaveBatch{Truncate: &core.Truncation{After: after, Reason: fmt.Sprintf("restore: the backup's uncommitted entries from %s on differ from the archive's committed history (%s)", have.Pos, file)}, Now: time.Now().UnixMilli()}, true); err != nil {
				return fmt.Errorf("undoing the backup's uncommitted entries after %s: %w", after, err)
			}
			r.Undone += int(top - after.Seq)
			top = after.Seq
		}
		if e.Type == core.EntryData {
			if cmd, err := engram.DecodeCommand(e.Payload); err == nil {
				if toT != 0 && int64(cmd.At) > toT {
					r.StoppedAt = pos(e.Pos)
					return archive.ErrStop
				}
				lastAt, lastAtPos = int64(cmd.At), e.Pos
			}
		}
		pending = append(pending, e)
		if len(pending) >= replayChunk {
			return flush()
		}
		return nil
	})
	r.Files = res.Files
	if err := flush(); err != nil {
		return r, err
	}
	var gap *archive.GapError
	switch {
	case werr == nil:
	case errors.As(werr, &gap) && o.ToSeq == 0 && o.ToTime.IsZero() && gap.From > top && r.Applied > 0:
		r.Gap = gap // replayed to the end of the contiguous archive
	case o.ToSeq != 0:
		return r, fmt.Errorf("restore --to-seq %d: %w", o.ToSeq, werr)
	case !o.ToTime.IsZero() && gap != nil:
		return r, fmt.Errorf("restore --to-time %s: %w", o.ToTime.UTC().Format(time.RFC3339Nano), werr)
	default:
		return r, werr
	}
	if toT != 0 && r.StoppedAt.Seq == 0 {
		// Nothing shows the archive holds every write up to the time asked
		// for: the writes after its end are not in it.
		_, end, _ := st.State()
		at := "no write"
		if lastAtPos.Seq != 0 {
			at = fmt.Sprintf("last write %s at %s", pos(lastAtPos), time.UnixMilli(lastAt).UTC().Format(time.RFC3339Nano))
		}
		return r, fmt.Errorf("restore --to-time %s: the archive ends at seq %d (%s), before %s: the writes made after its end are not in it. Give the archive directories that hold more (every node's backup.archive_dir), pick a time at or before its last write, or restore without --to-time to replay the whole archive", o.ToTime.UTC().Format(time.RFC3339Nano), end.Seq, at, o.ToTime.UTC().Format(time.RFC3339Nano))
	}
	return r, nil
}

// lastDataTime is the command time (unix ms) of the last data entry in
// lo..hi of st's log, and its position (0 when there is none).
func lastDataTime(st *store.Store, lo, hi core.Seq) (int64, core.Pos, error) {
	for end := hi; end >= lo && end > 0; {
		start := max(lo, end-min(end, replayChunk)+1)
		es, err := st.Entries(start, end)
		if err != nil {
			return 0, core.Pos{}, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			if es[i].Type != core.EntryData {
				continue
			}
			if c, err := engram.DecodeCommand(es[i].Payload); err == nil {
				return int64(c.At), es[i].Pos, nil
			}
		}
		if start == lo {
			break
		}
		end = start - 1
	}
	return 0, core.Pos{}, nil
}
