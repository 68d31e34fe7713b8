//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	faults "github.com/muninndb/muninn/sim/cluster"
)

// Issue 16, parts 1 and 2: a rolling upgrade from the previous release,
// built from this repository's own history (e2e/testdata/previous-release),
// to this build under a steady write load, a rollback of one node, and a
// build before protocol negotiation refused.

// Protocol versions: the previous release speaks 2 only, this build 2..3;
// protocol 3's gated feature is member versions in the health answer.
const (
	protoPrevious = 2
	protoNew      = 3
)

// releases reads e2e/testdata/previous-release: name -> commit.
func releases(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "previous-release"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := faults.ParseReleases(f)
	if err != nil {
		t.Fatalf("testdata/previous-release: %v", err)
	}
	return out
}

// releaseBinary builds release name from this repository's history with
// the fault harness's BuildRelease (git archive | tar -x, go build), cached
// per commit under os.TempDir(), so reruns and the harness's mixed topology
// share one build. Without the commit in the history (a shallow clone) the
// test fails when CI is set and skips otherwise.
func releaseBinary(t *testing.T, name string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := faults.BuildRelease(context.Background(), root, name, t.Logf)
	if err != nil {
		if strings.Contains(err.Error(), "not in the git history") && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return bin
}

// startWith installs the muninn binary bin on n and starts it (later
// starts of n run bin too, as on a host where it was installed).
func startWith(n *node, bin string) {
	n.c.t.Helper()
	n.bin = bin
	n.start()
}

// health is GET /v1/cluster/health on n.
func (n *node) health() (apitypes.Health, error) {
	r, err := n.raw("GET", "/v1/cluster/health", nil)
	if err != nil {
		return apitypes.Health{}, err
	}
	var h apitypes.Health
	if err := json.Unmarshal(r.body, &h); err != nil {
		return h, fmt.Errorf("HTTP %d, body %q: %v", r.status, r.body, err)
	}
	return h, nil
}

// waitProtocol waits until every node of ns reports active protocol want
// in its info, with the protocol-3 feature on exactly when want is 3 (in
// info's features and in the health answer's versions), and returns each
// node's own binary version.
func (c *cluster) waitProtocol(ns []*node, want int, d time.Duration) map[string]string {
	c.t.Helper()
	versions := map[string]string{}
	c.waitFor(fmt.Sprintf("every node to report active protocol %d", want), d, func() (bool, string) {
		for _, n := range ns {
			info, err := n.info()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.id, err)
			}
			if int(info.ActiveProtocol) != want {
				return false, fmt.Sprintf("%s: active protocol %d", n.id, info.ActiveProtocol)
			}
			on := len(info.Features) == 1 && info.Features[0] == "health_versions"
			if on != (want >= protoNew) {
				return false, fmt.Sprintf("%s: features %v at protocol %d", n.id, info.Features, want)
			}
			h, err := n.health()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.id, err)
			}
			if shown := h.ActiveProtocol != 0 && len(h.Members) > 0 && h.Members[0].Version != ""; shown != (want >= protoNew) {
				return false, fmt.Sprintf("%s: health at protocol %d shows versions: %v (%+v)", n.id, want, shown, h)
			}
			for _, m := range info.Members {
				if m.Version == "" {
					return false, fmt.Sprintf("%s does not know %s's version yet", n.id, m.ID)
				}
			}
			versions[n.id] = info.Version
		}
		return true, ""
	})
	return versions
}

// TestRollingUpgrade: a 3-node cluster of the previous release under a
// steady quorum write load through the Go client; each node in turn (the
// Lobes, then the Cortex, which hands off) SIGTERMed and restarted on its
// data directory with this build: the active protocol stays 2 while any
// voter runs the previous release and becomes 3, switching protocol 3's
// feature on, once all run this build; one node rolled back to the
// previous release turns it off again and everything goes on working. No
// write fails and every acknowledged write is present. Then a build before
// negotiation started as a 4th node seeded at the cluster is refused, and
// this build's nodes log both versions.
func TestRollingUpgrade(t *testing.T) {
	needBinary(t)
	rel := releases(t)
	prev := releaseBinary(t, "previous")
	tooOld := releaseBinary(t, "too-old")
	cur := binPath

	c := newCluster(t, 0, 0)
	ns := c.addN(3)
	for _, n := range ns {
		startWith(n, prev)
	}
	c.waitCortex(ns, 20*time.Second)
	c.waitAllHealthy(ns, 30*time.Second)
	prevVersions := c.waitProtocol(ns, protoPrevious, 20*time.Second)
	prevVersion := prevVersions[ns[0].id]
	if !strings.Contains(prevVersion, rel["previous"][:12]) {
		t.Fatalf("the previous release reports version %q; want it to name %s", prevVersion, rel["previous"][:12])
	}

	var ws []*writer
	for i := range envInt("E2E_UPGRADE_WRITERS", 2) {
		cl := client.New(ns[i%len(ns)].url(), client.WithEndpoints(urls(ns)...))
		ws = append(ws, startWriter(t, cl, fmt.Sprintf("upgrade-%d", i), "quorum", 5*time.Millisecond))
	}
	w := ws[0]
	c.waitAcks(w, 30, 10*time.Second)

	// restart SIGTERMs n (a Cortex hands off first) and starts bin on its
	// data directory, then waits for a healthy cluster and more writes.
	var report []string
	restart := func(n *node, bin, what string) {
		t.Helper()
		role := "lobe"
		if c.cortexNow(ns) == n {
			role = "cortex"
		}
		from := time.Now()
		n.signal(syscall.SIGTERM)
		if st := n.waitExit(20 * time.Second); st == nil || !st.Success() {
			t.Fatalf("%s exited with %v after SIGTERM; want status 0", n.id, st)
		}
		c.waitAcks(w, 10, 20*time.Second)
		again := time.Now()
		startWith(n, bin)
		c.waitAllHealthy(ns, 60*time.Second)
		c.waitAcks(w, 10, 20*time.Second)
		stop, _ := stallIn(ws, from, again)
		rejoin, _ := stallIn(ws, again, time.Now())
		report = append(report, fmt.Sprintf("%s (%s) %s: longest write pause %s across the stop, %s across the restart",
			n.id, role, what, stop.Round(time.Millisecond), rejoin.Round(time.Millisecond)))
	}

	cx := c.cortexNow(ns)
	order := append(others(ns, cx), cx)
	for i, n := range order {
		restart(n, cur, "upgraded")
		if i < len(order)-1 {
			// A voter still runs the previous release.
			c.waitProtocol(ns, protoPrevious, 20*time.Second)
		}
	}
	newVersions := c.waitProtocol(ns, protoNew, 20*time.Second)
	newVersion := newVersions[ns[0].id]
	if newVersion == prevVersion {
		t.Fatalf("this build and the previous release both report version %q", newVersion)
	}
	// Every node's info lists every member with this build's version.
	for _, n := range ns {
		for _, m := range n.mustInfo().Members {
			if m.Version != newVersion || m.Protocol != "2..3" {
				t.Fatalf("%s lists %s as %q protocol %q; want %q 2..3", n.id, m.ID, m.Version, m.Protocol, newVersion)
			}
		}
	}

	// Roll one Lobe back: active protocol 2 again, the feature off.
	cx = c.cortexNow(ns)
	back := others(ns, cx)[0]
	restart(back, prev, "rolled back")
	c.waitProtocol(ns, protoPrevious, 20*time.Second)
	for _, m := range cx.mustInfo().Members {
		if want := map[bool]string{true: prevVersion, false: newVersion}[m.ID == back.id]; m.Version != want {
			t.Fatalf("the Cortex lists %s as %q; want %q", m.ID, m.Version, want)
		}
	}
	// muninn cluster info (this build's CLI) shows the mix.
	out, errOut, code := cli(t, "cluster", "info", "--addr", cx.url())
	if code != 0 || !strings.Contains(out, "Protocol: 2 active") || !regexp.MustCompile(regexp.QuoteMeta(prevVersion)+` +2\n`).MatchString(out) || !strings.Contains(out, newVersion) {
		t.Fatalf("muninn cluster info after the rollback: exit %d\n%s%s\nwant Protocol: 2 active, %s at protocol 2 and %s", code, out, errOut, back.id, newVersion)
	}
	c.waitAcks(w, 30, 20*time.Second)

	cx = c.cortexNow(ns)
	total, failed := stopAndCheckWriters(t, cx, ws)

	// A build before negotiation, seeded at the cluster: refused by every
	// node, this build's naming both versions in their logs; it never
	// becomes a member.
	old := c.add("muninn-04")
	old.seeds = ns
	startWith(old, tooOld)
	upgraded := others(ns, back)
	c.waitFor("this build's nodes to log the too-old node's refusal", 30*time.Second, func() (bool, string) {
		for _, n := range upgraded {
			if !refusalLogged(n.logText(), newVersion) {
				return false, n.id + " has not logged it"
			}
		}
		return true, ""
	})
	c.waitFor("the too-old node to log why it was refused", 20*time.Second, func() (bool, string) {
		return strings.Contains(old.logText(), "no common protocol version"), ""
	})
	if got := len(c.cortexNow(ns).mustInfo().Members); got != 3 {
		t.Fatalf("the cluster has %d members after the too-old node tried to join; want 3", got)
	}
	old.signal(syscall.SIGTERM)
	old.waitExit(20 * time.Second)
	if t.Failed() {
		return
	}
	t.Logf("rolling upgrade %s (protocol %d) -> %s (protocol 2..%d), rollback of %s, %d writers: %d writes acknowledged (all present), %d failed:\n  %s",
		prevVersion, protoPrevious, newVersion, protoNew, back.id, len(ws), total, failed, strings.Join(report, "\n  "))
}

// refusalLogged reports whether log holds the refusal of a build before
// negotiation, naming this build's version and the peer's.
func refusalLogged(log, version string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "no common protocol version") && strings.Contains(line, version) &&
			strings.Contains(line, "a build before protocol negotiation") && strings.Contains(line, "muninn-04") {
			return true
		}
	}
	return false
}
