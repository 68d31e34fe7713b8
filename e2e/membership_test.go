package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// TestWipedVoterDoesNotVote is issue 11's bug A with real processes: a
// Lobe whose data directory was wiped comes back with a new store identity
// and its vote does not count (rule 16), so the stale node that asks for it
// is not elected over the quorum-acknowledged writes it lacks. Once the
// node that has them returns, it is elected, catches the wiped node up and
// records its new store. (If the Cortex is still up when the wiped node
// returns, it catches it up and records it at once; then the wiped node's
// vote counts, rightly: TestWipedVoterCaughtUp.)
func TestWipedVoterDoesNotVote(t *testing.T) {
	c, ns, a, b, cc, want := wipedVoter(t)
	// The Cortex goes before the wiped node is back, so nobody can catch
	// it up: b is empty and c lacks the 50 writes.
	a.kill9()
	b.start()
	cc.start()

	// Long enough for several elections at a 100 ms heartbeat (SDOWN
	// window 300 ms): none may succeed while only b and c are up.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []*node{b, cc} {
			if i, err := n.info(); err == nil && i.Role == "cortex" {
				t.Fatalf("%s was elected Cortex with the wiped %s's vote (epoch %d): the 50 quorum writes acknowledged by %s and %s are not on it", n.id, b.id, i.Epoch, a.id, b.id)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cc.countMsg("not counted") == 0 {
		t.Errorf("%s's log does not say why %s's vote did not count", cc.id, b.id)
	}

	a.start()
	cx := c.waitCortex(ns, 20*time.Second)
	if cx.id != a.id {
		t.Errorf("after %s returned, %s was elected; only %s holds every acknowledged write", a.id, cx.id, a.id)
	}
	got, err := cx.listIDs("wipe", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the Cortex after the wiped voter's election was refused", acksOf(want), got)
	c.waitHasAll(b, "wipe", want, 20*time.Second)
	c.waitFor(b.id+" to count again", 20*time.Second, func() (bool, string) {
		i, err := c.cortexNow(ns).info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, b.id)
		return m != nil && !m.Rejoining && m.Store != "", fmt.Sprintf("%+v", m)
	})
	// The log line comes with the event, once the entry recording the
	// store is durable: a moment after the membership shows it.
	c.waitFor("the Cortex's log to say "+b.id+" counts again", 10*time.Second, func() (bool, string) {
		return a.countMsg("caught up on its new store") > 0 || cx.countMsg("caught up on its new store") > 0, "no \"caught up on its new store\" line"
	})
}

// TestWipedVoterCaughtUp is the other order: the wiped Lobe returns while
// the Cortex is up, is caught up and recorded, and only then does the
// Cortex die; whoever is elected holds every acknowledged write.
func TestWipedVoterCaughtUp(t *testing.T) {
	c, _, a, b, cc, want := wipedVoter(t)
	b.start()
	// With c down, a cannot tell it still leads without b, whose new
	// store may have lost a vote for a newer Cortex: a records the new
	// store only once a quorum not counting b answers it (rule 16).
	c.waitFor(b.id+" to be caught up but not recorded while "+cc.id+" is down", 20*time.Second, func() (bool, string) {
		i, err := a.info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, b.id)
		return m != nil && m.Rejoining && a.countMsg("now reports store") > 0, fmt.Sprintf("%+v", m)
	})
	time.Sleep(time.Second) // many heartbeats: time to record it, were it allowed
	if a.countMsg("caught up on its new store") > 0 {
		t.Fatalf("%s recorded %s's new store while %s was down: no quorum without it answered", a.id, b.id, cc.id)
	}
	cc.start()
	c.waitFor(b.id+" to be caught up and recorded", 20*time.Second, func() (bool, string) {
		i, err := a.info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, b.id)
		return m != nil && !m.Rejoining && m.Store != "" && a.countMsg("caught up on its new store") > 0, fmt.Sprintf("%+v", m)
	})
	// The record must commit, and cc must know it, before a goes: a new
	// store counts toward commits only once the entry recording it has
	// committed without it (rule 16), and with a gone b and cc could not
	// commit it.
	want = append(want, writeN(t, client.New(a.url()), "wipe", "quorum", 1)...)
	ai := a.mustInfo()
	c.waitFor(cc.id+" to know the record committed", 20*time.Second, func() (bool, string) {
		i, err := cc.info()
		if err != nil {
			return false, err.Error()
		}
		return i.CommitSeq >= ai.LastSeq, fmt.Sprintf("commit %d, want %d", i.CommitSeq, ai.LastSeq)
	})
	a.kill9()
	cx := c.waitCortex([]*node{b, cc}, 20*time.Second)
	got, err := cx.listIDs("wipe", "strong")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "the Cortex elected after the caught-up wiped voter's vote", acksOf(want), got)
}

// wipedVoter is the set-up: three nodes, Cortex a; c is killed, a
// and b acknowledge 50 quorum writes, then b is killed and its data
// directory removed (b and c are left stopped).
func wipedVoter(t *testing.T) (c *cluster, ns []*node, a, b, cc *node, want []string) {
	c = newCluster(t, fastHB, fastLease)
	ns = c.addN(3)
	c.startAll()
	a = c.waitCortex(ns, 20*time.Second)
	lobes := others(ns, a)
	b, cc = lobes[0], lobes[1]
	// Rule 16 protects through the membership's record of each store: c
	// must hold the record of b's store before it goes down, or it knows
	// nothing that tells a wiped b from the b that acknowledged the
	// writes (docs/protocol.md, rule 16). The Cortex records the stores
	// within a round trip or two of its election; wait for c to have it.
	c.waitFor(cc.id+" to hold the record of "+b.id+"'s store", 20*time.Second, func() (bool, string) {
		i, err := cc.info()
		if err != nil {
			return false, err.Error()
		}
		m := memberOf(i, b.id)
		return m != nil && m.Store != "", fmt.Sprintf("%+v", m)
	})
	cc.kill9()
	want = writeN(t, client.New(a.url()), "wipe", "quorum", 50)
	b.kill9()
	if err := os.RemoveAll(filepath.Join(b.dir, "data")); err != nil {
		t.Fatal(err)
	}
	return c, ns, a, b, cc, want
}

func acksOf(ids []string) []ack {
	out := make([]ack, len(ids))
	for i, id := range ids {
		out[i] = ack{id: id}
	}
	return out
}

// TestSurvivorsOfMembershipChangesElect is issue 11's bug B: nodes 04 and
// 05 join with only 01-03 as seeds; 03 and 01 are then removed. The
// members learn each other's addresses from the replicated membership and
// connect, so when 02, the Cortex, is killed, 04 and 05 elect.
func TestSurvivorsOfMembershipChangesElect(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	for _, id := range []string{"muninn-04", "muninn-05"} {
		n := c.add(id)
		n.seeds = ns
		n.start()
		c.waitFor(id+" to wait to be added", 15*time.Second, func() (bool, string) {
			i, err := n.info()
			return err == nil && i.Joining, fmt.Sprint(err)
		})
		cx = c.cortexNow(ns)
		if out, e, code := cli(t, "cluster", "add-node", "--node", id, "--addr", cx.url()); code != 0 {
			t.Fatalf("add-node %s: exit %d\n%s\n%s", id, code, out, e)
		}
		c.waitFor(id+" to become a voter", 20*time.Second, func() (bool, string) {
			i, err := c.cortexNow(ns).info()
			if err != nil {
				return false, err.Error()
			}
			m := memberOf(i, id)
			return m != nil && !m.Learner, fmt.Sprintf("%+v", m)
		})
	}
	all := c.nodes
	n01, n02, n03, n04, n05 := all[0], all[1], all[2], all[3], all[4]
	remove := func(gone *node, rest []*node) {
		cx := c.cortexNow(rest)
		if cx == gone {
			if out, e, code := cli(t, "cluster", "failover", "--yes", "--to", n02.id, "--addr", cx.url()); code != 0 {
				t.Fatalf("failover to %s: exit %d\n%s\n%s", n02.id, code, out, e)
			}
			cx = c.waitCortex(others(rest, gone), 20*time.Second)
		}
		if out, e, code := cli(t, "cluster", "remove-node", "--node", gone.id, "--yes", "--addr", cx.url()); code != 0 {
			t.Fatalf("remove-node %s: exit %d\n%s\n%s", gone.id, code, out, e)
		}
		gone.kill9()
	}
	remove(n03, all)
	remove(n01, []*node{n01, n02, n04, n05})
	survivors := []*node{n02, n04, n05}
	if cx := c.cortexNow(survivors); cx != n02 {
		if out, e, code := cli(t, "cluster", "failover", "--yes", "--to", n02.id, "--addr", cx.url()); code != 0 {
			t.Fatalf("failover to %s: exit %d\n%s\n%s", n02.id, code, out, e)
		}
	}
	c.waitFor("muninn-02 to lead with 04 and 05 connected to each other", 20*time.Second, func() (bool, string) {
		cx, why := c.cortexOf(survivors)
		if cx != n02 {
			return false, why
		}
		h, err := n02.raw("GET", "/v1/cluster/health", nil)
		if err != nil {
			return false, err.Error()
		}
		return h.status == 200, string(h.body)
	})
	i4 := n04.mustInfo()
	if m := memberOf(i4, n05.id); m == nil || m.MBP != n05.mbpAddr() {
		t.Errorf("muninn-04's view of muninn-05: %+v; want its MBP address %s from the membership", m, n05.mbpAddr())
	}

	n02.kill9()
	start := time.Now()
	cx = c.waitCortex([]*node{n04, n05}, 15*time.Second)
	t.Logf("%s elected %s after muninn-02 was killed", cx.id, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(cx.logText(), "elected as cortex") {
		t.Errorf("%s's log does not show its election", cx.id)
	}
}
