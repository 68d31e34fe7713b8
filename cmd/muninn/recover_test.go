package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

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
		"not available yet (issue 15)",
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

// TestRecoverRefusals: --force is refused (not available yet), and a
// survey that reaches nobody is an error, both exit 1.
func TestRecoverRefusals(t *testing.T) {
	a := infoNode(t, lobe("a", 5, 90, 80))
	code, _, stderr := cli(t, "cluster", "recover", "--addr", a.URL, "--force", "--node", "a")
	if code != 1 || !strings.Contains(stderr, "not available yet (issue 15") {
		t.Fatalf("--force: exit %d %s", code, stderr)
	}
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
	for _, want := range []string{
		"Freshest data node: b (last 3.9, commit 6; stopped, data dir " + filepath.Join(root, "b") + ")",
		"Running voters: 0 of 3 (—): no quorum",
		"Stopped voters whose data was read: a, b: start them again with their data intact (starting them again gives a quorum",
		"Not heard from: c. Entries past 3.9",
		"locked by a running node",
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
