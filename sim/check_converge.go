package sim

import (
	"time"

	"github.com/muninndb/muninn/core"
)

// ConvergeBound is how long phase 2 may take, from healing every fault, to
// reach one Cortex that every node follows, identical logs and state on
// every data node, everything committed and every client answered.
const ConvergeBound = 25 * time.Second

// converged reports whether the cluster has converged, and the Cortex. The
// cluster is the membership the Cortex has in force: every member must be
// up and converge; nodes outside it (spares never added, removed nodes,
// stopped or not) are no part of it.
func (c *Checkers) converged() (*SimNode, string) {
	w := c.w
	var cx *SimNode
	for _, sn := range w.nodes {
		if sn.live() && sn.n.Role() == core.RoleCortex {
			if cx != nil {
				return nil, "two Cortexes: " + string(cx.id) + " and " + string(sn.id)
			}
			cx = sn
		}
	}
	if cx == nil {
		for _, sn := range w.nodes {
			if !sn.live() && !sn.retired {
				return nil, "no Cortex (" + string(sn.id) + " is down)"
			}
		}
		return nil, "no Cortex"
	}
	// The Cortex's state, read once for every member compared to it.
	var cxData *dataImage
	if cx.n.Commit() != cx.n.Last() {
		return nil, "Cortex " + string(cx.id) + " has uncommitted entries: commit " + cx.n.Commit().String() + " last " + cx.n.Last().String()
	}
	for _, m := range cx.n.Members() {
		sn := w.node(m.ID)
		if sn == nil {
			return nil, "member " + string(m.ID) + " is no simulated node"
		}
		if !sn.live() {
			return nil, string(sn.id) + " is down"
		}
		if sn.n.Epoch() != cx.n.Epoch() || (sn != cx && sn.n.Cortex() != cx.id) {
			return nil, string(sn.id) + " does not follow " + string(cx.id) + " in epoch " + itoa(uint64(cx.n.Epoch()))
		}
		if sn.spec.Kind == core.KindSentinel {
			continue
		}
		if sn.st.Last() != cx.st.Last() {
			return nil, string(sn.id) + " log ends at " + sn.st.Last().String() + ", Cortex's at " + cx.st.Last().String()
		}
		if sn == cx {
			continue
		}
		if cxData == nil {
			cxData = dataOf(cx.st.Data())
		}
		if ok, where := cxData.equal(sn.st.Data()); !ok {
			return nil, string(sn.id) + " state differs from the Cortex's at " + where
		}
	}
	for _, op := range w.work.ops {
		if op.Outcome == Pending {
			return nil, "client operations still in flight"
		}
	}
	return cx, ""
}

// awaitConvergence polls converged until the bound, then runs the final
// checks or reports a liveness violation.
func (c *Checkers) awaitConvergence(deadline int64, done func(*SimNode)) {
	cx, why := c.converged()
	if cx != nil {
		done(cx)
		return
	}
	if c.w.now >= deadline {
		c.violate("convergence", true, "", "not converged "+ConvergeBound.String()+" after healing: "+why)
		return
	}
	c.w.after(100*time.Millisecond, func() { c.awaitConvergence(deadline, done) })
}
