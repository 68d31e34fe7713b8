package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/node"
)

// TestEnableDisableAnswers: the handlers' refusals before the switch, the
// switcher's refusals mapped to their statuses, and the result of a switch
// (the process's switch itself is tested end to end by e2e
// TestEnableDisableRunningNode).
func TestEnableDisableAnswers(t *testing.T) {
	e := standalone(t, Options{})
	var got []node.ModeChange
	var refuse error
	e.n.SetSwitcher(func(ctx context.Context, c node.ModeChange) (*node.Node, error) {
		if refuse != nil {
			return nil, refuse
		}
		got = append(got, c)
		return e.n, nil
	})

	for _, c := range []struct{ body, code, want string }{
		{``, "bad_request", "node_id: required"},
		{`{"bind_addr":"127.0.0.1:8474"}`, "bad_request", "node_id: required"},
		{`{"node_id":"has space","bind_addr":"127.0.0.1:8474"}`, "bad_request", "not a valid node id"},
		{`{"node_id":"muninn-01"}`, "bad_request", "bind_addr: required"},
		{`{"node_id":"muninn-01","bind_addr":"nocolon"}`, "bad_request", "bind_addr: \"nocolon\" is not host:port"},
		{`{"node_id":"muninn-01","bind_addr":"127.0.0.1:8474","advertise_addr":"x"}`, "bad_request", "advertise_addr"},
		{`{"node_id":"muninn-01","bind_addr":"127.0.0.1:8474","colour":"red"}`, "bad_request", "colour"},
	} {
		d := expect(t, e.do("POST", "/v1/cluster/enable", c.body), 400, c.code)
		if !strings.Contains(d.Message, c.want) {
			t.Errorf("enable %s: %q; want it to say %q", c.body, d.Message, c.want)
		}
	}
	if len(got) != 0 {
		t.Fatalf("the switcher was called for a refused request: %+v", got)
	}
	// Disable on a standalone node: 409 before the switcher.
	expect(t, e.do("POST", "/v1/cluster/disable", ""), 409, "conflict")
	expect(t, e.do("POST", "/v1/cluster/disable", `{"x":1}`), 409, "conflict")

	// The switcher's refusals keep their status.
	for status, code := range map[int]string{400: "bad_request", 409: "conflict", 503: "unavailable", 500: "internal"} {
		refuse = &node.ModeError{Status: status, Msg: "refused for the test"}
		d := expect(t, e.do("POST", "/v1/cluster/enable", `{"node_id":"muninn-01","bind_addr":"127.0.0.1:8474"}`), status, code)
		if d.Message != "refused for the test" {
			t.Errorf("status %d: message %q", status, d.Message)
		}
	}
	refuse = nil

	// A switch: the switcher gets the settings (the secret too) and the
	// answer describes the node serving after it.
	r := e.do("POST", "/v1/cluster/enable", `{"node_id":"muninn-01","bind_addr":"127.0.0.1:8474","cluster_secret":"0123456789abcdef0123"}`)
	expect(t, r, 200, "")
	if len(got) != 1 || !got[0].Cluster || got[0].ID != "muninn-01" || got[0].BindAddr != "127.0.0.1:8474" || got[0].Secret != "0123456789abcdef0123" {
		t.Fatalf("switcher got %+v", got)
	}
	var res ModeResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Mode != node.ModeCluster || res.Role != "cortex" || res.NodeID != string(e.n.ID()) || res.Recorded != node.ModePath(e.n.Options().DataDir) || len(res.Members) != 1 {
		t.Errorf("result %+v", res)
	}
	if strings.Contains(string(r.body), "0123456789abcdef0123") {
		t.Errorf("the answer echoes the cluster secret: %s", r.body)
	}
}

func TestEnableDisableAdminOnly(t *testing.T) {
	e := standalone(t, Options{AdminToken: "tok"})
	e.n.SetSwitcher(func(ctx context.Context, c node.ModeChange) (*node.Node, error) {
		t.Errorf("switcher called without the admin token: %+v", c)
		return e.n, nil
	})
	body := `{"node_id":"muninn-01","bind_addr":"127.0.0.1:8474"}`
	expect(t, adminReq(e, "POST", "/v1/cluster/enable", body, "127.0.0.1:5000"), 401, "unauthorized")
	expect(t, adminReq(e, "POST", "/v1/cluster/disable", "", "127.0.0.1:5000"), 401, "unauthorized")
	expect(t, adminReq(e, "POST", "/v1/cluster/enable", body, "127.0.0.1:5000", "Authorization", "Bearer nope"), 401, "unauthorized")
}
