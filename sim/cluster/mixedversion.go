package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// The mixed-version check, after every segment of a topology where some
// node runs an earlier release (the mixed topology): the cluster must run
// at the highest protocol version every voter speaks, and no node may
// have refused another for its version (docs/protocol.md, rule 21;
// docs/upgrades.md). Its anomalies are named mixed-version.

// refusalMarks are what a node logs when it refuses a peer for its
// protocol version (shell/mbp/version.go), in this build and the previous
// release alike.
var refusalMarks = []string{"no common protocol version", "cannot read this node's hello"}

// protoRange parses a protocol range as the API shows it: "2" or "2..3".
func protoRange(s string) (lo, hi int, ok bool) {
	a, b, two := strings.Cut(s, "..")
	lo, err := strconv.Atoi(a)
	if err != nil || lo <= 0 {
		return 0, 0, false
	}
	hi = lo
	if two {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

// wantProtocol is the active protocol version rule 21 gives voters of
// these ranges: the highest every one speaks, the lowest of their
// highest. ok is false when a range does not parse.
func wantProtocol(ranges []string) (int, bool) {
	want := 0
	for _, r := range ranges {
		_, hi, ok := protoRange(r)
		if !ok {
			return 0, false
		}
		if want == 0 || hi < want {
			want = hi
		}
	}
	return want, want > 0
}

// protocolView is one node's answers, for judging.
type protocolView struct {
	node   Node
	info   apitypes.Info
	health apitypes.Health
	err    error
}

// judgeProtocols returns what is wrong with the views of the voters
// (every node of views must answer; voters are the ids that vote): each
// node's active protocol must be want (the lowest highest version of the
// voters' own ranges), health_versions on exactly from protocol 3, and
// every voter listed with the version and range it reports itself.
// violation is true for what rule 21 never allows, at any moment: an
// active version above what a voter speaks.
func judgeProtocols(views []protocolView, voters []string) (problems []string, violation bool) {
	own := map[string]apitypes.Info{}
	var ranges []string
	for _, v := range views {
		if v.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", v.node.ID, v.err))
			continue
		}
		own[v.node.ID] = v.info
		if slices.Contains(voters, v.node.ID) {
			ranges = append(ranges, v.info.Protocol)
		}
	}
	if len(problems) > 0 {
		return problems, false
	}
	want, ok := wantProtocol(ranges)
	if !ok {
		return []string{fmt.Sprintf("the voters report protocol ranges %q, which do not parse", ranges)}, false
	}
	for _, v := range views {
		i := v.info
		if int(i.ActiveProtocol) != want {
			problems = append(problems, fmt.Sprintf("%s (%s, %s) reports active protocol %d; the voters speak %s, so it must be %d",
				v.node.ID, i.Version, i.Protocol, i.ActiveProtocol, strings.Join(ranges, ", "), want))
			violation = violation || int(i.ActiveProtocol) > want
		}
		on := slices.Contains(i.Features, "health_versions")
		if on != (want >= 3) {
			problems = append(problems, fmt.Sprintf("%s lists features %v at protocol %d (health_versions is on from 3)", v.node.ID, i.Features, want))
			violation = violation || on
		}
		if shown := v.health.ActiveProtocol != 0; shown && want < 3 {
			problems = append(problems, fmt.Sprintf("%s's health shows active protocol %d and member versions at protocol %d", v.node.ID, v.health.ActiveProtocol, want))
			violation = true
		}
		for _, m := range i.Members {
			o, asked := own[m.ID]
			if !asked || !slices.Contains(voters, m.ID) {
				continue
			}
			if m.Version != o.Version || m.Protocol != o.Protocol {
				problems = append(problems, fmt.Sprintf("%s lists %s as %q protocol %q; %s reports %q protocol %q",
					v.node.ID, m.ID, m.Version, m.Protocol, m.ID, o.Version, o.Protocol))
			}
		}
	}
	return problems, violation
}

// refusals returns the lines of log that record a version refusal.
func refusals(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, m := range refusalMarks {
			if strings.Contains(l, m) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// checkMixedVersion is the mixed-version check of the segment rep
// reports on: every node's log since the segment started holds no
// version refusal; once recovered, every node reports the active
// protocol the voters' ranges give (2 while a node of the previous
// release votes), the gated feature off below 3, and the others' versions
// as they report them, within a bound (a restarted node learns a peer's
// version from its next hello), each node of an earlier release its own
// version.
func (c *Cluster) checkMixedVersion(ctx context.Context, rep *Report) []Anomaly {
	var an []Anomaly
	nodes := append(slices.Clone(c.Topo.Nodes), c.Topo.Spares...)
	for _, n := range nodes {
		log, err := c.rt.LogsSince(ctx, n.ID, rep.Started)
		if err != nil {
			continue // a spare never started has no log to read
		}
		if ls := refusals(log); len(ls) > 0 {
			an = append(an, Anomaly{"mixed-version", fmt.Sprintf("%s logged a refusal for a protocol version (%d lines since the segment started; rule 21), first: %s",
				n.ID, len(ls), truncate(strings.TrimSpace(ls[0]), 800))})
		}
	}
	if rep.Unrecovered {
		return an
	}
	var voters []string
	for _, n := range c.Topo.Voters() {
		voters = append(voters, n.ID)
	}
	hb := time.Duration(rep.HeartbeatMs) * time.Millisecond
	deadline := time.Now().Add(10*time.Second + 20*hb)
	var problems []string
	for {
		var views []protocolView
		for _, n := range c.Topo.Nodes {
			v := protocolView{node: n}
			v.info, v.err = c.api.Info(ctx, n)
			if v.err == nil {
				v.health, _, v.err = c.api.Health(ctx, n)
			}
			views = append(views, v)
		}
		var violation bool
		problems, violation = judgeProtocols(views, voters)
		if violation {
			// Rule 21 never allows it, however briefly: report it now.
			for _, p := range problems {
				an = append(an, Anomaly{"mixed-version", p})
			}
			return an
		}
		for _, v := range views {
			if r := v.node.Release; r != "" && v.err == nil && !strings.Contains(v.info.Version, r+"-") {
				problems = append(problems, fmt.Sprintf("%s should run release %s but reports version %q", v.node.ID, r, v.info.Version))
			}
		}
		if len(problems) == 0 {
			var vs []string
			for _, v := range views {
				vs = append(vs, fmt.Sprintf("%s %s (%s)", v.node.ID, v.info.Version, v.info.Protocol))
			}
			c.logf("[mixed-version] every node reports active protocol %d: %s", views[0].info.ActiveProtocol, strings.Join(vs, ", "))
			return an
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	for _, p := range problems {
		an = append(an, Anomaly{"mixed-version", fmt.Sprintf("%s (still so after %s of asking)", p, 10*time.Second+20*hb)})
	}
	return an
}
