package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"time"
)

// electedAfter reads the nodes' logs (JSON lines) since a fault began and
// returns when a node first logged "role changed to cortex" in an epoch
// after epoch: the server's view of the failover, to set beside the
// client's.
func (c *Cluster) electedAfter(ctx context.Context, since time.Time, epoch uint64) (time.Duration, string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var best time.Time
	who := ""
	for _, n := range c.Topo.Nodes {
		out, err := c.rt.LogsSince(ctx, n.ID, since)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Time  time.Time `json:"time"`
				Msg   string    `json:"msg"`
				Epoch uint64    `json:"epoch"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "role changed to cortex" || l.Epoch <= epoch || l.Time.Before(since) {
				continue
			}
			if best.IsZero() || l.Time.Before(best) {
				best, who = l.Time, n.ID
			}
			break
		}
	}
	if best.IsZero() {
		return 0, "", false
	}
	return best.Sub(since), who, true
}
