package node

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/mbp"
)

// ApplyReload sets the log level and, when it changed, the admin token;
// on a standalone node the cluster keys have nothing to apply, and a TLS
// reload is refused.
func TestApplyReloadStandalone(t *testing.T) {
	n, err := Start(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	old := config.Default()
	next := old
	next.LogLevel = "debug"
	next.AdminToken = "reloaded-token-0123456789"
	next.Cluster.Secret = "new-secret-0123456789abc"
	lv := new(slog.LevelVar)
	var token []string
	content, err := ApplyReload(n, old, next, []string{"log_level", "cluster.cluster_secret"}, lv, func(s string) { token = append(token, s) })
	if err != nil || len(content) != 0 {
		t.Fatalf("ApplyReload: %v, %v", content, err)
	}
	if lv.Level() != slog.LevelDebug {
		t.Fatalf("log level %v, want debug", lv.Level())
	}
	if len(token) != 0 {
		t.Fatalf("admin token set although admin_token did not change: %v", token)
	}
	if _, err := ApplyReload(n, old, next, []string{"admin_token"}, lv, func(s string) { token = append(token, s) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(token, []string{"reloaded-token-0123456789"}) {
		t.Fatalf("admin token set to %v", token)
	}
	if closed, err := n.SetSecrets([]byte("x"), nil); err != nil || closed != 0 {
		t.Fatalf("SetSecrets on a standalone node: %d, %v", closed, err)
	}
	if _, err := n.SetTLS(mbp.TLSFiles{}); err == nil || !strings.Contains(err.Error(), "standalone") {
		t.Fatalf("SetTLS on a standalone node: %v", err)
	}
}
