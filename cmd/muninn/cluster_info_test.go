package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

func iptr(v int) *int { return &v }

// With every priority at the default, `muninn cluster info` keeps the
// seed's table; a non-default one adds a PRIORITY column.
func TestInfoPriorityColumn(t *testing.T) {
	st := apitypes.Status{View: "cortex", Members: []apitypes.MemberStatus{
		{ID: "muninn-01", Role: "cortex", Kind: "auto", LastSeq: u64(10421)},
		{ID: "muninn-02", Role: "lobe", Kind: "auto", LastSeq: u64(10421), LagMs: i64(0)},
		{ID: "muninn-03", Role: "lobe", Kind: "auto", LastSeq: u64(10419), LagMs: i64(2)},
		{ID: "sentinel-01", Role: "sentinel", Kind: "sentinel"},
	}}
	info := apitypes.Info{Cortex: "muninn-01", Epoch: 3, FencingToken: 3, Quorum: 3, ClusterEnabled: true,
		HeartbeatMs: 1000, DownAfterMs: 3000, LeaseMs: 500,
		Members: []apitypes.Member{
			{ID: "muninn-01", Kind: "auto", Priority: iptr(100)},
			{ID: "muninn-02", Kind: "auto", Priority: iptr(100)},
			{ID: "muninn-03", Kind: "auto"}, // not heard yet
			{ID: "sentinel-01", Kind: "sentinel"},
		}}
	var b bytes.Buffer
	printInfo(&b, info, st)
	want := "" +
		"NODE ID       ROLE       LAST SEQ   LAG\n" +
		"muninn-01     cortex     10,421     —\n" +
		"muninn-02     lobe       10,421     0ms\n" +
		"muninn-03     lobe       10,419     2ms\n" +
		"sentinel-01   sentinel   —          —\n" +
		"\nCortex: muninn-01   Epoch: 3   Fencing token: 3   Members: 4 (quorum 3)   Mode: cluster\n" +
		"Failure detection: a Cortex silent for 3.0s is taken for down (3 heartbeats of 1.0s, or cluster.lease_ttl if shorter); read lease 500ms.\n"
	if b.String() != want {
		t.Fatalf("defaults: got\n%s\nwant\n%s", b.String(), want)
	}

	info.Members[0].Priority = iptr(10)
	info.Members[1].Priority = iptr(0)
	st.LeaseWaitMs = 420
	b.Reset()
	printInfo(&b, info, st)
	want = "" +
		"NODE ID       ROLE       LAST SEQ   LAG   PRIORITY\n" +
		"muninn-01     cortex     10,421     —     10\n" +
		"muninn-02     lobe       10,421     0ms   0 (never)\n" +
		"muninn-03     lobe       10,419     2ms   ?\n" +
		"sentinel-01   sentinel   —          —     —\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Fatalf("priorities: got\n%s\nwant prefix\n%s", b.String(), want)
	}
	if !strings.Contains(b.String(), "it commits nothing for another 420ms") {
		t.Fatalf("lease wait missing:\n%s", b.String())
	}

	// Standalone: no timing lines.
	b.Reset()
	printInfo(&b, apitypes.Info{Members: []apitypes.Member{{ID: "standalone", Kind: "auto", Priority: iptr(100)}}, DownAfterMs: 3000},
		apitypes.Status{Members: []apitypes.MemberStatus{{ID: "standalone", Role: "cortex", Kind: "auto", LastSeq: u64(1)}}})
	if strings.Contains(b.String(), "Failure detection") || strings.Contains(b.String(), "PRIORITY") {
		t.Fatalf("standalone:\n%s", b.String())
	}
}

// TestInfoSummaryClusterID checks that cluster info's text output names
// the cluster id when the cluster has one (a restored cluster), and says
// nothing of it otherwise.
func TestInfoSummaryClusterID(t *testing.T) {
	var with, without bytes.Buffer
	infoSummary(&with, apitypes.Info{Cortex: "a", ClusterEnabled: true, ClusterID: "00c0ffee00c0ffee"})
	infoSummary(&without, apitypes.Info{Cortex: "a", ClusterEnabled: true})
	if !strings.Contains(with.String(), "Cluster id: 00c0ffee00c0ffee\n") {
		t.Errorf("with a cluster id: %q", with.String())
	}
	if strings.Contains(without.String(), "Cluster id") {
		t.Errorf("without one: %q", without.String())
	}
}
