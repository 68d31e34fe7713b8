package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxTrailing bounds what may follow the tar archive's end.
const maxTrailing = 1 << 20

// ReadOptions observe a read.
type ReadOptions struct {
	// OnManifest is called once the manifest is read and validated.
	OnManifest func(Manifest)
	// Progress is called as file bytes are checked: done of m.TotalBytes.
	Progress func(done, total int64)
}

// Decode reads a tar.zst backup from r and checks it whole: the manifest
// first, then every file in its order, each against its size and SHA-256,
// then the end of the stream. With dst != "" it writes the files under
// dst, which must not exist (it is created; on error the caller removes
// it). Errors name the file and what is wrong.
func Decode(r io.Reader, dst string, o ReadOptions) (Manifest, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
	if err != nil {
		return Manifest{}, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil {
		return Manifest{}, streamErr("the manifest", err)
	}
	if hdr.Name != ManifestName || !regular(hdr) {
		return Manifest{}, fmt.Errorf("the first entry is %q, not %s: not a muninn backup", hdr.Name, ManifestName)
	}
	if hdr.Size > MaxManifestBytes {
		return Manifest{}, fmt.Errorf("%s is %d bytes, more than the %d this binary accepts", ManifestName, hdr.Size, MaxManifestBytes)
	}
	mb, err := io.ReadAll(io.LimitReader(tr, MaxManifestBytes))
	if err != nil {
		return Manifest{}, streamErr(ManifestName, err)
	}
	m, err := begin(mb, dst, o)
	if err != nil {
		return m, err
	}
	var done int64
	for _, want := range m.Files {
		hdr, err := tr.Next()
		if err == io.EOF {
			return m, fmt.Errorf("missing file %s: the stream ends before it (truncated?)", want.Path)
		}
		if err != nil {
			return m, streamErr(want.Path, err)
		}
		if hdr.Name != want.Path {
			return m, fmt.Errorf("entry %q where the manifest lists %s next", hdr.Name, want.Path)
		}
		if !regular(hdr) {
			return m, fmt.Errorf("entry %s is not a regular file (type %q): links and directories are refused", hdr.Name, hdr.Typeflag)
		}
		if hdr.Size != want.Size {
			return m, fmt.Errorf("file %s: %d bytes in the stream, %d in the manifest", want.Path, hdr.Size, want.Size)
		}
		if err := checkFile(tr, dst, want, &done, m.TotalBytes, o.Progress, streamErr); err != nil {
			return m, err
		}
	}
	if hdr, err := tr.Next(); err == nil {
		return m, fmt.Errorf("unexpected entry %q after the last file the manifest lists", hdr.Name)
	} else if err != io.EOF {
		return m, streamErr("the end of the archive", err)
	}
	// The rest of the zstd frame: its end and checksum (bounded: nothing
	// but the tar's zero blocks belongs there).
	if n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailing+1)); err != nil {
		return m, streamErr("the end of the stream", err)
	} else if n > maxTrailing {
		return m, fmt.Errorf("more than %d bytes of data after the archive's end: not a muninn backup, or damaged", maxTrailing)
	}
	if dst != "" {
		if err := syncDirs(dst); err != nil {
			return m, err
		}
	}
	return m, nil
}

// DecodeDir is Decode for a backup written as a directory: src's
// MANIFEST.json, then each file it lists, which must be a regular file
// (no symlinks) of the listed size and checksum. Files in src the
// manifest does not list are ignored.
func DecodeDir(src, dst string, o ReadOptions) (Manifest, error) {
	mf, err := openRegular(filepath.Join(src, ManifestName))
	if err != nil {
		return Manifest{}, err
	}
	mb, err := io.ReadAll(io.LimitReader(mf, MaxManifestBytes+1))
	mf.Close()
	if err != nil {
		return Manifest{}, fmt.Errorf("read %s: %w", ManifestName, err)
	}
	if len(mb) > MaxManifestBytes {
		return Manifest{}, fmt.Errorf("%s is larger than the %d bytes this binary accepts", ManifestName, MaxManifestBytes)
	}
	m, err := begin(mb, dst, o)
	if err != nil {
		return m, err
	}
	var done int64
	for _, want := range m.Files {
		if err := realDirs(src, want.Path); err != nil {
			return m, err
		}
		f, err := openRegular(filepath.Join(src, filepath.FromSlash(want.Path)))
		if errors.Is(err, os.ErrNotExist) {
			return m, fmt.Errorf("missing file %s", want.Path)
		}
		if err != nil {
			return m, err
		}
		err = checkFile(f, dst, want, &done, m.TotalBytes, o.Progress, func(what string, err error) error {
			return fmt.Errorf("read %s: %w", what, err)
		})
		f.Close()
		if err != nil {
			return m, err
		}
	}
	if dst != "" {
		if err := syncDirs(dst); err != nil {
			return m, err
		}
	}
	return m, nil
}

// checkFile reads exactly want.Size bytes of want from r, checking its
// SHA-256, and writes them under dst when set.
func checkFile(r io.Reader, dst string, want File, done *int64, total int64, progress func(int64, int64), wrap func(string, error) error) error {
	pr := &progressReader{r: io.LimitReader(r, want.Size+1), done: done, total: total, fn: progress}
	var sum string
	var n int64
	if dst != "" {
		cr := &countReader{r: pr}
		s, err := writeFile(filepath.Join(dst, filepath.FromSlash(want.Path)), cr)
		if err != nil {
			if cr.err != nil {
				return wrap(want.Path, cr.err)
			}
			return fmt.Errorf("write %s: %w", want.Path, err)
		}
		sum, n = s, cr.n
	} else {
		h := sha256.New()
		c, err := io.Copy(h, pr)
		if err != nil {
			return wrap(want.Path, err)
		}
		sum, n = hex.EncodeToString(h.Sum(nil)), c
	}
	if n != want.Size {
		return fmt.Errorf("file %s: %d bytes, the manifest says %d (truncated?)", want.Path, n, want.Size)
	}
	if sum != want.SHA256 {
		return fmt.Errorf("checksum mismatch for %s: sha256 %s, the manifest says %s (the backup is damaged)", want.Path, sum, want.SHA256)
	}
	return nil
}

func regular(h *tar.Header) bool { return h.Typeflag == tar.TypeReg || h.Typeflag == '\x00' }

// streamErr says where a stream broke off.
func streamErr(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("truncated stream: it ends inside %s", what)
	}
	return fmt.Errorf("corrupt stream while reading %s: %w", what, err)
}

// openRegular opens path only if it is a regular file, not a symlink.
func openRegular(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): symlinks and devices are refused", path, fi.Mode().Type())
	}
	return os.Open(path)
}

type progressReader struct {
	r     io.Reader
	done  *int64
	total int64
	fn    func(int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	*p.done += int64(n)
	if p.fn != nil && n > 0 {
		p.fn(*p.done, p.total)
	}
	return n, err
}

// countReader counts bytes and remembers a read error (as opposed to a
// write error of the copy it feeds).
type countReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// realDirs refuses a path below src whose parent directories are not all
// real directories (a symlink there would lead outside the backup).
func realDirs(src, p string) error {
	parts := strings.Split(p, "/")
	dir := src
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		if err != nil {
			return fmt.Errorf("missing file %s: %w", p, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %s is not a directory (%s): symlinks are refused", p, dir, fi.Mode().Type())
		}
	}
	return nil
}

// begin decodes the manifest, reports it, and creates dst (when set), which
// must not exist.
func begin(mb []byte, dst string, o ReadOptions) (Manifest, error) {
	m, err := decodeManifest(mb)
	if err != nil {
		return Manifest{}, err
	}
	if o.OnManifest != nil {
		o.OnManifest(m)
	}
	if dst != "" {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return m, err
		}
	}
	return m, nil
}
