package api

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	expect(t, e.do("GET", "/v1/admin/backup?rate_mb=fast", ""), 400, "bad_request")

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
