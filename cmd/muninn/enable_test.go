package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/node"
)

// TestRecordedModeAtStart: the mode recorded by enable/disable in the data
// directory wins over cluster.enabled, with a line naming both and how to
// make them agree; without a record the config decides alone.
func TestRecordedModeAtStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("data_dir: "+data+"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("standalone.yaml", "")
	clusterCfg := write("cluster.yaml", "cluster:\n  enabled: true\n  node_id: muninn-09\n  bind_addr: 127.0.0.1:9474\n  cluster_secret: config-secret-0123456789\n")
	noSecret := write("nosecret.yaml", "cluster:\n  enabled: true\n  node_id: muninn-01\n  bind_addr: 127.0.0.1:8474\n")
	env := []string{}

	// No record: the config alone.
	cfg, lines, err := recordedMode(plain, env, nil)
	if err != nil || cfg.Cluster.Enabled || len(lines) != 0 {
		t.Fatalf("no record: enabled=%v lines=%q err=%v", cfg.Cluster.Enabled, lines, err)
	}
	if _, _, err := recordedMode(noSecret, env, nil); err == nil || !strings.Contains(err.Error(), "cluster_secret") {
		t.Fatalf("no record, no secret: %v; want the config's own error", err)
	}

	rec := node.RecordedMode{Mode: node.ModeCluster, NodeID: "muninn-01", BindAddr: "127.0.0.1:8474", Secret: "recorded-secret-0123456789",
		At: time.Now(), By: "muninn cluster enable"}
	if err := node.WriteMode(data, rec); err != nil {
		t.Fatal(err)
	}
	// Recorded cluster, config standalone: cluster as recorded, and said.
	cfg, lines, err = recordedMode(plain, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster
	if !cl.Enabled || cl.NodeID != "muninn-01" || cl.BindAddr != "127.0.0.1:8474" || cl.Secret != rec.Secret {
		t.Fatalf("recorded cluster over a standalone config: %+v", cl)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "the data directory wins") || !strings.Contains(lines[0], plain) ||
		!strings.Contains(lines[0], "cluster.enabled: false") || !strings.Contains(lines[0], "muninn cluster disable") {
		t.Fatalf("lines %q", lines)
	}
	// The record completes a config without a secret; they agree: silent.
	cfg, lines, err = recordedMode(noSecret, env, nil)
	if err != nil || !cfg.Cluster.Enabled || cfg.Cluster.Secret != rec.Secret || len(lines) != 0 {
		t.Fatalf("agreeing config without a secret: %+v lines=%q err=%v", cfg.Cluster, lines, err)
	}
	// A config with its own secret and another node id: the secret is the
	// config's, the node id the record's, and the difference is said.
	cfg, lines, err = recordedMode(clusterCfg, env, nil)
	if err != nil || cfg.Cluster.NodeID != "muninn-01" || cfg.Cluster.Secret != "config-secret-0123456789" || cfg.Cluster.BindAddr != "127.0.0.1:8474" {
		t.Fatalf("cluster config with another id: %+v err=%v", cfg.Cluster, err)
	}
	if len(lines) != 2 || !strings.Contains(lines[0], `cluster.node_id: "muninn-09"`) || !strings.Contains(lines[1], "differs") {
		t.Fatalf("lines %q", lines)
	}

	// Recorded standalone, config cluster: standalone under the recorded id.
	if err := node.WriteMode(data, node.RecordedMode{Mode: node.ModeStandalone, NodeID: "muninn-01", At: time.Now(), By: "muninn cluster disable"}); err != nil {
		t.Fatal(err)
	}
	cfg, lines, err = recordedMode(clusterCfg, env, nil)
	if err != nil || cfg.Cluster.Enabled || cfg.Cluster.NodeID != "muninn-01" {
		t.Fatalf("recorded standalone over a cluster config: %+v err=%v", cfg.Cluster, err)
	}
	if len(lines) == 0 || !strings.Contains(lines[0], "running in standalone mode as recorded") || !strings.Contains(lines[0], "cluster.enabled: false") {
		t.Fatalf("lines %q", lines)
	}
	// A standalone config and the record agree; the record's id is kept.
	cfg, lines, err = recordedMode(plain, env, nil)
	if err != nil || cfg.Cluster.Enabled || cfg.Cluster.NodeID != "muninn-01" || len(lines) != 0 {
		t.Fatalf("standalone both: %+v lines=%q err=%v", cfg.Cluster, lines, err)
	}

	// A damaged record stops the start, naming the file.
	if err := os.WriteFile(node.ModePath(data), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := recordedMode(plain, env, nil); err == nil || !strings.Contains(err.Error(), node.ModePath(data)) {
		t.Fatalf("damaged record: %v", err)
	}
}
