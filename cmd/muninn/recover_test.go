package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/store"
)

var threeVoters = []apitypes.Member{{ID: "a", Kind: "auto"}, {ID: "b", Kind: "auto"}, {ID: "c", Kind: "auto"}}

// infoNode serves GET /v1/cluster/info with info.
func infoNode(t *testing.T, info apitypes.Info) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/info" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// silentNode accepts requests and never answers (until the test ends).
func silentNode(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

func lobe(id string, lastEpoch, lastSeq, commit uint64) apitypes.Info {
	return apitypes.Info{NodeID: id, Kind: "auto", Role: "lobe", ClusterEnabled: true, Epoch: lastEpoch,
		LastEpoch: lastEpoch, LastSeq: lastSeq, CommitSeq: commit, Members: threeVoters}
}

// TestRecoverQuorumReachable: two of three voters answer (the third never
// does): recover names the freshest, says no recovery is needed and exits
// 0, within its bounded wait for the silent node.
func TestRecoverQuorumReachable(t *testing.T) {
	a := infoNode(t, lobe("a", 4, 120, 118))
	b := infoNode(t, lobe("b", 4, 121, 118))
	c := silentNode(t)
	code, out, stderr := cli(t, "cluster", "recover", "--addr", a.URL, "--addr="+b.URL, "--addr", c.URL, "--timeout", "300ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		"Freshest data node: b (last 4.121, commit 118; running, at " + b.URL + ")",
		"Running voters: 2 of 3 (a, b): a quorum. No recovery is needed",
		c.URL + ": did not answer within 300ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// TestRecoverNoQuorum: one voter runs, one times out, one is gone: recover
// names the freshest (a higher epoch beats a higher seq), says what the
// silent voters may take with them, and exits 2; --json says the same.
func TestRecoverNoQuorum(t *testing.T) {
	a := infoNode(t, lobe("a", 5, 90, 80))
	sentinel := infoNode(t, apitypes.Info{NodeID: "s", Kind: "sentinel", Role: "sentinel", LastEpoch: 9, LastSeq: 999,
		Members: append(threeVoters[:3:3], apitypes.Member{ID: "s", Kind: "sentinel"})})
	slow := silentNode(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	args := []string{"cluster", "recover", "--addr", a.URL, "--addr", slow.URL, "--addr", gone.URL, "--timeout", "300ms"}
	code, out, stderr := cli(t, args...)
	if code != exitNoQuorum || !strings.Contains(stderr, "no quorum of voters is running") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		"Freshest data node: a (last 5.90, commit 80;",
		"Running voters: 1 of 3 (a): no quorum",
		"Not heard from: b. Entries past 5.90 (the freshest survivor's last position) that only b may have held would be lost",
		"Not heard from: c.",
		"If those voters are gone for good: stop every node, then muninn cluster recover --force --node ID --data-dir ID=DIR",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// A Sentinel is a voter but holds no data: never the freshest.
	code, out, _ = cli(t, append(args, "--addr", sentinel.URL, "--json")...)
	var rep recoverReport
	if code != exitNoQuorum || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("--json: exit %d\n%s", code, out)
	}
	if rep.Freshest == nil || rep.Freshest.NodeID != "a" || rep.QuorumReachable || rep.Quorum != 3 ||
		strings.Join(rep.RunningVoters, ",") != "a,s" || strings.Join(rep.MissingVoters, ",") != "b,c" || rep.MembershipFrom != "s" {
		t.Fatalf("--json: %+v", rep)
	}
}

// TestRecoverRefusals: a survey that reaches nobody is an error (exit 1).
func TestRecoverRefusals(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	code, out, stderr := cli(t, "cluster", "recover", "--addr", gone.URL, "--data-dir", t.TempDir(), "--timeout", "300ms")
	if code != 1 || !strings.Contains(stderr, "no node answered") || !strings.Contains(out, "not a MuninnDB store") {
		t.Fatalf("nobody: exit %d\n%s%s", code, out, stderr)
	}
}

// TestRecoverDataDirs: stopped nodes' stores, written by shell/store, are
// read in place: each is named from the identity its membership records
// (or ID=DIR), the freshest is found, a store still held open is refused
// as in use and counted as not heard from.
func TestRecoverDataDirs(t *testing.T) {
	root := t.TempDir()
	ids := []string{"a", "b", "c"}
	last := map[string]core.Seq{"a": 7, "b": 9, "c": 12}
	stores := map[string]*store.Store{}
	var ms core.Members
	for _, id := range ids {
		// a and b as a node lays them out (data_dir/db); c is the store
		// directory itself.
		dir := filepath.Join(root, id, "db")
		if id == "c" {
			dir = filepath.Join(root, id)
		}
		s, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[id] = s
		m := core.Member{ID: core.NodeID(id), Kind: core.KindAuto, Store: s.Identity()}
		if id == "b" {
			m.Store = 0 // never recorded: named by ID=DIR
		}
		ms = append(ms, m)
	}
	for _, id := range ids {
		var es []core.Entry
		for q := core.Seq(1); q <= last[id]; q++ {
			es = append(es, core.Entry{Pos: core.Pos{Epoch: 3, Seq: q}, Type: core.EntryEpochStart})
		}
		hs := core.HardState{Epoch: 3, Commit: core.Pos{Epoch: 3, Seq: 6}}
		if err := stores[id].Save(store.SaveBatch{HardState: &hs, Entries: es, Members: ms}, true); err != nil {
			t.Fatal(err)
		}
	}
	stores["a"].Close()
	stores["b"].Close()
	defer stores["c"].Close() // c still runs
	code, out, stderr := cli(t, "cluster", "recover", "--data-dir", filepath.Join(root, "a"), "--data-dir", "b="+filepath.Join(root, "b"),
		"--data-dir", filepath.Join(root, "c"))
	if code != exitNoQuorum {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, "If those voters are gone for good") {
		t.Errorf("the survey suggests --force although the stopped voters are a quorum:\n%s", out)
	}
	for _, want := range []string{
		"Freshest data node: b (last 3.9, commit 6; stopped, data dir " + filepath.Join(root, "b") + ")",
		"Running voters: 0 of 3 (—): no quorum",
		"Stopped voters whose data was read: a, b: start them again with their data intact (starting them again gives a quorum",
		"Not heard from: c. Entries past 3.9",
		"locked by a running node",
		"Start the stopped voters again: with those running they make a quorum. --force is refused while a quorum is reachable.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
	// Reading changed nothing: the stores open and hold what they held.
	s, err := store.Open(filepath.Join(root, "a", "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, l, _ := s.State(); l != (core.Pos{Epoch: 3, Seq: 7}) {
		t.Fatalf("a after the survey: last %s", l)
	}
}

// stoppedCluster writes the stores of a stopped cluster under root:
// data voters a, b, c (root/ID/db) and Sentinel s (no store), each member
// recorded with the MBP address addrs gives it (default: a closed port),
// each store with entries 3.1..last[ID], commit 3.6 and hard state epoch
// epochs[ID] (default 3). It returns the data dirs.
func stoppedCluster(t *testing.T, root string, last map[string]core.Seq, epochs map[string]core.Epoch, addrs map[string]string) map[string]string {
	t.Helper()
	closed := closedAddr(t)
	dirs, stores := map[string]string{}, map[string]*store.Store{}
	ms := core.Members{{ID: "s", Kind: core.KindSentinel, Addr: closed}}
	for _, id := range []string{"a", "b", "c"} {
		dirs[id] = filepath.Join(root, id)
		s, err := store.Open(filepath.Join(dirs[id], "db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[id] = s
		ms = append(ms, core.Member{ID: core.NodeID(id), Kind: core.KindAuto, Store: s.Identity(), Addr: closed})
	}
	for i := range ms {
		if a, ok := addrs[string(ms[i].ID)]; ok {
			ms[i].Addr = a
		}
	}
	ms = ms.Normalize()
	for id, s := range stores {
		var es []core.Entry
		for q := core.Seq(1); q <= last[id]; q++ {
			es = append(es, core.Entry{Pos: core.Pos{Epoch: 3, Seq: q}, Type: core.EntryEpochStart})
		}
		hs := core.HardState{Epoch: max(3, epochs[id]), Commit: core.Pos{Epoch: 3, Seq: 6}}
		if err := s.Save(store.SaveBatch{HardState: &hs, Entries: es, Members: ms}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// closedAddr is a 127.0.0.1 address nothing listens on: port 1, which no
// unprivileged process can bind (a port freed by a closed listener could
// be handed to the next one, and accept).
func closedAddr(t *testing.T) string {
	t.Helper()
	a := "127.0.0.1:1"
	if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s: the test needs it closed", a)
	}
	return a
}

// acceptingAddr is a 127.0.0.1 listener that accepts every connection (a
// running voter's MBP port), closed when the test ends.
func acceptingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// storeState opens a stopped node's store and returns its hard state,
// last entry and membership.
func storeState(t *testing.T, dataDir string) (core.HardState, core.Pos, core.Members) {
	t.Helper()
	s, err := store.Open(filepath.Join(dataDir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs, last, _ := s.State()
	return hs, last, s.Members()
}

// TestRecoverForce: the freshest of two stopped data voters that survive
// (of four voters: two are not a quorum), c, is made the only voter of an
// epoch 1000 above every epoch surveyed (a's hard state is at 6: the new
// epoch is 1006), in one membership entry after its last; its entries and
// commit point are kept, a and b are learners with no store, the Sentinel
// is dropped; the output says so and gives the next steps.
func TestRecoverForce(t *testing.T) {
	dirs := stoppedCluster(t, t.TempDir(), map[string]core.Seq{"a": 7, "b": 9, "c": 12}, map[string]core.Epoch{"a": 6}, nil)
	_, _, before := storeState(t, dirs["c"])
	cStore, _ := before.Get("c")
	code, out, stderr := cli(t, "cluster", "recover", "--force", "--node", "c", "--data-dir", dirs["a"], "--data-dir", dirs["c"])
	t.Log("\n" + out + stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"Freshest data node: c (last 3.12, commit 6; stopped",
		"Forced: c (data dir " + dirs["c"] + ") is the only voter of epoch 1006.",
		"before: epoch 3, last 3.12, commit 6; voters a, b, c, s",
		"after:  epoch 1006, last 1006.13 (the new membership entry), commit 6 (unchanged); members a (learner), b (learner), c (the only voter)",
		"dropped: s (Sentinels",
		"1. Start c",
		"start the other surviving nodes (a, b) one at a time",
		"muninn cluster add-node --node ID --kind sentinel, for each of s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	hs, last, ms := storeState(t, dirs["c"])
	if hs.Epoch != 1006 || hs.Vote != "" || hs.Commit != (core.Pos{Epoch: 3, Seq: 6}) || last != (core.Pos{Epoch: 1006, Seq: 13}) {
		t.Errorf("c's store after: hard state %+v, last %s", hs, last)
	}
	if len(ms) != 3 || ms.Voters() != 1 || !ms[2].DataVoter() || ms[2].Store != cStore.Store || !ms[0].Learner || !ms[1].Learner || ms[0].Store != 0 {
		t.Errorf("c's membership after: %+v", ms)
	}
	// The others are untouched.
	if hs, last, _ := storeState(t, dirs["a"]); hs.Epoch != 6 || last != (core.Pos{Epoch: 3, Seq: 7}) {
		t.Errorf("a's store changed: %+v %s", hs, last)
	}
}

// TestRecoverForceRefusals: each refusal names why and how to proceed,
// and leaves the survivor's store as it was; --accept-loss lets a node
// that is not the freshest carry on, saying what is lost.
func TestRecoverForceRefusals(t *testing.T) {
	running := acceptingAddr(t)
	root := t.TempDir()
	dirs := stoppedCluster(t, filepath.Join(root, "one"), map[string]core.Seq{"a": 7, "b": 9, "c": 12}, nil, nil)
	live := stoppedCluster(t, filepath.Join(root, "two"), map[string]core.Seq{"a": 7, "b": 9, "c": 12}, nil, map[string]string{"b": running})
	apiA := infoNode(t, lobe("a", 3, 7, 6))
	apiB, apiC := infoNode(t, lobe("b", 3, 9, 6)), infoNode(t, lobe("c", 3, 12, 6))
	held, err := store.Open(filepath.Join(root, "held", "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// A store its membership does not name (no identity recorded for
	// anyone): only ID= says whose it is.
	unrecorded := filepath.Join(root, "unrecorded")
	{
		s, err := store.Open(filepath.Join(unrecorded, "db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ms := core.Members{{ID: "a", Kind: core.KindAuto}, {ID: "b", Kind: core.KindAuto}, {ID: "c", Kind: core.KindAuto}, {ID: "s", Kind: core.KindSentinel}}
		hs := core.HardState{Epoch: 3, Commit: core.Pos{Epoch: 3, Seq: 1}}
		es := []core.Entry{{Pos: core.Pos{Epoch: 3, Seq: 1}, Type: core.EntryEpochStart}}
		if err := s.Save(store.SaveBatch{HardState: &hs, Entries: es, Members: ms}, true); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no --node", []string{"--force", "--data-dir", dirs["c"]}, 2, []string{"refusing --force without --node ID"}},
		{"--node without --force", []string{"--node", "c", "--data-dir", dirs["c"]}, 2, []string{"--node and --accept-loss go with --force"}},
		{"--json", []string{"--force", "--node", "c", "--data-dir", dirs["c"], "--json"}, 2, []string{"--json goes with the survey only"}},
		{"not a data voter", []string{"--force", "--node", "s", "--data-dir", "s=" + unrecorded}, 1,
			[]string{"s is not a data voter in its store's membership", "the data voters are a, b, c"}},
		{"running, asked through its API", []string{"--force", "--node", "a", "--addr", apiA.URL}, 1,
			[]string{"a is running (it answered at " + apiA.URL + "): stop it first"}},
		{"no data dir", []string{"--force", "--node", "a", "--data-dir", dirs["c"]}, 1, []string{"no data directory of a was given", "--data-dir a=DIR"}},
		{"store held open", []string{"--force", "--node", "x", "--data-dir", "x=" + filepath.Join(root, "held")}, 1,
			[]string{"cannot use x's data directory " + filepath.Join(root, "held"), "locked by a running node", "stop it first"}},
		{"quorum runs", []string{"--force", "--node", "a", "--data-dir", dirs["a"], "--addr", apiB.URL, "--addr", apiC.URL}, 1,
			[]string{"a quorum of voters runs (2 of 3 voters: b, c): the cluster can elect a Cortex on its own"}},
		{"another voter runs", []string{"--force", "--node", "c", "--data-dir", live["c"]}, 1,
			[]string{"b accepts connections at its recorded MBP address (" + running + "): it is running. Stop it first"}},
		// Three of the four voters (quorum 3) would run if started: a
		// quorum is reachable, --force is refused, running or stopped.
		{"stopped voters would form a quorum", []string{"--force", "--node", "c", "--data-dir", dirs["a"], "--data-dir", dirs["b"], "--data-dir", dirs["c"]}, 1,
			[]string{"a quorum is reachable: the voters given, a (stopped, data dir " + dirs["a"] + "), b (stopped, data dir " + dirs["b"] + "), c (stopped, data dir " + dirs["c"] + "), are 3 of 4 (quorum 3)",
				"start them again instead (muninn start", "a quorum elects a Cortex on its own"}},
		{"running and stopped voters would form a quorum", []string{"--force", "--node", "c", "--addr", apiA.URL, "--data-dir", dirs["b"], "--data-dir", dirs["c"]}, 1,
			[]string{"a quorum is reachable: the voters given, a (running), b (stopped, data dir " + dirs["b"] + "), c (stopped, data dir " + dirs["c"] + "), are 3 of 4"}},
		// A data dir given under another member's id (review 15 finding
		// 6): the store's membership says whose it is.
		{"another member's store", []string{"--force", "--node", "a", "--data-dir", "a=" + dirs["c"]}, 1,
			[]string{"cannot use a's data directory " + dirs["c"] + ": given as a's, but this store is c's: its membership records this store (identity ",
				") for c and store ", " for a; give it as --data-dir c=" + dirs["c"]}},
		{"one id twice", []string{"--force", "--node", "a", "--data-dir", "a=" + dirs["a"], "--data-dir", "a=" + dirs["b"]}, 1,
			[]string{"two data directories are given as a's, " + dirs["a"] + " and " + dirs["b"] + ": give each member's data directory once"}},
		{"not the freshest", []string{"--force", "--node", "a", "--data-dir", dirs["a"], "--data-dir", dirs["c"]}, 1,
			[]string{"a is not the freshest data node: c's log is ahead of a's (c: last 3.12, commit 6; a: last 3.7, commit 6)", "Give --node c, or add --accept-loss"}},
	} {
		code, out, stderr := cli(t, append([]string{"cluster", "recover", "--timeout", "2s"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.code, out, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: no %q in:\n%s", tc.name, w, stderr)
			}
		}
	}
	for id, d := range map[string]string{"a": dirs["a"], "b": dirs["b"], "c": dirs["c"], "live c": live["c"]} {
		if hs, last, _ := storeState(t, d); hs.Epoch != 3 || last.Epoch != 3 {
			t.Errorf("%s's store was changed by a refused --force: epoch %d, last %s", id, hs.Epoch, last)
		}
	}

	code, out, stderr := cli(t, "cluster", "recover", "--force", "--node", "a", "--accept-loss", "--data-dir", dirs["a"], "--data-dir", dirs["c"])
	if code != 0 || !strings.Contains(out, "Accepting the loss (--accept-loss): c's log is ahead of a's") || !strings.Contains(out, "Forced: a (data dir") {
		t.Fatalf("--accept-loss: exit %d\n%s%s", code, out, stderr)
	}
	if hs, last, _ := storeState(t, dirs["a"]); hs.Epoch != 1003 || last != (core.Pos{Epoch: 1003, Seq: 8}) {
		t.Errorf("a after --accept-loss: epoch %d, last %s", hs.Epoch, last)
	}
}

// TestRecoverForceChecksLaterVoters: a voter that only another stopped
// node's store knows (added after the survivor's last membership) is
// dialed too: running, it stops even --accept-loss.
func TestRecoverForceChecksLaterVoters(t *testing.T) {
	dirs := stoppedCluster(t, t.TempDir(), map[string]core.Seq{"a": 7, "b": 9, "c": 12}, nil, nil)
	d := acceptingAddr(t)
	s, err := store.Open(filepath.Join(dirs["c"], "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms := append(s.Members(), core.Member{ID: "d", Kind: core.KindAuto, Addr: d}).Normalize()
	if err := s.Save(store.SaveBatch{Members: ms}, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, stderr := cli(t, "cluster", "recover", "--force", "--node", "a", "--accept-loss", "--data-dir", dirs["a"], "--data-dir", dirs["c"])
	if code != 1 || !strings.Contains(stderr, "d accepts connections at its recorded MBP address ("+d+")") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if hs, _, _ := storeState(t, dirs["a"]); hs.Epoch != 3 {
		t.Errorf("a's store was changed: epoch %d", hs.Epoch)
	}
}

// TestRecoverMislabelledDataDir: a survey without --force does not count
// a store given under another member's id as that member's: the answer is
// an error naming both ids, so the survey neither counts c's log as a's
// nor a as a stopped voter.
func TestRecoverMislabelledDataDir(t *testing.T) {
	dirs := stoppedCluster(t, t.TempDir(), map[string]core.Seq{"a": 7, "b": 9, "c": 12}, nil, nil)
	code, out, stderr := cli(t, "cluster", "recover", "--data-dir", "a="+dirs["c"], "--data-dir", dirs["b"])
	if code != exitNoQuorum {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		dirs["c"] + ": given as a's, but this store is c's",
		"Stopped voters whose data was read: b:",
		"Freshest data node: b (last 3.9",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
