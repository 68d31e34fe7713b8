//go:build unix

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/archive"
	"github.com/muninndb/muninn/shell/client"
)

// pitrOp is one acknowledged write of the recorded history.
type pitrOp struct {
	seq     uint64
	kind    string // create, update, forget
	id      string
	content string
}

// pitrModel is the state the history up to seq makes: live engram id ->
// content (forgotten engrams are not listed).
func pitrModel(ops []pitrOp, seq uint64) map[string]string {
	m := map[string]string{}
	for _, o := range ops {
		if o.seq > seq {
			continue
		}
		switch o.kind {
		case "create", "update":
			m[o.id] = o.content
		case "forget":
			delete(m, o.id)
		}
	}
	return m
}

// archivedTo is the highest seq the segments in dir hold.
func archivedTo(dir string) uint64 {
	segs, err := archive.List(dir)
	if err != nil {
		return 0
	}
	var last uint64
	for _, s := range segs {
		last = max(last, uint64(s.Last))
	}
	return last
}

// TestPITR: a three-node cluster archives its log (backup.archive_dir on
// each node); a backup is taken early, then a recorded history of quorum
// writes (creates, updates, forgets) runs. A restore --to-seq N and one
// --to-time T of the backup plus the archives, each started as a
// standalone node, hold exactly the engrams the history up to that point
// made, engram for engram. With a segment missing, the restore is refused
// and nothing is left in its target.
func TestPITR(t *testing.T) {
	c := newCluster(t, fastHB, fastLease)
	ns := c.addN(3)
	archives := make([]string, len(ns))
	t.Setenv("MUNINN_BACKUP_ARCHIVE_INTERVAL_MS", "100")
	for i, n := range ns {
		archives[i] = filepath.Join(c.dir, "archive-"+n.id)
		t.Setenv("MUNINN_BACKUP_ARCHIVE_DIR", archives[i]) // read when the process starts
		n.start()
	}
	t.Setenv("MUNINN_BACKUP_ARCHIVE_DIR", "") // restored nodes archive nothing
	cx := c.waitCortex(ns, 20*time.Second)
	for _, n := range ns {
		c.waitFor(n.id+" to start archiving", 10*time.Second, func() (bool, string) {
			return n.countMsg("log archiving enabled") > 0, "no \"log archiving enabled\" line in its log: is backup.archive_dir passed from the config to node.Options (cmd/muninn/start.go nodeOptions)?"
		})
	}
	cl := client.New(cx.url())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var ops []pitrOp
	live := []string{}
	rng := rand.New(rand.NewPCG(15, 2))
	do := func(i int) pitrOp {
		t.Helper()
		var o pitrOp
		var res apitypes.WriteResult
		var err error
		switch k := rng.IntN(10); {
		case len(live) < 3 || k < 5:
			o = pitrOp{kind: "create", id: client.NewID(), content: "created " + strconv.Itoa(i)}
			res, err = cl.Write(ctx, apitypes.WriteRequest{ID: o.id, Vault: "pitr", Concept: "c", Content: o.content}, client.Durability("quorum"))
			live = append(live, o.id)
		case k < 8:
			o = pitrOp{kind: "update", id: live[rng.IntN(len(live))], content: "updated " + strconv.Itoa(i)}
			res, err = cl.Update(ctx, "pitr", o.id, apitypes.UpdateRequest{Content: &o.content}, client.Durability("quorum"))
		default:
			j := rng.IntN(len(live))
			o = pitrOp{kind: "forget", id: live[j]}
			live = append(live[:j], live[j+1:]...)
			res, err = cl.Forget(ctx, "pitr", o.id, client.Durability("quorum"))
		}
		if err != nil {
			t.Fatalf("op %d (%s %s): %v", i, o.kind, o.id, err)
		}
		o.seq = res.Seq
		ops = append(ops, o)
		return o
	}
	for i := range 10 {
		do(i)
	}
	bfile := filepath.Join(c.dir, "early.tar.zst")
	stdout, stderr, code := cli(t, "backup", "--addr", cx.url(), "--out", bfile)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	var bEpoch, bSeq uint64
	if i := strings.Index(stdout, "position "); i < 0 {
		t.Fatalf("no position in %q", stdout)
	} else if _, err := fmt.Sscanf(stdout[i:], "position %d:%d", &bEpoch, &bSeq); err != nil {
		t.Fatalf("position in %q: %v", stdout, err)
	}

	// The history, in three parts the archive of the first node writes
	// separately (so that a middle segment can go missing).
	var mid, timed pitrOp
	var timeT int64
	for part := range 3 {
		for i := range 20 {
			o := do(10 + part*20 + i)
			if part == 1 && i == 10 {
				mid = o
			}
			if part == 2 && i == 5 {
				for o.kind == "forget" {
					o = do(100 + len(ops))
				}
				e, err := cl.Get(ctx, "pitr", o.id, client.Consistency("strong"))
				if err != nil {
					t.Fatal(err)
				}
				timed, timeT = o, int64(e.UpdatedAt)
				// The next write's time is after T (one clock: every
				// process runs on this host).
				c.waitFor("the clock to pass T", 5*time.Second, func() (bool, string) { return time.Now().UnixMilli() > timeT, "" })
			}
		}
		last := ops[len(ops)-1].seq
		c.waitFor(fmt.Sprintf("archive %s to reach seq %d", archives[0], last), 20*time.Second, func() (bool, string) {
			got := archivedTo(archives[0])
			return got >= last, fmt.Sprintf("at seq %d", got)
		})
	}
	last := ops[len(ops)-1].seq
	for _, a := range archives {
		c.waitFor(fmt.Sprintf("archive %s to reach seq %d", a, last), 20*time.Second, func() (bool, string) {
			got := archivedTo(a)
			return got >= last, fmt.Sprintf("at seq %d", got)
		})
	}
	if mid.seq <= bSeq || timed.seq <= mid.seq {
		t.Fatalf("history: backup at %d, mid %d, timed %d", bSeq, mid.seq, timed.seq)
	}
	archArgs := []string{}
	for _, a := range archives {
		archArgs = append(archArgs, "--archive", a)
	}

	check := func(name string, args []string, upto uint64) {
		t.Helper()
		n := c.add(name)
		n.standalone = true
		data := filepath.Join(n.dir, "data")
		stdout, stderr, code := cli(t, append(append([]string{"restore", "--from", bfile, "--data-dir", data}, archArgs...), args...)...)
		if code != 0 || !strings.Contains(stdout, "archive: applied") || !strings.Contains(stdout, fmt.Sprintf("position reached %d:%d", bEpoch, upto)) {
			t.Fatalf("restore %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		n.start()
		var got map[string]bool
		c.waitFor(name+" to serve", 20*time.Second, func() (bool, string) {
			var err error
			got, err = n.listIDs("pitr", "")
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		want := pitrModel(ops, upto)
		if len(got) != len(want) {
			t.Errorf("%s: %d engrams, the history up to seq %d made %d", name, len(got), upto, len(want))
		}
		ncl := client.New(n.url())
		for id, content := range want {
			if !got[id] {
				t.Errorf("%s: engram %s (%q) is missing", name, id, content)
				continue
			}
			e, err := ncl.Get(ctx, "pitr", id)
			if err != nil || e.Content != content {
				t.Errorf("%s: engram %s: %q, %v; want %q", name, id, e.Content, err, content)
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("%s: engram %s is there but the history up to seq %d does not make it", name, id, upto)
			}
		}
		n.signal(syscall.SIGTERM)
		n.waitExit(10 * time.Second)
	}
	check("pitr-seq", []string{"--to-seq", strconv.FormatUint(mid.seq, 10)}, mid.seq)
	// --to-time: the state at T is the history up to the timed write (the
	// entries up to the next write: none of them data).
	check("pitr-time", []string{"--to-time", time.UnixMilli(timeT).UTC().Format(time.RFC3339Nano)}, timed.seq)

	// A missing segment: the first node's archive alone has a gap at mid.
	var hole archive.Segment
	segs, _ := archive.List(archives[0])
	for _, s := range segs {
		if uint64(s.First) > bSeq+1 && uint64(s.First) <= mid.seq && uint64(s.Last) >= mid.seq {
			hole = s
		}
	}
	if hole.Path == "" {
		t.Fatalf("no segment of %s starts between the backup (seq %d) and seq %d: %v", archives[0], bSeq, mid.seq, segs)
	}
	if err := os.Remove(hole.Path); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(c.dir, "pitr-gap")
	_, stderr, code = cli(t, "restore", "--from", bfile, "--archive", archives[0], "--to-seq", strconv.FormatUint(timed.seq, 10), "--data-dir", target)
	if code == 0 || !strings.Contains(stderr, fmt.Sprintf("seqs %d..%d", hole.First, hole.Last)) || !strings.Contains(stderr, "gap") {
		t.Fatalf("restore over a gap: exit %d, %s", code, stderr)
	}
	if left, _ := filepath.Glob(target + "*"); len(left) > 0 {
		t.Fatalf("the refused restore left %v", left)
	}
}

// TestPITRRestoredNodeArchivesElsewhere (review 15, finding 1): a node
// restored from a backup and started with its source's config (same
// archive_dir, same node id: standalone nodes are all "standalone") must
// not append its new history to the old one's archive: its archiver
// refuses the directory, naming the fix, and writes nothing there. A
// restore of the backup with that archive then gives the old history
// exactly (A and B), not a mix with the restored node's writes (C).
func TestPITRRestoredNodeArchivesElsewhere(t *testing.T) {
	c := newCluster(t, 0, 0)
	arch := filepath.Join(c.dir, "arch")
	t.Setenv("MUNINN_BACKUP_ARCHIVE_INTERVAL_MS", "100")
	t.Setenv("MUNINN_BACKUP_ARCHIVE_DIR", arch) // read when a process starts
	src := c.add("pitr-src")
	src.standalone = true
	src.start()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	write := func(n *node, vault, content string) uint64 {
		t.Helper()
		var res apitypes.WriteResult
		c.waitFor(n.id+" to take a write", 20*time.Second, func() (bool, string) {
			var err error
			res, err = client.New(n.url()).Write(ctx, apitypes.WriteRequest{ID: client.NewID(), Vault: vault, Concept: "c", Content: content})
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		return res.Seq
	}
	for i := 1; i <= 5; i++ {
		write(src, "h", fmt.Sprintf("A-%d", i))
	}
	bfile := filepath.Join(c.dir, "b1.tar.zst")
	if stdout, stderr, code := cli(t, "backup", "--addr", src.url(), "--out", bfile); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	var last uint64
	for i := 1; i <= 5; i++ {
		last = write(src, "h", fmt.Sprintf("B-%d", i))
	}
	c.waitFor(fmt.Sprintf("archive to reach seq %d", last), 20*time.Second, func() (bool, string) {
		got := archivedTo(arch)
		return got >= last, fmt.Sprintf("at seq %d", got)
	})
	src.signal(syscall.SIGTERM)
	src.waitExit(10 * time.Second)
	before, err := archive.List(arch)
	if err != nil {
		t.Fatal(err)
	}

	dst := c.add("pitr-dst")
	dst.standalone = true
	stdout, stderr, code := cli(t, "restore", "--from", bfile, "--data-dir", filepath.Join(dst.dir, "data"))
	if code != 0 || !strings.Contains(stdout, "new, empty archive directory") {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	dst.start() // with the source's archive_dir (the environment)
	for i := 1; i <= 8; i++ {
		write(dst, "h", fmt.Sprintf("C-%d", i))
	}
	c.waitFor(dst.id+" to refuse the old archive", 20*time.Second, func() (bool, string) {
		return dst.countMsg("log archive refused") > 0, "no \"log archive refused\" line in its log"
	})
	dst.signal(syscall.SIGTERM)
	dst.waitExit(10 * time.Second)
	if dst.countMsg("log archive resumes") > 0 {
		t.Fatal("the restored node resumed archiving in its source's archive_dir")
	}
	after, err := archive.List(arch)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("the restored node wrote into its source's archive: %d segments, %d before: %v", len(after), len(before), after)
	}

	// The backup plus the archive: the old history, A and B, no C.
	d3 := c.add("pitr-d3")
	d3.standalone = true
	t.Setenv("MUNINN_BACKUP_ARCHIVE_DIR", "")
	stdout, stderr, code = cli(t, "restore", "--from", bfile, "--archive", arch, "--data-dir", filepath.Join(d3.dir, "data"))
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf(":%d\n", last)) {
		t.Fatalf("restore --archive: exit %d (want 0, position reached seq %d)\n%s%s", code, last, stdout, stderr)
	}
	d3.start()
	var contents []string
	c.waitFor(d3.id+" to serve", 20*time.Second, func() (bool, string) {
		ids, err := d3.listIDs("h", "")
		if err != nil {
			return false, err.Error()
		}
		contents = contents[:0]
		for id := range ids {
			e, err := client.New(d3.url()).Get(ctx, "h", id)
			if err != nil {
				return false, err.Error()
			}
			contents = append(contents, e.Content)
		}
		return true, ""
	})
	slices.Sort(contents)
	if want := "A-1 A-2 A-3 A-4 A-5 B-1 B-2 B-3 B-4 B-5"; strings.Join(contents, " ") != want {
		t.Fatalf("the restore holds %v, want %s", contents, want)
	}
}
