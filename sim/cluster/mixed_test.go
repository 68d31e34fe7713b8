package cluster

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMixedTopology: mixed is three data voters, exactly one on a release
// the repository's release list names, the rest (and the spare) on this
// build; it is netns-only, on a subnet of its own.
func TestMixedTopology(t *testing.T) {
	i := slices.IndexFunc(NetnsTopologies, func(t Topology) bool { return t.Name == "mixed" })
	if i < 0 {
		t.Fatal("no mixed topology")
	}
	m := NetnsTopologies[i]
	if !m.NetnsOnly() || !m.Mixed() || m.Quorum != 2 || len(m.Voters()) != 3 || len(m.DataNodes()) != 3 {
		t.Fatalf("mixed: %+v", m)
	}
	f, err := os.Open(filepath.Join("..", "..", releaseList))
	if err != nil {
		t.Fatal(err)
	}
	rels, err := ParseReleases(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for _, n := range m.Nodes {
		if n.Release != "" {
			old = append(old, n.ID)
			if rels[n.Release] == "" {
				t.Errorf("%s runs release %q, which %s does not list (%v)", n.ID, n.Release, releaseList, rels)
			}
		}
	}
	if len(old) != 1 || old[0] != "muninn-01" {
		t.Errorf("nodes on an earlier release: %v; want muninn-01 alone", old)
	}
	for _, n := range m.Spares {
		if n.Release != "" {
			t.Errorf("spare %s runs release %s; want this build", n.ID, n.Release)
		}
	}
	for _, o := range Topologies {
		if o.NetnsOnly() || o.Mixed() {
			t.Errorf("%s: compose topologies run this build only, from a compose file", o.Name)
		}
		if o.Subnet == m.Subnet {
			t.Errorf("mixed shares subnet %s with %s", m.Subnet, o.Name)
		}
	}
}

// TestParseTopologiesRuntime: all is what the runtime can run; mixed
// named for docker is refused with the flag that fixes it.
func TestParseTopologiesRuntime(t *testing.T) {
	names := func(ts []Topology) string {
		var ns []string
		for _, t := range ts {
			ns = append(ns, t.Name)
		}
		return strings.Join(ns, ",")
	}
	d, err := ParseTopologies("all", "docker")
	if err != nil || names(d) != "three,sentinel,five,observer" {
		t.Errorf("all (docker): %s, %v", names(d), err)
	}
	n, err := ParseTopologies("all", "netns")
	if err != nil || names(n) != "three,sentinel,five,observer,mixed" {
		t.Errorf("all (netns): %s, %v", names(n), err)
	}
	if got, err := ParseTopologies("three, mixed", "netns"); err != nil || names(got) != "three,mixed" || got[1].Nodes[0].Release != "previous" {
		t.Errorf("three, mixed (netns): %v, %v", got, err)
	}
	if _, err := ParseTopologies("mixed", "docker"); err == nil || !strings.Contains(err.Error(), "--runtime netns") {
		t.Errorf("mixed (docker): %v; want a refusal naming --runtime netns", err)
	}
	if _, err := ParseTopologies("nine", "netns"); err == nil || !strings.Contains(err.Error(), "mixed") {
		t.Errorf("nine: %v; want the list of names", err)
	}
	// The docker runtime refuses it even when handed it directly.
	if _, err := Up(context.Background(), nil, nil, "", n[len(n)-1], t.Logf); err == nil || !strings.Contains(err.Error(), "--runtime netns") {
		t.Errorf("Up(mixed): %v", err)
	}
	// A soak over netns's all draws mixed; docker's never does.
	nems := []string{"kill", "isolate", "split"}
	drawn := func(ts []Topology, runtime string) bool {
		s, err := SoakSchedule(7, 200, ts, nems, runtime)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(s, func(r SoakRound) bool { return r.Topology == "mixed" })
	}
	if !drawn(n, "netns") || drawn(d, "docker") {
		t.Errorf("mixed drawn: netns %v, docker %v; want true, false", drawn(n, "netns"), drawn(d, "docker"))
	}
}

// TestMixedSkipsFillDisk: the soak never draws fill-disk for a mixed
// topology (the previous release's known hang of a filled Cortex), and
// draws the partition nemeses for it.
func TestMixedSkipsFillDisk(t *testing.T) {
	i := slices.IndexFunc(NetnsTopologies, func(t Topology) bool { return t.Name == "mixed" })
	if i < 0 {
		t.Fatal("no mixed topology")
	}
	m := NetnsTopologies[i]
	if why := notApplicable("fill-disk", m, "netns"); why == "" {
		t.Error("fill-disk is drawn for the mixed topology")
	}
	for _, n := range []string{"isolate", "split", "bridge", "oneway", "kill"} {
		if why := notApplicable(n, m, "netns"); why != "" {
			t.Errorf("%s is not drawn for the mixed topology: %s", n, why)
		}
	}
	if why := notApplicable("fill-disk", Topologies[0], "netns"); why != "" {
		t.Errorf("fill-disk is not drawn for %s: %s", Topologies[0].Name, why)
	}
}
