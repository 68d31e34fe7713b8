package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/node"
)

// TestRestoredClusterBackupRunsStandalone: a backup of a 3-member cluster's
// store, restored, starts as a standalone node (under the default id, not
// the source's), becomes its Cortex, holds every engram and takes writes.
func TestRestoredClusterBackupRunsStandalone(t *testing.T) {
	st := fillStore(t, filepath.Join(t.TempDir(), "src"), 100, 50)
	_, b := takeFile(t, st)
	st.Close()
	file := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	if _, _, err := Restore(file, data, ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(node.Options{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(10 * time.Second)
	for n.Status().Core.Role != core.RoleCortex {
		if time.Now().After(deadline) {
			t.Fatalf("the restored node never became the Cortex: %+v", n.Status().Core)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 100 {
		if _, ok, err := n.Store().Get("v", engramID(uint64(i))); !ok || err != nil {
			t.Fatalf("engram %d missing on the restored node (%v)", i, err)
		}
	}
	cmd, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engramID(1 << 20), At: 1, Concept: "c", Content: "after", Confidence: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Write(ctx, cmd, core.Local); err != nil {
		t.Fatalf("write on the restored node: %v", err)
	}
}
