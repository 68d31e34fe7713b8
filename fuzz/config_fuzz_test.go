package fuzz

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/muninndb/muninn/shell/config"
)

// FuzzConfig feeds arbitrary YAML (and an arbitrary environment value) to
// the config parser: it must never panic, only return errors; a config it
// accepts must validate and survive a YAML round trip; and the secret given
// in the environment never shows up in an error or in String().
func FuzzConfig(f *testing.F) {
	seeds := []string{
		"",
		"cluster:\n  enabled: true\n  node_id: \"muninn-01\"\n  bind_addr: \"10.0.1.10:8474\"\n  seeds:\n    - \"10.0.1.11:8474\"\n    - \"10.0.1.12:8474\"\n  cluster_secret: \"replace-with-a-strong-secret\"\n",
		"cluster:\n  heartbeat: 5\n",
		"cluster:\n  lease_ttl: 10s\n  heartbeat_ms: 5000\n",
		"data_dir: &a /x\ncluster:\n  node_id: *a\n  seeds: [*a, b:1]\n",
		"cluster: {tls: {cert: /, key: /}}\n",
		"a: [\n",
		"- 1\n- 2\n",
		"cluster:\n  role: sentinel\n  enabled: true\n",
		"---\n---\n",
		"cluster:\n  <<: {enabled: true}\n",
		"http_addr: \"[::1]:0\"\nadvertise_http: http://x:1\n",
		"cluster:\n  decay_factor: .nan\n  snapshot_rate_mb: 0x10\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "MUNINN_CLUSTER_SEEDS", "a:1, b:2")
	}
	f.Add([]byte("cluster:\n  enabled: true\n"), "MUNINN_CLUSTER_NODE_ID", "n 1")
	f.Add([]byte("log_level: x\n"), "MUNINN_CLUSTER_HEARTBEAT", "1")
	const secret = "fuzz-secret-0123456789abcdef"
	f.Fuzz(func(t *testing.T, data []byte, envName, envVal string) {
		env := []string{"MUNINN_CLUSTER_SECRET=" + secret, "MUNINN_" + strings.TrimPrefix(envName, "MUNINN_") + "=" + envVal}
		c, err := config.Parse("fuzz.yaml", data, env, nil)
		leaks := func(s string) bool {
			return strings.Contains(s, secret) && !bytes.Contains(data, []byte(secret)) &&
				!strings.Contains(envName, secret) && !strings.Contains(envVal, secret)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if leaks(err.Error()) {
				t.Fatalf("secret in error: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if leaks(c.String()) {
			t.Fatalf("secret in String(): %s", c)
		}
		_ = c.Warnings()
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := config.Parse("round-trip.yaml", b, nil, nil)
		if err != nil {
			t.Fatalf("round trip does not parse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip differs:\n%s\n%s", c, back)
		}
	})
}
