package sim

import "github.com/muninndb/muninn/core"

// checkMembership runs after convergence: the final membership is the one
// the operator's settled changes made (workload_members.go). A node whose
// last settled change was an add, or a bootstrap member never removed, is a
// member (a learner or a voter); a node whose last settled change was a
// removal, or a spare never added, is not. A change whose outcome the
// operator never learned settles nothing. A refused change settles nothing
// either: nothing was logged.
func (c *Checkers) checkMembership(cx *SimNode) {
	ms := cx.n.Members()
	for _, sn := range c.w.nodes {
		_, in := ms.Get(sn.id)
		switch c.w.members.expect[sn.id] {
		case memberIn:
			if !in {
				c.violate("membership", false, cx.id, string(sn.id)+" was added (or never removed) but is not in the final membership "+describe(ms))
				return
			}
		case memberOut:
			if in {
				c.violate("membership", false, cx.id, string(sn.id)+" was removed (or never added) but is in the final membership "+describe(ms))
				return
			}
		}
	}
}

// describe spells a membership as the core's events do.
func describe(ms core.Members) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ","
		}
		s += string(m.ID) + ":" + m.Kind.String()
		if m.Learner {
			s += "(learner)"
		}
	}
	return s
}
