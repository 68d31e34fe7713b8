package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

const (
	diskTotal = 100 << 30 // the fake disk: 100 GiB, a 1 GiB reserve
	diskRoomy = 50 << 30
)

// fakeDisks gives each node (by data directory) a disk whose free space
// the test sets, sampled on every check.
type fakeDisks struct {
	mu   sync.Mutex
	free map[string]func() uint64
}

func useFakeDisks(t *testing.T) *fakeDisks {
	d := &fakeDisks{free: map[string]func() uint64{}}
	testStoreOptions = func(dir string, o *store.Options) {
		o.SpaceTTL = -1
		o.DiskFree = func() (uint64, uint64, error) {
			d.mu.Lock()
			f := d.free[dir]
			d.mu.Unlock()
			if f == nil {
				return diskRoomy, diskTotal, nil
			}
			return f(), diskTotal, nil
		}
	}
	t.Cleanup(func() { testStoreOptions = nil })
	return d
}

func (d *fakeDisks) set(dir string, f func() uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free[dir] = f
}

func fixed(n uint64) func() uint64 { return func() uint64 { return n } }

func isNoSpace(err error) bool {
	var ce *core.Error
	return errors.As(err, &ce) && ce.Code == core.CodeInsufficientStorage
}

// waitUntil polls cond every 10 ms for up to d.
func pollFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}

// TestDiskFullStandalone: a node whose disk is below the reserve refuses a
// write at once with insufficient_storage naming the data directory, the
// free space and the reserve (issue 11 D: writes hung until clients timed
// out), keeps serving reads, does not stop, and takes writes again once
// space is freed.
func TestDiskFullStandalone(t *testing.T) {
	disks := useFakeDisks(t)
	dir := t.TempDir()
	n, err := Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kept := NewEngramID()
	if _, err := n.Write(ctx, writeCmd(t, kept, "before"), core.Quorum); err != nil {
		t.Fatal(err)
	}
	disks.set(dir, fixed(10<<20))
	start := time.Now()
	refused := NewEngramID()
	_, err = n.Write(ctx, writeCmd(t, refused, "refused"), core.Quorum)
	if !isNoSpace(err) {
		t.Fatalf("want insufficient_storage, got %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the refusal took %s", took)
	}
	for _, want := range []string{dir, "10.0 MiB free", "reserve of 1.00 GiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if full, why := n.Store().DiskFull(); !full || !strings.Contains(why, dir) {
		t.Fatalf("DiskFull: %v %q", full, why)
	}
	var ok bool
	if err := n.Read(ctx, core.Strong, 0, func() { _, ok, _ = n.Store().Get("default", kept) }); err != nil || !ok {
		t.Fatalf("a strong read on the full node: %v, found %v", err, ok)
	}
	if st := n.Status().Core; st.Role != core.RoleCortex {
		t.Fatalf("a lone node stepped down (%s): nobody else could take writes", st.Role)
	}
	select {
	case err := <-n.Fatal():
		t.Fatalf("the node stopped: %v", err)
	default:
	}
	disks.set(dir, fixed(diskRoomy))
	if _, err := n.Write(ctx, writeCmd(t, NewEngramID(), "after"), core.Quorum); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	// Refused before it reached the protocol: it was never logged, and
	// never will be.
	if _, ok, _ := n.Store().Get("default", refused); ok {
		t.Fatal("the write refused with insufficient_storage was stored after all")
	}
}

// TestDiskFullHeldReady: the disk fills between a write's admission and
// its save (from elsewhere, past half the reserve). The Ready is not
// carried out in part: its client is answered at once with
// unknown_outcome (the entry is stored once space is freed, so a definite
// refusal would be a lie), nothing of it is acknowledged, the node holds it
// and answers every request at once instead of queueing, and when space
// is freed it stores it and resumes.
func TestDiskFullHeldReady(t *testing.T) {
	disks := useFakeDisks(t)
	dir := t.TempDir()
	var lb diskLog
	n, err := Start(Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Write(ctx, writeCmd(t, NewEngramID(), "before"), core.Quorum); err != nil {
		t.Fatal(err)
	}
	// The next sample (the admission) sees room; every later one, none.
	var calls atomic.Int64
	var freed atomic.Bool
	disks.set(dir, func() uint64 {
		if freed.Load() || calls.Add(1) == 1 {
			return diskRoomy
		}
		return 1 << 20
	})
	held := NewEngramID()
	_, err = n.Write(ctx, writeCmd(t, held, "held"), core.Quorum)
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.CodeUnknownOutcome || !strings.Contains(err.Error(), "read it back") {
		t.Fatalf("the write whose save was refused: want unknown_outcome (it is held, and stored once space is freed), got %v", err)
	}
	if _, ok, _ := n.Store().Get("default", held); ok {
		t.Fatal("the refused save is in the store")
	}
	// Held: requests are answered at once, not queued.
	for i := range 3 {
		start := time.Now()
		_, err := n.Write(ctx, writeCmd(t, NewEngramID(), fmt.Sprint(i)), core.Quorum)
		if !isNoSpace(err) || time.Since(start) > time.Second {
			t.Fatalf("a write while held: %v after %s", err, time.Since(start))
		}
	}
	select {
	case err := <-n.Fatal():
		t.Fatalf("the node stopped: %v", err)
	default:
	}
	freed.Store(true)
	pollFor(t, 5*time.Second, "the held entry to be stored", func() bool {
		_, ok, _ := n.Store().Get("default", held)
		return ok
	})
	if _, err := n.Write(ctx, writeCmd(t, NewEngramID(), "after"), core.Quorum); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	for _, want := range []string{"holds them unsent", "resuming"} {
		if !strings.Contains(lb.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, lb.String())
		}
	}
}

// TestDiskFullCortexStepsDown: a Cortex whose disk is below the reserve
// hands the role to a caught-up Lobe at once (well inside the SDOWN
// window), the cluster keeps taking quorum writes, the full node takes no
// replicated entries (so it acknowledges none it did not store), and once
// space is freed it catches up with nothing lost.
func TestDiskFullCortexStepsDown(t *testing.T) {
	disks := useFakeDisks(t)
	hb := 200 * time.Millisecond
	logs := make([]*diskLog, 3)
	tc := startCluster(t, 3, hb, func(i int, o *Options) {
		logs[i] = &diskLog{}
		o.Logger = slog.New(slog.NewTextHandler(logs[i], nil))
	})
	cx := tc.cortex(5 * time.Second)
	logOf := func(nd *Node) string {
		for i, x := range tc.nodes {
			if x == nd {
				return logs[i].String()
			}
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []string
	write := func(nd *Node, what string) {
		t.Helper()
		id := NewEngramID()
		if _, err := nd.Write(ctx, writeCmd(t, id, what), core.Quorum); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		ids = append(ids, id)
	}
	for i := range 10 {
		write(cx, fmt.Sprint("before ", i))
	}
	pollFor(t, 5*time.Second, "every node to hold the first writes", func() bool {
		for _, nd := range tc.nodes {
			if nd.Status().Core.Last != cx.Status().Core.Last {
				return false
			}
		}
		return true
	})
	full := cx
	disks.set(full.Options().DataDir, fixed(10<<20))
	stepped := time.Now()
	var nx *Node
	pollFor(t, 3*hb, "another node to be Cortex", func() bool {
		for _, nd := range tc.nodes {
			if nd != full && nd.Status().Core.Role == core.RoleCortex && full.Status().Core.Cortex == nd.ID() {
				nx = nd
				return true
			}
		}
		return false
	})
	t.Logf("%s stepped down; %s is Cortex %s later (SDOWN window %s)", full.ID(), nx.ID(), time.Since(stepped).Round(time.Millisecond), 3*hb)
	for i := range 10 {
		write(nx, fmt.Sprint("during ", i))
	}
	if got, want := full.Status().Core.Last.Seq, nx.Status().Core.Last.Seq; got >= want {
		t.Fatalf("the full node holds %d of %d: it took replicated entries", got, want)
	}
	if _, err := full.Write(ctx, writeCmd(t, NewEngramID(), "via the full node"), core.Quorum); err == nil {
		// Forwarding is the API's; the node answers not_cortex.
		t.Fatal("the full node, now a Lobe, took a write itself")
	}
	disks.set(full.Options().DataDir, fixed(diskRoomy))
	pollFor(t, 10*time.Second, "the full node to catch up", func() bool {
		return full.Status().Core.Last == nx.Status().Core.Last
	})
	for _, id := range ids {
		if _, ok, _ := full.Store().Get("default", id); !ok {
			t.Fatalf("%s lacks %s after catching up", full.ID(), id)
		}
	}
	select {
	case err := <-full.Fatal():
		t.Fatalf("the full node stopped: %v", err)
	default:
	}
	l := logOf(full)
	for _, want := range []string{"disk below the reserve", "demoted to lobe: disk full", "above the reserve again"} {
		if !strings.Contains(l, want) {
			t.Errorf("%s's log does not say %q", full.ID(), want)
		}
	}
	// The entries were turned away before the core, not held after a
	// refused save.
	if strings.Contains(l, "holds them unsent") {
		t.Errorf("%s held a Ready: it took replicated entries it could not store", full.ID())
	}
}

type diskLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *diskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *diskLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
