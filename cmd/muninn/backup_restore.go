package main

import (
	"fmt"
	"time"

	"github.com/muninndb/muninn/shell/backup"
)

// RestoreCmd is `muninn restore --from BACKUP [--archive DIR ...] [--to-seq N | --to-time T] --data-dir NEW`.
type RestoreCmd struct {
	From    string   `help:"The backup to restore: a .tar.zst file or a backup directory." required:"" placeholder:"BACKUP"`
	DataDir string   `name:"data-dir" help:"The new node's data directory; must not exist or be empty." required:"" placeholder:"DIR"`
	Archive []string `sep:"none" help:"A log archive directory (backup.archive_dir) to replay from after the backup (repeatable: give every node's)." placeholder:"DIR"`
	ToSeq   *uint64  `name:"to-seq" help:"Replay the archive up to this seq (needs --archive; at least 1)." placeholder:"N"`
	ToTime  string   `name:"to-time" help:"Replay the archive up to this time, RFC 3339 (needs --archive): stops before the first write made after it." placeholder:"T"`
}

func (c *RestoreCmd) Run(g *Globals) error {
	o := backup.RestoreOptions{Archive: c.Archive}
	if c.ToSeq != nil {
		// Given, 0 is no seq to stop at (the API reads 0 as no limit).
		if *c.ToSeq == 0 {
			return usageError{fmt.Errorf("--to-seq 0 names no entry (seqs start at 1): give the seq to replay up to, at or above the backup's position, or leave --to-seq out to replay the whole archive")}
		}
		o.ToSeq = *c.ToSeq
	}
	if c.ToTime != "" {
		t, err := time.Parse(time.RFC3339Nano, c.ToTime)
		if err != nil {
			return usageError{fmt.Errorf("--to-time %q is not an RFC 3339 time: write it as e.g. 2026-12-07T04:43:48Z or 2026-12-07T05:43:48+01:00", c.ToTime)}
		}
		if t.IsZero() || t.UnixMilli() <= 0 {
			return usageError{fmt.Errorf("--to-time %s is not after 1970-01-01T00:00:00Z, before any write: give the time to replay up to, or leave --to-time out to replay the whole archive", c.ToTime)}
		}
		o.ToTime = t
	}
	p := newProgress(g.Err, "restore")
	o.Progress = p.update
	start := time.Now()
	m, op, err := backup.RestoreWith(c.From, c.DataDir, o)
	p.end()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(g.Out, "restored %s into %s\n", c.From, c.DataDir)
	fmt.Fprintf(g.Out, "  backup position %s (taken %s on %s), %d files, %s in %s (%s)\n", m.Position, m.Created.Format(time.RFC3339), orDash(m.SourceNode),
		len(m.Files), mib(m.TotalBytes), el.Round(time.Millisecond), rateOf(m.TotalBytes, el))
	if len(c.Archive) > 0 {
		r := op.Replayed
		if r.Applied == 0 {
			fmt.Fprintf(g.Out, "  archive: no entries to apply above the backup's position (%s read)\n", segFiles(r.Files))
		} else {
			fmt.Fprintf(g.Out, "  archive: applied %d entries, %s to %s, from %s\n", r.Applied, r.From, r.To, segFiles(r.Files))
		}
		if r.Undone > 0 {
			fmt.Fprintf(g.Out, "  the backup's %d uncommitted entries differed from the archive's committed history: undone (kept in the quarantine)\n", r.Undone)
		}
		if r.StoppedAt.Seq != 0 {
			fmt.Fprintf(g.Out, "  stopped before %s, the first write after %s\n", r.StoppedAt, c.ToTime)
		}
		if r.Gap != nil {
			fmt.Fprintf(g.Out, "  warning: the archive stops being contiguous after seq %d: %v\n", r.Gap.From-1, r.Gap)
		}
	}
	fmt.Fprintf(g.Out, "  position reached %s\n", op.Last)
	fmt.Fprintf(g.Out, "  new store identity %016x (the source's was %s); membership: %s\n", op.Identity, orDash(m.SourceStore), bkMembers(op.Members))
	if op.ClusterID != 0 {
		fmt.Fprintf(g.Out, "  new cluster id %016x: a new cluster, which the nodes of the old one refuse (protocol rule 19)\n", op.ClusterID)
	}
	fmt.Fprintf(g.Out, "Next: start it as a standalone node:\n  muninn start --data-dir %s\n", c.DataDir)
	fmt.Fprintf(g.Out, "Then, to make it the first node of a new cluster, enable cluster mode on it (muninn cluster enable; docs/backup.md).\n")
	fmt.Fprintf(g.Out, "If it archives its log (backup.archive_dir), give it a new, empty archive directory: the old one holds the source cluster's history, which the node refuses to mix with its own.\n")
	return nil
}

func segFiles(n int) string {
	if n == 1 {
		return "1 segment file"
	}
	return fmt.Sprintf("%d segment files", n)
}
