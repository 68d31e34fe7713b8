package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBackupKeys(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	arch := filepath.Join(dir, "archive")
	c, err := Load("", []string{"MUNINN_DATA_DIR=" + data, "MUNINN_BACKUP_ARCHIVE_DIR=" + arch, "MUNINN_BACKUP_ARCHIVE_INTERVAL_MS=250"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backup.ArchiveDir != arch || c.Backup.ArchiveInterval() != 250*time.Millisecond {
		t.Fatalf("backup = %+v", c.Backup)
	}
	if d := Default().Backup; d.ArchiveDir != "" || d.ArchiveIntervalMS != DefaultArchiveIntervalMS {
		t.Fatalf("defaults = %+v", d)
	}
	// From a file, as a section.
	f := filepath.Join(dir, "m.yaml")
	os.WriteFile(f, []byte("data_dir: "+data+"\nbackup:\n  archive_dir: "+arch+"\n"), 0o600)
	if c, err := Load(f, nil, nil); err != nil || c.Backup.ArchiveDir != arch || c.Backup.ArchiveIntervalMS != DefaultArchiveIntervalMS {
		t.Fatalf("file: %+v, %v", c.Backup, err)
	}

	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MUNINN_DATA_DIR=" + data, "MUNINN_BACKUP_ARCHIVE_DIR=" + filepath.Join(data, "archive")}, "backup.archive_dir = \"" + filepath.Join(data, "archive") + "\" (from MUNINN_BACKUP_ARCHIVE_DIR) is inside data_dir"},
		{[]string{"MUNINN_DATA_DIR=" + data, "MUNINN_BACKUP_ARCHIVE_DIR=" + data}, "is inside data_dir"},
		{[]string{"MUNINN_DATA_DIR=rel/data", "MUNINN_BACKUP_ARCHIVE_DIR=rel/data/../data/x"}, "is inside data_dir"},
		{[]string{"MUNINN_BACKUP_ARCHIVE_INTERVAL_MS=0"}, "backup.archive_interval_ms = 0"},
		{[]string{"MUNINN_BACKUP_ARCHIVE_INTERVAL_MS=3600001"}, "between 10 and 3600000"},
	} {
		_, err := Load("", tc.env, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.env, err, tc.want)
		}
	}
	// A sibling whose name starts like data_dir is not inside it.
	if _, err := Load("", []string{"MUNINN_DATA_DIR=" + data, "MUNINN_BACKUP_ARCHIVE_DIR=" + data + "-archive"}, nil); err != nil {
		t.Fatal(err)
	}
	c = Default()
	c.Cluster.Enabled, c.Cluster.Role, c.Backup.ArchiveDir = true, "sentinel", arch
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "Sentinel holds no log") {
		t.Fatalf("warnings: %s", w)
	}
}
