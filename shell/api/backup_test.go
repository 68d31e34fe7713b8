package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/backup"
)

func TestBackupEndpoint(t *testing.T) {
	dir := t.TempDir()
	e := standaloneIn(t, dir, Options{})
	for i := range 20 {
		expect(t, e.do("POST", "/api/engrams", fmt.Sprintf(`{"content":"backup %d"}`, i)), 201, "")
	}
	r := e.do("GET", "/v1/admin/backup", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/zstd" {
		t.Fatalf("backup: %d %s", r.status, r.body)
	}
	m, err := backup.Decode(bytes.NewReader(r.body), "", backup.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Position.Seq < 20 || m.SourceNode != string(e.n.ID()) || r.header.Get("X-Muninn-Backup-Position") != m.Position.String() {
		t.Fatalf("manifest %+v, headers %v", m, r.header)
	}
	if _, err := os.Stat(filepath.Join(dir, backupTmp)); !os.IsNotExist(err) {
		t.Fatalf("the backup checkpoint was left behind: %v", err)
	}

	// A throttled backup is the same backup; a bad rate is refused.
	r = e.do("GET", "/v1/admin/backup?rate_mb=50", "")
	if _, err := backup.Decode(bytes.NewReader(r.body), "", backup.ReadOptions{}); r.status != 200 || err != nil {
		t.Fatalf("throttled backup: %d %v", r.status, err)
	}
	for _, bad := range []string{"fast", "-1", "NaN", "Inf", "1e400"} {
		expect(t, e.do("GET", "/v1/admin/backup?rate_mb="+bad, ""), 400, "bad_request")
	}

	// Admin only, and one at a time.
	d := expect(t, adminReq(e, "GET", "/v1/admin/backup", "", "10.0.0.7:41000"), 403, "forbidden")
	if !strings.Contains(d.Message, "admin_token") {
		t.Fatal(d.Message)
	}
	backupsRunning.Store(dir, true)
	d = expect(t, e.do("GET", "/v1/admin/backup", ""), 409, "conflict")
	backupsRunning.Delete(dir)
	if !strings.Contains(d.Message, "already running") {
		t.Fatal(d.Message)
	}
}

// TestBackupClientGone: a client that hangs up mid-stream ends the
// backup: its checkpoint is removed and the next backup may run.
func TestBackupClientGone(t *testing.T) {
	dir := t.TempDir()
	e := standaloneIn(t, dir, Options{})
	// About 2 MB of store that does not compress, at 50 KB/s: the stream
	// would last far longer than the test waits, while its first zstd
	// block comes after a few seconds.
	raw := make([]byte, 15<<10)
	for range 50 {
		rand.Read(raw)
		expect(t, e.do("POST", "/api/engrams", fmt.Sprintf(`{"content":"%s"}`, base64.StdEncoding.EncodeToString(raw))), 201, "")
	}
	res, err := http.Get(e.srv.URL + "/v1/admin/backup?rate_mb=0.05")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("GET", "/v1/admin/backup", ""), 409, "conflict")
	if _, err := os.Stat(filepath.Join(dir, backupTmp)); err != nil {
		t.Fatalf("no checkpoint while the backup runs: %v", err)
	}
	res.Body.Close()
	backupReleased(t, e, dir, 10*time.Second, "the client left")
}

// TestBackupClientStuck: a client that keeps its connection open but stops
// reading does not hold the backup forever: a write that cannot proceed
// within backupWriteTimeout ends it, its checkpoint is removed and the
// next backup may run.
func TestBackupClientStuck(t *testing.T) {
	old := backupWriteTimeout
	backupWriteTimeout = 200 * time.Millisecond
	defer func() { backupWriteTimeout = old }()
	dir := t.TempDir()
	e := standaloneIn(t, dir, Options{})
	// About 4 MB of store that does not compress: more than the socket
	// buffers of a client that reads nothing (its receive buffer is 4 KB).
	raw := make([]byte, 15<<10)
	for range 270 {
		rand.Read(raw)
		expect(t, e.do("POST", "/api/engrams", fmt.Sprintf(`{"content":"%s"}`, base64.StdEncoding.EncodeToString(raw))), 201, "")
	}
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET /v1/admin/backup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The backup starts; the client never reads.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, busy := backupsRunning.Load(dir); busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	backupReleased(t, e, dir, 20*time.Second, "the client stopped reading")
}

// backupReleased waits until the backup of the node in dir has ended and
// its checkpoint is gone, then checks the next backup runs.
func backupReleased(t *testing.T, e *env, dir string, within time.Duration, after string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, busy := backupsRunning.Load(dir)
		_, err := os.Stat(filepath.Join(dir, backupTmp))
		if !busy && os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after %s: running %v, checkpoint %v", within, after, busy, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := e.do("GET", "/v1/admin/backup", ""); r.status != 200 {
		t.Fatalf("the next backup: %d %s", r.status, r.body)
	}
}

// TestBackupRate checks rate_mb: capped at DefaultBackupRateMB when
// absent, 0 unlimited, and a bad value refused naming it.
func TestBackupRate(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want float64
		bad  bool
	}{{"", DefaultBackupRateMB, false}, {"0", 0, false}, {"250.5", 250.5, false}, {"-1", 0, true}, {"fast", 0, true}, {"NaN", 0, true}} {
		got, err := backupRate(tc.v)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("backupRate(%q) = %v, %v", tc.v, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "rate_mb") {
			t.Errorf("backupRate(%q): the error does not name rate_mb: %v", tc.v, err)
		}
	}
}
