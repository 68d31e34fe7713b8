package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/config"
)

// POST /v1/admin/reload is admin-only, answers what changed (names only),
// and a refused reload answers 400 naming each key and its fix.
func TestReloadEndpoint(t *testing.T) {
	e := standalone(t, Options{})
	// Not wired (no muninn start): 501.
	expect(t, adminReq(e, "POST", "/v1/admin/reload", "", "127.0.0.1:5000"), 501, "not_implemented")

	calls := 0
	var next error
	e.api.SetReload(func(via string) (config.ReloadResult, error) {
		calls++
		if via != "POST /v1/admin/reload" {
			t.Errorf("via %q", via)
		}
		if next != nil {
			return config.ReloadResult{}, next
		}
		return config.ReloadResult{Changed: []string{"cluster.cluster_secret", "log_level"}, Restart: []string{"cluster.bind_addr"}}, nil
	})
	// Admin only: refused before anything is reloaded.
	expect(t, adminReq(e, "POST", "/v1/admin/reload", "", "10.0.0.7:41000"), 403, "forbidden")
	expect(t, adminReq(e, "GET", "/v1/admin/reload", "", "127.0.0.1:5000"), 405, "method_not_allowed")
	if calls != 0 {
		t.Fatalf("reloaded %d times by refused requests", calls)
	}
	r := adminReq(e, "POST", "/v1/admin/reload", "", "127.0.0.1:5000")
	expect(t, r, 200, "")
	var res config.ReloadResult
	r.json(t, &res)
	if !slices.Equal(res.Changed, []string{"cluster.cluster_secret", "log_level"}) || !slices.Equal(res.Restart, []string{"cluster.bind_addr"}) {
		t.Fatalf("answer %s", r.body)
	}

	// Refused: 400, the usual error object and each key with its fix.
	_, verr := config.Parse("f.yaml", []byte("cluster:\n  cluster_secret: new-secret-0123456789\n  heartbeat_ms: 1\n  cluster_secret_previous: short\n"), nil, nil)
	if verr == nil {
		t.Fatal("invalid config parsed")
	}
	next = fmt.Errorf("%w: %w", config.ErrReload, verr)
	r = adminReq(e, "POST", "/v1/admin/reload", "", "127.0.0.1:5000")
	d := expect(t, r, 400, "bad_request")
	if !strings.Contains(d.Message, "settings in force are kept") {
		t.Fatalf("message %q", d.Message)
	}
	var body reloadRefused
	r.json(t, &body)
	var keys []string
	for _, f := range body.Fields {
		keys = append(keys, f.Key)
		if !strings.Contains(f.Message, f.Key) {
			t.Errorf("field message %q does not name %s", f.Message, f.Key)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"cluster.cluster_secret_previous", "cluster.heartbeat_ms"}) {
		t.Fatalf("fields %v: %s", keys, r.body)
	}
	if strings.Contains(string(r.body), "new-secret-0123456789") || strings.Contains(string(r.body), `"short"`) {
		t.Fatalf("the answer shows a secret value: %s", r.body)
	}
	// Any other failure is an internal error, not a 400.
	next = errors.New("boom")
	expect(t, adminReq(e, "POST", "/v1/admin/reload", "", "127.0.0.1:5000"), 500, "internal")
}

// SetAdminToken replaces Options.AdminToken for the admin check.
func TestSetAdminToken(t *testing.T) {
	e := standalone(t, Options{AdminToken: "token-one-0123456789"})
	if got := e.api.adminToken(); got != "token-one-0123456789" {
		t.Fatalf("adminToken %q", got)
	}
	e.api.SetAdminToken("token-two-0123456789")
	if got := e.api.adminToken(); got != "token-two-0123456789" {
		t.Fatalf("adminToken after SetAdminToken %q", got)
	}
	// The admin check uses it: the old token is refused, the new one works.
	expect(t, adminReq(e, "POST", "/v1/admin/reload", "", "10.0.0.7:41000", "Authorization", "Bearer token-one-0123456789"), 401, "unauthorized")
	expect(t, adminReq(e, "POST", "/v1/admin/reload", "", "10.0.0.7:41000", "Authorization", "Bearer token-two-0123456789"), 501, "not_implemented")
	other := standalone(t, Options{AdminToken: "token-three-0123456789"})
	if got := other.api.adminToken(); got != "token-three-0123456789" {
		t.Fatalf("another server's token %q", got)
	}
}
