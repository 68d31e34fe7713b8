package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/backup"
)

// The backup-partition nemesis (netns runtime): one node is isolated from
// the others (the isolate fault's cut; the seed picks the Cortex or a data
// Lobe) and, while the partition holds, an online backup (docs/backup.md)
// is taken with the product's own `muninn backup --addr` from a data node
// of the majority (its Cortex once one is elected there) and from the
// cut-off node. What must hold, else an anomaly named backup-partition:
//
//   - each backup completes, or fails with a non-zero exit and a message,
//     within backupBound (a hang past it is an anomaly);
//   - a completed backup passes `muninn backup verify`, restores with
//     `muninn restore`, and the restored store opens;
//   - the restored store holds, in this segment's vaults, no engram that
//     no client wrote (id and value of a write in the history, or a
//     register's initial value);
//   - it holds every quorum write acknowledged at a seq at or below the
//     backup's commit point (an acknowledged quorum write is committed,
//     and a committed entry is never removed: docs/protocol.md, rules 8
//     to 10) and, for a backup of the majority's
//     Cortex, every quorum write acknowledged before the backup began.
//
// The backups and restored stores go to a directory under the report
// directory (the system's temp directory without one), removed after the
// checks unless one failed.

// backupBound bounds `muninn backup` and `muninn backup verify`;
// restoreBound bounds `muninn restore`.
const (
	backupBound  = 30 * time.Second
	restoreBound = 60 * time.Second
)

// opsRuntime is what the ops nemeses (backup-partition, rotate-kill) need
// of the runtime: the muninn binary the nodes run and each node's
// configuration file. Only the netns runtime has them.
type opsRuntime interface {
	muninnBinary() string
	confPath(node string) string
}

func (s *segment) opsRuntime() (opsRuntime, error) {
	r, ok := s.c.rt.(opsRuntime)
	if !ok {
		return nil, fmt.Errorf("%s needs --runtime netns (the muninn binary and the nodes' config files on the host)", s.nemesis)
	}
	return r, nil
}

// opsNemesis: backup-partition and rotate-kill run in the netns runtime
// only.
func opsNemesis(nemesis string) bool {
	return nemesis == "backup-partition" || nemesis == "rotate-kill"
}

// backupRun is one online backup taken during the partition.
type backupRun struct {
	Node string
	// Side is "majority Cortex", "majority Lobe" or "cut off".
	Side  string
	Start time.Duration
	Took  time.Duration
	// Err is how the backup failed ("" when it completed).
	Err      string
	Manifest backup.Manifest
}

// injectBackupPartition runs the nemesis.
func (s *segment) injectBackupPartition(ctx context.Context, cortex string, epoch uint64) (Fault, error) {
	c := s.c
	s.memb = &Membership{}
	rt, err := s.opsRuntime()
	if err != nil {
		return Fault{Kind: s.nemesis}, err
	}
	target := cortex
	if lobes := dataLobes(c.Topo, cortex); len(lobes) > 0 && s.rng.IntN(2) == 0 {
		target = lobes[s.rng.IntN(len(lobes))]
	}
	t0 := s.w.now()
	// The isolate fault's cut, around target instead of the Cortex.
	f, err := c.Inject(ctx, "isolate", target, epoch)
	f.Kind, f.Cortex, f.Epoch, f.FailsOver = s.nemesis, cortex, epoch, target == cortex
	if err != nil {
		return f, err
	}
	s.cutAt = s.w.now()
	f.CutOff = []string{target}
	s.memb.step(s, t0, "isolated %s (%s)", target, f.Sides)

	hb := time.Duration(s.o.HeartbeatMs) * time.Millisecond
	major, side, err := s.majorityNode(ctx, target, epoch, 20*hb+10*time.Second)
	if err != nil {
		return f, err
	}
	dir, err := opsWorkDir(s.o.ReportDir, s.name()+".backup-partition-")
	if err != nil {
		return f, err
	}
	var runs []*backupRun
	var an []Anomaly
	for _, b := range []struct{ node, side string }{{major, side}, {target, "cut off"}} {
		n, _ := c.Topo.Node(b.node)
		run, a := s.takeBackup(ctx, rt.muninnBinary(), n, b.side, dir)
		runs = append(runs, run)
		an = append(an, a...)
	}
	// A write in flight while a backup was taken enters the history when
	// it returns: wait until every operation invoked before the last
	// backup ended has (an operation is bounded by the workload's
	// timeout; the following client's by 3 s).
	waitUntil(ctx, s.w, s.w.now()+max(s.o.Workload.Timeout, 3*time.Second)+500*time.Millisecond)
	ops := s.w.Ops()
	for _, run := range runs {
		if run.Err != "" {
			continue
		}
		an = append(an, s.checkBackup(ctx, rt.muninnBinary(), run, dir, ops)...)
	}
	if len(an) == 0 {
		os.RemoveAll(dir)
	} else {
		for i := range an {
			an[i].Detail += " (backups and restored stores kept in " + dir + ")"
		}
	}
	s.nemAnomalies = append(s.nemAnomalies, an...)
	f.Targets = []string{target}
	var notes []string
	for _, r := range runs {
		st := "completed, commit " + r.Manifest.Commit.String()
		if r.Err != "" {
			st = "failed: " + truncate(r.Err, 120)
		}
		notes = append(notes, fmt.Sprintf("%s (%s) %s", r.Node, r.Side, st))
	}
	f.Note = fmt.Sprintf("isolated %s; backups: %s", target, strings.Join(notes, "; "))
	return f, nil
}

// dataLobes are the voting data nodes other than the Cortex.
func dataLobes(t Topology, cortex string) []string {
	var out []string
	for _, n := range t.Nodes {
		if n.ID != cortex && !n.Sentinel && !n.Observer {
			out = append(out, n.ID)
		}
	}
	return out
}

// majorityNode picks the data node of the majority (everyone but cut) to
// back up: the Cortex the majority follows, once it has one other than
// cut (in an epoch after epoch when cut was the Cortex), waiting at most
// within; else a data Lobe of the majority.
func (s *segment) majorityNode(ctx context.Context, cut string, epoch uint64, within time.Duration) (string, string, error) {
	c := s.c
	t0 := s.w.now()
	deadline := time.Now().Add(within)
	for {
		for _, n := range c.Topo.Nodes {
			if n.ID == cut {
				continue
			}
			info, err := s.api.Info(ctx, n)
			if err != nil || info.Cortex == "" || info.Cortex == cut || info.Epoch < epoch {
				continue
			}
			if cn, ok := c.Topo.Node(info.Cortex); ok && !cn.Sentinel {
				s.memb.step(s, t0, "the majority follows %s (epoch %d)", info.Cortex, info.Epoch)
				return info.Cortex, "majority Cortex", nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, n := range c.Topo.DataNodes() {
		if n.ID != cut {
			s.memb.step(s, t0, "the majority elected no Cortex within %s: backing up its data node %s", within, n.ID)
			return n.ID, "majority Lobe", nil
		}
	}
	return "", "", fmt.Errorf("topology %s has no data node besides %s", c.Topo.Name, cut)
}

// takeBackup runs `muninn backup --addr` against n into dir, bounded by
// backupBound.
func (s *segment) takeBackup(ctx context.Context, bin string, n Node, side, dir string) (*backupRun, []Anomaly) {
	run := &backupRun{Node: n.ID, Side: side, Start: s.w.now()}
	out := filepath.Join(dir, n.ID+".tar.zst")
	res := runMuninn(ctx, backupBound, bin, s.api.token, "backup", "--addr", n.API(), "--out", out)
	run.Took = s.w.now() - run.Start
	var an []Anomaly
	switch {
	case res.hung:
		run.Err = "hung"
		an = append(an, Anomaly{s.nemesis, fmt.Sprintf("muninn backup of %s (%s) still ran %s after it started: killed (output: %s)", n.ID, side, backupBound, res.output())})
	case res.err != nil && res.code == 0:
		run.Err = res.err.Error()
		an = append(an, Anomaly{s.nemesis, fmt.Sprintf("muninn backup of %s (%s) could not run: %v", n.ID, side, res.err)})
	case res.code != 0:
		run.Err = fmt.Sprintf("exit %d: %s", res.code, res.output())
		if strings.TrimSpace(res.stderr) == "" {
			an = append(an, Anomaly{s.nemesis, fmt.Sprintf("muninn backup of %s (%s) failed (exit %d) without saying why", n.ID, side, res.code)})
		}
	}
	if run.Err != "" {
		s.memb.step(s, run.Start, "backup of %s (%s) failed: %s", n.ID, side, truncate(run.Err, 300))
		return run, an
	}
	m, err := backup.Read(out, "", backup.ReadOptions{})
	if err != nil {
		run.Err = err.Error()
		an = append(an, Anomaly{s.nemesis, fmt.Sprintf("muninn backup of %s (%s) said it completed, but its file does not read: %v", n.ID, side, err)})
		return run, an
	}
	run.Manifest = m
	s.memb.step(s, run.Start, "backup of %s (%s): position %s, commit %s", n.ID, side, m.Position, m.Commit)
	return run, an
}

// checkBackup verifies and restores a completed backup, reads the
// restored store and checks what it holds against the history ops.
func (s *segment) checkBackup(ctx context.Context, bin string, run *backupRun, dir string, ops []*Op) []Anomaly {
	t0 := s.w.now()
	file := filepath.Join(dir, run.Node+".tar.zst")
	what := fmt.Sprintf("the backup of %s (%s, commit %s)", run.Node, run.Side, run.Manifest.Commit)
	if res := runMuninn(ctx, backupBound, bin, "", "backup", "verify", file); !res.ok() {
		return []Anomaly{{s.nemesis, fmt.Sprintf("muninn backup verify refused %s: %s", what, res.describe(backupBound))}}
	}
	data := filepath.Join(dir, "restored-"+run.Node)
	if res := runMuninn(ctx, restoreBound, bin, "", "restore", "--from", file, "--data-dir", data); !res.ok() {
		return []Anomaly{{s.nemesis, fmt.Sprintf("muninn restore of %s: %s", what, res.describe(restoreBound))}}
	}
	rd, err := readRestored(data, s.w.RegVault, s.w.UniVault)
	if err != nil {
		return []Anomaly{{s.nemesis, fmt.Sprintf("the store restored from %s does not open: %v", what, err)}}
	}
	commit := min(run.Manifest.Commit.Seq, run.Manifest.Position.Seq)
	problems, st := checkRestored(ops, s.w.RegIDs, rd, commit, run.Side == "majority Cortex", run.Start)
	s.memb.step(s, t0, "%s verified and restored: %d engrams of this segment, %d quorum writes it must hold, all there: %v", what, st.engrams, st.mustHold, len(problems) == 0)
	var an []Anomaly
	for _, p := range problems {
		an = append(an, Anomaly{s.nemesis, what + ": " + p})
	}
	return an
}

// opsWorkDir makes a fresh directory named prefix* under base (the system's
// temp directory when base is "").
func opsWorkDir(base, prefix string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, prefix)
}

// waitUntil waits until the workload's clock reaches t.
func waitUntil(ctx context.Context, w *Workload, t time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(t - w.now()):
	}
}

// muninnResult is how a muninn subcommand ended.
type muninnResult struct {
	code           int
	stdout, stderr string
	// hung: still running at its bound (killed); err: it did not run or
	// did not exit normally.
	hung bool
	err  error
}

func (r muninnResult) ok() bool { return !r.hung && r.err == nil && r.code == 0 }

func (r muninnResult) output() string {
	return truncate(strings.TrimSpace(r.stderr+"\n"+r.stdout), 600)
}

func (r muninnResult) describe(bound time.Duration) string {
	switch {
	case r.hung:
		return fmt.Sprintf("still running after %s (killed): %s", bound, r.output())
	case r.code != 0:
		return fmt.Sprintf("exit %d: %s", r.code, r.output())
	case r.err != nil:
		return r.err.Error()
	}
	return "ok"
}

// runMuninn runs the muninn binary bin with args, bounded by bound, in an
// environment of its own (a MUNINN_* variable of the harness's would
// override its flags), with the admin token, if any, in
// MUNINN_ADMIN_TOKEN rather than on the command line.
func runMuninn(ctx context.Context, bound time.Duration, bin, token string, args ...string) muninnResult {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TMPDIR=" + os.TempDir()}
	if token != "" {
		cmd.Env = append(cmd.Env, "MUNINN_ADMIN_TOKEN="+token)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	r := muninnResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		r.hung = true
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	case err != nil:
		r.err = err
	}
	return r
}

// engramVal is what the checks compare of an engram.
type engramVal struct{ Concept, Content string }

// restoredData is what a restored store holds of the segment's vaults,
// by id: Reg the registers, Uniq the unique writes.
type restoredData struct {
	Reg, Uniq map[string]engramVal
}

// readRestored opens the store restored into dataDir (as a stopped
// node's) and reads every engram of the vaults reg and uniq.
func readRestored(dataDir, reg, uniq string) (restoredData, error) {
	st, err := backup.OpenStopped(dataDir)
	if err != nil {
		return restoredData{}, err
	}
	defer st.Close()
	rd := restoredData{Reg: map[string]engramVal{}, Uniq: map[string]engramVal{}}
	for _, v := range []struct {
		vault string
		into  map[string]engramVal
	}{{reg, rd.Reg}, {uniq, rd.Uniq}} {
		cursor := ""
		for {
			p, err := st.List(v.vault, engram.ListOptions{Limit: engram.MaxListLimit, Cursor: cursor})
			if err != nil {
				return rd, fmt.Errorf("listing vault %s: %w", v.vault, err)
			}
			for _, e := range p.Engrams {
				v.into[e.ID] = engramVal{Concept: e.Concept, Content: e.Content}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
	}
	return rd, nil
}

// restoredStats counts what checkRestored looked at.
type restoredStats struct {
	engrams  int
	mustHold int
}

// What the workload writes (Workload.Setup, do and follow).
const (
	regInit     = "init"
	uniqConcept = "fault test"
)

func uniqContent(client int) string {
	if client == FollowerClient {
		return "written by the following client"
	}
	return "written by client " + strconv.Itoa(client)
}

// checkRestored checks a restored store's data rd against the history
// ops (complete up to the backup's end) and the registers' ids: every
// engram is one a client wrote (or a register's initial value), and
// every quorum write acknowledged at a seq at or below commit (and, when
// fromCortex, every one acknowledged before started) is there.
func checkRestored(ops []*Op, regIDs []string, rd restoredData, commit uint64, fromCortex bool, started time.Duration) ([]string, restoredStats) {
	var problems []string
	st := restoredStats{engrams: len(rd.Reg) + len(rd.Uniq)}
	regWrites := map[int]map[string]bool{}
	uniq := map[string]*Op{}
	for _, op := range ops {
		switch op.Kind {
		case OpRegWrite:
			if regWrites[op.Key] == nil {
				regWrites[op.Key] = map[string]bool{}
			}
			regWrites[op.Key][op.Value] = true
		case OpLocalWrite, OpQuorumWrite:
			uniq[op.ID] = op
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rd.Reg)) {
		v := rd.Reg[id]
		k := slices.Index(regIDs, id)
		switch {
		case k < 0:
			problems = append(problems, fmt.Sprintf("register vault holds %s, which is no register", id))
		case v.Concept != "register "+strconv.Itoa(k):
			problems = append(problems, fmt.Sprintf("register %d (%s) has concept %q, which no client wrote", k, id, v.Concept))
		case v.Content != regInit && !regWrites[k][v.Content]:
			problems = append(problems, fmt.Sprintf("register %d (%s) holds %q, which no client wrote", k, id, v.Content))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rd.Uniq)) {
		v := rd.Uniq[id]
		op := uniq[id]
		switch {
		case op == nil:
			problems = append(problems, fmt.Sprintf("unique-write vault holds %s (%q), which no client wrote", id, v.Content))
		case v.Concept != uniqConcept || v.Content != uniqContent(op.Client):
			problems = append(problems, fmt.Sprintf("%s holds %q / %q, not what client %d wrote (%q / %q)", id, v.Concept, v.Content, op.Client, uniqConcept, uniqContent(op.Client)))
		}
	}
	for _, op := range ops {
		if op.Kind != OpQuorumWrite || op.Outcome != OK {
			continue
		}
		bySeq := op.Seq > 0 && op.Seq <= commit
		byTime := fromCortex && op.Return < started
		if !bySeq && !byTime {
			continue
		}
		st.mustHold++
		if _, ok := rd.Uniq[op.ID]; ok {
			continue
		}
		why := fmt.Sprintf("at seq %d, at or below the backup's commit point %d", op.Seq, commit)
		if !bySeq {
			why = fmt.Sprintf("at %s, before the backup of the Cortex began (%s)", ms(op.Return), ms(started))
		}
		problems = append(problems, fmt.Sprintf("quorum write %s acknowledged (epoch %d seq %d) %s is missing", op.ID, op.Epoch, op.Seq, why))
	}
	return problems, st
}
