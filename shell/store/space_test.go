package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

const testTotal = 100 << 30 // a 100 GiB disk: the reserve is 1 GiB

// fakeDisk is a DiskFreeFunc whose free space the test sets.
type fakeDisk struct{ free atomic.Uint64 }

func (d *fakeDisk) fn() DiskFreeFunc {
	return func() (uint64, uint64, error) { return d.free.Load(), testTotal, nil }
}

// logBuf collects a store's log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func spaceStore(t *testing.T, free uint64, ttl time.Duration) (*Store, *fakeDisk, *logBuf) {
	t.Helper()
	d := &fakeDisk{}
	d.free.Store(free)
	lb := &logBuf{}
	s, err := Open(t.TempDir(), Options{DiskFree: d.fn(), SpaceTTL: ttl, Log: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d, lb
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 5 << 20: "5.00 MiB", 5<<20 - 10<<10: "4.99 MiB", 900 << 20: "900.0 MiB", 1 << 30: "1.00 GiB", 3 << 40: "3.00 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestReserve(t *testing.T) {
	for _, tc := range []struct{ total, want uint64 }{
		{0, 0},
		{20 << 20, 5 << 20},        // a 20 MiB tmpfs: a quarter of it
		{1 << 30, MinReserve},      // 1 GiB: the minimum
		{100 << 30, 1 << 30},       // 100 GiB: 1 %
		{10 << 40, 10 << 40 / 100}, // 10 TiB: 1 %
	} {
		if got := Reserve(tc.total); got != tc.want {
			t.Errorf("Reserve(%s) = %s, want %s", FormatBytes(tc.total), FormatBytes(got), FormatBytes(tc.want))
		}
	}
}

// TestAdmit: a write is admitted while the free space stays above the
// reserve, and refused with a NoSpaceError naming the directory, the free
// space and the reserve below it (issue 11 D: writes used to hang).
func TestAdmit(t *testing.T) {
	s, d, _ := spaceStore(t, 2<<30, -1)
	if err := s.Admit(1000); err != nil {
		t.Fatalf("2 GiB free, 1 GiB reserve: %v", err)
	}
	if full, why := s.DiskFull(); full {
		t.Fatalf("DiskFull with 2 GiB free: %s", why)
	}
	d.free.Store(900 << 20)
	err := s.Admit(1000)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("900 MiB free under a 1 GiB reserve: want ErrNoSpace, got %v", err)
	}
	var ne *NoSpaceError
	if !errors.As(err, &ne) || ne.Dir != s.Dir() || ne.Free != 900<<20 || ne.Reserve != 1<<30 {
		t.Fatalf("NoSpaceError %+v", ne)
	}
	for _, want := range []string{s.Dir(), "900.0 MiB free", "reserve of 1.00 GiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	full, why := s.DiskFull()
	if !full || !strings.Contains(why, s.Dir()) || !strings.Contains(why, "900.0 MiB free") || !strings.Contains(why, "1.00 GiB reserve") {
		t.Fatalf("DiskFull: %v %q", full, why)
	}
	d.free.Store(2 << 30)
	if err := s.Admit(1000); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
}

// TestAdmitCharges: between two samples of the free space, what was
// admitted counts, so a burst cannot run past the reserve.
func TestAdmitCharges(t *testing.T) {
	s, _, _ := spaceStore(t, 1<<30+10<<20, time.Hour) // 10 MiB above the reserve
	admitted := 0
	for range 100 {
		if s.Admit(1<<20) != nil {
			break
		}
		admitted++
	}
	// Each MiB of payload is charged amplification MiB (and 1 KiB).
	if admitted != 2 {
		t.Fatalf("admitted %d writes of 1 MiB with 10 MiB above the reserve, want 2", admitted)
	}
	s.space.mu.Lock()
	s.space.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	s.space.mu.Unlock()
	if err := s.Admit(1 << 20); err != nil {
		t.Fatalf("a fresh sample forgets the charges: %v", err)
	}
}

// TestSaveNoSpace: below half the reserve a save with entries is refused
// with ErrNoSpace and writes nothing; saves without entries (hard state,
// votes, truncations) still go through; the store is usable again once
// space is freed.
func TestSaveNoSpace(t *testing.T) {
	s, d, _ := spaceStore(t, 2<<30, -1)
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "a"), dataEntry(t, 1, 2, "b")}}, true); err != nil {
		t.Fatal(err)
	}
	d.free.Store(700 << 20) // below the reserve, above half of it: admission's business
	if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, 3, "c")}}, true); err != nil {
		t.Fatalf("a save above half the reserve: %v", err)
	}
	d.free.Store(100 << 20)
	err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 1, 4, "d")}}, true)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("entries below half the reserve: want ErrNoSpace, got %v", err)
	}
	r, err := s.Load()
	if err != nil {
		t.Fatalf("the store is unusable after a refusal: %v", err)
	}
	if r.Applied.Seq != 3 || len(r.Entries) != 3 {
		t.Fatalf("after the refused save: applied %s, %d entries; want 1.3, 3", r.Applied, len(r.Entries))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 2, Vote: "n2", Commit: core.Pos{Epoch: 1, Seq: 2}}}, true); err != nil {
		t.Fatalf("a vote below half the reserve: %v", err)
	}
	if err := s.Save(SaveBatch{Truncate: &core.Truncation{After: core.Pos{Epoch: 1, Seq: 2}, Reason: "test"}, Now: 1}, true); err != nil {
		t.Fatalf("a truncation below half the reserve: %v", err)
	}
	if _, err := s.Prune(2); err != nil {
		t.Fatalf("pruning below half the reserve: %v", err)
	}
	d.free.Store(2 << 30)
	if err := s.Save(SaveBatch{Entries: []core.Entry{dataEntry(t, 2, 3, "e")}}, true); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	if r, _ := s.Load(); r.Applied != (core.Pos{Epoch: 2, Seq: 3}) {
		t.Fatalf("applied %s, want 2.3", r.Applied)
	}
}

// TestInstallSnapshotNoSpace: a snapshot that would not fit above the
// reserve is refused before it is copied.
func TestInstallSnapshotNoSpace(t *testing.T) {
	src := openT(t, t.TempDir())
	if err := src.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "x")}}, true); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp")
	if _, err := src.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	s, _, _ := spaceStore(t, 1<<30+1000, -1) // less above the reserve than the checkpoint's size
	if _, err := s.InstallSnapshot(cp); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("want ErrNoSpace, got %v", err)
	}
	if _, err := os.Stat(s.Dir() + ".install"); !os.IsNotExist(err) {
		t.Fatalf("a refused install left %s.install behind (%v)", s.Dir(), err)
	}
}

// TestTestFreeFile: the e2e hook reads the free space from a file in the
// store's parent directory while the file exists.
func TestTestFreeFile(t *testing.T) {
	t.Setenv(TestFreeFileEnv, "disk-free")
	parent := t.TempDir()
	dir := filepath.Join(parent, "db")
	s, err := Open(dir, Options{SpaceTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if full, _ := s.DiskFull(); full {
		t.Fatal("full without the file (the real disk of the test is not full)")
	}
	if err := os.WriteFile(filepath.Join(parent, "disk-free"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if full, _ := s.DiskFull(); !full {
		t.Fatal("not full with 0 bytes free in the file")
	}
	if !errors.Is(s.Admit(1), ErrNoSpace) {
		t.Fatal("a write admitted with 0 bytes free in the file")
	}
	os.Remove(filepath.Join(parent, "disk-free"))
	if full, _ := s.DiskFull(); full {
		t.Fatal("still full after the file was removed")
	}
}

// TestLogs: Pebble's errors and events and the disk's transitions reach
// the node's log, rate-limited per kind with a count of what was held back.
func TestLogs(t *testing.T) {
	s, d, lb := spaceStore(t, 2<<30, -1)
	now := time.Now()
	s.plog.lim.mu.Lock()
	s.plog.lim.now = func() time.Time { return now }
	s.plog.lim.mu.Unlock()
	l := s.listener(s.plog)
	for range 5 {
		l.BackgroundError(errors.New("no space left on device"))
	}
	if got := strings.Count(lb.String(), "pebble: background error"); got != 1 {
		t.Fatalf("5 background errors within the window logged %d times, want 1:\n%s", got, lb)
	}
	now = now.Add(logEvery)
	l.BackgroundError(errors.New("no space left on device"))
	if !strings.Contains(lb.String(), "4 similar lines") {
		t.Fatalf("the next line does not count the 4 held back:\n%s", lb)
	}
	l.FlushEnd(pebbleFlushErr())
	if !strings.Contains(lb.String(), "pebble: flushing a memtable failed") {
		t.Fatalf("a failed flush was not logged:\n%s", lb)
	}
	d.free.Store(100 << 20)
	s.DiskFull()
	if !strings.Contains(lb.String(), "disk below the reserve") || !strings.Contains(lb.String(), "100.0 MiB") {
		t.Fatalf("going below the reserve was not logged:\n%s", lb)
	}
	d.free.Store(2 << 30)
	s.DiskFull()
	if !strings.Contains(lb.String(), "above the reserve again") {
		t.Fatalf("recovering was not logged:\n%s", lb)
	}
}

func pebbleFlushErr() pebble.FlushInfo {
	return pebble.FlushInfo{Done: true, Err: errors.New("no space left on device")}
}

// TestSpaceUnknown: when the free space cannot be read (an error, or a
// filesystem that reports no size) the guard cannot judge and holds
// nothing back; a failing statfs is logged once.
func TestSpaceUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   DiskFreeFunc
	}{
		{"error", func() (uint64, uint64, error) { return 0, 0, errors.New("statfs: input/output error") }},
		{"no size", func() (uint64, uint64, error) { return 0, 0, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := &logBuf{}
			s, err := Open(t.TempDir(), Options{DiskFree: tc.fn, SpaceTTL: -1, Log: slog.New(slog.NewTextHandler(lb, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for range 3 {
				if err := s.Admit(100); err != nil {
					t.Fatalf("Admit: %v", err)
				}
			}
			if full, why := s.DiskFull(); full {
				t.Fatalf("DiskFull: %s", why)
			}
			if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{dataEntry(t, 1, 1, "x")}}, true); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if n := strings.Count(lb.String(), "cannot read the free space"); tc.name == "error" && n != 1 {
				t.Fatalf("the failing statfs was logged %d times, want once:\n%s", n, lb)
			}
		})
	}
}
