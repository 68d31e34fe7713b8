package cluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCheckRestored: a restored store passes only when every engram of
// the segment's vaults is one a client wrote (register values and unique
// ids with their content) and every quorum write it must hold is there.
func TestCheckRestored(t *testing.T) {
	regs := []string{"r0", "r1"}
	ops := []*Op{
		{Kind: OpRegWrite, Key: 0, ID: "r0", Value: "c1-3", Outcome: Unknown},
		{Kind: OpRegWrite, Key: 1, ID: "r1", Value: "c2-1", Outcome: Fail},
		{Kind: OpLocalWrite, Client: 1, ID: "u1", Outcome: OK, Seq: 4, Return: 10},
		{Kind: OpQuorumWrite, Client: 2, ID: "u2", Outcome: OK, Seq: 5, Return: 20},
		{Kind: OpQuorumWrite, Client: FollowerClient, ID: "u3", Outcome: OK, Seq: 9, Return: 30},
		{Kind: OpQuorumWrite, Client: 3, ID: "u4", Outcome: Unknown, Return: 40},
		{Kind: OpQuorumWrite, Client: 3, ID: "u5", Outcome: OK, Return: 50}, // no seq known
	}
	good := func() restoredData {
		return restoredData{
			Reg: map[string]engramVal{"r0": {"register 0", "c1-3"}, "r1": {"register 1", "init"}},
			Uniq: map[string]engramVal{
				"u1": {uniqConcept, uniqContent(1)}, "u2": {uniqConcept, uniqContent(2)},
				"u3": {uniqConcept, "written by the following client"}, "u4": {uniqConcept, uniqContent(3)},
			},
		}
	}
	for _, c := range []struct {
		name       string
		edit       func(*restoredData)
		commit     uint64
		fromCortex bool
		started    time.Duration
		want       string // a substring of the only problem, "" for none
		mustHold   int
	}{
		{name: "clean, commit 9", commit: 9, mustHold: 2},
		{name: "clean, commit 5: u3 need not be there", edit: func(d *restoredData) { delete(d.Uniq, "u3") }, commit: 5, mustHold: 1},
		{name: "a written-but-failed register value may be there", edit: func(d *restoredData) { d.Reg["r1"] = engramVal{"register 1", "c2-1"} }, commit: 9, mustHold: 2},
		{name: "register value nobody wrote", edit: func(d *restoredData) { d.Reg["r1"] = engramVal{"register 1", "c9-9"} }, commit: 9, want: `register 1 (r1) holds "c9-9"`, mustHold: 2},
		{name: "another key's value", edit: func(d *restoredData) { d.Reg["r1"] = engramVal{"register 1", "c1-3"} }, commit: 9, want: `register 1 (r1) holds "c1-3"`, mustHold: 2},
		{name: "no such register", edit: func(d *restoredData) { d.Reg["r7"] = engramVal{"register 7", "init"} }, commit: 9, want: "r7, which is no register", mustHold: 2},
		{name: "unique id nobody wrote", edit: func(d *restoredData) { d.Uniq["zz"] = engramVal{uniqConcept, uniqContent(1)} }, commit: 9, want: "holds zz", mustHold: 2},
		{name: "another client's content", edit: func(d *restoredData) { d.Uniq["u2"] = engramVal{uniqConcept, uniqContent(1)} }, commit: 9, want: "not what client 2 wrote", mustHold: 2},
		{name: "quorum write below commit missing", edit: func(d *restoredData) { delete(d.Uniq, "u2") }, commit: 9, want: "quorum write u2 acknowledged (epoch 0 seq 5) at seq 5", mustHold: 2},
		{name: "a local write may be missing", edit: func(d *restoredData) { delete(d.Uniq, "u1") }, commit: 9, mustHold: 2},
		{name: "Cortex backup: acknowledged before it began", edit: func(d *restoredData) { d.Uniq["u5"] = engramVal{uniqConcept, uniqContent(3)} }, commit: 5, fromCortex: true, started: 60, mustHold: 3},
		{name: "Cortex backup: missing one acknowledged before it began", commit: 5, fromCortex: true, started: 60, want: "quorum write u5", mustHold: 3},
		{name: "Lobe backup: time does not count", commit: 5, started: 60, mustHold: 1, edit: func(d *restoredData) { delete(d.Uniq, "u3") }},
	} {
		d := good()
		if c.edit != nil {
			c.edit(&d)
		}
		problems, st := checkRestored(ops, regs, d, c.commit, c.fromCortex, c.started)
		switch {
		case c.want == "" && len(problems) > 0:
			t.Errorf("%s: problems %q", c.name, problems)
		case c.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], c.want)):
			t.Errorf("%s: problems %q, want one with %q", c.name, problems, c.want)
		}
		if st.mustHold != c.mustHold || st.engrams != len(d.Reg)+len(d.Uniq) {
			t.Errorf("%s: stats %+v, want %d to hold", c.name, st, c.mustHold)
		}
	}
}

// TestRunMuninn: how a subcommand ended is told apart (exit code and
// message, a hang killed at its bound, a binary that cannot run), and it
// runs with only the token of the harness's MUNINN_* environment.
func TestRunMuninn(t *testing.T) {
	t.Setenv("MUNINN_CLUSTER_SECRET", "not for the subcommand")
	ctx := context.Background()
	r := runMuninn(ctx, time.Minute, "/bin/sh", "tok", "-c", "env; echo boom >&2; exit 3")
	if r.hung || r.err != nil || r.code != 3 || !strings.Contains(r.stderr, "boom") || r.ok() {
		t.Errorf("exit 3: %+v", r)
	}
	if !strings.Contains(r.stdout, "MUNINN_ADMIN_TOKEN=tok") || strings.Contains(r.stdout, "MUNINN_CLUSTER_SECRET") {
		t.Errorf("environment: %q", r.stdout)
	}
	if r := runMuninn(ctx, 200*time.Millisecond, "/bin/sh", "", "-c", "exec sleep 60"); !r.hung || r.ok() {
		t.Errorf("a hang: %+v", r)
	}
	if r := runMuninn(ctx, time.Minute, "/nonexistent/muninn", ""); r.err == nil || r.ok() {
		t.Errorf("no binary: %+v", r)
	}
	if r := runMuninn(ctx, time.Minute, "/bin/sh", "", "-c", "exit 0"); !r.ok() {
		t.Errorf("exit 0: %+v", r)
	}
}
