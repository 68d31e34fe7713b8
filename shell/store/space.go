package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The disk reserve. Pebble needs free space to flush memtables, to compact
// (a compaction writes its outputs before it deletes its inputs) and to
// record the protocol's own state; at ENOSPC it retries failed flushes in a
// loop while memtables pile up. So the store keeps a reserve it never
// spends on new data: writes are refused while the free space is below
// Reserve(total), and the reserve is left to Pebble and to the small saves
// the protocol cannot do without (hard state, votes, truncations).
const (
	// MinReserve is the smallest reserve on a disk of normal size.
	MinReserve = 64 << 20
	// ReservePercent of the disk is kept free when that is more.
	ReservePercent = 1
	// spaceTTL is how long a free-space sample is used (statfs is cheap
	// but not free; saves and admissions come thousands a second).
	spaceTTL = 200 * time.Millisecond
	// amplification is what one byte of a new entry is charged until the
	// next sample: the log entry and the engram record in the WAL, then the
	// same in a table when the memtable is flushed.
	amplification = 4
)

// Reserve is the free space the store keeps on a disk of total bytes: the
// larger of MinReserve and ReservePercent of the disk, but never more than
// a quarter of it (a small test filesystem stays usable).
func Reserve(total uint64) uint64 {
	r := max(MinReserve, total/100*ReservePercent)
	return min(r, total/4)
}

// ErrNoSpace is matched (errors.Is) by a *NoSpaceError: a write refused
// because the disk is below the reserve. Nothing of it was written.
var ErrNoSpace = errors.New("insufficient storage")

// NoSpaceError is a write refused for lack of disk space.
type NoSpaceError struct {
	Dir     string // the store's directory
	Free    uint64 // bytes available, as last sampled (less what was written since)
	Reserve uint64 // the reserve (see Reserve)
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("insufficient storage: %s has %s free, below the reserve of %s that the store keeps for flushes, compactions and protocol state; writes resume on their own once space is freed on that disk",
		e.Dir, FormatBytes(e.Free), FormatBytes(e.Reserve))
}

// Is makes errors.Is(err, ErrNoSpace) hold.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// FormatBytes writes n in binary units (B, KiB, MiB, GiB, TiB), with two
// decimals below 10 of a unit (so 4.99 MiB free under a 5.00 MiB reserve
// does not read "5.0 below 5.0").
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v < 10 {
		return fmt.Sprintf("%.2f %ciB", v, "KMGT"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[exp])
}

// DiskFreeFunc reports the bytes available to this process and the size of
// the filesystem holding the store.
type DiskFreeFunc func() (free, total uint64, err error)

// TestFreeFileEnv names an environment variable for tests of a full disk
// without a full disk: when it is set, the store reads its free space from
// the file of that name in its parent directory (a node's data_dir), as a
// decimal number of bytes, whenever the file exists. The filesystem's real
// size is still used for the reserve. (Not MUNINN_*: the configuration
// refuses unknown variables of that prefix.)
const TestFreeFileEnv = "MUNINNTEST_DISK_FREE_FILE"

// fsFree reads the free space from the store's FS: statfs of the directory
// on the OS's file system. A file system without a size (ErrUnsupported: a
// vfs.MemFS unless its TestingSetDiskUsage was called) reports a size of 0,
// on which the guard cannot judge and holds nothing back.
func fsFree(fs vfs.FS, dir string) DiskFreeFunc {
	return func() (uint64, uint64, error) {
		u, err := fs.GetDiskUsage(dir)
		if errors.Is(err, vfs.ErrUnsupported) {
			return 0, 0, nil
		}
		if err != nil {
			return 0, 0, err
		}
		return u.AvailBytes, u.TotalBytes, nil
	}
}

// fileFree is fsFree, overridden by the number in file while it exists.
func fileFree(fs vfs.FS, dir, file string) DiskFreeFunc {
	real := fsFree(fs, dir)
	return func() (uint64, uint64, error) {
		free, total, err := real()
		b, ferr := readFile(fs, file)
		if ferr != nil {
			return free, total, err
		}
		v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("%s=%s: %s: %w", TestFreeFileEnv, file, b, perr)
		}
		return v, total, err
	}
}

// spaceGuard samples the free space of the store's disk (cached for
// spaceTTL) and charges what was admitted or written since the sample, so
// that a burst between two samples cannot overshoot the reserve.
type spaceGuard struct {
	dir  string
	stat DiskFreeFunc
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	at     time.Time
	valid  bool
	free   uint64
	total  uint64
	err    error
	spent  uint64
	failed bool // the last sample was an error (reported once)
	full   bool // the last sample was below the reserve
	log    *pebbleLog
}

func newSpaceGuard(fs vfs.FS, dir string, stat DiskFreeFunc, ttl time.Duration, log *pebbleLog) *spaceGuard {
	if stat == nil {
		// The test file is a host file: only on the OS's file system.
		if f := os.Getenv(TestFreeFileEnv); f != "" && vfs.Root(fs) == vfs.Default {
			stat = fileFree(fs, dir, fs.PathJoin(fs.PathDir(dir), f))
		} else {
			stat = fsFree(fs, dir)
		}
	}
	return &spaceGuard{dir: dir, stat: stat, ttl: ttl, now: time.Now, log: log}
}

// sampleLocked refreshes the sample when it is older than the TTL. A
// sample that fails leaves the guard open (it cannot judge; Pebble's own
// errors still surface) and is reported once per failing stretch. Going
// below the reserve and back is logged (rate-limited, like Pebble's lines).
func (g *spaceGuard) sampleLocked() {
	now := g.now()
	if g.valid && now.Sub(g.at) < g.ttl {
		return
	}
	free, total, err := g.stat()
	g.at, g.valid, g.spent = now, true, 0
	g.free, g.total, g.err = free, total, err
	if err != nil {
		if !g.failed {
			g.log.log.Warn("cannot read the free space of the store's disk; writes are not held back for space", "dir", g.dir, "err", err)
		}
		g.failed = true
		return
	}
	g.failed = false
	if total == 0 {
		return
	}
	reserve := Reserve(total)
	if full := free < reserve; full != g.full {
		g.full = full
		if full {
			g.log.emit(slog.LevelWarn, "disk-full", "disk below the reserve: this node refuses new writes (HTTP 507 insufficient_storage) and replicated entries until space is freed", "dir", g.dir, "free", FormatBytes(free), "reserve", FormatBytes(reserve))
		} else {
			g.log.emit(slog.LevelInfo, "disk-ok", "disk space is above the reserve again: writes and replication resume", "dir", g.dir, "free", FormatBytes(free), "reserve", FormatBytes(reserve))
		}
	}
}

// left is the free space less what was charged since the sample.
func (g *spaceGuard) leftLocked() uint64 {
	if g.spent >= g.free {
		return 0
	}
	return g.free - g.spent
}

// charge refuses need bytes when they would take the free space below
// floor(reserve), and otherwise counts them against the sample.
func (g *spaceGuard) charge(need uint64, floor func(uint64) uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sampleLocked()
	if g.err != nil || g.total == 0 {
		return nil // cannot judge (a filesystem that reports no size)
	}
	reserve := Reserve(g.total)
	left := g.leftLocked()
	if left < need || left-need < floor(reserve) {
		return &NoSpaceError{Dir: g.dir, Free: left, Reserve: reserve}
	}
	g.spent += need
	return nil
}

// status reports whether the disk is below the reserve, and the figures.
func (g *spaceGuard) status() (full bool, free, total, reserve uint64, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sampleLocked()
	if g.err != nil {
		return false, 0, 0, 0, g.err
	}
	if g.total == 0 {
		return false, g.free, 0, 0, nil
	}
	reserve = Reserve(g.total)
	free = g.leftLocked()
	return free < reserve, free, g.total, reserve, nil
}

func atReserve(r uint64) uint64 { return r }
func atFloor(r uint64) uint64   { return r / 2 }

// Admit asks whether a new write of about n bytes (its payload) may be
// proposed: it fails with a *NoSpaceError (errors.Is ErrNoSpace) while the
// free space, less what was admitted since the last sample, is below the
// reserve. The node checks it before a write reaches the protocol core,
// so the core never produces entries the store cannot save.
func (s *Store) Admit(n int) error {
	return s.space.charge(uint64(n)*amplification+1024, atReserve)
}

// DiskFull reports whether the store's disk is below the reserve and, if
// so, a one-line reason for health checks naming the directory, the free
// space and the reserve.
func (s *Store) DiskFull() (bool, string) {
	full, free, _, reserve, err := s.space.status()
	if err != nil || !full {
		return false, ""
	}
	return true, fmt.Sprintf("disk full: %s has %s free, below the %s reserve; this node refuses writes (HTTP 507) and replicated entries until space is freed",
		s.dir, FormatBytes(free), FormatBytes(reserve))
}

// Space reports the store disk's free space (less what was written since
// the last sample), its size and the reserve.
func (s *Store) Space() (free, total, reserve uint64, err error) {
	_, free, total, reserve, err = s.space.status()
	return free, total, reserve, err
}
