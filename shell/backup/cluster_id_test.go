package backup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/muninndb/muninn/shell/store"
)

// A restore starts a new cluster: the restored store has a new cluster id,
// neither none nor the source's (docs/protocol.md, rule 19), whether the
// source had one or not.
func TestRestoreMintsClusterID(t *testing.T) {
	for _, srcID := range []uint64{0, 0x1234} {
		st := fillStore(t, filepath.Join(t.TempDir(), "src"), 10, 10)
		if srcID != 0 {
			if err := st.SetClusterID(srcID); err != nil {
				t.Fatal(err)
			}
		}
		_, b := takeFile(t, st)
		st.Close()
		file := filepath.Join(t.TempDir(), "b.tar.zst")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(t.TempDir(), "new")
		if _, _, err := Restore(file, target, ReadOptions{}); err != nil {
			t.Fatal(err)
		}
		rs, err := store.Open(filepath.Join(target, StoreDir), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if id := rs.ClusterID(); id == 0 || id == srcID {
			t.Fatalf("source cluster id %x: the restored store has %x, want a new one", srcID, id)
		}
		rs.Close()
	}
}
