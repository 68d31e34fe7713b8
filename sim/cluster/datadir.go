package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Data directories. The compose files keep each node's /data in a named
// volume, which only the docker engine reaches. The storage nemeses (wipe,
// restore-old, corrupt-wal, fill-disk) work on a node's files from the
// host, so the harness gives every node a directory of its own under
// TMPDIR/PROJECT/ and bind-mounts it at /data through a compose override
// file (compose merges volumes by their path in the container). Each
// directory is a small filesystem of its own where the host allows it, so
// that filling one node's disk fills only that node's:
//
//   - ext4 in a sparse image file, loop-mounted (real fsyncs, no memory);
//   - else a tmpfs of the same size;
//   - else a plain directory (fill-disk then cannot run).
//
// Files the nodes write are owned by root in the container; the harness
// runs as root (it already needs to for nsenter) and removes them from the
// host. Mounts are undone when the topology is taken down, and whatever a
// killed run left is removed before the same topology starts again.

// dataFSSize is the size of each node's filesystem. The node keeps a
// reserve of a quarter of a disk this small (shell/store.Reserve), and a
// run of every nemesis writes a few tens of MiB per node. The image file is
// sparse and fill-disk fills it with fallocate, so the host's disk holds
// only what was written.
const dataFSSize = 512 << 20

// markerName marks a directory as this harness's data root, so that a
// later run removes only what a run of the harness made.
const markerName = ".muninn-fault-data"

// fillerName is the file fill-disk writes at the root of a node's data
// directory (next to db/).
const fillerName = ".muninn-fault-filler"

// Data filesystem kinds.
const (
	fsLoop  = "ext4 (loop)"
	fsTmpfs = "tmpfs"
	fsDir   = "directory"
)

// dataDirs are a topology's per-node data directories on the host.
type dataDirs struct {
	root string
	// kind is fsLoop, fsTmpfs or fsDir; sized reports whether each
	// directory is a filesystem of its own (fill-disk needs it).
	kind string
	// override is the compose file that bind-mounts them.
	override string
	mounts   []string
}

// dir returns node id's data directory on the host.
func (d *dataDirs) dir(id string) string { return filepath.Join(d.root, id) }

// sized reports whether every node's directory is a filesystem of its own.
func (d *dataDirs) sized() bool { return d.kind != fsDir }

// setupDataDirs creates TMPDIR/project/NODE for every node, mounts a
// filesystem on each (see the package comment above) and writes the
// compose override file that puts them at /data.
func setupDataDirs(ctx context.Context, project string, nodes []Node, logf func(string, ...any)) (d *dataDirs, err error) {
	d = &dataDirs{root: filepath.Join(os.TempDir(), project), kind: fsLoop}
	if err := unmountUnder(ctx, d.root); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(d.root); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.root, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(d.root, markerName), []byte(project+"\n"), 0o644); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.remove(context.WithoutCancel(ctx), logf)
		}
	}()
	for i, n := range nodes {
		dir := d.dir(n.ID)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		for {
			merr := d.mount(ctx, dir)
			if merr == nil {
				break
			}
			if i > 0 {
				// The first node's mount worked: this one must too.
				return nil, merr
			}
			next := map[string]string{fsLoop: fsTmpfs, fsTmpfs: fsDir}[d.kind]
			logf("data directories: %s not possible (%v): trying %s", d.kind, merr, next)
			d.kind = next
		}
	}
	var b strings.Builder
	b.WriteString("# Written by muninn-sim cluster: every node's /data is a directory on the host.\nversion: \"2.4\"\nservices:\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %s:\n    volumes:\n      - %s\n", n.ID, strconv.Quote(d.dir(n.ID)+":/data"))
	}
	d.override = filepath.Join(d.root, "compose.data.yml")
	if err := os.WriteFile(d.override, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// mount makes dir a filesystem of d.kind.
func (d *dataDirs) mount(ctx context.Context, dir string) error {
	switch d.kind {
	case fsLoop:
		img := dir + ".img"
		f, err := os.Create(img)
		if err != nil {
			return err
		}
		err = f.Truncate(dataFSSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		// -m 0: no blocks reserved for root (the node runs as root in
		// its container, so they would be its to fill).
		if _, err := execOut(ctx, time.Minute, nil, hostTool("mkfs.ext4"), "-q", "-F", "-m", "0", "-E", "nodiscard", img); err != nil {
			os.Remove(img)
			return err
		}
		if _, err := execOut(ctx, time.Minute, nil, hostTool("mount"), "-o", "loop", img, dir); err != nil {
			os.Remove(img)
			return err
		}
	case fsTmpfs:
		if _, err := execOut(ctx, time.Minute, nil, hostTool("mount"), "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", dataFSSize), "tmpfs", dir); err != nil {
			return err
		}
	case fsDir:
		return nil
	}
	d.mounts = append(d.mounts, dir)
	return nil
}

// hostTool finds a host tool in PATH or the sbin directories.
func hostTool(name string) string {
	if p, err := lookTool(name); err == nil {
		return p
	}
	return name
}

// remove unmounts every node's filesystem and removes the directory.
func (d *dataDirs) remove(ctx context.Context, logf func(string, ...any)) {
	if d == nil {
		return
	}
	if err := unmountUnder(ctx, d.root); err != nil {
		logf("data directories: %v (left in %s)", err, d.root)
		return
	}
	if err := os.RemoveAll(d.root); err != nil {
		logf("data directories: %v", err)
	}
}

// unmountUnder unmounts every mount point under root (deepest first). A
// busy mount is retried for a few seconds, then detached lazily.
func unmountUnder(ctx context.Context, root string) error {
	var errs []error
	for _, m := range mountsUnder(root) {
		var err error
		for try := 0; try < 10; try++ {
			if _, err = execOut(ctx, 30*time.Second, nil, hostTool("umount"), m); err == nil || !strings.Contains(err.Error(), "busy") {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil && strings.Contains(err.Error(), "busy") {
			_, err = execOut(ctx, 30*time.Second, nil, hostTool("umount"), "-l", m)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points strictly under root, deepest first,
// from /proc/self/mountinfo.
func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Field 5 is the mount point, with space, tab, newline and
		// backslash octal-escaped.
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, root+string(filepath.Separator)) && !slices.Contains(out, mp) {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeStaleDataDirs removes the data directories of earlier runs of a
// topology (TMPDIR/PREFIX*), unmounting what they left mounted, except
// those live says belong to a run still going (nil: none). Their compose
// projects or processes must be gone already.
func removeStaleDataDirs(ctx context.Context, prefix string, logf func(string, ...any), live func(name string) bool) error {
	stale, err := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	if err != nil {
		return err
	}
	for _, dir := range stale {
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, markerName)); err != nil {
			continue // not made by this harness
		}
		if live != nil && live(filepath.Base(dir)) {
			continue // a parallel run's
		}
		logf("removing data directories %s left by an earlier run", dir)
		if err := unmountUnder(ctx, dir); err != nil {
			return fmt.Errorf("unmounting what an earlier run left in %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// keepEntry reports whether a wipe or restore keeps a name at the root of
// a data directory: lost+found belongs to the filesystem, the filler to
// fill-disk.
func keepEntry(name string) bool { return name == "lost+found" || name == fillerName }

// wipeDir removes everything in a node's data directory (rm -rf DIR/*),
// leaving the directory itself: it is a mount point.
func wipeDir(dir string) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range es {
		if keepEntry(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies the regular files and directories under src to dst
// (created), skipping the root entries keepEntry names. It returns the
// bytes copied.
func copyTree(src, dst string) (int64, error) {
	var total int64
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && !strings.Contains(rel, string(filepath.Separator)) && keepEntry(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			n, err := copyFile(p, to, info.Mode().Perm())
			total += n
			return err
		}
		return nil // no symlinks or devices in a data directory
	})
	return total, err
}

func copyFile(from, to string, perm fs.FileMode) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// readStoreIdentity returns the store identity in DIR/db/IDENTITY ("" when
// there is none yet).
func readStoreIdentity(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "db", "IDENTITY"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// newestWAL returns the newest of a store's write-ahead logs (DIR/db/*.log,
// the highest number) that holds at least min bytes, and its size.
func newestWAL(dir string, min int64) (string, int64, error) {
	ms, err := filepath.Glob(filepath.Join(dir, "db", "*.log"))
	if err != nil {
		return "", 0, err
	}
	num := func(p string) uint64 {
		v, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), ".log"), 10, 64)
		return v
	}
	slices.SortFunc(ms, func(a, b string) int {
		switch na, nb := num(a), num(b); {
		case na > nb:
			return -1
		case na < nb:
			return 1
		}
		return 0
	})
	for _, p := range ms {
		st, err := os.Stat(p)
		if err == nil && st.Mode().IsRegular() && st.Size() >= min {
			return p, st.Size(), nil
		}
	}
	return "", 0, fmt.Errorf("no write-ahead log of %d bytes or more in %s", min, filepath.Join(dir, "db"))
}

// flipBytes inverts n bytes of a file at offset (bitwise not) and syncs it.
func flipBytes(path string, offset int64, n int) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, offset); err != nil {
		return err
	}
	for i := range b {
		b[i] = ^b[i]
	}
	if _, err := f.WriteAt(b, offset); err != nil {
		return err
	}
	return f.Sync()
}

// fillDisk fills the filesystem holding dir with DIR/.muninn-fault-filler
// until writing fails for lack of space: fallocate for the bulk (no data
// written), then small writes for what is left. It returns the filler's
// size and the bytes still free.
func fillDisk(dir string) (int64, uint64, error) {
	p := filepath.Join(dir, fillerName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	free, _, err := diskFree(dir)
	if err != nil {
		return 0, 0, err
	}
	// Leave a little for the allocation's own metadata, then write until
	// ENOSPC in shrinking chunks.
	if free > 1<<20 {
		if err := fallocate(f, int64(free-1<<20)); err != nil && !isNoSpace(err) {
			return 0, 0, fmt.Errorf("fallocate %s: %w", p, err)
		}
	}
	buf := make([]byte, 64<<10)
	for _, chunk := range []int{64 << 10, 4 << 10, 512} {
		for i := 0; i < 1<<16; i++ { // bounded: 64 Ki chunks of each size at most
			if _, err := f.Write(buf[:chunk]); err != nil {
				if isNoSpace(err) {
					break
				}
				return 0, 0, err
			}
		}
	}
	if err := f.Sync(); err != nil && !isNoSpace(err) {
		return 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	left, _, err := diskFree(dir)
	return st.Size(), left, err
}

// unfillDisk removes fill-disk's filler (nothing if there is none).
func unfillDisk(dir string) error {
	err := os.Remove(filepath.Join(dir, fillerName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
