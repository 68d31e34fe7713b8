package cluster

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/mbp"
)

// TestSetSecrets: the rotation's two steps on every generated config
// file load with the product's loader into the secrets asked for (both,
// then the new one only), and change no other line.
func TestSetSecrets(t *testing.T) {
	old, fresh := strings.Repeat("ab", 32), strings.Repeat("ef", 32)
	s := netnsSettings{Secret: old, Token: strings.Repeat("cd", 32), HeartbeatMs: 250, LeaseTTL: leaseTTL(250)}
	for _, topo := range Topologies {
		placed, err := placeTopology(topo, netip.MustParsePrefix("10.77.4.0/24"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range append(placed.Nodes, placed.Spares...) {
			dir := t.TempDir()
			orig := nodeConfig(placed, n, filepath.Join(dir, "data"), s)
			if sec, prev, err := secretsOf(orig); err != nil || sec != old || prev != "" {
				t.Fatalf("%s/%s: secretsOf = %q %q %v, want the run's secret alone", topo.Name, n.ID, sec, prev, err)
			}
			step1, err := setSecrets(orig, fresh, old)
			if err != nil {
				t.Fatal(err)
			}
			step2, err := setSecrets(step1, fresh, "")
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range []struct {
				conf, secret, previous string
			}{{step1, fresh, old}, {step2, fresh, ""}} {
				path := filepath.Join(dir, "step.yaml")
				if err := writeFileSync(path, []byte(c.conf), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg, err := config.Load(path, nil, nil)
				if err != nil {
					t.Fatalf("%s/%s step %d: does not load: %v\n%s", topo.Name, n.ID, i+1, err, c.conf)
				}
				if cfg.Cluster.Secret != c.secret || cfg.Cluster.SecretPrevious != c.previous {
					t.Errorf("%s/%s step %d: loaded secrets %q / %q, want %q / %q", topo.Name, n.ID, i+1, cfg.Cluster.Secret, cfg.Cluster.SecretPrevious, c.secret, c.previous)
				}
				if sec, prev, err := secretsOf(c.conf); err != nil || sec != c.secret || prev != c.previous {
					t.Errorf("%s/%s step %d: secretsOf = %q %q %v", topo.Name, n.ID, i+1, sec, prev, err)
				}
				if got, want := otherLines(c.conf), otherLines(orig); got != want {
					t.Errorf("%s/%s step %d: other lines changed:\n%s\nwant\n%s", topo.Name, n.ID, i+1, got, want)
				}
			}
		}
	}
	if _, err := setSecrets("data_dir: x\ncluster:\n  enabled: true\n", fresh, old); err == nil {
		t.Error("a config without cluster_secret was rewritten")
	}
}

// otherLines are the lines of conf that do not hold a secret.
func otherLines(conf string) string {
	var out []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.Contains(l, secretKey) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCheckReload: a reload answer is accepted only when it is 200, lists
// the keys rotated as changed and no secret key as needing a restart.
func TestCheckReload(t *testing.T) {
	both := []string{"cluster.cluster_secret", "cluster.cluster_secret_previous"}
	for _, c := range []struct {
		status int
		body   string
		want   []string
		ok     bool
	}{
		{200, `{"changed":["cluster.cluster_secret","cluster.cluster_secret_previous"],"restart_required":[],"warnings":[]}`, both, true},
		{200, `{"changed":["cluster.cluster_secret_previous"],"restart_required":[]}`, both[1:], true},
		{200, `{"changed":["cluster.cluster_secret_previous"],"restart_required":["cluster.bind_addr"]}`, both[1:], true},
		{200, `{"changed":["cluster.cluster_secret_previous"],"restart_required":[]}`, both, false},
		{200, `{"changed":["cluster.cluster_secret","cluster.cluster_secret_previous"],"restart_required":["cluster.cluster_secret"]}`, both, false},
		{200, `{"changed":[],"restart_required":[]}`, both[1:], false},
		{400, `{"error":{"code":"bad_request","message":"configuration reload refused"}}`, both, false},
		{200, `not json`, both, false},
	} {
		if got := checkReload(c.status, []byte(c.body), c.want); (got == "") != c.ok {
			t.Errorf("checkReload(%d, %s, %v) = %q, want ok=%v", c.status, c.body, c.want, got, c.ok)
		}
	}
}

// TestAckedWriteAfter: only an acknowledged write invoked at or after the
// step counts, not a read or a failed or earlier write.
func TestAckedWriteAfter(t *testing.T) {
	ops := []*Op{
		{Kind: OpQuorumWrite, Outcome: OK, Call: 1},
		{Kind: OpRegRead, Outcome: OK, Call: 5},
		{Kind: OpLocalWrite, Outcome: Fail, Call: 6},
		{Kind: OpRegWrite, Outcome: Unknown, Call: 7},
	}
	if ackedWriteAfter(ops, 2) {
		t.Fatal("counted a write before the step, a read, a failed and an unknown write")
	}
	if !ackedWriteAfter(append(ops, &Op{Kind: OpRegWrite, Outcome: OK, Call: 2}), 2) {
		t.Fatal("missed an acknowledged write at the step")
	}
}

// TestOpsNemesesNetnsOnly: backup-partition and rotate-kill are refused
// on docker and run on every topology in netns.
func TestOpsNemesesNetnsOnly(t *testing.T) {
	for _, nem := range []string{"backup-partition", "rotate-kill"} {
		if !longNemesis(nem) {
			t.Errorf("%s is not long: the workload would stop before it is done", nem)
		}
		for _, topo := range Topologies {
			if notApplicable(nem, topo, "docker") == "" {
				t.Errorf("%s accepted on docker (%s)", nem, topo.Name)
			}
			if why := notApplicable(nem, topo, "netns"); why != "" {
				t.Errorf("%s refused in netns on %s: %s", nem, topo.Name, why)
			}
		}
	}
}

// TestProvesSecret: the handshake probe learns which secrets a listener
// proves (both during a rotation, the current one after it) and never
// authenticates: the listener's handshake always fails.
func TestProvesSecret(t *testing.T) {
	old, fresh, other := strings.Repeat("ab", 32), strings.Repeat("ef", 32), strings.Repeat("12", 32)
	for _, c := range []struct {
		previous string
		want     map[string]bool
	}{
		{old, map[string]bool{fresh: true, old: true, other: false}},
		{"", map[string]bool{fresh: true, old: false, other: false}},
	} {
		for probe, want := range c.want {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					accepted <- err
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = mbp.AcceptHandshake(conn, mbp.HandshakeConfig{Local: mbp.Hello{ID: "muninn-01", Purpose: mbp.PurposeControl}, Secret: []byte(fresh), Previous: []byte(c.previous)})
				accepted <- err
			}()
			got, err := provesSecret(context.Background(), ln.Addr().String(), probe)
			ln.Close()
			if err != nil || got != want {
				t.Errorf("rotating %v, probe %s...: proves %v (%v), want %v", c.previous != "", probe[:4], got, err, want)
			}
			if err := <-accepted; err == nil {
				t.Errorf("rotating %v, probe %s...: the listener authenticated the probe", c.previous != "", probe[:4])
			}
		}
	}
}
