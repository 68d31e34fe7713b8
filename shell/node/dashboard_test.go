package node

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

// TestGrafanaDashboard checks deploy/grafana/muninn.json against the
// metrics a node exports: it parses, and every metric a panel queries is
// registered (a renamed metric would leave a panel silently empty).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/muninn.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy/grafana/muninn.json: %v", err)
	}
	m := newMetrics("n1")
	m.observe(core.Status{Role: core.RoleCortex})
	m.WriteSeconds.WithLabelValues("quorum").Observe(0.001)
	m.ReadSeconds.WithLabelValues("strong").Observe(0.001)
	m.saveSeconds.Observe(0.001)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	name := regexp.MustCompile(`\b(muninn|process|go)_[a-z_]+`)
	queried := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				queried++
				base := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if b := strings.TrimSuffix(n, suf); b != n && have[b] {
						base = b
					}
				}
				if !have[base] {
					t.Errorf("panel %q queries %s, which a node does not export", p.Title, n)
				}
			}
		}
	}
	if queried < 10 {
		t.Fatalf("only %d metric references in %d panels", queried, len(d.Panels))
	}
}
