package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSoakSchedule: one seed gives one schedule; round i drawn alone is
// round i of the whole schedule; another seed gives another; pairs that
// cannot run are never drawn; every topology and nemesis given is drawn
// in a long schedule.
func TestSoakSchedule(t *testing.T) {
	nems := []string{"kill", "pause", "isolate", "split", "wipe", "rolling", "churn"}
	a, err := SoakSchedule(42, 400, Topologies, nems, "netns")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SoakSchedule(42, 400, Topologies, nems, "netns")
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	for _, i := range []int{1, 7, 200, 400} {
		r, err := SoakRoundOf(42, i, Topologies, nems, "netns")
		if err != nil || r != a[i-1] || r.Index != i {
			t.Errorf("round %d alone: %+v %v, in the schedule: %+v", i, r, err, a[i-1])
		}
	}
	// A shorter schedule is a prefix of a longer one.
	short, _ := SoakSchedule(42, 30, Topologies, nems, "netns")
	if !slices.Equal(short, a[:30]) {
		t.Error("the first 30 rounds depend on the schedule's length")
	}
	c, _ := SoakSchedule(43, 400, Topologies, nems, "netns")
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
	seenT, seenN := map[string]bool{}, map[string]bool{}
	for _, r := range a {
		seenT[r.Topology], seenN[r.Nemesis] = true, true
		if r.Topology == "sentinel" && r.Nemesis == "churn" {
			t.Errorf("round %d: churn drawn on the sentinel topology", r.Index)
		}
		if r.Seed == 0 {
			t.Errorf("round %d: seed 0", r.Index)
		}
	}
	if len(seenT) != len(Topologies) || len(seenN) != len(nems) {
		t.Errorf("400 rounds drew topologies %v and nemeses %v", seenT, seenN)
	}
	// The docker runtime has no spare: churn is never drawn.
	d, _ := SoakSchedule(42, 200, Topologies, nems, "docker")
	for _, r := range d {
		if r.Nemesis == "churn" {
			t.Fatalf("round %d: churn drawn in the docker runtime", r.Index)
		}
	}
	// Nothing can run: an error naming the flags.
	if _, err := SoakSchedule(1, 3, Topologies[1:2], []string{"churn"}, "netns"); err == nil || !strings.Contains(err.Error(), "--nemesis") {
		t.Errorf("sentinel × churn: %v", err)
	}
	// The replay command names the round and everything the draw depends
	// on.
	o := Options{Runtime: "netns", Soak: 400, Seed: 42, Topologies: Topologies, Nemeses: nems, Duration: 4 * time.Second, HeartbeatMs: 250, Workload: DefaultWorkload}
	cmd := o.replayCommand(a[6])
	for _, want := range []string{"--soak 400", "--seed 42", "--only-round 7", "--topology three,sentinel,five,observer", "--nemesis kill,pause,isolate,split,wipe,rolling,churn", "--duration 4s", "--heartbeat-ms 250"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("replay command %q lacks %q", cmd, want)
		}
	}
}
