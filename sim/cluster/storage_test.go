package cluster

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseNemesesAll(t *testing.T) {
	defer func(m map[string]string) { NotInAll = m }(NotInAll)
	NotInAll = map[string]string{"fill-disk": "waits on the product"}
	all, err := ParseNemeses("all")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(all, "fill-disk") || !slices.Contains(all, "wipe") || !slices.Contains(all, "kill") {
		t.Errorf("all = %v", all)
	}
	if got, err := ParseNemeses("fill-disk, wipe"); err != nil || !slices.Equal(got, []string{"fill-disk", "wipe"}) {
		t.Errorf("named: %v %v", got, err)
	}
	if _, err := ParseNemeses("wipe,nope"); err == nil {
		t.Error("an unknown nemesis was accepted")
	}
	for _, n := range Nemeses {
		if isStorage(n) != slices.Contains([]string{"wipe", "restore-old", "corrupt-wal", "fill-disk"}, n) {
			t.Errorf("isStorage(%s)", n)
		}
	}
}

// TestCheckWritesLostWithStore: local writes a Cortex acknowledged in the
// epoch its store was destroyed are counted, not anomalies; others still
// are.
func TestCheckWritesLostWithStore(t *testing.T) {
	ops := []*Op{
		{Kind: OpLocalWrite, ID: "gone-1", Outcome: OK, Epoch: 3, AnsweredBy: "muninn-01"},
		{Kind: OpLocalWrite, ID: "gone-follower", Outcome: OK, Epoch: 3}, // the following client: no X-Muninn-Node
		{Kind: OpLocalWrite, ID: "other-node", Outcome: OK, Epoch: 3, AnsweredBy: "muninn-02"},
		{Kind: OpLocalWrite, ID: "later-epoch", Outcome: OK, Epoch: 4, AnsweredBy: "muninn-01"},
		{Kind: OpQuorumWrite, ID: "quorum", Outcome: OK, Epoch: 3, AnsweredBy: "muninn-01"},
	}
	f := Final{Cortex: "muninn-02", Present: map[string]bool{}, Quarantined: map[string]string{}, StoreLostNode: "muninn-01", StoreLostEpoch: 3}
	w, an := checkWrites(ops, f)
	if w.LocalLost != 4 || w.LocalLostWithStore != 2 {
		t.Errorf("writes %+v, want 4 lost of which 2 with the store", w)
	}
	var checks []string
	for _, a := range an {
		checks = append(checks, a.Check)
	}
	if !slices.Equal(checks, []string{"local-write-lost-unquarantined", "local-write-lost-unquarantined", "quorum-write-lost"}) {
		t.Errorf("anomalies %v", an)
	}
	// Without a destroyed store nothing is excused.
	f.StoreLostEpoch = 0
	if _, an := checkWrites(ops, f); len(an) != 5 {
		t.Errorf("%d anomalies without a destroyed store, want 5", len(an))
	}
}

func TestChoose(t *testing.T) {
	topo := Topologies[1] // sentinel
	s := &segment{c: &Cluster{Topo: topo, data: &dataDirs{kind: fsLoop}}, rng: rand.New(rand.NewPCG(1, 2))}
	seen := map[string]int{}
	for i := 0; i < 400; i++ {
		st := s.choose("muninn-01", true, false)
		seen[st.Role+":"+st.Node]++
		if st.DataFS != fsLoop {
			t.Fatalf("data fs %q", st.DataFS)
		}
		if st := s.choose("muninn-01", false, true); st.Node != "muninn-02" || st.Role != "lobe" {
			t.Fatalf("chose %s (%s), want the only Lobe", st.Node, st.Role)
		}
	}
	if n := seen["cortex:muninn-01"]; n < 150 || n > 250 {
		t.Errorf("the Cortex chosen %d times of 400, want about half: %v", n, seen)
	}
	if seen["lobe:muninn-02"] == 0 || seen["sentinel:sentinel-01"] == 0 {
		t.Errorf("not every other node was chosen: %v", seen)
	}
}

func TestDataDirHelpers(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("db/000002.log", strings.Repeat("a", 100))
	write("db/000010.log", strings.Repeat("b", 10)) // newest, but too small
	write("db/000004.log", strings.Repeat("c", 200))
	write("db/IDENTITY", "00000000000000ab\n")
	write("snapshot-out/x/f", "y")
	write("lost+found/keep", "")
	write(fillerName, "fill")

	if id, err := readStoreIdentity(dir); err != nil || id != "00000000000000ab" {
		t.Errorf("identity %q %v", id, err)
	}
	wal, size, err := newestWAL(dir, 64)
	if err != nil || filepath.Base(wal) != "000004.log" || size != 200 {
		t.Errorf("newest WAL %s %d %v, want 000004.log (the newest of 64 bytes or more)", wal, size, err)
	}
	if err := flipBytes(wal, size/2-8, 16); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(wal)
	if got := strings.Count(string(b), "c"); got != 184 || b[92] != ^byte('c') || b[107] != ^byte('c') || b[108] != 'c' {
		t.Errorf("after the flip: %d bytes unchanged, want 184", got)
	}

	copyDir := filepath.Join(t.TempDir(), "copy")
	n, err := copyTree(dir, copyDir)
	if err != nil || n != 100+10+200+17+1 {
		t.Errorf("copied %d bytes: %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(copyDir, "lost+found")); err == nil {
		t.Error("lost+found was copied")
	}
	if _, err := os.Stat(filepath.Join(copyDir, fillerName)); err == nil {
		t.Error("the filler was copied")
	}
	if b, err := os.ReadFile(filepath.Join(copyDir, "snapshot-out/x/f")); err != nil || string(b) != "y" {
		t.Errorf("nested file: %q %v", b, err)
	}

	if err := wipeDir(dir); err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(dir)
	var left []string
	for _, e := range es {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{fillerName, "lost+found"}) {
		t.Errorf("after the wipe: %v", left)
	}
	if id, err := readStoreIdentity(dir); err != nil || id != "" {
		t.Errorf("identity after the wipe %q %v", id, err)
	}
	if _, _, err := newestWAL(dir, 1); err == nil {
		t.Error("a WAL found in a wiped directory")
	}
	if err := unfillDisk(dir); err != nil {
		t.Fatal(err)
	}
	if err := unfillDisk(dir); err != nil {
		t.Errorf("removing a filler twice: %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("got %q", got)
	}
}

// TestCheckStorage checks the storage expectations on recorded
// observations.
func TestCheckStorage(t *testing.T) {
	root := t.TempDir()
	topo := Topologies[0]
	for _, n := range topo.Nodes {
		if err := os.MkdirAll(filepath.Join(root, n.ID, "db"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	seg := func(nemesis string, st *Storage, ops []*Op) *segment {
		return &segment{o: Options{Workload: DefaultWorkload}, c: &Cluster{Topo: topo, data: &dataDirs{root: root, kind: fsLoop}}, nemesis: nemesis, stor: st, ops: ops}
	}
	checks := func(an []Anomaly) []string {
		var out []string
		for _, a := range an {
			out = append(out, a.Check)
		}
		return out
	}
	f := Fault{Start: sec(1), End: sec(4)}
	ctx := context.Background()

	// A node that ran on a damaged log and came back with its old store.
	st := &Storage{Node: "muninn-02", Role: "lobe", WAL: "/data/db/000004.log", OldStore: "aa", NewStore: "aa"}
	rep := &Report{}
	if got := checks(seg("corrupt-wal", st, nil).checkStorage(ctx, rep, f, Final{})); !slices.Equal(got, []string{"corrupt-wal-accepted", "rejoin"}) {
		t.Errorf("corrupt-wal accepted: %v", got)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %v", rep.Warnings)
	}
	// Exit 0 and a log that does not name the file.
	st = &Storage{Node: "muninn-02", Role: "lobe", WAL: "/data/db/000004.log", Exited: true, OldStore: "aa", NewStore: "bb", SeenRejoining: true}
	if got := checks(seg("corrupt-wal", st, nil).checkStorage(ctx, &Report{Unrecovered: true}, f, Final{})); !slices.Equal(got, []string{"corrupt-wal-exit", "corrupt-wal-unnamed"}) {
		t.Errorf("corrupt-wal exit 0: %v", got)
	}
	// Refused properly.
	st = &Storage{Node: "muninn-02", Role: "lobe", WAL: "/data/db/000004.log", Exited: true, ExitCode: 1, LogLine: "000004.log is damaged", OldStore: "aa", NewStore: "bb", SeenRejoining: true}
	if got := checks(seg("corrupt-wal", st, nil).checkStorage(ctx, &Report{Unrecovered: true}, f, Final{})); len(got) != 0 {
		t.Errorf("corrupt-wal refused: %v", got)
	}
	// A wiped node without a store identity afterwards.
	st = &Storage{Node: "muninn-03", Role: "lobe", OldStore: "aa", SeenRejoining: true}
	if got := checks(seg("wipe", st, nil).checkStorage(ctx, &Report{}, f, Final{})); !slices.Equal(got, []string{"rejoin"}) {
		t.Errorf("wipe without identity: %v", got)
	}

	// fill-disk: a wait past the bound while the disk was full is a hang,
	// a quorum write's too; not one outside the fault, nor the following
	// client's.
	ops := []*Op{
		{Client: 1, Node: "muninn-02", Kind: OpLocalWrite, ID: "hung", Call: sec(2), Return: sec(10), Outcome: Unknown, Code: `Post "x": context deadline exceeded`},
		{Client: 2, Node: "muninn-01", Kind: OpQuorumWrite, ID: "q", Call: sec(2), Return: sec(10), Outcome: Unknown, Code: "context deadline exceeded"},
		{Client: 3, Node: "muninn-01", Kind: OpLocalWrite, ID: "before", Call: sec(0.5), Return: sec(8.5), Outcome: Unknown, Code: "context deadline exceeded"},
		{Client: FollowerClient, Node: "follower", Kind: OpLocalWrite, ID: "f", Call: sec(2), Return: sec(5), Outcome: Unknown, Code: "context deadline exceeded"},
		{Client: 4, Node: "muninn-01", Kind: OpLocalWrite, ID: "full", Call: sec(2), Return: sec(2.01), Outcome: Unknown, Status: 507, Code: "insufficient_storage"},
		{Client: 5, Node: "muninn-03", Kind: OpRegRead, ID: "slow", Call: sec(3), Return: sec(5.5), Outcome: OK}, // answered, but after 2.5 s
		{Client: 6, Node: "muninn-03", Kind: OpRegRead, ID: "quick", Call: sec(3), Return: sec(4.9), Outcome: OK},
	}
	st = &Storage{Node: "muninn-01", Role: "cortex", RSSBefore: 30 << 20, RSSPeak: 400 << 20, Died: true, DiedAt: sec(3)}
	rep = &Report{}
	an := seg("fill-disk", st, ops).checkStorage(ctx, rep, f, Final{})
	if got := checks(an); !slices.Equal(got, []string{"disk-full-exit", "disk-full-memory", "disk-full-cortex", "disk-full-hang"}) {
		t.Errorf("fill-disk: %v", got)
	}
	if !strings.Contains(an[3].Detail, "3 operations") || len(rep.Warnings) != 0 {
		t.Errorf("fill-disk: %v; warnings %v", an[3], rep.Warnings)
	}
	if st.Answers507 != 1 || st.Slowest507.Round(time.Millisecond) != 10*time.Millisecond {
		t.Errorf("507s: %d, slowest %s", st.Answers507, st.Slowest507)
	}
	if an := seg("fill-disk", &Storage{Node: "muninn-02", Role: "lobe"}, append(ops[2:4:4], ops[6])).checkStorage(ctx, &Report{}, f, Final{}); len(an) != 0 {
		t.Errorf("fill-disk without a hang: %v", an)
	}
}
