package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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
