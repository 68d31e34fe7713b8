package api

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/muninndb/muninn/core"
)

// TestPrometheusAlertRules checks deploy/prometheus: the scrape config
// names the rules file, the rules parse with the fields Prometheus
// requires, and every metric a rule queries is one a node exports (a
// renamed metric would leave an alert silently never firing).
func TestPrometheusAlertRules(t *testing.T) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "../../deploy/prometheus/prometheus.yml", &cfg)
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "muninn-alerts.yml" || len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "muninn" {
		t.Fatalf("prometheus.yml: %+v", cfg)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "../../deploy/prometheus/muninn-alerts.yml", &rules)

	e := standalone(t, Options{})
	e.n.Metrics().WriteSeconds.WithLabelValues(core.Quorum.String()).Observe(0.001)
	fams, err := e.n.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{"up": true} // Prometheus's own
	for _, f := range fams {
		have[f.GetName()] = true
	}
	if !strings.Contains(lagDesc.String(), `"muninn_replication_lag_seconds"`) {
		t.Fatalf("lagDesc: %s", lagDesc)
	}
	have["muninn_replication_lag_seconds"] = true // a series only on a Cortex with Lobes

	name := regexp.MustCompile(`\b(up|(muninn|process|go)_[a-z_]+)\b`)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %+v: alert, expr, labels.severity and annotations summary/description are required", r)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, n := range name.FindAllString(r.Expr, -1) {
				if !have[n] {
					t.Errorf("rule %s queries %s, which a node does not export", r.Alert, n)
				}
			}
		}
	}
	// The four: no Cortex, lag over 1 s, a growing quarantine, a
	// node down.
	for _, a := range []string{"MuninnNoCortex", "MuninnReplicationLag", "MuninnQuarantineGrowing", "MuninnNodeDown"} {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
