package core

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the data-driven scenarios in testdata/. Each file
// opens with a paragraph saying what it proves; regenerate the expected
// output with `go test ./core -run TestScenarios -rewrite` and review the diff.
//
// Commands:
//
//	cluster voters=(n1,n2,n3) [sentinels=(s1)] [observers=(o1)] [hb=1000ms] [latency=1ms]
//	run for=4s              advance time, printing what happened
//	crash n1 / restart n1
//	isolate a=(n1) b=(n2,n3) / oneway from=n1 to=n2 / heal
//	write node=n1 [durability=quorum] [count=3]
//	read node=n1 level=strong [max-lag-ms=100]
//	transfer node=n1 [to=n2]
//	join id=n4 [kind=auto]   start an empty node outside the membership
//	add node=n1 id=n4 [kind=auto] / remove node=n1 id=n3
//	status / results / quarantine n1 / verbose
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var c *tcluster
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return runCommand(t, &c, d)
		})
	})
}

func vals(d *datadriven.TestData, key string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a.Vals
		}
	}
	return nil
}

func val(d *datadriven.TestData, key, def string) string {
	if v := vals(d, key); len(v) > 0 {
		return v[0]
	}
	return def
}

func dur(t *testing.T, s string) time.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q: %v", s, err)
	}
	return v
}

func runCommand(t *testing.T, cp **tcluster, d *datadriven.TestData) string {
	c := *cp
	if d.Cmd != "cluster" && c == nil {
		t.Fatalf("%s: no cluster yet", d.Pos)
	}
	if c != nil {
		c.trace.Reset()
	}
	switch d.Cmd {
	case "cluster":
		var ms Members
		for _, id := range vals(d, "voters") {
			ms = append(ms, Member{ID: NodeID(id), Kind: KindAuto})
		}
		for _, id := range vals(d, "sentinels") {
			ms = append(ms, Member{ID: NodeID(id), Kind: KindSentinel})
		}
		for _, id := range vals(d, "observers") {
			ms = append(ms, Member{ID: NodeID(id), Kind: KindObserver})
		}
		*cp = newCluster(ms, dur(t, val(d, "hb", "1000ms")), dur(t, val(d, "latency", "1ms")), 1)
		var tail int
		fmt.Sscan(val(d, "log-tail", "0"), &tail)
		prio := map[NodeID]int{}
		for _, kv := range vals(d, "priority") {
			// priority=(n2:0,n3:10): cluster.priority, 0 = never Cortex.
			id, v, _ := strings.Cut(kv, ":")
			p, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: priority %q: want id:number", d.Pos, kv)
			}
			prio[NodeID(id)] = p
		}
		for _, tn := range (*cp).nodes {
			tn.cfg.LogTail = tail
			if p, ok := prio[tn.id]; ok {
				tn.cfg.Priority, tn.cfg.NeverCortex = p, p == 0
			}
			tn.n = New(tn.cfg, Restored{}, 0)
		}
		return ""
	case "run":
		c.runUntil(c.now.Add(dur(t, val(d, "for", "1s"))))
	case "crash":
		c.crash(NodeID(d.CmdArgs[0].Key))
	case "hint":
		// hint about=n1 to=(n2,n3): their connections to n1 reset and a
		// redial was refused (rule 18), true or not.
		about := NodeID(val(d, "about", ""))
		to := toIDs(vals(d, "to"))
		c.logf("crash hint about %s to %v", about, to)
		for _, id := range to {
			if tn := c.node(id); tn.up {
				tn.n.Hint(c.now, about, "")
				c.process(tn)
			}
		}
	case "restart":
		c.restart(NodeID(d.CmdArgs[0].Key))
	case "wipe":
		c.wipe(NodeID(d.CmdArgs[0].Key))
	case "lose-tail":
		var k int
		fmt.Sscan(val(d, "n", "1"), &k)
		c.loseTail(NodeID(val(d, "node", "")), k)
	case "isolate":
		a, b := toIDs(vals(d, "a")), toIDs(vals(d, "b"))
		c.isolate(a, b)
		c.logf("isolated %v from %v", a, b)
	case "oneway":
		from, to := NodeID(val(d, "from", "")), NodeID(val(d, "to", ""))
		c.cut[[2]NodeID{from, to}] = true
		c.logf("cut %s -> %s", from, to)
	case "drop-appends":
		// drop-appends to=n2: n2 answers heartbeats but never gets an
		// append (as a node whose disk is full drops what it cannot store).
		to := NodeID(val(d, "to", ""))
		c.lossy = func(m Message) bool { return m.Type == MsgAppend && m.To == to }
		c.logf("appends to %s dropped", to)
	case "heal":
		c.heal()
		c.logf("healed")
	case "write":
		node := NodeID(val(d, "node", ""))
		dd, err := ParseDurability(val(d, "durability", "local"))
		if err != nil {
			t.Fatal(err)
		}
		var count int
		fmt.Sscan(val(d, "count", "1"), &count)
		quiet := val(d, "quiet", "no") == "yes"
		for i := 0; i < count; i++ {
			id := c.propose(node, fmt.Sprintf("w%d", c.nextID+1), dd)
			if quiet {
				continue
			}
			if r, ok := c.resultOf(id); ok {
				c.logf("write %d via %s: %s", id, node, describeResult(r))
			} else {
				c.logf("write %d via %s: pending", id, node)
			}
		}
	case "read":
		node := NodeID(val(d, "node", ""))
		level, err := ParseConsistency(val(d, "level", "eventual"))
		if err != nil {
			t.Fatal(err)
		}
		var lag int64
		fmt.Sscan(val(d, "max-lag-ms", "0"), &lag)
		c.nextID++
		tn := c.node(node)
		tn.n.Read(c.now, c.nextID, level, lag)
		c.process(tn)
		if r, ok := c.resultOf(c.nextID); ok {
			c.logf("read %d via %s: %s", c.nextID, node, describeResultMsg(r))
		} else {
			c.logf("read %d via %s: pending", c.nextID, node)
		}
	case "transfer":
		node := c.node(NodeID(val(d, "node", "")))
		c.nextID++
		node.n.TransferCortex(c.now, c.nextID, NodeID(val(d, "to", "")))
		c.process(node)
		c.logf("transfer %d requested on %s", c.nextID, node.id)
	case "join":
		id := NodeID(val(d, "id", ""))
		kind, _ := ParseKind(val(d, "kind", "auto"))
		cfg := Config{ID: id, Kind: kind, Heartbeat: c.nodes[0].cfg.Heartbeat, Seed: 99, Store: c.newStore()}
		c.nodes = append(c.nodes, &tnode{id: id, cfg: cfg, up: true, n: New(cfg, Restored{}, c.now)})
		c.logf("%s started outside the membership", id)
	case "add", "remove":
		node := c.node(NodeID(val(d, "node", "")))
		c.nextID++
		id := NodeID(val(d, "id", ""))
		if d.Cmd == "add" {
			kind, _ := ParseKind(val(d, "kind", "auto"))
			node.n.AddMember(c.now, c.nextID, Member{ID: id, Kind: kind})
		} else {
			node.n.RemoveMember(c.now, c.nextID, id)
		}
		c.process(node)
		c.logf("%s %s requested on %s", d.Cmd, id, node.id)
	case "status":
		return c.statusLines()
	case "results":
		var b strings.Builder
		for _, tn := range c.nodes {
			for _, r := range tn.acked {
				fmt.Fprintf(&b, "%s id=%d %s\n", tn.id, r.ID, describeResultMsg(r))
			}
		}
		return b.String()
	case "quarantine":
		tn := c.node(NodeID(d.CmdArgs[0].Key))
		var b strings.Builder
		for _, e := range tn.quar {
			fmt.Fprintf(&b, "%s %s %q\n", e.Pos, e.Type, e.Payload)
		}
		return b.String()
	case "inject":
		// inject to=s1 from=n3 type=vote epoch=2 last=1.3 [commit=1.5]:
		// hand one crafted message to a node and print what it answers.
		tn := c.node(NodeID(val(d, "to", "")))
		m := Message{To: tn.id, From: NodeID(val(d, "from", "")), Role: RoleLobe}
		for i := MsgHeartbeat; i <= MsgTimeoutNow; i++ {
			if i.String() == val(d, "type", "") {
				m.Type = i
			}
		}
		if m.Type == MsgHeartbeat && val(d, "cortex", "") == "yes" {
			m.Role = RoleCortex
		}
		fmt.Sscan(val(d, "epoch", "0"), &m.Epoch)
		m.Last = parsePos(t, val(d, "last", "0.0"))
		m.Commit = parsePos(t, val(d, "commit", "0.0"))
		m.SentAt = c.now
		tn.n.Step(c.now, m)
		rd := tn.n.Ready()
		for _, out := range rd.Messages {
			c.logf("%s", out)
		}
		c.process(tn)
	case "verbose":
		c.verbose = !c.verbose
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	out := c.trace.String()
	if len(c.failures) > 0 {
		out += "FAILURES:\n" + strings.Join(c.failures, "\n") + "\n"
		c.failures = nil
	}
	return out
}

func describeResultMsg(r Result) string {
	if r.Err != nil {
		return fmt.Sprintf("error %s: %s", r.Err.Code, r.Err.Msg)
	}
	return "ok at " + r.Pos.String()
}

func parsePos(t *testing.T, s string) Pos {
	var p Pos
	if _, err := fmt.Sscanf(s, "%d.%d", &p.Epoch, &p.Seq); err != nil {
		t.Fatalf("bad position %q (want epoch.seq): %v", s, err)
	}
	return p
}

func toIDs(ss []string) []NodeID {
	out := make([]NodeID, len(ss))
	for i, s := range ss {
		out[i] = NodeID(s)
	}
	return out
}
