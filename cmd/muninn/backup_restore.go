package main

import (
	"fmt"
	"time"

	"github.com/muninndb/muninn/shell/backup"
)

// RestoreCmd is `muninn restore --from BACKUP --data-dir NEW`.
type RestoreCmd struct {
	From    string `help:"The backup to restore: a .tar.zst file or a backup directory." required:"" placeholder:"BACKUP"`
	DataDir string `name:"data-dir" help:"The new node's data directory; must not exist or be empty." required:"" placeholder:"DIR"`
}

func (c *RestoreCmd) Run(g *Globals) error {
	p := newProgress(g.Err, "restore")
	start := time.Now()
	m, op, err := backup.Restore(c.From, c.DataDir, backup.ReadOptions{Progress: p.update})
	p.end()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(g.Out, "restored %s into %s\n", c.From, c.DataDir)
	fmt.Fprintf(g.Out, "  position %s (taken %s on %s), %d files, %s in %s (%s)\n", m.Position, m.Created.Format(time.RFC3339), orDash(m.SourceNode),
		len(m.Files), mib(m.TotalBytes), el.Round(time.Millisecond), rateOf(m.TotalBytes, el))
	fmt.Fprintf(g.Out, "  new store identity %016x (the source's was %s); membership: %s\n", op.Identity, orDash(m.SourceStore), bkMembers(op.Members))
	fmt.Fprintf(g.Out, "Next: start it as a standalone node:\n  muninn start --data-dir %s\n", c.DataDir)
	fmt.Fprintf(g.Out, "Then, to make it the first node of a new cluster, enable cluster mode on it (muninn cluster enable; docs/backup.md).\n")
	return nil
}
