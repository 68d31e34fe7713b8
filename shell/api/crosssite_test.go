package api

import (
	"strings"
	"testing"
)

// TestAdminRefusesCrossSite: with no admin_token, loopback callers may use
// the admin endpoints, so a page of another site open in the operator's
// browser could POST to them ("simple" requests need no preflight). Such a
// request, told by its Origin or Sec-Fetch-Site, is refused; the CLI, curl
// and the Go client send neither and pass, as does the node's own page.
func TestAdminRefusesCrossSite(t *testing.T) {
	e := standalone(t, Options{})
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name    string
		hdr     []string
		refused bool
	}{
		{"cross-site origin", []string{"Origin", "http://evil.example"}, true},
		{"null origin", []string{"Origin", "null"}, true},
		{"sec-fetch-site cross-site", []string{"Sec-Fetch-Site", "cross-site"}, true},
		{"sec-fetch-site same-site", []string{"Sec-Fetch-Site", "same-site"}, true},
		{"same origin", []string{"Origin", "http://" + host, "Sec-Fetch-Site", "same-origin"}, false},
		{"no browser headers", nil, false},
	} {
		r := e.do("POST", "/v1/cluster/disable", "{}", tc.hdr...)
		refused := r.status == 403 && strings.Contains(string(r.body), "another site")
		if refused != tc.refused {
			t.Errorf("%s: HTTP %d %s; refused as cross-site = %v, want %v", tc.name, r.status, r.body, refused, tc.refused)
		}
	}
}
