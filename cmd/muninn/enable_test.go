package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSwitchInProcess runs muninn start in this process (so the race
// detector sees the switch), enables cluster mode while a client writes,
// and disables it again: every acknowledged write is there, the process
// keeps its HTTP port, and it stops cleanly.
func TestSwitchInProcess(t *testing.T) {
	addr, mbp := freeAddr(t), freeAddr(t)
	data := t.TempDir()
	env := []string{"MUNINN_CLUSTER_HEARTBEAT_MS=50", "MUNINN_CLUSTER_LEASE_TTL=1"}
	stop := make(chan struct{})
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWith([]string{"start", "--data-dir", data, "--http-addr", addr, "--log-format", "json"}, &out, &errb, env, stop)
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("start did not stop")
		}
	}()
	url := "http://" + addr
	c := client.New(url)
	write := func(i int) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.Write(ctx, apitypes.WriteRequest{Vault: "sw", Content: fmt.Sprintf("write %d", i)})
		return r.ID, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := write(-1); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the node did not serve: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var mu sync.Mutex
	var acked []string
	var failed []error
	wstop := make(chan struct{})
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for i := 0; ; i++ {
			select {
			case <-wstop:
				return
			default:
			}
			id, err := write(i)
			mu.Lock()
			if err == nil {
				acked = append(acked, id)
			} else {
				failed = append(failed, err)
			}
			mu.Unlock()
		}
	}()
	waitAcked := func(k int) {
		t.Helper()
		mu.Lock()
		want := len(acked) + k
		mu.Unlock()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d writes acknowledged within 10 s", n, want)
			}
		}
	}
	waitAcked(5)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("in-process-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, sout, serr := cli(t, "cluster", "enable", "--addr", url, "--node-id", "m1", "--bind-addr", mbp, "--secret-file", secret)
	if code != 0 || !strings.Contains(sout, "Cluster mode enabled: m1 is the cortex") {
		t.Fatalf("enable: exit %d\n%s%s", code, sout, serr)
	}
	waitAcked(5)
	code, sout, serr = cli(t, "cluster", "disable", "--addr", url)
	if code != 0 || !strings.Contains(sout, "Cluster mode disabled: m1 runs standalone") {
		t.Fatalf("disable: exit %d\n%s%s", code, sout, serr)
	}
	waitAcked(5)
	close(wstop)
	<-wdone
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("%d writes failed through the switches (want them held or retried), e.g. %v", len(failed), failed[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range acked {
		if _, err := c.Get(ctx, "sw", id); err != nil {
			t.Fatalf("acknowledged write %s is missing after enable and disable: %v", id, err)
		}
	}
	t.Logf("%d writes acknowledged through enable and disable", len(acked))
	rec, ok, err := node.ReadMode(data)
	if err != nil || !ok || rec.Cluster() || rec.NodeID != "m1" || rec.Secret != "" {
		t.Errorf("recorded mode after disable: %+v ok=%v err=%v; want standalone m1 without the secret", rec, ok, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestEnableSecretConflict: a node whose configuration sets
// cluster_secret refuses an enable that gives another one (the next
// restart would run on the configuration's and cut the members that joined
// under the request's off); the same secret is accepted and not recorded
// in the data directory.
func TestEnableSecretConflict(t *testing.T) {
	addr, mbp := freeAddr(t), freeAddr(t)
	data := t.TempDir()
	env := []string{"MUNINN_CLUSTER_HEARTBEAT_MS=50", "MUNINN_CLUSTER_LEASE_TTL=1", "MUNINN_CLUSTER_SECRET=configured-secret-0123456789"}
	stop := make(chan struct{})
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWith([]string{"start", "--data-dir", data, "--http-addr", addr, "--log-format", "json"}, &out, &errb, env, stop)
	}()
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("start did not stop")
		}
	}()
	url := "http://" + addr
	c := client.New(url)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Write(ctx, apitypes.WriteRequest{Vault: "sc", Content: "x"})
		cancel()
		if err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the node did not serve: %v", err)
		}
	}
	file := func(secret string) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, sout, serr := cli(t, "cluster", "enable", "--addr", url, "--node-id", "m1", "--bind-addr", mbp, "--secret-file", file("another-secret-0123456789"))
	if code == 0 || !strings.Contains(serr, "already sets cluster.cluster_secret") {
		t.Fatalf("enable with another secret: exit %d\n%s%s", code, sout, serr)
	}
	if _, ok, _ := node.ReadMode(data); ok {
		t.Fatal("the refused enable recorded a mode")
	}
	code, sout, serr = cli(t, "cluster", "enable", "--addr", url, "--node-id", "m1", "--bind-addr", mbp, "--secret-file", file("configured-secret-0123456789"))
	if code != 0 {
		t.Fatalf("enable with the configured secret: exit %d\n%s%s", code, sout, serr)
	}
	if rec, ok, err := node.ReadMode(data); err != nil || !ok || !rec.Cluster() || rec.Secret != "" {
		t.Fatalf("recorded mode %+v ok=%v err=%v: want cluster mode without a secret (the configuration has it)", rec, ok, err)
	}
}
