package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/node"
)

func u64(v uint64) *uint64 { return &v }
func i64(v int64) *int64   { return &v }

// TestInfoTableMatchesSeed: `muninn cluster info` prints the seed's table
// byte for byte.
func TestInfoTableMatchesSeed(t *testing.T) {
	st := apitypes.Status{View: "cortex", Members: []apitypes.MemberStatus{
		{ID: "muninn-01", Role: "cortex", Kind: "auto", LastSeq: u64(10421)},
		{ID: "muninn-02", Role: "lobe", Kind: "auto", LastSeq: u64(10421), LagMs: i64(0)},
		{ID: "muninn-03", Role: "lobe", Kind: "auto", LastSeq: u64(10419), LagMs: i64(2)},
	}}
	var b bytes.Buffer
	infoTable(&b, st)
	want := "" +
		"NODE ID     ROLE     LAST SEQ   LAG\n" +
		"muninn-01   cortex   10,421     —\n" +
		"muninn-02   lobe     10,421     0ms\n" +
		"muninn-03   lobe     10,419     2ms\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	// A Sentinel has no data; a lobe seen only in a local view has an
	// unknown lag.
	b.Reset()
	infoTable(&b, apitypes.Status{Members: []apitypes.MemberStatus{
		{ID: "s", Role: "sentinel", Kind: "sentinel"},
		{ID: "l", Role: "lobe", Kind: "auto", LastSeq: u64(1234567)},
	}})
	if !strings.Contains(b.String(), "s         sentinel   —           —\n") || !strings.Contains(b.String(), "1,234,567   ?") {
		t.Fatalf("sentinel/unknown rows:\n%s", b.String())
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 10421: "10,421", 123456: "123,456", 1234567: "1,234,567", 18446744073709551615: "18,446,744,073,709,551,615"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	for ms, want := range map[int64]string{0: "0ms", 2: "2ms", 999: "999ms", 1000: "1.0s", 1250: "1.2s", 59_999: "60.0s", 60_000: "1m0s", 125_400: "2m5s"} {
		if got := fmtLag(ms); got != want {
			t.Errorf("fmtLag(%d) = %q, want %q", ms, got, want)
		}
	}
	ms := []apitypes.Member{{ID: "muninn-01"}, {ID: "muninn-02"}, {ID: "muninn-03"}}
	if got := suggestNodeID(ms); got != "muninn-04" {
		t.Errorf("suggest %q", got)
	}
	if got := suggestNodeID([]apitypes.Member{{ID: "a-9"}, {ID: "b-1"}}); got != "<new-node-id>" {
		t.Errorf("suggest mixed %q", got)
	}
	if got := suggestNodeID(nil); got != "<new-node-id>" {
		t.Errorf("suggest none %q", got)
	}
	got := numberedSteps("do this by a restart: (1) stop it; (2) edit the config; (3) start it")
	want := "do this by a restart:\n  (1) stop it\n  (2) edit the config\n  (3) start it"
	if got != want {
		t.Errorf("numberedSteps:\n%s\nwant\n%s", got, want)
	}
}

func TestRemoveNodeSteps(t *testing.T) {
	info := apitypes.Info{NodeID: "muninn-01", ClusterEnabled: true, Cortex: "muninn-01", Epoch: 4, Members: []apitypes.Member{
		{ID: "muninn-01", Kind: "auto", Role: "cortex", MBP: "10.0.1.10:8474"},
		{ID: "muninn-02", Kind: "auto", Role: "lobe", MBP: "10.0.1.11:8474"},
		{ID: "muninn-03", Kind: "auto", Role: "lobe", MBP: "10.0.1.12:8474"},
	}}
	var b bytes.Buffer
	if err := removeNodeSteps(&b, info, "muninn-03", "http://10.0.1.10:8475"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"Removing muninn-03", "2 voters, quorum 2/2, tolerating 0", "Warning", "remove-node --node muninn-03 --yes", "10.0.1.12:8474", "Rotate cluster_secret", "Re-run with --yes"} {
		if !strings.Contains(out, s) {
			t.Errorf("steps lack %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "hand off first") {
		t.Errorf("a Lobe needs no handoff:\n%s", out)
	}
	b.Reset()
	removeNodeSteps(&b, info, "muninn-01", "x")
	if !strings.Contains(b.String(), "failover --yes") {
		t.Errorf("removing the Cortex must hand off first:\n%s", b.String())
	}
	if err := removeNodeSteps(&b, info, "muninn-09", "x"); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Errorf("unknown node: %v", err)
	}
	b.Reset()
	addNodeSteps(&b, info, "http://10.0.1.10:8475")
	for _, s := range []string{"Step 1", "Step 5", `node_id: "muninn-04"`, `- "10.0.1.11:8474"`, "add-node --node muninn-04 --kind auto --addr http://10.0.1.10:8475", "100 MB/s", "not counted in quorum"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("add-node steps lack %q:\n%s", s, b.String())
		}
	}
}

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, nil)
	return code, out.String(), errb.String()
}

func TestArgumentErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cluster", "failover", "--addr", "http://127.0.0.1:1"}, 2, "refusing to fail over without --yes"},
		{[]string{"cluster", "bogus"}, 2, "unexpected argument bogus"},
		{[]string{"cluster", "add-node", "--kind", "boss"}, 2, `--kind must be one of "auto","sentinel","observer" but got "boss"`},
		{[]string{"cluster", "quarantine", "--drop", "3.7"}, 2, "without --yes"},
		{[]string{"cluster", "quarantine", "--replay", "3"}, 2, "EPOCH.SEQ"},
		{[]string{"cluster", "quarantine", "--replay", "1.1", "--drop", "1.2"}, 2, "can't be used together"},
		// The deprecated name takes the same flags.
		{[]string{"cluster", "fenced", "--drop", "3.7"}, 2, "without --yes"},
		{[]string{"cluster", "fenced", "--replay", "1.1", "--drop", "1.2"}, 2, "can't be used together"},
		{[]string{"--log-format", "xml", "version"}, 2, "--log-format"},
		{[]string{"start", "--set", "nokey"}, 2, "KEY=VALUE"},
		{[]string{"start", "--set", "cluster.colour=red"}, 1, "cluster.colour"},
		{[]string{"start", "--config", "/nonexistent/muninn.yaml"}, 1, "does not exist"},
		{[]string{"cluster", "info", "--addr", "http://127.0.0.1:1"}, 1, "cannot reach http://127.0.0.1:1"},
		{[]string{}, 2, "expected one of"},
	}
	for _, c := range cases {
		code, _, stderr := cli(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("muninn %s: exit %d (want %d), stderr:\n%s\nwant %q", strings.Join(c.args, " "), code, c.code, stderr, c.want)
		}
	}
	if code, out, _ := cli(t, "version"); code != 0 || !strings.HasPrefix(out, "muninn ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := cli(t, "cluster", "--help"); code != 0 || !strings.Contains(out, "cluster failover") || !strings.Contains(out, "MUNINN_ADDR") ||
		!strings.Contains(out, "cluster quarantine") || strings.Contains(out, "cluster fenced") {
		t.Errorf("help: %d %q", code, out)
	}
}

func TestClusterCommands(t *testing.T) {
	n, err := node.Start(node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(n, api.Options{})
	srv := httptest.NewServer(a)
	defer func() { srv.Close(); a.Close(); n.Close() }()
	for n.Status().Core.Role != core.RoleCortex {
		time.Sleep(5 * time.Millisecond)
	}
	addr := srv.URL

	code, out, stderr := cli(t, "cluster", "info", "--addr", addr)
	if code != 0 || !strings.HasPrefix(out, "NODE ID      ROLE     LAST SEQ   LAG\nstandalone   cortex   ") || !strings.Contains(out, "Fencing token: 1") {
		t.Fatalf("info: %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, "cluster", "info", "--addr", addr, "--json")
	var js struct {
		Info   apitypes.Info   `json:"info"`
		Status apitypes.Status `json:"status"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js.Info.NodeID != "standalone" || len(js.Status.Members) != 1 {
		t.Fatalf("info --json: %d %s", code, out)
	}
	if code, out, _ = cli(t, "cluster", "status", "--addr", addr); code != 0 || !strings.Contains(out, "HEALTH") || !strings.Contains(out, "Health: ok") {
		t.Fatalf("status: %d %s", code, out)
	}
	if code, out, _ = cli(t, "cluster", "health", "--addr", addr); code != 0 || !strings.HasPrefix(out, "ok: cortex standalone") {
		t.Fatalf("health: %d %s", code, out)
	}
	if code, out, _ = cli(t, "cluster", "add-node", "--addr", addr); code != 0 || !strings.Contains(out, "runs standalone") || !strings.Contains(out, "Step 5") {
		t.Fatalf("add-node: %d %s", code, out)
	}
	if code, _, stderr = cli(t, "cluster", "add-node", "--addr", addr, "--node", "muninn-02"); code != 1 || !strings.Contains(stderr, "standalone") {
		t.Fatalf("add-node --node: %d %s", code, stderr)
	}
	if code, _, stderr = cli(t, "cluster", "remove-node", "--addr", addr, "--node", "muninn-02"); code != 1 || !strings.Contains(stderr, "runs standalone") {
		t.Fatalf("remove-node: %d %s", code, stderr)
	}
	if code, out, stderr = cli(t, "cluster", "enable", "--addr", addr); code != 1 || !strings.Contains(out, "  (3) start it") || !strings.Contains(stderr, "not enabled") {
		t.Fatalf("enable: %d %s %s", code, out, stderr)
	}
	if code, _, stderr = cli(t, "cluster", "failover", "--yes", "--addr", addr); code != 1 || !strings.Contains(stderr, "runs standalone") {
		t.Fatalf("failover: %d %s", code, stderr)
	}
	for _, cmd := range []string{"quarantine", "fenced"} {
		// fenced is the deprecated name: the same answers, and a note.
		deprecated := cmd == "fenced"
		if code, out, stderr = cli(t, "cluster", cmd, "--addr", addr); code != 0 || !strings.Contains(out, "No quarantined entries on standalone") ||
			strings.Contains(stderr, "deprecated; use `muninn cluster quarantine`") != deprecated {
			t.Fatalf("%s: %d %s %s", cmd, code, out, stderr)
		}
		if code, out, _ = cli(t, "cluster", cmd, "--export", "--addr", addr); code != 0 || out != "" {
			t.Fatalf("%s --export: %d %q", cmd, code, out)
		}
		if code, _, stderr = cli(t, "cluster", cmd, "--replay", "1.5", "--addr", addr); code != 1 || !strings.Contains(stderr, "no quarantined entry 1.5") ||
			!strings.Contains(stderr, "muninn cluster quarantine") {
			t.Fatalf("%s --replay: %d %s", cmd, code, stderr)
		}
	}
}

// TestStart: muninn start runs a standalone node that serves the API and
// stops cleanly.
func TestStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stop := make(chan struct{})
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- runWith([]string{"start", "--data-dir", t.TempDir(), "--http-addr", addr, "--log-format", "json"}, &out, &errb, nil, stop)
	}()
	c := client.New("http://" + addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var w apitypes.WriteResult
	for {
		w, err = c.Write(ctx, apitypes.WriteRequest{Content: "started"})
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || w.Seq == 0 {
		t.Fatalf("write: %v", err)
	}
	close(stop)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("start did not stop")
	}
	logs := errb.String()
	for _, s := range []string{`"msg":"serving the REST API on ` + addr, `"msg":"elected as cortex (received 1/1 votes)"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, s) {
			t.Errorf("logs lack %s:\n%s", s, logs)
		}
	}
}

// fakeNode serves /v1/cluster/info from info and answers everything else
// with other.
func fakeNode(t *testing.T, info apitypes.Info, other http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/cluster/info" {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(info)
			return
		}
		other(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

var threeNodes = apitypes.Info{NodeID: "muninn-01", Role: "cortex", ClusterEnabled: true, Cortex: "muninn-01", CortexAPI: "http://10.0.1.10:8475", Epoch: 4, Members: []apitypes.Member{
	{ID: "muninn-01", Kind: "auto", Role: "cortex", MBP: "10.0.1.10:8474"},
	{ID: "muninn-02", Kind: "auto", Role: "lobe", MBP: "10.0.1.11:8474"},
	{ID: "muninn-03", Kind: "auto", Role: "lobe", MBP: "10.0.1.12:8474"},
}}

// TestStepsJSON: add-node and remove-node print their instructions as one
// JSON document with --json, with what a script needs besides the steps.
func TestStepsJSON(t *testing.T) {
	addr := fakeNode(t, threeNodes, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("instructions must change nothing: %s %s", r.Method, r.URL.Path)
		w.WriteHeader(500)
	})
	code, out, stderr := cli(t, "cluster", "add-node", "--json", "--addr", addr)
	var add addNodeDoc
	if code != 0 || stderr != "" || json.Unmarshal([]byte(out), &add) != nil {
		t.Fatalf("add-node --json: %d %s %s", code, out, stderr)
	}
	wantAdd := "muninn cluster add-node --node muninn-04 --kind auto --addr " + addr
	if add.Command != "add-node" || add.Mode != "instructions" || add.Cluster == nil || add.Cluster.Cortex != "muninn-01" || add.Standalone ||
		add.NodeID != "muninn-04" || add.Kind != "auto" || strings.Join(add.Seeds, ",") != "10.0.1.10:8474,10.0.1.11:8474,10.0.1.12:8474" ||
		add.ConfigFile != "/etc/muninn/muninn.yaml" || !strings.Contains(add.Config, `node_id: "muninn-04"`) || !strings.Contains(add.Config, `- "10.0.1.12:8474"`) ||
		add.AddCommand != wantAdd || add.Note != "" {
		t.Fatalf("add-node document: %+v", add)
	}
	if len(add.Steps) != 5 || add.Steps[3].N != 4 || len(add.Steps[3].Commands) != 1 || add.Steps[3].Commands[0] != wantAdd ||
		add.Steps[4].Commands[0] != "muninn cluster status --addr "+addr || add.Steps[0].Title != "Prepare the new host" {
		t.Fatalf("add-node steps: %+v", add.Steps)
	}
	// The text is the same steps.
	_, text, _ := cli(t, "cluster", "add-node", "--addr", addr)
	for _, s := range add.Steps {
		if !strings.Contains(text, fmt.Sprintf("Step %d — %s\n", s.N, s.Title)) {
			t.Errorf("text lacks step %d %q:\n%s", s.N, s.Title, text)
		}
	}

	code, out, stderr = cli(t, "cluster", "remove-node", "--node", "muninn-03", "--json", "--addr", addr)
	var rm removeNodeDoc
	if code != 0 || stderr != "" || json.Unmarshal([]byte(out), &rm) != nil {
		t.Fatalf("remove-node --json: %d %s %s", code, out, stderr)
	}
	wantRm := "muninn cluster remove-node --node muninn-03 --yes --addr " + addr
	if rm.Command != "remove-node" || rm.Mode != "instructions" || rm.NodeID != "muninn-03" || rm.Member == nil || rm.Member.MBP != "10.0.1.12:8474" ||
		rm.HandoffFirst || rm.After == nil || *rm.After != (quorumAfter{Voters: 2, Quorum: 2, Tolerates: 0}) || len(rm.Warnings) != 1 ||
		rm.RemoveCommand != wantRm {
		t.Fatalf("remove-node document: %+v", rm)
	}
	if len(rm.Steps) != 5 || rm.Steps[0].Commands[0] != wantRm || !strings.Contains(rm.Steps[2].Title, "10.0.1.12:8474") {
		t.Fatalf("remove-node steps: %+v", rm.Steps)
	}
	// Removing the Cortex starts with a handoff.
	code, out, _ = cli(t, "cluster", "remove-node", "--node", "muninn-01", "--json", "--addr", addr)
	rm = removeNodeDoc{}
	if code != 0 || json.Unmarshal([]byte(out), &rm) != nil || !rm.HandoffFirst || len(rm.Steps) != 6 ||
		rm.Steps[0].Commands[0] != "muninn cluster failover --yes --addr "+addr {
		t.Fatalf("remove the cortex: %d %+v", code, rm)
	}
	// Not a member: an error, nothing on stdout.
	if code, out, stderr = cli(t, "cluster", "remove-node", "--node", "muninn-09", "--json", "--addr", addr); code != 1 || out != "" || !strings.Contains(stderr, "not a member") {
		t.Fatalf("unknown node: %d %q %s", code, out, stderr)
	}
	// A node that cannot be asked: placeholders, and the document says why.
	code, out, stderr = cli(t, "cluster", "remove-node", "--json", "--addr", "http://127.0.0.1:1")
	rm = removeNodeDoc{}
	if code != 0 || json.Unmarshal([]byte(out), &rm) != nil || rm.Cluster != nil || !strings.Contains(rm.Note, "could not ask") ||
		rm.NodeID != "" || rm.After != nil || !strings.Contains(rm.RemoveCommand, "--node <node-id>") || !strings.Contains(stderr, "note:") {
		t.Fatalf("unreachable: %d %s %s", code, out, stderr)
	}
	if !strings.Contains(out, `"cluster": null`) || !strings.Contains(out, `"after": null`) {
		t.Fatalf("unknown fields are null: %s", out)
	}
}

// TestAmbiguousExit: a command that may or may not have changed the
// cluster says so and exits 3; a definite refusal exits 1.
func TestAmbiguousExit(t *testing.T) {
	unknown := fakeNode(t, threeNodes, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"unknown_outcome","message":"handoff interrupted: deposed"}}`))
	})
	dropped := fakeNode(t, threeNodes, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	refused := fakeNode(t, threeNodes, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"code":"bad_request","message":"muninn-02 is already a member"}}`))
	})
	for _, c := range []struct {
		args  []string
		code  int
		wants []string
	}{
		{[]string{"cluster", "failover", "--yes", "--addr", unknown}, 3, []string{"outcome unknown: failover may or may not have taken effect", "handoff interrupted", "exit status 3", "muninn cluster info --addr " + unknown}},
		{[]string{"cluster", "add-node", "--node", "muninn-04", "--addr", dropped}, 3, []string{"outcome unknown: add member muninn-04", "exit status 3", "whether muninn-04 is a member"}},
		{[]string{"cluster", "remove-node", "--node", "muninn-03", "--yes", "--json", "--addr", dropped}, 3, []string{"outcome unknown: remove member muninn-03", "muninn cluster info --addr " + dropped}},
		{[]string{"cluster", "quarantine", "--replay", "3.7", "--addr", dropped}, 3, []string{"outcome unknown: replay of quarantined entry 3.7", "muninn cluster quarantine --addr " + dropped}},
		{[]string{"cluster", "quarantine", "--drop", "3.7", "--yes", "--addr", unknown}, 3, []string{"outcome unknown: drop of quarantined entry 3.7"}},
		{[]string{"cluster", "fenced", "--drop", "3.7", "--yes", "--addr", unknown}, 3, []string{"outcome unknown: drop of quarantined entry 3.7", "muninn cluster quarantine --addr " + unknown}},
		{[]string{"cluster", "add-node", "--node", "muninn-02", "--addr", refused}, 1, []string{"already a member"}},
	} {
		code, out, stderr := cli(t, c.args...)
		ok := code == c.code && out == ""
		for _, w := range c.wants {
			ok = ok && strings.Contains(stderr, w)
		}
		if c.code == 1 && strings.Contains(stderr, "outcome unknown") {
			ok = false
		}
		if !ok {
			t.Errorf("muninn %s: exit %d (want %d), stdout %q, stderr:\n%s", strings.Join(c.args, " "), code, c.code, out, stderr)
		}
	}
}
