package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

// cluster info and status end with the active protocol version and each
// member's binary version and protocol range; a node that reports no
// active protocol (a build before negotiation) gets no such lines.
func TestVersionsLines(t *testing.T) {
	info := apitypes.Info{Cortex: "muninn-01", ClusterEnabled: true, ActiveProtocol: 2, Members: []apitypes.Member{
		{ID: "muninn-01", Version: "muninn v0.3.0 (0123456789ab)", Protocol: "2..3"},
		{ID: "muninn-02", Version: "muninn v0.2.0 (ba9876543210)", Protocol: "2"},
		{ID: "muninn-03"},
	}}
	var b bytes.Buffer
	infoSummary(&b, info)
	want := "Protocol: 2 active (the highest version every voter speaks)\n\n" +
		"NODE ID     VERSION                        PROTOCOL\n" +
		"muninn-01   muninn v0.3.0 (0123456789ab)   2..3\n" +
		"muninn-02   muninn v0.2.0 (ba9876543210)   2\n" +
		"muninn-03   —                              —\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Fatalf("info:\n%s\nwant it to end with\n%s", b.String(), want)
	}
	b.Reset()
	statusTable(&b, apitypes.Status{NodeID: "muninn-01", View: "cortex", Health: "ok", ActiveProtocol: 3, Members: []apitypes.MemberStatus{
		{ID: "muninn-01", Role: "cortex", Version: "muninn v0.3.0", Protocol: "2..3"},
	}})
	if !strings.Contains(b.String(), "Protocol: 3 active") || !strings.Contains(b.String(), "muninn-01   muninn v0.3.0   2..3\n") {
		t.Fatalf("status:\n%s", b.String())
	}
	b.Reset()
	infoSummary(&b, apitypes.Info{Cortex: "a", ClusterEnabled: true, Members: []apitypes.Member{{ID: "a"}}})
	if strings.Contains(b.String(), "Protocol") {
		t.Fatalf("an old node's answer shows versions:\n%s", b.String())
	}
}
