package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

// GET /v1/cluster/info shows the cluster id as 16 hex digits once the
// store has one, and omits it before.
func TestInfoClusterID(t *testing.T) {
	e := standalone(t, Options{})
	r := e.do("GET", "/v1/cluster/info", "")
	if r.status != 200 || strings.Contains(string(r.body), "cluster_id") {
		t.Fatalf("before: HTTP %d %s", r.status, r.body)
	}
	id, err := e.n.Store().MintClusterID()
	if err != nil {
		t.Fatal(err)
	}
	var info apitypes.Info
	r = e.do("GET", "/v1/cluster/info", "")
	r.json(t, &info)
	if want := fmt.Sprintf("%016x", id); info.ClusterID != want {
		t.Fatalf("cluster_id %q, want %q (%s)", info.ClusterID, want, r.body)
	}
}
