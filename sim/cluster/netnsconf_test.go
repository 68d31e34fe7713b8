package cluster

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/config"
)

// TestPickSubnet: the first 10.77.N.0/24 that nothing on the host
// overlaps, whatever the host uses (wider routes included), and an error
// naming the fix when all are taken.
func TestPickSubnet(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	cases := []struct {
		used []netip.Prefix
		want string
	}{
		{nil, "10.77.0.0/24"},
		{pp("10.77.0.0/24", "10.77.1.0/24"), "10.77.2.0/24"},
		{pp("10.77.0.5/32", "172.28.3.0/24"), "10.77.1.0/24"},
		{pp("10.77.0.0/23"), "10.77.2.0/24"},
		{pp("192.0.2.0/24", "10.0.0.0/8"), ""}, // a route over all of 10/8
		{pp("10.77.0.0/16"), ""},
	}
	for _, c := range cases {
		got, err := pickSubnet(c.used)
		if c.want == "" {
			if err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("used %v: got %v, %v; want an error saying every subnet is in use", c.used, got, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("used %v: got %v, %v; want %s", c.used, got, err, c.want)
		}
	}
}

// TestParseUsedPrefixes reads ip's output as this host prints it.
func TestParseUsedPrefixes(t *testing.T) {
	addrs := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
7: mf1a2b3c4d    inet 10.77.0.1/24 scope global mf1a2b3c4d\       valid_lft forever preferred_lft forever
`
	routes := `default via 192.0.2.1 dev eth0
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
10.77.3.0/24 dev mfdeadbeef proto kernel scope link src 10.77.3.1
local 10.77.5.7 dev lo table local proto kernel scope host src 10.77.5.7
broadcast 10.77.6.255 dev x table local proto kernel scope link src 10.77.6.1
`
	got := parseUsedPrefixes(addrs, routes)
	for _, want := range []string{"127.0.0.0/8", "192.0.2.0/24", "10.77.0.0/24", "172.17.0.0/16", "10.77.3.0/24", "10.77.5.7/32", "10.77.6.255/32"} {
		if !slices.Contains(got, netip.MustParsePrefix(want)) {
			t.Errorf("%s missing from %v", want, got)
		}
	}
	for _, p := range got {
		if p.Bits() == 0 {
			t.Errorf("the default route was taken as a prefix: %v", got)
		}
	}
	if p, err := pickSubnet(got); err != nil || p.String() != "10.77.1.0/24" {
		t.Errorf("picked %v, %v; want 10.77.1.0/24", p, err)
	}
}

// TestPlaceTopology: every topology's nodes keep their host part on the
// run's subnet, distinct, never .1 (the host's end), and the harness dials
// their API there.
func TestPlaceTopology(t *testing.T) {
	p := netip.MustParsePrefix("10.77.9.0/24")
	for _, topo := range append(slices.Clone(Topologies), NetnsTopologies...) {
		got, err := placeTopology(topo, p)
		if err != nil {
			t.Fatalf("%s: %v", topo.Name, err)
		}
		if got.Subnet != "10.77.9.0/24" || len(got.Nodes) != len(topo.Nodes) {
			t.Fatalf("%s: %+v", topo.Name, got)
		}
		seen := map[string]bool{}
		for i, n := range got.Nodes {
			a := netip.MustParseAddr(n.IP)
			if !p.Contains(a) || a == hostAddr(p).Addr() || seen[n.IP] {
				t.Errorf("%s/%s: address %s (host end %s, seen %v)", topo.Name, n.ID, n.IP, hostAddr(p), seen)
			}
			seen[n.IP] = true
			if a.As4()[3] != netip.MustParseAddr(topo.Nodes[i].IP).As4()[3] {
				t.Errorf("%s/%s: host part of %s differs from the compose address %s", topo.Name, n.ID, n.IP, topo.Nodes[i].IP)
			}
			if n.Addr != n.IP+":8475" || n.API() != "http://"+n.IP+":8475" {
				t.Errorf("%s/%s: API %q %q", topo.Name, n.ID, n.Addr, n.API())
			}
			if n.ID != topo.Nodes[i].ID || n.Sentinel != topo.Nodes[i].Sentinel || n.Observer != topo.Nodes[i].Observer {
				t.Errorf("%s: node %d changed: %+v vs %+v", topo.Name, i, n, topo.Nodes[i])
			}
		}
		// The package's topology is untouched (a copy was placed).
		if topo.Nodes[0].Addr != "" || !strings.HasPrefix(topo.Nodes[0].IP, "172.28.") {
			t.Errorf("%s: placing changed the original: %+v", topo.Name, topo.Nodes[0])
		}
	}
	if hostAddr(p).String() != "10.77.9.1/24" {
		t.Errorf("host address %s", hostAddr(p))
	}
	bad := Topology{Name: "bad", Nodes: []Node{{ID: "a", IP: "172.28.9.1"}}}
	if _, err := placeTopology(bad, p); err == nil || !strings.Contains(err.Error(), ".1 is the host's end") {
		t.Errorf("a node at .1 was placed: %v", err)
	}
	dup := Topology{Name: "dup", Nodes: []Node{{ID: "a", IP: "172.28.9.11"}, {ID: "b", IP: "172.28.8.11"}}}
	if _, err := placeTopology(dup, p); err == nil || !strings.Contains(err.Error(), "share host part") {
		t.Errorf("two nodes at .11 were placed: %v", err)
	}
	if _, err := placeTopology(Topologies[0], netip.MustParsePrefix("10.77.0.0/16")); err == nil {
		t.Error("a /16 was accepted")
	}
}

// TestNodeConfig: each node's generated file loads with the product's own
// loader (strict: an unknown key would fail) into the compose files'
// settings: node id, bind_addr on the run's subnet, role, every node as a
// seed, the secret, token, heartbeat and lease, its data directory, JSON
// logs; and gives no warning.
func TestNodeConfig(t *testing.T) {
	s := netnsSettings{Secret: strings.Repeat("ab", 32), Token: strings.Repeat("cd", 32), HeartbeatMs: 250, LeaseTTL: leaseTTL(250)}
	for _, topo := range append(slices.Clone(Topologies), NetnsTopologies...) {
		placed, err := placeTopology(topo, netip.MustParsePrefix("10.77.4.0/24"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range placed.Nodes {
			dir := t.TempDir()
			path := filepath.Join(dir, n.ID+".yaml")
			if err := writeFileSync(path, []byte(nodeConfig(placed, n, filepath.Join(dir, "data"), s)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, nil, nil)
			if err != nil {
				t.Fatalf("%s/%s: the generated config does not load:\n%v\n%s", topo.Name, n.ID, err, nodeConfig(placed, n, dir, s))
			}
			c := cfg.Cluster
			wantKind := map[string]core.Kind{"auto": core.KindAuto, "sentinel": core.KindSentinel, "observer": core.KindObserver}[n.Role()]
			if !c.Enabled || c.NodeID != n.ID || c.BindAddr != n.IP+":8474" || c.Kind() != wantKind || c.Secret != s.Secret ||
				c.HeartbeatMS != 250 || c.LeaseTTLSeconds != 10 || cfg.AdminToken != s.Token || cfg.DataDir != filepath.Join(dir, "data") ||
				cfg.LogFormat != "json" || cfg.HTTPAddr != ":8475" {
				t.Errorf("%s/%s: loaded %+v", topo.Name, n.ID, cfg)
			}
			if cfg.AdvertiseURL() != "http://"+n.IP+":8475" {
				t.Errorf("%s/%s: advertised API %q, want http://%s:8475 (where the harness dials it)", topo.Name, n.ID, cfg.AdvertiseURL(), n.IP)
			}
			if len(c.Seeds) != len(placed.Nodes) {
				t.Errorf("%s/%s: seeds %v", topo.Name, n.ID, c.Seeds)
			}
			for _, m := range placed.Nodes {
				if !slices.Contains(c.Seeds, m.IP+":8474") {
					t.Errorf("%s/%s: seeds %v lack %s", topo.Name, n.ID, c.Seeds, m.ID)
				}
			}
			if w := cfg.Warnings(); len(w) > 0 {
				t.Errorf("%s/%s: warnings %v", topo.Name, n.ID, w)
			}
		}
	}
	if leaseTTL(1000) != 10 || leaseTTL(5000) != 15 || leaseTTL(3334) != 11 {
		t.Errorf("leaseTTL: %d %d %d", leaseTTL(1000), leaseTTL(5000), leaseTTL(3334))
	}
}

// TestNetnsNames: names stay within the kernel's limits, say whose run
// made them, and differ between runs.
func TestNetnsNames(t *testing.T) {
	a, b := projectPrefix+"three-123", projectPrefix+"three-124"
	if v := hostVeth(a); len(v) > 15 || v == hostVeth(b) || v != hostVeth(a) {
		t.Errorf("host veth %q (%q for another run)", v, hostVeth(b))
	}
	if hubVeth(9) != "n9" || netnsName(a, "muninn-01") != a+"-muninn-01" || hubName(a) != a+"-hub" {
		t.Errorf("names %q %q %q", hubVeth(9), netnsName(a, "muninn-01"), hubName(a))
	}
	prefix := projectPrefix + "three-"
	for name, want := range map[string]int{
		netnsName(a, "muninn-01"): 123, hubName(a): 123, a: 123,
		projectPrefix + "five-7-hub": 0, prefix + "x-hub": 0, "other": 0,
	} {
		pid, ok := netnsOwner(name, prefix)
		if (want != 0) != ok || pid != want {
			t.Errorf("netnsOwner(%q) = %d, %v; want %d", name, pid, ok, want)
		}
	}
}

// TestAPIRefusesOtherAddresses: the API dials the published ports on
// 127.0.0.1 and the addresses a netns run allowed, nothing else.
func TestAPIRefusesOtherAddresses(t *testing.T) {
	api := NewAPI("t")
	defer api.Close()
	n := Node{ID: "x", Addr: "192.0.2.77:8475"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := api.Do(ctx, n, "GET", "/v1/cluster/health", nil, nil, time.Second)
	if err == nil || !strings.Contains(err.Error(), "refusing to dial 192.0.2.77:8475") {
		t.Fatalf("dialled an address nobody allowed: %v", err)
	}
	api.allow(n.Addr)
	if !api.isAllowed(n.Addr) || api.isAllowed("192.0.2.78:8475") || api.isAllowed("192.0.2.77:8474") {
		t.Error("allow is not exact")
	}
	api.disallow(n.Addr)
	if _, err := api.Do(ctx, n, "GET", "/v1/cluster/health", nil, nil, time.Second); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("dialled a withdrawn address: %v", err)
	}
}

// TestCheckObserver: a write an Observer acknowledged, or an Observer as
// Cortex, is an anomaly; refused writes and reads through it are not.
func TestCheckObserver(t *testing.T) {
	topo := Topologies[slices.IndexFunc(Topologies, func(t Topology) bool { return t.Name == "observer" })]
	obs := "observer-01"
	ok := []*Op{
		{Node: obs, Kind: OpLocalWrite, ID: "a", Outcome: Fail, Code: "read_only_node", Status: 403},
		{Node: obs, Kind: OpRegRead, Outcome: OK, Status: 200},
		{Node: "muninn-01", Kind: OpLocalWrite, ID: "b", Outcome: OK, Status: 201},
	}
	if an := checkObserver(topo, ok, "muninn-01", ""); len(an) != 0 {
		t.Errorf("anomalies %v", an)
	}
	bad := append(slices.Clone(ok), &Op{Node: obs, Kind: OpLocalWrite, ID: "c", Outcome: OK, Status: 201, AnsweredBy: "muninn-01"})
	an := checkObserver(topo, bad, obs, "")
	if len(an) != 2 || an[0].Check != "observer-cortex" || an[1].Check != "observer-write" || !strings.Contains(an[1].Detail, "local-write c") {
		t.Errorf("anomalies %v", an)
	}
	if an := checkObserver(Topologies[0], bad, obs); len(an) != 0 {
		t.Errorf("a topology without an Observer: %v", an)
	}
}
