package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"
	"github.com/muninndb/muninn/shell/store"
)

// Describe fills m.Files and m.TotalBytes from the checkpoint in dir,
// hashing every file (sorted order, as store.CheckpointFiles gives it).
func Describe(m *Manifest, dir string) error {
	names, err := store.CheckpointFiles(vfs.Default, dir)
	if err != nil {
		return fmt.Errorf("list checkpoint %s: %w", dir, err)
	}
	m.Files, m.TotalBytes = nil, 0
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		m.Files = append(m.Files, File{Path: filepath.ToSlash(name), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		m.TotalBytes += n
	}
	return m.validate()
}

// Encode writes the backup of the checkpoint in dir, described by m, to w
// as a zstd-compressed tar stream: MANIFEST.json, then the files in the
// manifest's order. A file whose size changed since m was made fails.
// progress, if set, is told the file bytes sent so far of m.TotalBytes.
func Encode(w io.Writer, m Manifest, dir string, progress func(done, total int64)) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	mod := m.Created
	if mod.IsZero() {
		mod = time.Now()
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: int64(len(mb)), Mode: 0o644, ModTime: mod, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	var done int64
	for _, fi := range m.Files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fi.Path, Size: fi.Size, Mode: 0o644, ModTime: mod, Format: tar.FormatPAX}); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(fi.Path)))
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, &progressReader{r: io.LimitReader(f, fi.Size+1), done: &done, total: m.TotalBytes, fn: progress})
		f.Close()
		if err != nil {
			return fmt.Errorf("stream %s: %w", fi.Path, err)
		}
		if n != fi.Size {
			return fmt.Errorf("stream %s: %d bytes, the manifest says %d (the checkpoint changed)", fi.Path, n, fi.Size)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// EncodeDir writes the backup as a plain directory dst (which must not
// exist): the files, then MANIFEST.json, built in a temporary sibling
// and renamed into place, so dst never holds half a backup.
func EncodeDir(dst string, m Manifest, dir string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists: choose a new path, or remove it first", dst)
	}
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	err := func() error {
		for _, fi := range m.Files {
			in, err := os.Open(filepath.Join(dir, filepath.FromSlash(fi.Path)))
			if err != nil {
				return err
			}
			_, err = writeFile(filepath.Join(tmp, filepath.FromSlash(fi.Path)), io.LimitReader(in, fi.Size))
			in.Close()
			if err != nil {
				return err
			}
		}
		mb, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if _, err := writeFile(filepath.Join(tmp, ManifestName), bytesReader(mb)); err != nil {
			return err
		}
		if err := syncDirs(tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return syncDir(filepath.Dir(dst))
	}()
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write backup directory %s: %w", dst, err)
	}
	return nil
}

// FinishDir completes a backup directory whose files were written into
// tmp (Decode with dst = tmp): it adds MANIFEST.json, syncs, and renames
// tmp to dst, which must not exist.
func FinishDir(tmp, dst string, m Manifest) error {
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if _, err := writeFile(filepath.Join(tmp, ManifestName), bytesReader(mb)); err != nil {
		return err
	}
	if err := syncDirs(tmp); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists: choose a new path, or remove it first", dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}
