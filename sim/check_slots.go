package sim

import (
	"slices"

	"github.com/muninndb/muninn/core/engram"
)

// checkSlots runs after convergence: ids that clients created, forgot and
// created again concurrently end in the state their last acknowledged
// operation left (an acknowledgement says what the state machine did), and
// never hold the content of a create that was refused. When an operation
// on an id had an unknown outcome, only the second holds.
func (c *Checkers) checkSlots(cortex *SimNode) {
	wl := c.w.work
	for k, id := range wl.slotIDs {
		var acked []*Op
		refused, unknown := map[string]bool{}, false
		for _, op := range wl.ops {
			if op.Key != k || op.Kind != OpSlotCreate && op.Kind != OpSlotForget {
				continue
			}
			switch op.Outcome {
			case OK:
				acked = append(acked, op)
			case Unknown, Pending:
				unknown = true
			case Failed:
				if op.Kind == OpSlotCreate {
					refused[op.Value] = true
				}
			}
		}
		e, ok, err := engram.Get(cortex.st.Data(), slotVault, id)
		if err != nil {
			c.violate("slot-state", false, cortex.id, "reading "+id+": "+err.Error())
			return
		}
		if ok && refused[e.Content] {
			c.violate("refused-write-visible", false, cortex.id, "id "+id+" holds "+e.Content+", written by a create that was refused")
			return
		}
		if unknown || len(acked) == 0 {
			continue
		}
		slices.SortFunc(acked, func(a, b *Op) int {
			if a.Pos.Less(b.Pos) {
				return -1
			}
			if b.Pos.Less(a.Pos) {
				return 1
			}
			return 0
		})
		last := acked[len(acked)-1]
		want, wantOK := "", false
		if last.Kind == OpSlotCreate {
			want, wantOK = last.Value, true
		}
		if ok != wantOK || ok && e.Content != want {
			got := "absent"
			if ok {
				got = e.Content
			}
			c.violate("acknowledged-write-lost", false, cortex.id, "id "+id+" is "+got+", but its last acknowledged operation ("+itoa(uint64(last.ID))+" at "+last.Pos.String()+") left "+describeSlot(want, wantOK))
			return
		}
		c.w.stats.SlotsChecked++
	}
}

func describeSlot(content string, present bool) string {
	if !present {
		return "it forgotten"
	}
	return content
}
