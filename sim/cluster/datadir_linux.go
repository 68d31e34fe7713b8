package cluster

import (
	"errors"
	"os"
	"syscall"
)

// diskFree returns the bytes available on the filesystem holding dir (its
// filesystems reserve nothing for root: see dataDirs) and its size.
func diskFree(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// fallocate allocates n more bytes at the end of f.
func fallocate(f *os.File, n int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return syscall.Fallocate(int(f.Fd()), 0, st.Size(), n)
}

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// liveRun returns whether a data directory (or namespace) named
// PREFIX PID-... belongs to another run of the harness that is still
// going (a parallel netns run): those are not stale.
func liveRun(prefix string) func(name string) bool {
	return func(name string) bool {
		pid, ok := netnsOwner(name, prefix)
		if !ok || pid == os.Getpid() {
			return false
		}
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
}
