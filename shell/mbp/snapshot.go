package mbp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
	"github.com/muninndb/muninn/shell/retry"
	"golang.org/x/time/rate"
)

// DefaultSnapshotChunk is the snapshot chunk size.
const DefaultSnapshotChunk = 1 << 20

// Limits on a snapshot manifest.
const (
	maxSnapFiles   = 100000
	maxSnapNameLen = 1024
)

// stateFile marks a staging directory with the snapshot it holds, so a
// resumed stream of the same snapshot continues and any other starts over.
const stateFile = ".mbp-snapshot-id"

// ErrSnapshot wraps snapshot stream errors.
var ErrSnapshot = errors.New("mbp: snapshot")

// SnapshotFile is one file of a manifest.
type SnapshotFile struct {
	Name string // slash-separated, relative
	Size int64
	Sum  [sha256.Size]byte
}

// SnapshotManifest is a snap-offer's payload: the snapshot's files, sorted
// by name. Its ID is a hash of the list, so the same checkpoint offered
// again is recognised and resumed. The receiver uses the ID to name its
// staging directory and the file names as paths under it, so
// DecodeSnapshotManifest refuses any that is not a safe relative name.
type SnapshotManifest struct {
	ID    string
	Chunk int
	Files []SnapshotFile
}

func (m *SnapshotManifest) total() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// buildManifest walks dir and hashes every regular file.
func buildManifest(dir string, chunk int) (*SnapshotManifest, error) {
	m := &SnapshotManifest{Chunk: chunk}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		sf := SnapshotFile{Name: filepath.ToSlash(rel), Size: n}
		h.Sum(sf.Sum[:0])
		m.Files = append(m.Files, sf)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrSnapshot, dir, err)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	sum := sha256.Sum256(m.encodeFiles(nil))
	m.ID = hex.EncodeToString(sum[:12])
	return m, nil
}

func (m *SnapshotManifest) encodeFiles(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(m.Files)))
	for _, f := range m.Files {
		b = appendString(b, f.Name)
		b = binary.AppendUvarint(b, uint64(f.Size))
		b = append(b, f.Sum[:]...)
	}
	return b
}

// Encode is the snap-offer payload.
func (m *SnapshotManifest) Encode() []byte {
	b := appendString(nil, m.ID)
	b = binary.AppendUvarint(b, uint64(m.Chunk))
	return m.encodeFiles(b)
}

// DecodeSnapshotManifest decodes a snap-offer payload whose frames are
// limited to limit bytes. The snapshot id must be a safe name
// (ident.CheckSnapshotID: letters, digits, '.', '_', '-', no leading dot,
// at most 64 bytes) and every file name a slash-separated relative path of
// such elements (see checkSnapName), in strictly increasing order (no
// duplicates), none of them the staging marker.
func DecodeSnapshotManifest(b []byte, limit int) (*SnapshotManifest, error) {
	d := decoder{b: b}
	m := &SnapshotManifest{}
	idLen := d.uvarint("id")
	if d.err == nil && (idLen == 0 || idLen > ident.MaxSnapshotIDLen || idLen > uint64(len(d.b))) {
		d.fail("bad snapshot id length %d", idLen)
	}
	if d.err == nil {
		m.ID = string(d.b[:idLen])
		d.b = d.b[idLen:]
		if err := ident.CheckSnapshotID(m.ID); err != nil {
			d.fail("unsafe snapshot id %q: %v", m.ID, err)
		}
	}
	chunk := d.uvarint("chunk")
	if d.err == nil && (chunk == 0 || chunk > uint64(limit-64)) {
		d.fail("chunk size %d over the frame limit", chunk)
	}
	m.Chunk = int(chunk)
	n := d.uvarint("file count")
	if d.err == nil && (n > maxSnapFiles || n > uint64(len(d.b))/(sha256.Size+2)) {
		d.fail("%d files", n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		var f SnapshotFile
		nl := d.uvarint("name")
		if d.err == nil && (nl == 0 || nl > maxSnapNameLen || nl > uint64(len(d.b))) {
			d.fail("file %d: bad name length", i)
			break
		}
		f.Name = string(d.b[:nl])
		d.b = d.b[nl:]
		if err := checkSnapName(f.Name); err != nil {
			d.fail("file %d: unsafe name %q: %v", i, f.Name, err)
			break
		}
		if k := len(m.Files); k > 0 && f.Name <= m.Files[k-1].Name {
			d.fail("file %d: %q is not after %q (names must be sorted and unique)", i, f.Name, m.Files[k-1].Name)
			break
		}
		size := d.uvarint("size")
		if d.err == nil && size > 1<<50 {
			d.fail("file %q: size %d", f.Name, size)
		}
		f.Size = int64(size)
		if d.err == nil && len(d.b) < sha256.Size {
			d.fail("truncated")
		}
		if d.err == nil {
			copy(f.Sum[:], d.b)
			d.b = d.b[sha256.Size:]
		}
		m.Files = append(m.Files, f)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: bad manifest: %v", ErrSnapshot, d.err)
	}
	return m, nil
}

// checkSnapName checks a manifest file name: a slash-separated relative path
// (fs.ValidPath: no empty, "." or ".." element, no leading slash) whose
// elements are safe names (ident.Check: no backslash, colon, NUL or other
// special byte, no leading dot) and which is not the staging marker. Pebble
// checkpoint names (000001.sst, MANIFEST-000001, OPTIONS-000003,
// marker.format-version.000001.013) pass.
func checkSnapName(name string) error {
	if !fs.ValidPath(name) || name == "." {
		return errors.New("not a relative slash-separated path")
	}
	for _, el := range strings.Split(name, "/") {
		if err := ident.Check(el, 255); err != nil {
			return err
		}
	}
	return nil
}

// SnapshotProgress is one snapshot stream's state, for status output.
type SnapshotProgress struct {
	Peer     core.NodeID
	ID       string
	Sending  bool  // this node is the sender
	Done     int64 // bytes confirmed by the receiver
	Total    int64
	Rate     float64       // bytes per second over the current attempt
	ETA      time.Duration // at Rate; 0 when unknown or complete
	Attempts int
	Complete bool
	Err      string // the last attempt's error, if any
}

// progress is the live, locked form of SnapshotProgress.
type progress struct {
	mu        sync.Mutex
	p         SnapshotProgress
	start     time.Time
	startDone int64
}

func (pr *progress) attempt(total, done int64) {
	pr.mu.Lock()
	pr.p.Attempts++
	pr.p.Total, pr.p.Done, pr.p.Err = total, done, ""
	pr.start, pr.startDone = time.Now(), done
	pr.mu.Unlock()
}

func (pr *progress) set(done int64) {
	pr.mu.Lock()
	pr.p.Done = done
	pr.mu.Unlock()
}

func (pr *progress) finish(err error) {
	pr.mu.Lock()
	if err != nil {
		pr.p.Err = err.Error()
	} else {
		pr.p.Complete, pr.p.Done = true, pr.p.Total
	}
	pr.mu.Unlock()
}

func (pr *progress) snapshot() SnapshotProgress {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	s := pr.p
	if el := time.Since(pr.start).Seconds(); el > 0 && !s.Complete {
		s.Rate = float64(s.Done-pr.startDone) / el
		if s.Rate > 0 {
			s.ETA = time.Duration(float64(s.Total-s.Done) / s.Rate * float64(time.Second))
		}
	}
	return s
}

// Snapshots lists snapshot streams, in and out, current and finished.
func (t *Transport) Snapshots() []SnapshotProgress {
	t.mu.RLock()
	out := make([]SnapshotProgress, 0, len(t.snaps))
	for _, pr := range t.snaps {
		out = append(out, pr.snapshot())
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (t *Transport) progressFor(peer core.NodeID, id string, sending bool) *progress {
	key := fmt.Sprintf("%s/%s/%v", peer, id, sending)
	t.mu.Lock()
	defer t.mu.Unlock()
	pr := t.snaps[key]
	if pr == nil {
		pr = &progress{p: SnapshotProgress{Peer: peer, ID: id, Sending: sending}}
		t.snaps[key] = pr
	}
	return pr
}

// SendSnapshot streams the files under dir (a Pebble checkpoint, which must
// not change meanwhile) to peer over connections of their own, rate-limited
// by snapshot_rate_mb. A broken stream is redialed with backoff and resumes
// from the receiver's last confirmed chunk. It returns when the receiver
// has checked every file, ctx ends, or the Transport closes.
func (t *Transport) SendSnapshot(ctx context.Context, to core.NodeID, dir string) error {
	m, err := buildManifest(dir, t.cfg.SnapshotChunk)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	pr := t.progressFor(to, m.ID, true)
	p := retry.Redial(t.cfg.BackoffMin, t.cfg.BackoffMax)
	p.Notify = func(err error, wait time.Duration) {
		t.log.Warn("mbp snapshot stream broken, resuming", "peer", string(to), "id", m.ID, "err", err, "retry_in", wait.Round(time.Millisecond))
	}
	err = retry.Do(ctx, p, func() error {
		err := t.sendSnapshotOnce(ctx, to, dir, m, pr)
		pr.finish(err)
		if _, refused := errors.AsType[*refusedError](err); refused {
			return retry.Permanent(err)
		}
		return err
	})
	switch {
	case err == nil:
		t.log.Info("mbp snapshot sent", "peer", string(to), "id", m.ID, "bytes", m.total())
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w %s to %s: %w (last error: %v)", ErrSnapshot, m.ID, to, ctx.Err(), err)
	}
	return err
}

// refusedError is a receiver's deliberate refusal: retrying will not help.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "mbp: snapshot refused by receiver: " + e.reason }

func (t *Transport) sendSnapshotOnce(ctx context.Context, to core.NodeID, dir string, m *SnapshotManifest, pr *progress) error {
	t.mu.RLock()
	p := t.peers[to]
	addr := ""
	if p != nil {
		addr = p.hello.MBPAddr
	}
	t.mu.RUnlock()
	if addr == "" {
		return fmt.Errorf("%w: no known MBP address for %s", ErrSnapshot, to)
	}
	nc, h, err := t.dial(ctx, addr, PurposeSnapshot)
	if err != nil {
		return err
	}
	defer t.untrack(nc)
	if h.ID != to {
		nc.Close()
		return fmt.Errorf("%w: %s answered as %s", ErrSnapshot, addr, h.ID)
	}
	return streamSnapshot(ctx, nc, dir, m, t.limiter, pr)
}

// streamSnapshot runs the sender's side on an authenticated connection,
// which it closes:
//
//	sender   -> offer(manifest)
//	receiver -> resume(file, offset)            (its last confirmed chunk)
//	sender   -> chunk(file, offset, data) ...   (rate-limited)
//	receiver -> ack(file, end) ...; done        (after checking every SHA-256)
func streamSnapshot(ctx context.Context, rwc io.ReadWriteCloser, dir string, m *SnapshotManifest, lim *rate.Limiter, pr *progress) error {
	defer rwc.Close()
	stop := context.AfterFunc(ctx, func() { rwc.Close() })
	defer stop()
	if err := WriteFrame(rwc, FrameSnapOffer, 0, m.Encode()); err != nil {
		return err
	}
	// A resume is a few bytes; a refusal's reason up to maxReasonLen.
	f, err := ReadFrame(rwc, maxReasonLen)
	if err != nil {
		return err
	}
	if f.Type == FrameRefuse {
		return &refusedError{reason: string(f.Payload)}
	}
	if f.Type != FrameSnapResume {
		return fmt.Errorf("%w: got %s, want resume", ErrSnapshot, f.Type)
	}
	d := decoder{b: f.Payload}
	fi, off := d.uvarint("file"), d.uvarint("offset")
	if d.err != nil || fi > uint64(len(m.Files)) || (fi < uint64(len(m.Files)) && off > uint64(m.Files[fi].Size)) {
		return fmt.Errorf("%w: bad resume point %d/%d", ErrSnapshot, fi, off)
	}
	var base int64
	for _, sf := range m.Files[:fi] {
		base += sf.Size
	}
	pr.attempt(m.total(), base+int64(off))

	// Acks come back while chunks go out.
	ackErr := make(chan error, 1)
	go func() {
		for {
			f, err := ReadFrame(rwc, 1024)
			if err != nil {
				ackErr <- err
				return
			}
			switch f.Type {
			case FrameSnapAck:
				d := decoder{b: f.Payload}
				i, end := d.uvarint("file"), d.uvarint("end")
				if d.err != nil || i >= uint64(len(m.Files)) {
					ackErr <- fmt.Errorf("%w: bad ack", ErrSnapshot)
					return
				}
				var done int64
				for _, sf := range m.Files[:i] {
					done += sf.Size
				}
				pr.set(done + int64(end))
			case FrameSnapDone:
				ackErr <- nil
				return
			case FrameRefuse:
				ackErr <- &refusedError{reason: string(f.Payload)}
				return
			default:
				ackErr <- fmt.Errorf("%w: unexpected %s frame", ErrSnapshot, f.Type)
				return
			}
		}
	}()
	sendErr := func() error {
		buf := make([]byte, 0, 32+m.Chunk)
		for i := int(fi); i < len(m.Files); i++ {
			sf := m.Files[i]
			start := int64(0)
			if i == int(fi) {
				start = int64(off)
			}
			file, err := os.Open(filepath.Join(dir, filepath.FromSlash(sf.Name)))
			if err != nil {
				return err
			}
			for o := start; o < sf.Size || (sf.Size == 0 && o == 0); {
				n := int(min(int64(m.Chunk), sf.Size-o))
				if err := lim.WaitN(ctx, max(n, 1)); err != nil {
					file.Close()
					return err
				}
				buf = binary.AppendUvarint(buf[:0], uint64(i))
				buf = binary.AppendUvarint(buf, uint64(o))
				h := len(buf)
				buf = buf[:h+n]
				if _, err := file.ReadAt(buf[h:], o); err != nil && !(err == io.EOF && n == 0) {
					file.Close()
					return err
				}
				if err := WriteFrame(rwc, FrameSnapChunk, 0, buf); err != nil {
					file.Close()
					return err
				}
				o += int64(n)
				if n == 0 {
					break
				}
			}
			file.Close()
		}
		return nil
	}()
	if sendErr != nil {
		rwc.Close()
		if err := <-ackErr; err != nil {
			var refused *refusedError
			if errors.As(err, &refused) {
				return err
			}
		}
		return sendErr
	}
	return <-ackErr
}

// serveSnapshot receives one snapshot stream on an authenticated
// connection.
func (t *Transport) serveSnapshot(nc net.Conn, h Hello) {
	if t.cfg.SnapshotStaging == nil {
		_ = WriteFrame(nc, FrameRefuse, 0, []byte("this node accepts no snapshots"))
		return
	}
	stop := context.AfterFunc(t.ctx, func() { nc.Close() })
	defer stop()
	var pr *progress
	id, dir, err := receiveSnapshot(nc, t.cfg.MaxFrame, func(id string) (string, *progress, error) {
		pr = t.progressFor(h.ID, id, false)
		d, err := t.cfg.SnapshotStaging(h.ID, id)
		return d, pr, err
	})
	if pr != nil {
		pr.finish(err)
	}
	if err != nil {
		if t.ctx.Err() == nil {
			t.log.Warn("mbp snapshot receive interrupted", "peer", string(h.ID), "id", id, "err", err)
		}
		if dir != "" && t.cfg.OnSnapshotFailed != nil {
			t.cfg.OnSnapshotFailed(h.ID, id, dir, err)
		}
		return
	}
	t.log.Info("mbp snapshot received", "peer", string(h.ID), "id", id, "dir", dir)
	if t.cfg.OnSnapshot != nil {
		t.cfg.OnSnapshot(h.ID, id, dir)
	}
}

// receiveSnapshot runs the receiver's side: it resumes into the staging
// directory if that holds the same snapshot, writes chunks in order, acks
// each, and checks each file's SHA-256 when it is complete.
func receiveSnapshot(rw io.ReadWriter, limit int, staging func(id string) (string, *progress, error)) (string, string, error) {
	f, err := ReadFrame(rw, limit)
	if err != nil {
		return "", "", err
	}
	if f.Type != FrameSnapOffer {
		return "", "", refuse(rw, fmt.Errorf("%w: got %s, want offer", ErrSnapshot, f.Type))
	}
	m, err := DecodeSnapshotManifest(f.Payload, limit)
	if err != nil {
		return "", "", refuse(rw, err)
	}
	dir, pr, err := staging(m.ID)
	if err != nil {
		return m.ID, "", refuse(rw, fmt.Errorf("%w: no staging directory: %v", ErrSnapshot, err))
	}
	fi, off, err := resumePoint(dir, m)
	if err != nil {
		return m.ID, dir, refuse(rw, err)
	}
	var base int64
	for _, sf := range m.Files[:fi] {
		base += sf.Size
	}
	pr.attempt(m.total(), base+off)
	resume := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(fi)), uint64(off))
	if err := WriteFrame(rw, FrameSnapResume, 0, resume); err != nil {
		return m.ID, dir, err
	}
	var file *os.File
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	for fi < len(m.Files) {
		sf := m.Files[fi]
		if file == nil {
			p := filepath.Join(dir, filepath.FromSlash(sf.Name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return m.ID, dir, err
			}
			if file, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
				return m.ID, dir, err
			}
			if err := file.Truncate(off); err != nil {
				return m.ID, dir, err
			}
		}
		f, err := ReadFrame(rw, limit)
		if err != nil {
			return m.ID, dir, err
		}
		if f.Type != FrameSnapChunk {
			return m.ID, dir, refuse(rw, fmt.Errorf("%w: got %s, want chunk", ErrSnapshot, f.Type))
		}
		d := decoder{b: f.Payload}
		ci, co := d.uvarint("file"), d.uvarint("offset")
		data := d.b
		if d.err != nil || ci != uint64(fi) || co != uint64(off) || len(data) > m.Chunk || off+int64(len(data)) > sf.Size {
			return m.ID, dir, refuse(rw, fmt.Errorf("%w: chunk %d@%d out of order (want %d@%d) or oversized", ErrSnapshot, ci, co, fi, off))
		}
		if _, err := file.WriteAt(data, off); err != nil {
			return m.ID, dir, err
		}
		off += int64(len(data))
		if off == sf.Size {
			if err := file.Sync(); err != nil {
				return m.ID, dir, err
			}
			ok, err := fileSumOK(file, sf)
			file.Close()
			file = nil
			if err != nil {
				return m.ID, dir, err
			}
			if !ok {
				_ = os.Remove(filepath.Join(dir, filepath.FromSlash(sf.Name)))
				return m.ID, dir, refuse(rw, fmt.Errorf("%w: SHA-256 mismatch for %s", ErrSnapshot, sf.Name))
			}
		}
		pr.set(base + off)
		ack := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(fi)), uint64(off))
		if err := WriteFrame(rw, FrameSnapAck, 0, ack); err != nil {
			return m.ID, dir, err
		}
		if off == sf.Size {
			base += sf.Size
			fi, off = fi+1, 0
		}
	}
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !os.IsNotExist(err) {
		return m.ID, dir, err
	}
	return m.ID, dir, WriteFrame(rw, FrameSnapDone, 0, nil)
}

// resumePoint finds where to continue in dir: the first file that is not
// complete and checked, at its last whole chunk. A directory holding another
// snapshot is emptied.
func resumePoint(dir string, m *SnapshotManifest) (int, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	marker := filepath.Join(dir, stateFile)
	if b, err := os.ReadFile(marker); err != nil || string(b) != m.ID {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return 0, 0, err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return 0, 0, err
			}
		}
		if err := os.WriteFile(marker, []byte(m.ID), 0o644); err != nil {
			return 0, 0, err
		}
		return 0, 0, nil
	}
	for i, sf := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(sf.Name))
		st, err := os.Stat(p)
		if err != nil {
			return i, 0, nil
		}
		if st.Size() < sf.Size {
			return i, st.Size() / int64(m.Chunk) * int64(m.Chunk), nil
		}
		file, err := os.Open(p)
		if err != nil {
			return i, 0, nil
		}
		ok, err := fileSumOK(file, sf)
		file.Close()
		if err != nil || !ok || st.Size() != sf.Size {
			return i, 0, nil
		}
	}
	return len(m.Files), 0, nil
}

func fileSumOK(f *os.File, sf SnapshotFile) (bool, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, sf.Size+1)); err != nil {
		return false, err
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum == sf.Sum, nil
}
