package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/backup"
)

// backupTmp is the checkpoint directory of a running backup, below the
// data directory: on the store's file system, so the checkpoint is hard
// links. One backup at a time per data directory, so a leftover one (a
// crash mid-backup) is stale and removed by the next.
const backupTmp = "backup-tmp"

// backupWriteTimeout bounds one write of a backup stream: a client that
// stops reading but keeps its connection open would otherwise hold the
// one-backup slot and the checkpoint (whose hard links pin old store
// files on disk) forever. A variable for tests.
var backupWriteTimeout = 30 * time.Second

// backupsRunning holds the data directories with a backup under way.
var backupsRunning sync.Map

// GET /v1/admin/backup streams an online backup of this node's store
// (docs/backup.md): a checkpoint (writes wait only while it is made) and
// its manifest, as a zstd-compressed tar stream. An admin endpoint; one
// backup at a time per node (409 otherwise). The checkpoint is removed at
// the end, also when the client goes away.
// DefaultBackupRateMB is GET /v1/admin/backup's rate without rate_mb, in
// MB/s of store files: the rate at which write p99 stayed within 2x of a
// run without a backup.
const DefaultBackupRateMB = 100

// backupRate parses rate_mb: MB/s of store files streamed, 0 unlimited,
// DefaultBackupRateMB when absent. Capped by default, as snapshots to
// joining nodes are (cluster.snapshot_rate_mb): unlimited, hashing and
// compressing compete with writes for CPU, and write p99 went to 3-4x on
// two cores (docs/benchmarks.md, "Backup and restore").
func backupRate(v string) (float64, error) {
	if v == "" {
		return DefaultBackupRateMB, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, badRequest("rate_mb=%q: want a number of MB/s (0: unlimited)", v)
	}
	return f, nil
}

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkAdmin(r, nil); err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// No body to send: take no backup.
		w.Header().Set("Content-Type", "application/zstd")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rate, err := backupRate(r.URL.Query().Get("rate_mb"))
	if err != nil {
		return err
	}
	dataDir := s.n.Options().DataDir
	if _, busy := backupsRunning.LoadOrStore(dataDir, true); busy {
		return &apiError{status: http.StatusConflict, code: apitypes.CodeConflict,
			msg: "a backup of this node is already running; wait for it to finish, then retry (one backup at a time per node)"}
	}
	defer backupsRunning.Delete(dataDir)
	tmp := filepath.Join(dataDir, backupTmp)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove the stale backup checkpoint %s: %w", tmp, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	start := time.Now()
	ck := filepath.Join(tmp, "checkpoint")
	m, err := backup.Checkpoint(s.n.Store(), ck, string(s.n.ID()))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	took := time.Since(start)
	if err := backup.Describe(&m, ck); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/zstd")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="muninn-%s-%d-%d.tar.zst"`, s.n.ID(), m.Position.Epoch, m.Position.Seq))
	h.Set("X-Muninn-Backup-Bytes", strconv.FormatInt(m.TotalBytes, 10))
	h.Set("X-Muninn-Backup-Position", m.Position.String())
	w.WriteHeader(http.StatusOK)
	cw := &countWriter{w: w, ctx: r.Context(), rc: http.NewResponseController(w)}
	defer cw.rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
	if err := backup.Encode(cw, m, ck, throttle(r.Context(), rate)); err != nil {
		// The status is sent: the client sees the stream break off, which
		// its reader reports as truncated.
		s.log.Warn("backup: stream ended early", "err", err, "sent_bytes", cw.n, "position", m.Position.String())
		panic(http.ErrAbortHandler)
	}
	s.log.Info(fmt.Sprintf("backup streamed: %d files, %d bytes (%d compressed) at %s in %s (checkpoint %s)",
		len(m.Files), m.TotalBytes, cw.n, m.Position, time.Since(start).Round(time.Millisecond), took.Round(time.Microsecond)))
	return nil
}

// countWriter counts what it sends and stops once the client is gone
// (the request's context ends) or stops reading (a write takes longer
// than backupWriteTimeout), so the checkpoint is removed at once.
type countWriter struct {
	w   interface{ Write([]byte) (int, error) }
	ctx context.Context
	rc  *http.ResponseController // nil: no write deadline
	n   int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("the client went away: %w", err)
	}
	if c.rc != nil {
		_ = c.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// throttle returns an Encode progress function that sleeps to keep the
// stream at or below mbps MB/s of store bytes (nil: unlimited), leaving
// CPU and disk to the write path on a busy node.
func throttle(ctx context.Context, mbps float64) func(done, total int64) {
	if mbps <= 0 {
		return nil
	}
	start := time.Now()
	return func(done, _ int64) {
		due := time.Duration(float64(done) / (mbps * 1e6) * float64(time.Second))
		if d := due - time.Since(start); d > time.Millisecond {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done(): // the next write fails
			}
			t.Stop()
		}
	}
}
