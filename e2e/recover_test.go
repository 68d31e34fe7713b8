package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// TestClusterRecoverSurvey: the seed's Scenario 3 with real processes. A
// Lobe is killed with SIGKILL and the other two take more quorum writes;
// then both are killed too and the lagging Lobe is started alone. `muninn
// cluster recover --addr survivor --data-dir dead1 --data-dir dead2` reads
// the dead nodes' stores in place, names one of them as the freshest (it
// holds every acknowledged write, the survivor does not), says starting
// them again restores a quorum, and exits 2: no quorum runs. Each node's
// log gives its position when its store opened, and at a clean stop.
func TestClusterRecoverSurvey(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	lagging := others(ns, cx)[0]
	dead := others(ns, lagging)
	cl := client.New(cx.url())
	quorumWrites(t, cl, "recover", "before the first kill", 20)
	lagging.kill9()
	quorumWrites(t, cl, "recover", "after the first kill", 30)
	acked := cx.mustInfo().LastSeq
	for _, n := range dead {
		n.kill9()
	}
	lagging.start()
	c.waitFor(lagging.id+"'s API", 15*time.Second, func() (bool, string) {
		_, err := lagging.info()
		return err == nil, fmt.Sprint(err)
	})

	args := []string{"cluster", "recover", "--addr", lagging.url(), "--data-dir", dead[0].dataDir(), "--data-dir", dead[1].dataDir()}
	out, stderr, code := cli(t, args...)
	t.Logf("muninn %s:\n%s%s", strings.Join(args, " "), out, stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (no quorum runs)", code)
	}
	if !regexp.MustCompile(`Freshest data node: (`+dead[0].id+"|"+dead[1].id+`) \(last \d+\.\d+, commit \d+; stopped`).MatchString(out) ||
		!strings.Contains(out, "Running voters: 1 of 3 ("+lagging.id+"): no quorum") ||
		!strings.Contains(out, "starting them again gives a quorum") {
		t.Errorf("the survey does not name a dead node as the freshest, or misjudges the quorum")
	}

	out, _, code = cli(t, append(args, "--json")...)
	var rep struct {
		Freshest *struct {
			NodeID  string `json:"node_id"`
			LastSeq uint64 `json:"last_seq"`
		} `json:"freshest"`
		Nodes []struct {
			NodeID  string `json:"node_id"`
			Via     string `json:"via"`
			LastSeq uint64 `json:"last_seq"`
			Error   string `json:"error"`
		} `json:"nodes"`
		StoppedVoters []string `json:"stopped_voters"`
		MissingVoters []string `json:"missing_voters"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Freshest == nil || rep.Freshest.LastSeq < acked || !slices.Contains(strings.Split(ids(dead), ","), rep.Freshest.NodeID) {
		t.Errorf("freshest %+v; want %s holding seq %d", rep.Freshest, ids(dead), acked)
	}
	for _, n := range rep.Nodes {
		switch {
		case n.Error != "":
			t.Errorf("%s (%s) did not answer: %s", n.NodeID, n.Via, n.Error)
		case n.Via == "api" && (n.NodeID != lagging.id || n.LastSeq >= acked):
			t.Errorf("the survivor answered as %s at seq %d; want %s below %d", n.NodeID, n.LastSeq, lagging.id, acked)
		}
	}
	if slices.Sort(rep.StoppedVoters); strings.Join(rep.StoppedVoters, ",") != ids(dead) || len(rep.MissingVoters) != 0 {
		t.Errorf("stopped voters %v, missing %v; want %s and none", rep.StoppedVoters, rep.MissingVoters, ids(dead))
	}

	// The logs: every start gives the position its store opened at; a
	// clean stop the position it ends at.
	opened := regexp.MustCompile(`store opened: last epoch=\d+ seq=(\d+) commit=\d+`)
	for _, n := range ns {
		if !opened.MatchString(n.logText()) {
			t.Errorf("%s's log has no %q line", n.id, "store opened: last epoch=E seq=S commit=C")
		}
	}
	lagging.signal(syscall.SIGTERM)
	lagging.waitExit(15 * time.Second)
	if m := regexp.MustCompile(`stopped: last epoch=\d+ seq=(\d+) commit=\d+`).FindStringSubmatch(lagging.logText()); m == nil {
		t.Errorf("%s's log has no %q line after SIGTERM", lagging.id, "stopped: last epoch=E seq=S commit=C")
	} else if m[1] == fmt.Sprint(acked) {
		t.Errorf("%s stopped at seq %s, the acknowledged end: it was meant to lag", lagging.id, m[1])
	}
}

// recoverJSON is the part of `muninn cluster recover --json` the force
// tests read.
type recoverJSON struct {
	Freshest *struct {
		NodeID    string `json:"node_id"`
		LastEpoch uint64 `json:"last_epoch"`
		LastSeq   uint64 `json:"last_seq"`
	} `json:"freshest"`
}

// missingAcked lists the ids of want that n does not return to a strong
// read of vault (or why it cannot be asked).
func missingAcked(n *node, vault string, want []string) (bool, string) {
	return holdsAll(n, vault, "strong", want)
}

// soleCortex waits until n, started alone after --force, is the Cortex of
// a membership in which it is the only voter, and has committed past the
// membership entry --force wrote (at entry): as sole voter it commits on
// its own.
func soleCortex(c *cluster, n *node, entry uint64, d time.Duration) apitypes.Info {
	c.t.Helper()
	var info apitypes.Info
	c.waitFor(n.id+" as the sole voter's Cortex, committed past "+fmt.Sprint(entry), d, func() (bool, string) {
		i, err := n.info()
		if err != nil {
			return false, err.Error()
		}
		info = i
		return i.Role == "cortex" && i.CommitSeq > entry, fmt.Sprintf("role %s epoch %d last %d.%d commit %d", i.Role, i.Epoch, i.LastEpoch, i.LastSeq, i.CommitSeq)
	})
	for _, m := range info.Members {
		if (m.ID == n.id) == m.Learner {
			c.t.Errorf("%s's membership after --force: %+v; want %s the only voter, the others learners", n.id, info.Members, n.id)
		}
	}
	return info
}

var forcedEntry = regexp.MustCompile(`after:  epoch (\d+), last \d+\.(\d+) \(the new membership entry\)`)

// TestClusterRecoverForce: the recovery target with real
// processes. Three nodes take quorum writes (each acknowledged one is
// recorded), then all three are killed with SIGKILL. The survey of the
// three stopped data directories names the freshest; the other two data
// directories are deleted. `cluster recover` then exits 2 (no quorum, two
// voters not heard from), and `cluster recover --force --node <freshest>`
// makes it the only voter of a new epoch. Started alone it becomes Cortex,
// commits on its own, serves every acknowledged write to strong reads and
// takes quorum writes again. One of the wiped nodes, started empty, then
// rejoins as a learner, catches up, is promoted to voter, and holds every
// write.
func TestClusterRecoverForce(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	acked := quorumWrites(t, client.New(cx.url()), "force", "before the crash", 40)
	for _, n := range ns {
		n.kill9()
	}

	var survey []string
	for _, n := range ns {
		survey = append(survey, "--data-dir", n.id+"="+n.dataDir())
	}
	out, stderr, code := cli(t, append([]string{"cluster", "recover", "--json"}, survey...)...)
	var rep recoverJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 || rep.Freshest == nil {
		t.Fatalf("survey of the stopped nodes: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	surv := c.node(rep.Freshest.NodeID)
	t.Logf("freshest: %s at %d.%d (the Cortex was %s)", surv.id, rep.Freshest.LastEpoch, rep.Freshest.LastSeq, cx.id)
	lost := others(ns, surv)
	for _, n := range lost {
		if err := os.RemoveAll(n.dataDir()); err != nil {
			t.Fatal(err)
		}
	}
	dirArg := surv.id + "=" + surv.dataDir()

	out, stderr, code = cli(t, "cluster", "recover", "--data-dir", dirArg)
	t.Logf("muninn cluster recover --data-dir %s:\n%s%s", dirArg, out, stderr)
	if code != 2 || !strings.Contains(out, "Not heard from: "+lost[0].id) || !strings.Contains(out, "Not heard from: "+lost[1].id) {
		t.Fatalf("survey of the survivor alone: exit %d, want 2 naming %s as not heard from", code, ids(lost))
	}
	out, stderr, code = cli(t, "cluster", "recover", "--force", "--node", surv.id, "--data-dir", dirArg)
	t.Logf("muninn cluster recover --force --node %s --data-dir %s:\n%s%s", surv.id, dirArg, out, stderr)
	m := forcedEntry.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "Forced: "+surv.id) {
		t.Fatalf("--force: exit %d, or no %q in its output", code, "Forced: "+surv.id)
	}
	entry, _ := strconv.ParseUint(m[2], 10, 64)

	surv.start()
	info := soleCortex(c, surv, entry, 20*time.Second)
	if newEpoch, _ := strconv.ParseUint(m[1], 10, 64); info.Epoch <= newEpoch {
		t.Errorf("%s runs at epoch %d, want above the forced epoch %d", surv.id, info.Epoch, newEpoch)
	}
	c.waitFor("every acknowledged write on the recovered "+surv.id, 10*time.Second, func() (bool, string) {
		return missingAcked(surv, "force", acked)
	})
	after := quorumWrites(t, client.New(surv.url()), "force", "after the recovery", 10)

	// A wiped node comes back empty: a learner, caught up, then a voter.
	back := lost[0]
	back.start()
	c.waitFor(back.id+" promoted to voter by "+surv.id, 30*time.Second, func() (bool, string) {
		i, err := surv.info()
		if err != nil {
			return false, err.Error()
		}
		for _, m := range i.Members {
			if m.ID == back.id {
				return !m.Learner && m.Store != "", fmt.Sprintf("%s: learner %v, store %q", m.ID, m.Learner, m.Store)
			}
		}
		return false, back.id + " is not a member"
	})
	more := quorumWrites(t, client.New(surv.url()), "force", "with the rejoined voter", 10)
	c.waitHasAll(back, "force", slices.Concat(acked, after, more), 15*time.Second)
}

// TestClusterRecoverForceDivergent: the other survivors rejoin as
// learners, and a divergent entry goes to quarantine. A five-node
// cluster takes quorum writes until every Lobe holds all of them; the
// Lobes are killed; the Cortex takes `local` writes (acknowledged by it
// alone, held by no one else) and is killed. Three Lobes' data
// directories are deleted: the two survivors are not a quorum of five
// (with three nodes they would be, and --force would be refused: start
// them instead). The survey names the old Cortex as the freshest, so
// `--force --node <the surviving Lobe>` is refused, saying what would be
// lost, until `--accept-loss` is given. Started alone, the Lobe is
// Cortex with every quorum write. The old Cortex, started next, rejoins as
// a learner: its local writes, past the point where its log and the new
// Cortex's part, are removed from its data and land in its quarantine; it
// is promoted once caught up and the cluster takes quorum writes.
func TestClusterRecoverForceDivergent(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(5)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	lobes := others(ns, cx)
	acked := quorumWrites(t, client.New(cx.url()), "diverge", "quorum", 30)
	end := cx.mustInfo().LastSeq
	for _, l := range lobes {
		c.waitFor(l.id+" to hold the Cortex's log", 10*time.Second, func() (bool, string) {
			i, err := l.info()
			if err != nil {
				return false, err.Error()
			}
			return i.LastSeq >= end, fmt.Sprintf("at %d.%d, want seq %d", i.LastEpoch, i.LastSeq, end)
		})
		l.kill9()
	}
	var local []string
	cl := client.New(cx.url(), client.WithRetryBudget(0))
	for i := range 3 {
		id := client.NewID()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cl.Write(ctx, apitypes.WriteRequest{ID: id, Vault: "diverge", Concept: "e2e", Content: fmt.Sprintf("local %d", i)}, client.Durability("local"))
		cancel()
		if err != nil {
			t.Fatalf("local write %d on the Cortex alone: %v", i, err)
		}
		local = append(local, id)
	}
	cx.kill9()

	surv := lobes[0]
	for _, l := range lobes[1:] {
		os.RemoveAll(l.dataDir())
	}
	args := []string{"cluster", "recover", "--force", "--node", surv.id, "--data-dir", surv.id + "=" + surv.dataDir(), "--data-dir", cx.id + "=" + cx.dataDir()}
	out, stderr, code := cli(t, args...)
	t.Logf("muninn %s:\n%s%s", strings.Join(args, " "), out, stderr)
	if code != 1 || !strings.Contains(stderr, surv.id+" is not the freshest data node: "+cx.id+"'s log is ahead") {
		t.Fatalf("--force on a node that is not the freshest: exit %d, want 1 and a refusal naming %s", code, cx.id)
	}
	out, stderr, code = cli(t, append(args, "--accept-loss")...)
	t.Logf("with --accept-loss:\n%s%s", out, stderr)
	m := forcedEntry.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "Accepting the loss") {
		t.Fatalf("--force --accept-loss: exit %d", code)
	}
	entry, _ := strconv.ParseUint(m[2], 10, 64)
	if entry <= end {
		t.Errorf("the forced membership entry is at seq %d, want past %d: %s held the Cortex's log up to %d", entry, end, surv.id, end)
	}

	surv.start()
	soleCortex(c, surv, entry, 20*time.Second)
	c.waitFor("every quorum write on the recovered "+surv.id, 10*time.Second, func() (bool, string) {
		return missingAcked(surv, "diverge", acked)
	})

	cx.start()
	c.waitFor(cx.id+" rejoined, its local writes in quarantine", 30*time.Second, func() (bool, string) {
		q, err := cx.api().Quarantine(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, e := range q.Entries {
			if slices.Contains(local, e.ID) {
				got = append(got, e.ID)
			}
		}
		return len(got) == len(local), fmt.Sprintf("%d of %d local writes quarantined (%d entries)", len(got), len(local), len(q.Entries))
	})
	held, err := cx.listIDs("diverge", "eventual")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range local {
		if held[id] {
			t.Errorf("the quarantined local write %s is still in %s's data", id, cx.id)
		}
	}
	c.waitFor(cx.id+" promoted to voter", 30*time.Second, func() (bool, string) {
		i, err := surv.info()
		if err != nil {
			return false, err.Error()
		}
		for _, m := range i.Members {
			if m.ID == cx.id {
				return !m.Learner, fmt.Sprintf("learner %v", m.Learner)
			}
		}
		return false, cx.id + " is not a member"
	})
	after := quorumWrites(t, client.New(surv.url()), "diverge", "after the rejoin", 10)
	c.waitHasAll(cx, "diverge", slices.Concat(acked, after), 15*time.Second)
}

// TestClusterRecoverForceRefusedWhileQuorumReachable: review 15's finding
// 7 with real processes. Three nodes take quorum writes and are all killed
// with SIGKILL; two data directories survive. `--force` on one of them,
// given both, is refused: the two would form a quorum if started, and
// nothing is written to either store. Doing what the refusal says, starting
// them again, elects a Cortex on its own that serves every acknowledged
// write.
func TestClusterRecoverForceRefusedWhileQuorumReachable(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	c.startAll()
	cx := c.waitCortex(ns, 20*time.Second)
	acked := quorumWrites(t, client.New(cx.url()), "reachable", "before the crash", 30)
	for _, n := range ns {
		n.kill9()
	}
	gone, kept := ns[0], ns[1:]
	if err := os.RemoveAll(gone.dataDir()); err != nil {
		t.Fatal(err)
	}
	survey := []string{"cluster", "recover", "--json"}
	for _, n := range kept {
		survey = append(survey, "--data-dir", n.id+"="+n.dataDir())
	}
	before, _, _ := cli(t, survey...)

	args := []string{"cluster", "recover", "--force", "--node", kept[0].id}
	for _, n := range kept {
		args = append(args, "--data-dir", n.id+"="+n.dataDir())
	}
	out, stderr, code := cli(t, args...)
	t.Logf("muninn %s:\n%s%s", strings.Join(args, " "), out, stderr)
	if code != 1 || !strings.Contains(stderr, "refusing --force: a quorum is reachable") || !strings.Contains(stderr, "are 2 of 3 (quorum 2)") ||
		!strings.Contains(stderr, "start them again instead") {
		t.Fatalf("--force with two of three voters' data: exit %d, want 1 and the quorum-reachable refusal", code)
	}
	if after, _, _ := cli(t, survey...); after != before {
		t.Errorf("the refused --force changed a store: the survey before\n%s\nand after\n%s", before, after)
	}

	for _, n := range kept {
		n.start()
	}
	nx := c.waitCortex(kept, 30*time.Second)
	c.waitFor("every acknowledged write on "+nx.id, 15*time.Second, func() (bool, string) {
		return missingAcked(nx, "reachable", acked)
	})
}
