//go:build unix

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/mbp"
)

// writeConfigWith writes the node's usual config with extra lines appended
// to its cluster: section (the last one the harness writes).
func (n *node) writeConfigWith(extra string) {
	n.c.t.Helper()
	n.writeConfig()
	if extra == "" {
		return
	}
	f, err := os.OpenFile(n.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		n.c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(extra); err != nil {
		n.c.t.Fatal(err)
	}
}

// reloadVia reloads the node's configuration by SIGHUP or by POST
// /v1/admin/reload and waits (bounded) for its log to say it did (want
// "configuration reloaded" or "configuration reload refused"). The HTTP
// answer is returned for a POST.
func (n *node) reloadVia(how, want string) rawResp {
	t := n.c.t
	t.Helper()
	before := n.countMsg(want)
	var r rawResp
	if how == "SIGHUP" {
		n.signal(syscall.SIGHUP)
	} else {
		var err error
		if r, err = n.raw("POST", "/v1/admin/reload", nil); err != nil {
			t.Fatalf("POST /v1/admin/reload on %s: %v", n.id, err)
		}
	}
	n.c.waitFor(fmt.Sprintf("%s to log %q after %s", n.id, want, how), 15*time.Second, func() (bool, string) {
		return n.countMsg(want) > before, ""
	})
	return r
}

// oldSecretRefused runs a raw MBP handshake with secret against the node
// and reports whether it was refused for the secret.
func oldSecretRefused(t *testing.T, n *node, secret string) error {
	t.Helper()
	nc, err := net.DialTimeout("tcp", n.mbpAddr(), 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = mbp.DialHandshake(nc, mbp.HandshakeConfig{Secret: []byte(secret),
		Local: mbp.Hello{ID: "e2e-probe", Kind: core.KindAuto, Purpose: mbp.PurposeControl}})
	return err
}

// peerGaps reads the node's JSON log and returns, per peer, the longest
// time from "mbp peer disconnected" to the next "mbp peer connected" after
// since, and how many disconnections there were.
func (n *node) peerGaps(since time.Time) (map[string]time.Duration, int) {
	down := map[string]time.Time{}
	worst := map[string]time.Duration{}
	count := 0
	sc := bufio.NewScanner(strings.NewReader(n.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			Peer string    `json:"peer"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Time.Before(since) || rec.Peer == "" {
			continue
		}
		switch rec.Msg {
		case "mbp peer disconnected":
			down[rec.Peer] = rec.Time
			count++
		case "mbp peer connected":
			if at, ok := down[rec.Peer]; ok {
				worst[rec.Peer] = max(worst[rec.Peer], rec.Time.Sub(at))
				delete(down, rec.Peer)
			}
		}
	}
	return worst, count
}

// TestSecretRotationLive rotates cluster_secret on a 3-node cluster under a
// steady write load with no restart: step 1 (new secret, old one as
// previous) and step 2 (previous removed), each node by rewriting its
// config and SIGHUP, one by POST /v1/admin/reload. No write fails, and at
// the end a handshake with the old secret is refused by every node. Then
// a bad reload (invalid YAML, an invalid value) is kept out and the node
// keeps working, and a key that needs a restart is reported, not applied.
func TestSecretRotationLive(t *testing.T) {
	const hb = 200
	c := newCluster(t, hb, 0)
	ns := c.addN(3)
	c.startAll()
	c.waitCortex(ns, 60*time.Second)
	oldSecret, newSecret := c.secret, "e2e-rotated-secret-fedcba9876543210"

	cl := client.New(ns[0].url(), client.WithEndpoints(urls(ns)...))
	w := startWriter(t, cl, "rotate", "quorum", 10*time.Millisecond)
	c.waitAcks(w, 30, 30*time.Second)
	start := time.Now()
	how := []string{"SIGHUP", "SIGHUP", "POST"}

	// Step 1: every node takes the new secret and keeps accepting the old.
	for i, n := range ns {
		n.secret = newSecret
		n.writeConfigWith(fmt.Sprintf("  cluster_secret_previous: %q\n", oldSecret))
		r := n.reloadVia(how[i], "configuration reloaded")
		if how[i] == "POST" {
			var res struct {
				Changed []string `json:"changed"`
				Restart []string `json:"restart_required"`
			}
			if r.status != 200 || json.Unmarshal(r.body, &res) != nil ||
				!slices.Equal(res.Changed, []string{"cluster.cluster_secret", "cluster.cluster_secret_previous"}) || len(res.Restart) != 0 {
				t.Fatalf("step 1 reload of %s: HTTP %d %s", n.id, r.status, r.body)
			}
			if strings.Contains(string(r.body), newSecret) || strings.Contains(string(r.body), oldSecret) {
				t.Fatalf("the reload answer shows a secret: %s", r.body)
			}
		}
		c.waitAcks(w, 10, 30*time.Second)
	}
	// Step 2: the old secret is retired everywhere.
	for i, n := range ns {
		n.writeConfigWith("")
		n.reloadVia(how[i], "configuration reloaded")
		c.waitAcks(w, 10, 30*time.Second)
	}
	c.waitCortex(ns, 30*time.Second)
	c.waitAcks(w, 30, 30*time.Second)
	rotated := time.Since(start)

	for _, n := range ns {
		if err := oldSecretRefused(t, n, oldSecret); !errors.Is(err, mbp.ErrAuth) {
			t.Fatalf("a handshake with the retired secret against %s: %v, want an authentication failure", n.id, err)
		}
		for _, l := range n.logMsgs() {
			if strings.Contains(l, newSecret) || strings.Contains(l, oldSecret) {
				t.Fatalf("%s's log shows a secret: %s", n.id, l)
			}
		}
	}
	closed := 0
	for _, n := range ns {
		closed += n.countMsg("mbp closed a connection authenticated with a retired cluster secret")
	}
	if closed == 0 {
		t.Fatal("no connection authenticated with the old secret was closed in step 2 (the connections of step 1 use it)")
	}
	acks, fails := w.snapshot()
	var lat []time.Duration
	for _, a := range acks {
		if !a.start.Before(start) {
			lat = append(lat, a.end.Sub(a.start))
		}
	}
	stall, _ := longestStall(acks)
	var worstGap time.Duration
	disconnects := 0
	for _, n := range ns {
		gaps, k := n.peerGaps(start)
		disconnects += k
		for _, g := range gaps {
			worstGap = max(worstGap, g)
		}
	}
	t.Logf("rotation (2 steps × 3 nodes) in %s under load: %d writes acknowledged during it (latency %s), %d failed; longest gap between acks %s; %d peer disconnections (connections on the retired secret closed: %d), longest %s (heartbeat %d ms)",
		rotated.Round(time.Millisecond), len(lat), stats(lat), len(fails), stall.Round(time.Millisecond), disconnects, closed, worstGap.Round(time.Millisecond), hb)
	if len(fails) > 0 {
		t.Fatalf("%d writes failed during the rotation, e.g. %v", len(fails), fails[0].err)
	}

	// A bad reload is kept out, by SIGHUP and by POST, and the node works.
	bad := ns[1]
	if err := os.WriteFile(bad.cfgPath, []byte("cluster: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad.reloadVia("SIGHUP", "configuration reload refused")
	r := bad.reloadVia("POST", "configuration reload refused")
	if r.status != 400 || !strings.Contains(r.err.Message, "is not valid YAML") || !strings.Contains(r.err.Message, "settings in force are kept") {
		t.Fatalf("invalid YAML: HTTP %d %s", r.status, r.body)
	}
	bad.writeConfigWith("  decay_factor: 2\n")
	r = bad.reloadVia("POST", "configuration reload refused")
	var refused struct {
		Fields []struct{ Key, Message string } `json:"fields"`
	}
	if r.status != 400 || json.Unmarshal(r.body, &refused) != nil || len(refused.Fields) != 1 ||
		refused.Fields[0].Key != "cluster.decay_factor" || !strings.Contains(refused.Fields[0].Message, "above 0 and below 1") {
		t.Fatalf("invalid value: HTTP %d %s", r.status, r.body)
	}
	c.waitAcks(w, 20, 30*time.Second)
	if err := oldSecretRefused(t, bad, oldSecret); !errors.Is(err, mbp.ErrAuth) {
		t.Fatalf("after refused reloads %s accepts the old secret: %v", bad.id, err)
	}

	// A key that needs a restart is listed, not applied; the good keys are.
	bad.writeConfigWith("  snapshot_rate_mb: 50\n")
	if err := prependLine(bad.cfgPath, "log_level: debug\n"); err != nil {
		t.Fatal(err)
	}
	r = bad.reloadVia("POST", "configuration reloaded")
	var res struct {
		Changed []string `json:"changed"`
		Restart []string `json:"restart_required"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &res) != nil || !slices.Equal(res.Changed, []string{"log_level"}) ||
		!slices.Equal(res.Restart, []string{"cluster.snapshot_rate_mb"}) {
		t.Fatalf("restart-only key: HTTP %d %s", r.status, r.body)
	}
	if bad.countMsg("restart to apply: cluster.snapshot_rate_mb") == 0 {
		t.Fatal("the log does not say cluster.snapshot_rate_mb needs a restart")
	}
	// log_level debug is in force: a port probe of MBP (a connection
	// closed before its handshake) is logged at debug level.
	if bad.countMsg("mbp connection closed before its handshake") != 0 {
		t.Fatal("a debug line was logged at log_level info")
	}
	c.waitFor(bad.id+" to log at debug level", 15*time.Second, func() (bool, string) {
		if nc, err := net.DialTimeout("tcp", bad.mbpAddr(), time.Second); err == nil {
			nc.Close()
		}
		return bad.countMsg("mbp connection closed before its handshake") > 0, "no debug line yet"
	})
	c.waitAcks(w, 20, 30*time.Second)
	if _, fails := w.snapshot(); len(fails) > 0 {
		t.Fatalf("%d writes failed, e.g. %v", len(fails), fails[0].err)
	}
	w.stop()
	acks, _ = w.snapshot()
	c.waitHasAll(ns[2], "rotate", ackIDs(acks), 30*time.Second)
}

// prependLine puts a top-level key line first in a config file (the
// harness's cluster: section is last).
func prependLine(path, line string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(line), b...), 0o600)
}
