package sim

import (
	"bytes"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLazyLogCrashClone: a log synced through lazyLogs crash-clones to
// exactly what real syncs keep: the synced prefix, not the unsynced tail,
// after a rename of its directory and after a close with an unsynced tail.
func TestLazyLogCrashClone(t *testing.T) {
	type step struct {
		write string
		sync  bool
	}
	steps := []step{{write: "aaaa"}, {sync: true}, {write: "bbbbbb"}, {write: "cc"}, {sync: true}, {write: "dddd"}}
	// closeAfter: close the log after this many steps (-1: never);
	// rename: move its directory before the crash.
	for _, tc := range []struct {
		name       string
		closeAfter int
		rename     bool
	}{{"open", -1, false}, {"renamed", -1, true}, {"closed-with-tail", len(steps), true}, {"closed-synced", 5, false}} {
		t.Run(tc.name, func(t *testing.T) {
			clone := func(lazy bool) []byte {
				mem := vfs.NewCrashableMem()
				logs := newLazyLogs()
				var fs vfs.FS = mem
				if lazy {
					fs = faultFS{FS: mem, disk: &diskFaults{}, logs: logs}
				}
				if err := fs.MkdirAll("/d", 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := fs.Create("/d/000007.log", vfs.WriteCategoryUnspecified)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range []string{"/", "/d"} {
					dir, err := mem.OpenDir(d)
					if err != nil {
						t.Fatal(err)
					}
					dir.Sync()
					dir.Close()
				}
				for i, s := range steps {
					if i == tc.closeAfter {
						break
					}
					if s.write != "" {
						f.Write([]byte(s.write))
					}
					if s.sync {
						if err := f.Sync(); err != nil {
							t.Fatal(err)
						}
					}
				}
				if tc.closeAfter >= 0 {
					f.Close()
				}
				path := "/d/000007.log"
				if tc.rename {
					if err := fs.Rename("/d", "/e"); err != nil {
						t.Fatal(err)
					}
					root, _ := mem.OpenDir("/")
					root.Sync()
					path = "/e/000007.log"
				}
				c := mem.CrashClone(vfs.CrashCloneCfg{})
				if err := logs.patch(c); err != nil {
					t.Fatal(err)
				}
				g, err := c.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(g)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			real, lazy := clone(false), clone(true)
			if !bytes.Equal(real, lazy) {
				t.Fatalf("crash clone with real syncs holds %q, with lazy syncs %q", real, lazy)
			}
			if len(real) == 0 {
				t.Fatalf("the clone holds nothing: the test syncs nothing")
			}
		})
	}
}
