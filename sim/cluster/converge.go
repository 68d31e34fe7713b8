package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// converge waits until every data node holds the same log position (last
// entry and commit) and the same engrams in both of the segment's vaults.
// It returns how long it waited and, if the bound passed first, why not.
func (c *Cluster) converge(ctx context.Context, w *Workload, within time.Duration) (time.Duration, string) {
	start := time.Now()
	deadline := start.Add(within)
	why := ""
	for {
		why = c.divergence(ctx, w)
		if why == "" {
			return time.Since(start), ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// divergence describes how the data nodes differ ("" when they agree).
func (c *Cluster) divergence(ctx context.Context, w *Workload) string {
	nodes := c.Topo.DataNodes()
	var first apitypes.Info
	for i, n := range nodes {
		info, err := c.api.Info(ctx, n)
		if err != nil {
			return fmt.Sprintf("%s: %v", n.ID, err)
		}
		if info.CommitSeq != info.LastSeq {
			return fmt.Sprintf("%s: commit %d behind last %d", n.ID, info.CommitSeq, info.LastSeq)
		}
		if i == 0 {
			first = info
			continue
		}
		if info.LastEpoch != first.LastEpoch || info.LastSeq != first.LastSeq {
			return fmt.Sprintf("%s at %d.%d, %s at %d.%d", nodes[0].ID, first.LastEpoch, first.LastSeq, n.ID, info.LastEpoch, info.LastSeq)
		}
	}
	for _, vault := range []string{w.RegVault, w.UniVault} {
		var want string
		for i, n := range nodes {
			es, err := c.api.ListAll(ctx, n, vault, "eventual")
			if err != nil {
				return err.Error()
			}
			got := digest(es)
			if i == 0 {
				want = got
			} else if got != want {
				return fmt.Sprintf("vault %s differs between %s and %s", vault, nodes[0].ID, n.ID)
			}
		}
	}
	return ""
}

// digest summarizes engrams by id and content.
func digest(es []apitypes.Engram) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, e.ID+"="+e.Content)
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}
