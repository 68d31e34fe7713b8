package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordedModeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadMode(dir); ok || err != nil {
		t.Fatalf("empty data dir: ok=%v err=%v; want no record", ok, err)
	}
	at := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	want := RecordedMode{Mode: ModeCluster, NodeID: "muninn-01", BindAddr: "10.0.1.5:8474", Secret: "s3cret-s3cret-s3cret", At: at, By: "muninn cluster enable"}
	if err := WriteMode(dir, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadMode(dir)
	if err != nil || !ok || got != want {
		t.Fatalf("read back %+v ok=%v err=%v; want %+v", got, ok, err, want)
	}
	fi, err := os.Stat(ModePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; want 0600 (it may hold the cluster secret)", ModeFile, fi.Mode().Perm())
	}
	// A second write replaces it whole; no temp file is left.
	want = RecordedMode{Mode: ModeStandalone, NodeID: "muninn-01", At: at, By: "muninn cluster disable"}
	if err := WriteMode(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := ReadMode(dir); got != want {
		t.Fatalf("after the second write: %+v; want %+v", got, want)
	}
	if _, err := os.Stat(ModePath(dir) + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left behind: %v", err)
	}
	if err := RemoveMode(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ReadMode(dir); ok || err != nil {
		t.Fatalf("after RemoveMode: ok=%v err=%v", ok, err)
	}
}

func TestReadModeRefusesBadFiles(t *testing.T) {
	cases := map[string]string{
		"not json":        "mode=cluster",
		"unknown field":   `{"mode":"cluster","node_id":"a","bind_addr":"127.0.0.1:1","colour":"red"}`,
		"bad mode":        `{"mode":"clustered","node_id":"a"}`,
		"no node id":      `{"mode":"standalone"}`,
		"no bind address": `{"mode":"cluster","node_id":"a"}`,
		"too large":       `{"mode":"standalone","node_id":"a","by":"` + strings.Repeat("x", maxModeFile) + `"}`,
	}
	for name, body := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ModeFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, ok, err := ReadMode(dir)
		if ok || err == nil || !strings.Contains(err.Error(), ModePath(dir)) || !strings.Contains(err.Error(), "remove") {
			t.Errorf("%s: ok=%v err=%v; want an error naming the file and how to fix it", name, ok, err)
		}
	}
}

func TestModeChangeRefusals(t *testing.T) {
	n, err := Start(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var me *ModeError
	if err := n.CheckModeChange(ModeChange{Cluster: false}); !errors.As(err, &me) || me.Status != 409 || !strings.Contains(me.Msg, "already runs standalone") {
		t.Errorf("disable on a standalone node: %v; want 409 already standalone", err)
	}
	if err := n.CheckModeChange(ModeChange{Cluster: true, ID: "muninn-01"}); err != nil {
		t.Errorf("enable on a standalone node: %v; want allowed", err)
	}
	// Without a Switcher (an embedded node) the switch is refused.
	if n.CanSwitch() {
		t.Fatal("CanSwitch without a Switcher")
	}
	if _, err := n.SwitchMode(context.Background(), ModeChange{Cluster: true, ID: "muninn-01"}); !errors.Is(err, ErrNoSwitcher) {
		t.Errorf("SwitchMode without a Switcher: %v; want ErrNoSwitcher", err)
	}
	called := 0
	n.SetSwitcher(func(ctx context.Context, c ModeChange) (*Node, error) { called++; return n, nil })
	if _, err := n.SwitchMode(context.Background(), ModeChange{Cluster: false}); !errors.As(err, &me) || me.Status != 409 || called != 0 {
		t.Errorf("SwitchMode disable on a standalone node: %v (switcher called %d times); want 409 before the switcher", err, called)
	}
	if got, err := n.SwitchMode(context.Background(), ModeChange{Cluster: true, ID: "muninn-01"}); err != nil || got != n || called != 1 {
		t.Errorf("SwitchMode enable: %v, %v (called %d); want the switcher's node", got, err, called)
	}

	// A cluster of three: disable names the other members; enable is
	// refused (already on).
	tc := startCluster(t, 3, 50*time.Millisecond)
	cx := tc.cortex(10 * time.Second)
	if cx == nil {
		t.Fatal("no Cortex elected")
	}
	if err := cx.CheckModeChange(ModeChange{Cluster: true, ID: "x"}); !errors.As(err, &me) || me.Status != 409 || !strings.Contains(me.Msg, "already enabled") {
		t.Errorf("enable on a cluster node: %v; want 409 already enabled", err)
	}
	err = cx.CheckModeChange(ModeChange{Cluster: false})
	if !errors.As(err, &me) || me.Status != 409 {
		t.Fatalf("disable on a Cortex with two other members: %v; want 409", err)
	}
	for _, o := range tc.nodes {
		if o != cx && !strings.Contains(me.Msg, string(o.ID())) {
			t.Errorf("the refusal does not name member %s: %s", o.ID(), me.Msg)
		}
	}
	for _, o := range tc.nodes {
		if o == cx {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); o.Status().Core.Cortex != cx.ID() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		err := o.CheckModeChange(ModeChange{Cluster: false})
		if !errors.As(err, &me) || me.Status != 409 || !strings.Contains(me.Msg, "failover --yes --to "+string(o.ID())) {
			t.Errorf("disable on the lobe %s: %v; want 409 saying to hand off to it first", o.ID(), err)
		}
	}
}
