package sim

import "github.com/muninndb/muninn/core"

// checkReplays runs at the end: a quarantined entry is replayed at most
// once, however many clients replayed it at the same time (the replay
// consumes it and requires the state it was written on). Replays also
// enter the register history (check_linear.go) as writes of their value.
func (c *Checkers) checkReplays() {
	applied := map[core.Pos]int{}
	for _, op := range c.w.work.ops {
		if op.Kind != OpReplay {
			continue
		}
		c.w.stats.Replays++
		if op.Outcome == OK {
			c.w.stats.ReplaysApplied++
			if prev, ok := applied[op.Replays]; ok {
				c.violate("replayed-twice", false, op.Node, "quarantined entry "+op.Replays.String()+" was replayed by operations "+itoa(uint64(prev))+" and "+itoa(uint64(op.ID)))
				return
			}
			applied[op.Replays] = op.ID
		}
	}
}
