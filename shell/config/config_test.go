package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/muninndb/muninn/core"
)

// The seed's three walkthrough files, verbatim.
var seedFiles = map[string]string{
	"node1": `# /etc/muninn/muninn.yaml — Node 1
cluster:
  enabled: true
  node_id: "muninn-01"
  bind_addr: "10.0.1.10:8474"
  seeds:
    - "10.0.1.11:8474"
    - "10.0.1.12:8474"
  cluster_secret: "replace-with-a-strong-secret"
`,
	"node2": `# /etc/muninn/muninn.yaml — Node 2
cluster:
  enabled: true
  node_id: "muninn-02"
  bind_addr: "10.0.1.11:8474"
  seeds:
    - "10.0.1.10:8474"
    - "10.0.1.12:8474"
  cluster_secret: "replace-with-a-strong-secret"
`,
	"node3": `# /etc/muninn/muninn.yaml — Node 3
cluster:
  enabled: true
  node_id: "muninn-03"
  bind_addr: "10.0.1.12:8474"
  seeds:
    - "10.0.1.10:8474"
    - "10.0.1.11:8474"
  cluster_secret: "replace-with-a-strong-secret"
`,
}

// The seed's configuration reference snippet.
const seedReference = `cluster:
  enabled: true
  node_id: "muninn-01"        # unique, stable across restarts
  bind_addr: "10.0.1.10:8474" # replication listen address
  seeds:                       # initial peers to contact at startup
    - "10.0.1.11:8474"
    - "10.0.1.12:8474"
  cluster_secret: "your-shared-secret"  # same on all nodes
  lease_ttl: 10               # seconds before a dead leader is evicted
  heartbeat_ms: 1000          # heartbeat interval
`

const goodSecret = "0123456789abcdef0123456789abcdef"

func TestDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Cluster.AdvertiseAddr = ":8474"
	want.AdvertiseHTTP = "http://localhost:8475"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %#v\nwant %#v", c.Redacted(), want)
	}
	cl := c.Cluster
	if c.DataDir != "./muninn-data" || c.HTTPAddr != ":8475" || c.LogFormat != "auto" || c.LogLevel != "info" || c.AdminToken != "" {
		t.Fatalf("top-level defaults: %+v", c)
	}
	if cl.Enabled || cl.NodeID != "" || cl.BindAddr != ":8474" || len(cl.Seeds) != 0 || cl.Secret != "" || cl.Role != "auto" {
		t.Fatalf("cluster defaults: %+v", cl)
	}
	if cl.LeaseTTL() != 10*time.Second || cl.Heartbeat() != time.Second || cl.ForwardWait() != 5*time.Second ||
		cl.DecayInterval() != time.Minute || cl.DecayFactor != 0.95 || cl.SnapshotRateMB != 100 || cl.SnapshotRate() != 100e6 {
		t.Fatalf("cluster durations: %+v", cl)
	}
	if cl.Kind() != core.KindAuto || cl.TLS.Enabled() {
		t.Fatalf("kind %v tls %v", cl.Kind(), cl.TLS)
	}
	if cl.Priority != 100 || core.DefaultPriority != 100 || cl.NeverCortex() || MaxPriority != core.MaxPriority {
		t.Fatalf("priority default %d", cl.Priority)
	}
	// The defaults agree with core's.
	if cl.Heartbeat() != core.DefaultHeartbeat || cl.LeaseTTL() != core.DefaultLeaseTTL {
		t.Fatalf("defaults disagree with core: %v %v", cl.Heartbeat(), cl.LeaseTTL())
	}
	if c.SlogLevel() != slog.LevelInfo {
		t.Fatal(c.SlogLevel())
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("warnings on defaults: %q", w)
	}
}

func TestSeedWalkthroughFiles(t *testing.T) {
	ips := map[string]string{"node1": "10.0.1.10", "node2": "10.0.1.11", "node3": "10.0.1.12"}
	for name, y := range seedFiles {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "muninn.yaml")
			if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			cl := c.Cluster
			ip := ips[name]
			if !cl.Enabled || cl.NodeID != "muninn-0"+name[4:] || cl.BindAddr != ip+":8474" || cl.Secret != "replace-with-a-strong-secret" {
				t.Fatalf("%+v", cl)
			}
			if len(cl.Seeds) != 2 || len(cl.PeerSeeds()) != 2 {
				t.Fatalf("seeds %v peers %v", cl.Seeds, cl.PeerSeeds())
			}
			if cl.Advertise() != ip+":8474" || c.AdvertiseURL() != "http://"+ip+":8475" {
				t.Fatalf("advertise %q %q", cl.Advertise(), c.AdvertiseURL())
			}
			if cl.Heartbeat() != time.Second || cl.LeaseTTL() != 10*time.Second || cl.Kind() != core.KindAuto {
				t.Fatalf("%+v", cl)
			}
			// The placeholder secret is allowed but warned about.
			if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "example value") {
				t.Fatalf("warnings: %q", w)
			}
		})
	}
	c, err := Parse("reference.yaml", []byte(seedReference), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.LeaseTTLSeconds != 10 || c.Cluster.HeartbeatMS != 1000 || c.Cluster.Secret != "your-shared-secret" {
		t.Fatalf("%+v", c.Cluster)
	}
}

func TestPrecedence(t *testing.T) {
	file := "data_dir: /file\nhttp_addr: \"127.0.0.1:9001\"\ncluster:\n  node_id: from-file\n  heartbeat_ms: 200\n  lease_ttl: 20\n"
	env := []string{"MUNINN_HTTP_ADDR=127.0.0.1:9002", "MUNINN_CLUSTER_NODE_ID=from-env", "MUNINN_CLUSTER_HEARTBEAT_MS=300", "PATH=/bin"}
	flags := map[string]string{"cluster.node_id": "from-flag"}
	c, err := Parse("f.yaml", []byte(file), env, flags)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want any }{
		{c.DataDir, "/file"},                       // file over default
		{c.HTTPAddr, "127.0.0.1:9002"},             // env over file
		{c.Cluster.NodeID, "from-flag"},            // flag over env over file
		{c.Cluster.HeartbeatMS, 300},               // env over file
		{c.Cluster.LeaseTTLSeconds, 20},            // file over default
		{c.Cluster.BindAddr, ":8474"},              // default
		{c.LogLevel, "info"},                       // default
		{c.AdvertiseHTTP, "http://127.0.0.1:9002"}, // derived from the winning http_addr
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	// A flag wins over an env var, which wins over the file, for every key.
	for _, k := range Keys() {
		if k.Path == "cluster.enabled" || k.Path == "cluster.seeds" {
			continue // covered below
		}
		vals := sampleValues(k.Path)
		if vals == nil {
			continue
		}
		y := yamlFor(k.Path, vals[0])
		c, err := Parse("f.yaml", []byte(y), []string{k.Env + "=" + vals[1]}, map[string]string{k.Path: vals[2]})
		if err != nil {
			t.Fatalf("%s: %v", k.Path, err)
		}
		if got := fieldText(&c, k.Path); got != vals[2] {
			t.Errorf("%s: flag should win: got %q", k.Path, got)
		}
		c, err = Parse("f.yaml", []byte(y), []string{k.Env + "=" + vals[1]}, nil)
		if err != nil {
			t.Fatalf("%s: %v", k.Path, err)
		}
		if got := fieldText(&c, k.Path); got != vals[1] {
			t.Errorf("%s: env should win over the file: got %q", k.Path, got)
		}
		c, err = Parse("f.yaml", []byte(y), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", k.Path, err)
		}
		if got := fieldText(&c, k.Path); got != vals[0] {
			t.Errorf("%s: file should win over the default: got %q", k.Path, got)
		}
	}
}

// sampleValues gives three valid, distinct values (file, env, flag) for a
// key that can be set alone in standalone mode.
func sampleValues(path string) []string {
	switch path {
	case "data_dir":
		return []string{"/a", "/b", "/c"}
	case "http_addr":
		return []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	case "advertise_http":
		return []string{"http://a:1", "http://b:2", "https://c:3"}
	case "log_format":
		return []string{"text", "json", "auto"}
	case "log_level":
		return []string{"debug", "warn", "error"}
	case "admin_token", "cluster.cluster_secret":
		return []string{goodSecret + "a", goodSecret + "b", goodSecret + "c"}
	case "cluster.node_id":
		return []string{"a", "b", "c"}
	case "cluster.bind_addr":
		return []string{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"}
	case "cluster.advertise_addr":
		return []string{"10.0.0.1:1", "h2:2", "h3.example:3"}
	case "cluster.role":
		return []string{"sentinel", "observer", "auto"}
	case "cluster.lease_ttl":
		return []string{"11", "12", "13"}
	case "cluster.priority":
		return []string{"10", "0", "1000"}
	case "cluster.heartbeat_ms":
		return []string{"100", "200", "300"}
	case "cluster.snapshot_rate_mb", "cluster.forward_wait_ms", "cluster.decay_interval_s":
		return []string{"1", "2", "3"}
	case "cluster.decay_factor":
		return []string{"0.5", "0.25", "0.125"}
	}
	return nil // tls: needs files
}

func yamlFor(path, val string) string {
	parts := strings.Split(path, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			fmt.Fprintf(&b, " %q", val)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fieldText(c *Config, path string) string {
	switch p := byPath[path].ptr(c).(type) {
	case *string:
		return *p
	case *int:
		return fmt.Sprint(*p)
	case *float64:
		return fmt.Sprint(*p)
	case *bool:
		return fmt.Sprint(*p)
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

func TestEnv(t *testing.T) {
	env := []string{
		"MUNINN_CLUSTER_ENABLED=true",
		"MUNINN_CLUSTER_NODE_ID=muninn-01",
		"MUNINN_CLUSTER_BIND_ADDR=10.0.1.10:8474",
		"MUNINN_CLUSTER_SEEDS=a:8474, b:8474",
		"MUNINN_CLUSTER_SECRET=" + goodSecret,
		"MUNINN_CLUSTER_LEASE_TTL=12",
		"MUNINN_CLUSTER_HEARTBEAT_MS=500",
		"MUNINN_CLUSTER_ROLE=observer",
		"MUNINN_CLUSTER_PRIORITY=7",
		"MUNINN_CLUSTER_ADVERTISE_ADDR=10.0.1.99:8474",
		"MUNINN_CLUSTER_SNAPSHOT_RATE_MB=50",
		"MUNINN_CLUSTER_FORWARD_WAIT_MS=250",
		"MUNINN_CLUSTER_DECAY_INTERVAL_S=30",
		"MUNINN_CLUSTER_DECAY_FACTOR=0.5",
		"MUNINN_DATA_DIR=/var/lib/muninn",
		"MUNINN_HTTP_ADDR=10.0.1.10:8475",
		"MUNINN_ADVERTISE_HTTP=http://api.example:8475",
		"MUNINN_LOG_FORMAT=json",
		"MUNINN_LOG_LEVEL=debug",
		"MUNINN_ADMIN_TOKEN=" + goodSecret + "x",
		"MUNINN_ADDR=http://localhost:8475", // the CLI's
		"MUNINN_CONFIG=/etc/muninn/muninn.yaml",
		"HOME=/root",
		"NOT_MUNINN_X=1",
		"MUNINN_CLUSTER_TLS_CERT=", // empty counts as unset
	}
	c, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	want := Cluster{
		Enabled: true, NodeID: "muninn-01", BindAddr: "10.0.1.10:8474", AdvertiseAddr: "10.0.1.99:8474",
		Seeds: []string{"a:8474", "b:8474"}, Secret: goodSecret, Role: "observer", Priority: 7, LeaseTTLSeconds: 12,
		HeartbeatMS: 500, SnapshotRateMB: 50, ForwardWaitMS: 250, DecayIntervalS: 30, DecayFactor: 0.5,
	}
	if !reflect.DeepEqual(cl, want) {
		t.Fatalf("got  %+v\nwant %+v", cl.Redacted(), want.Redacted())
	}
	if c.DataDir != "/var/lib/muninn" || c.HTTPAddr != "10.0.1.10:8475" || c.AdvertiseHTTP != "http://api.example:8475" ||
		c.LogFormat != "json" || c.LogLevel != "debug" || c.AdminToken != goodSecret+"x" {
		t.Fatalf("%+v", c.Redacted())
	}
	if cl.Kind() != core.KindObserver || c.SlogLevel() != slog.LevelDebug {
		t.Fatal(cl.Kind(), c.SlogLevel())
	}
	// Every key has its variable, and the seed's names are the seed's.
	seedNames := map[string]string{
		"cluster.enabled": "MUNINN_CLUSTER_ENABLED", "cluster.node_id": "MUNINN_CLUSTER_NODE_ID",
		"cluster.bind_addr": "MUNINN_CLUSTER_BIND_ADDR", "cluster.seeds": "MUNINN_CLUSTER_SEEDS",
		"cluster.cluster_secret": "MUNINN_CLUSTER_SECRET", "cluster.lease_ttl": "MUNINN_CLUSTER_LEASE_TTL",
		"cluster.heartbeat_ms": "MUNINN_CLUSTER_HEARTBEAT_MS", "cluster.priority": "MUNINN_CLUSTER_PRIORITY",
	}
	for p, e := range seedNames {
		if EnvVar(p) != e {
			t.Errorf("%s: env %q, want %q", p, EnvVar(p), e)
		}
	}
	// Seed lists: spaces, trailing commas.
	for in, want := range map[string][]string{
		"a:8474, b:8474":     {"a:8474", "b:8474"},
		" a:1 ,b:2,, c:3 , ": {"a:1", "b:2", "c:3"},
		"a:8474":             {"a:8474"},
	} {
		c, err := Load("", []string{"MUNINN_CLUSTER_SEEDS=" + in}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Cluster.Seeds, want) {
			t.Errorf("%q: %q", in, c.Cluster.Seeds)
		}
	}
	// Booleans in env.
	for in, want := range map[string]bool{"true": true, "1": true, "TRUE": true, "false": false, "0": false} {
		c, err := Load("", []string{"MUNINN_CLUSTER_ENABLED=" + in, "MUNINN_CLUSTER_NODE_ID=n1", "MUNINN_CLUSTER_SECRET=" + goodSecret}, nil)
		if err != nil || c.Cluster.Enabled != want {
			t.Errorf("%q: %v %v", in, c.Cluster.Enabled, err)
		}
	}
}

func TestSeedsInYAML(t *testing.T) {
	for y, want := range map[string][]string{
		"cluster:\n  seeds: [\"a:1\", \" b:2 \"]\n": {"a:1", "b:2"},
		"cluster:\n  seeds: \"a:1, b:2\"\n":         {"a:1", "b:2"},
		"cluster:\n  seeds: []\n":                   nil,
		"cluster:\n  seeds:\n":                      nil,
	} {
		c, err := Parse("f.yaml", []byte(y), nil, nil)
		if err != nil {
			t.Fatalf("%q: %v", y, err)
		}
		if len(c.Cluster.Seeds) != len(want) || (len(want) > 0 && !reflect.DeepEqual(c.Cluster.Seeds, want)) {
			t.Errorf("%q: %q", y, c.Cluster.Seeds)
		}
	}
}

// cluster is a valid cluster-mode file to which a test appends lines.
const clusterBase = `cluster:
  enabled: true
  node_id: "muninn-01"
  bind_addr: "10.0.1.10:8474"
  seeds: ["10.0.1.11:8474", "10.0.1.12:8474"]
  cluster_secret: "` + goodSecret + `"
`

func TestErrors(t *testing.T) {
	type tc struct {
		name  string
		yaml  string
		env   []string
		flags map[string]string
		want  []string // every substring must appear
		key   string   // a FieldError with this Key must be among the errors
	}
	cases := []tc{
		// Unknown keys, variables, flags.
		{name: "unknown key with suggestion", yaml: "cluster:\n  enabled: false\n\n\n\n\n  heartbeat: 5\n",
			want: []string{"unknown key cluster.heartbeat at line 7", "did you mean cluster.heartbeat_ms?"}, key: "cluster.heartbeat"},
		{name: "misplaced key", yaml: "node_id: x\n", want: []string{"unknown key node_id at line 1", "did you mean cluster.node_id?"}},
		{name: "unknown section", yaml: "clustr:\n  enabled: true\n", want: []string{"unknown key clustr", "did you mean cluster?"}},
		{name: "unknown tls key", yaml: "cluster:\n  tls:\n    certificate: x\n", want: []string{"unknown key cluster.tls.certificate at line 3"}},
		{name: "unknown top key no suggestion", yaml: "zzzzzzzz: 1\n", want: []string{"unknown key zzzzzzzz at line 1", "docs/configuration.md"}},
		{name: "duplicate key", yaml: "data_dir: a\ndata_dir: b\n", want: []string{"duplicate key data_dir at line 2", "first set at line 1"}},
		{name: "unknown env", env: []string{"MUNINN_CLUSTER_HEARTBEAT=5"}, want: []string{"unknown environment variable MUNINN_CLUSTER_HEARTBEAT", "did you mean MUNINN_CLUSTER_HEARTBEAT_MS?"}, key: "MUNINN_CLUSTER_HEARTBEAT"},
		{name: "env scheme spelling of the secret", env: []string{"MUNINN_CLUSTER_CLUSTER_SECRET=" + goodSecret}, want: []string{"MUNINN_CLUSTER_CLUSTER_SECRET", "did you mean MUNINN_CLUSTER_SECRET?"}},
		{name: "env missing section", env: []string{"MUNINN_NODE_ID=x"}, want: []string{"did you mean MUNINN_CLUSTER_NODE_ID?"}},
		{name: "unknown env no suggestion", env: []string{"MUNINN_WHATEVER_THIS_IS=1"}, want: []string{"unknown environment variable MUNINN_WHATEVER_THIS_IS"}},
		{name: "unknown flag", flags: map[string]string{"cluster.nodeid": "x"}, want: []string{`unknown flag key "cluster.nodeid"`, "did you mean cluster.node_id?"}},
		{name: "flag with dashes", flags: map[string]string{"data-dir": "x"}, want: []string{"did you mean data_dir?"}},

		// Syntax and types.
		{name: "bad yaml", yaml: "cluster: [\n", want: []string{"f.yaml is not valid YAML"}},
		{name: "top level list", yaml: "- a\n- b\n", want: []string{"must be a mapping of keys", "found a list at line 1"}},
		{name: "two documents", yaml: "data_dir: a\n---\ndata_dir: b\n", want: []string{"more than one YAML document"}},
		{name: "section not mapping", yaml: "cluster: true\n", want: []string{"cluster at line 1 of f.yaml must be a mapping of keys"}},
		{name: "bool", yaml: "cluster:\n  enabled: maybe\n", want: []string{`cluster.enabled = "maybe" (line 2 of f.yaml) is not a boolean: write true or false`}, key: "cluster.enabled"},
		{name: "int", yaml: "cluster:\n  heartbeat_ms: fast\n", want: []string{`cluster.heartbeat_ms = "fast" (line 2 of f.yaml) is not a whole number`, "milliseconds, e.g. 1000"}},
		{name: "duration units", yaml: "cluster:\n  lease_ttl: 10s\n", want: []string{`cluster.lease_ttl = "10s"`, "duration units are not accepted", "seconds, e.g. 10"}},
		{name: "int overflow", yaml: "cluster:\n  heartbeat_ms: 99999999999999999999999\n", want: []string{"is far too large"}},
		{name: "float int", yaml: "cluster:\n  heartbeat_ms: 1.5\n", want: []string{"is not a whole number"}},
		{name: "float", yaml: "cluster:\n  decay_factor: lots\n", want: []string{`cluster.decay_factor = "lots"`, "is not a number"}},
		{name: "nan", env: []string{"MUNINN_CLUSTER_DECAY_FACTOR=NaN"}, want: []string{"(from MUNINN_CLUSTER_DECAY_FACTOR) is not a number"}},
		{name: "list for scalar", yaml: "cluster:\n  node_id: [a, b]\n", want: []string{"cluster.node_id at line 2 of f.yaml must be a single string, found a list"}},
		{name: "mapping in seeds", yaml: "cluster:\n  seeds:\n    - {a: b}\n", want: []string{"cluster.seeds at line 3", "list of host:port strings, found a mapping"}},
		{name: "env int", env: []string{"MUNINN_CLUSTER_HEARTBEAT_MS=abc"}, want: []string{`cluster.heartbeat_ms = "abc" (from MUNINN_CLUSTER_HEARTBEAT_MS) is not a whole number`}},
		{name: "flag bool", flags: map[string]string{"cluster.enabled": "yes please"}, want: []string{`(from flag cluster.enabled) is not a boolean`}},
		{name: "merge key", yaml: "base: &b {x: 1}\ncluster:\n  <<: *b\n", want: []string{"unknown key base"}},

		// Ranges.
		{name: "heartbeat low", yaml: "cluster:\n  heartbeat_ms: 5\n", want: []string{"cluster.heartbeat_ms = 5 (line 2 of f.yaml) is out of range", "between 10 and 60000"}, key: "cluster.heartbeat_ms"},
		{name: "heartbeat high", env: []string{"MUNINN_CLUSTER_HEARTBEAT_MS=60001"}, want: []string{"cluster.heartbeat_ms = 60001 (from MUNINN_CLUSTER_HEARTBEAT_MS) is out of range"}},
		{name: "heartbeat negative", yaml: "cluster:\n  heartbeat_ms: -1000\n", want: []string{"cluster.heartbeat_ms = -1000", "out of range"}},
		{name: "lease zero", yaml: "cluster:\n  lease_ttl: 0\n", want: []string{"cluster.lease_ttl = 0", "between 1 and 3600 seconds"}},
		{name: "lease negative", yaml: "cluster:\n  lease_ttl: -5\n", want: []string{"cluster.lease_ttl = -5", "out of range"}},
		{name: "lease vs heartbeat", yaml: "cluster:\n  heartbeat_ms: 6000\n  lease_ttl: 10\n",
			want: []string{"cluster.lease_ttl = 10 (line 3 of f.yaml) is shorter than 2 × cluster.heartbeat_ms = 6000 (12000 ms)", "taken for down between two heartbeats",
				"raise cluster.lease_ttl to at least 12 or lower cluster.heartbeat_ms to at most 5000"}, key: "cluster.lease_ttl"},
		{name: "lease vs heartbeat rounding", flags: map[string]string{"cluster.heartbeat_ms": "1001", "cluster.lease_ttl": "2"}, want: []string{"at least 3", "at most 1000"}},
		{name: "lease just under 2 beats", env: []string{"MUNINN_CLUSTER_HEARTBEAT_MS=501", "MUNINN_CLUSTER_LEASE_TTL=1"},
			want: []string{"cluster.lease_ttl = 1 (from MUNINN_CLUSTER_LEASE_TTL) is shorter than 2 × cluster.heartbeat_ms = 501 (1002 ms)", "at least 2", "at most 500"}, key: "cluster.lease_ttl"},
		{name: "priority negative", yaml: "cluster:\n  priority: -1\n", want: []string{"cluster.priority = -1 (line 2 of f.yaml) is out of range", "between 0 and 1000 (default 100)", "0 never does"}, key: "cluster.priority"},
		{name: "priority too high", env: []string{"MUNINN_CLUSTER_PRIORITY=1001"}, want: []string{"cluster.priority = 1001 (from MUNINN_CLUSTER_PRIORITY) is out of range"}, key: "cluster.priority"},
		{name: "priority not a number", flags: map[string]string{"cluster.priority": "high"}, want: []string{`cluster.priority = "high" (from flag cluster.priority) is not a whole number: write a whole number, e.g. 100`}, key: "cluster.priority"},
		{name: "priority list", yaml: "cluster:\n  priority: [1]\n", want: []string{"cluster.priority at line 2 of f.yaml must be a whole number, found a list"}},
		{name: "priority 0 alone", yaml: "cluster:\n  enabled: true\n  node_id: n1\n  priority: 0\n  cluster_secret: " + goodSecret + "\n",
			want: []string{"cluster.priority = 0 (line 4 of f.yaml) needs cluster.seeds", "never becomes Cortex cannot start a cluster on its own", "set cluster.priority between 1 and 1000"}, key: "cluster.priority"},
		{name: "snapshot rate", yaml: "cluster:\n  snapshot_rate_mb: 0\n", want: []string{"cluster.snapshot_rate_mb = 0", "out of range"}},
		{name: "forward wait", yaml: "cluster:\n  forward_wait_ms: -1\n", want: []string{"cluster.forward_wait_ms = -1", "out of range"}},
		{name: "decay interval", yaml: "cluster:\n  decay_interval_s: 0\n", want: []string{"cluster.decay_interval_s = 0", "out of range"}},
		{name: "decay factor 1", yaml: "cluster:\n  decay_factor: 1\n", want: []string{"cluster.decay_factor = 1", "above 0 and below 1"}},
		{name: "decay factor 0", yaml: "cluster:\n  decay_factor: 0\n", want: []string{"cluster.decay_factor = 0"}},
		{name: "role", yaml: "cluster:\n  role: leader\n", want: []string{`cluster.role = "leader" (line 2 of f.yaml) is not a role`, "auto", "sentinel", "observer"}, key: "cluster.role"},
		{name: "log format", env: []string{"MUNINN_LOG_FORMAT=xml"}, want: []string{`log_format = "xml" (from MUNINN_LOG_FORMAT) is not a log format`}},
		{name: "log level", yaml: "log_level: loud\n", want: []string{`log_level = "loud"`, "debug, info, warn or error"}},
		{name: "data dir empty", flags: map[string]string{"data_dir": ""}, want: []string{"data_dir is empty"}},
		{name: "admin token short", env: []string{"MUNINN_ADMIN_TOKEN=abc"}, want: []string{"admin_token (from MUNINN_ADMIN_TOKEN) is too short"}},

		// Addresses.
		{name: "bind no port", yaml: "cluster:\n  bind_addr: 10.0.1.10\n", want: []string{`cluster.bind_addr = "10.0.1.10" (line 2 of f.yaml) has no port`, "host:port"}, key: "cluster.bind_addr"},
		{name: "bind bad port", yaml: "cluster:\n  bind_addr: 10.0.1.10:99999\n", want: []string{"has an invalid port"}},
		{name: "bind named port", yaml: "cluster:\n  bind_addr: 10.0.1.10:http\n", want: []string{"has an invalid port"}},
		{name: "bind empty", flags: map[string]string{"cluster.bind_addr": ""}, want: []string{`cluster.bind_addr = "" (from flag cluster.bind_addr) is empty`}},
		{name: "http addr", yaml: "http_addr: localhost\n", want: []string{`http_addr = "localhost"`, "has no port"}},
		{name: "http addr bad host", yaml: "http_addr: \"a b:80\"\n", want: []string{"invalid host name"}},
		{name: "seed no port", yaml: "cluster:\n  seeds: [\"10.0.1.11\"]\n", want: []string{`cluster.seeds = ["10.0.1.11"] (line 2 of f.yaml) has "10.0.1.11", which has no port`}, key: "cluster.seeds"},
		{name: "seed no host", env: []string{"MUNINN_CLUSTER_SEEDS=:8474"}, want: []string{`has ":8474", which has no host`}},
		{name: "seed port 0", env: []string{"MUNINN_CLUSTER_SEEDS=a:0"}, want: []string{"has port 0"}},
		{name: "advertise no host", yaml: "cluster:\n  advertise_addr: \":8474\"\n  bind_addr: 10.0.0.1:8474\n", want: []string{`cluster.advertise_addr = ":8474"`, "has no host"}},
		{name: "advertise http", yaml: "advertise_http: 10.0.1.10:8475\n", want: []string{`advertise_http = "10.0.1.10:8475"`, "http://"}},
		{name: "advertise http path", yaml: "advertise_http: http://a:1/api\n", want: []string{"must be just scheme://host:port"}},

		// Cluster mode.
		{name: "missing node id", env: []string{"MUNINN_CLUSTER_ENABLED=true", "MUNINN_CLUSTER_SECRET=" + goodSecret},
			want: []string{"cluster.node_id is required when cluster.enabled is true", "MUNINN_CLUSTER_NODE_ID"}, key: "cluster.node_id"},
		{name: "missing secret", yaml: "cluster:\n  enabled: true\n  node_id: n1\n",
			want: []string{"cluster.cluster_secret is required", "set cluster.cluster_secret or MUNINN_CLUSTER_SECRET", "openssl rand -hex 32"}, key: "cluster.cluster_secret"},
		{name: "short secret", yaml: "cluster:\n  cluster_secret: tooshort\n", want: []string{"cluster.cluster_secret (line 2 of f.yaml) is too short", "at least 16 bytes", "openssl rand -hex 32"}},
		{name: "node id charset", yaml: "cluster:\n  node_id: \"muninn 01\"\n", want: []string{`cluster.node_id = "muninn 01"`, "letters, digits"}},
		{name: "node id slash", env: []string{"MUNINN_CLUSTER_NODE_ID=a/b"}, want: []string{"is not a valid node id"}},
		{name: "node id long", env: []string{"MUNINN_CLUSTER_NODE_ID=" + strings.Repeat("a", 65)}, want: []string{"is not a valid node id", "1 to 64"}},
		{name: "node id dot-dot", env: []string{"MUNINN_CLUSTER_NODE_ID=.."}, want: []string{`cluster.node_id = ".."`, "is not a valid node id", "not starting with '.'"}},
		{name: "node id leading dot", env: []string{"MUNINN_CLUSTER_NODE_ID=.hidden"}, want: []string{"is not a valid node id"}},
		{name: "bind 0.0.0.0 with remote seeds", yaml: strings.Replace(clusterBase, "10.0.1.10:8474", "0.0.0.0:8474", 1),
			want: []string{`cluster.bind_addr = "0.0.0.0:8474" (line 4 of f.yaml) is not an address other hosts can reach`, "set cluster.bind_addr to this node's LAN IP", "do not use 0.0.0.0 or localhost"}, key: "cluster.bind_addr"},
		{name: "bind 0.0.0.0 with remote seeds (env)", yaml: clusterBase, env: []string{"MUNINN_CLUSTER_BIND_ADDR=0.0.0.0:8474"},
			want: []string{`cluster.bind_addr = "0.0.0.0:8474" (from MUNINN_CLUSTER_BIND_ADDR) is not an address other hosts can reach`, "10.0.1.11:8474", "LAN IP", "cluster.advertise_addr"}, key: "cluster.bind_addr"},
		{name: "bind empty host with remote seeds", yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": ":8474"},
			want: []string{`cluster.bind_addr = ":8474"`, "LAN IP"}},
		{name: "bind localhost with remote seeds", yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": "localhost:8474"},
			want: []string{"is a loopback address", "LAN IP"}},
		{name: "bind 127.0.0.2 with remote seeds", yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": "127.0.0.2:8474"},
			want: []string{"is a loopback address"}},
		{name: "bind ::1 with remote seeds", yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": "[::1]:8474"},
			want: []string{"is a loopback address"}},
		{name: "loopback advertise with remote seeds", yaml: clusterBase, flags: map[string]string{"cluster.advertise_addr": "127.0.0.1:8474"},
			want: []string{`cluster.advertise_addr = "127.0.0.1:8474"`, "set cluster.advertise_addr to this node's LAN IP"}, key: "cluster.advertise_addr"},
		{name: "advertise port 0", yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": "10.0.1.10:0"},
			want: []string{"has port 0, which other nodes cannot dial"}},
		{name: "sentinel without seeds", yaml: "cluster:\n  enabled: true\n  node_id: s1\n  role: sentinel\n  bind_addr: 10.0.1.13:8474\n  cluster_secret: " + goodSecret + "\n",
			want: []string{`cluster.role = "sentinel"`, "needs cluster.seeds"}},
		{name: "sentinel seeded only with itself", yaml: "cluster:\n  enabled: true\n  node_id: s1\n  role: observer\n  bind_addr: 10.0.1.13:8474\n  seeds: [\"10.0.1.13:8474\"]\n  cluster_secret: " + goodSecret + "\n",
			want: []string{"needs cluster.seeds"}},

		// TLS.
		{name: "tls cert without key", yaml: "cluster:\n  tls:\n    cert: " + os.Args[0] + "\n    ca: " + os.Args[0] + "\n", want: []string{"cluster.tls.key is empty but other cluster.tls keys are set", "together"}, key: "cluster.tls.key"},
		{name: "tls key without cert", yaml: "cluster:\n  tls:\n    key: " + os.Args[0] + "\n", want: []string{"cluster.tls.cert is empty", "cluster.tls.ca is empty"}},
		{name: "tls ca alone", yaml: "cluster:\n  tls:\n    ca: " + os.Args[0] + "\n", want: []string{"cluster.tls.cert is empty", "cluster.tls.key is empty"}},
		{name: "tls missing file", yaml: "cluster:\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\n    ca: " + os.Args[0] + "\n",
			want: []string{`cluster.tls.cert = "/nonexistent/c.pem" (line 3 of f.yaml) cannot be read`, `cluster.tls.key = "/nonexistent/k.pem"`}},
		{name: "tls dir", yaml: "cluster:\n  tls:\n    cert: /\n    key: /\n    ca: /\n", want: []string{"is a directory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if tc.yaml != "" {
				data = []byte(tc.yaml)
			}
			_, err := Parse("f.yaml", data, tc.env, tc.flags)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if tc.key != "" {
				found := false
				for _, fe := range fieldErrors(err) {
					found = found || fe.Key == tc.key
				}
				if !found {
					t.Errorf("no FieldError for key %q in %v", tc.key, err)
				}
			}
			if strings.Contains(err.Error(), goodSecret) {
				t.Errorf("secret in error: %v", err)
			}
		})
	}
}

func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

func TestAllErrorsReported(t *testing.T) {
	y := "cluster:\n  heartbeat_ms: 5\n  role: leader\n  decay_factor: 2\nlog_level: loud\n"
	_, err := Parse("f.yaml", []byte(y), nil, nil)
	if got := len(fieldErrors(err)); got != 4 {
		t.Fatalf("want 4 errors, got %d: %v", got, err)
	}
}

func TestValid(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		yaml  string
		env   []string
		flags map[string]string
		check func(c Config) bool
	}{
		"own address in seeds is fine": {yaml: clusterBase, flags: map[string]string{"cluster.seeds": "10.0.1.10:8474,10.0.1.11:8474, 10.0.1.11:8474"},
			check: func(c Config) bool {
				return reflect.DeepEqual(c.Cluster.PeerSeeds(), []string{"10.0.1.11:8474"})
			}},
		"0.0.0.0 with advertise_addr": {yaml: clusterBase, flags: map[string]string{"cluster.bind_addr": "0.0.0.0:8474", "cluster.advertise_addr": "10.0.1.10:8474"},
			check: func(c Config) bool {
				return c.Cluster.Advertise() == "10.0.1.10:8474" && c.AdvertiseURL() == "http://10.0.1.10:8475"
			}},
		"loopback cluster on one host": {env: []string{"MUNINN_CLUSTER_ENABLED=true", "MUNINN_CLUSTER_NODE_ID=n1", "MUNINN_CLUSTER_SECRET=" + goodSecret,
			"MUNINN_CLUSTER_BIND_ADDR=127.0.0.1:18474", "MUNINN_CLUSTER_SEEDS=127.0.0.1:18475,127.0.0.1:18476,localhost:18477", "MUNINN_HTTP_ADDR=127.0.0.1:18575"},
			check: func(c Config) bool { return c.AdvertiseHTTP == "http://127.0.0.1:18575" }},
		"one-node cluster with default bind": {env: []string{"MUNINN_CLUSTER_ENABLED=true", "MUNINN_CLUSTER_NODE_ID=n1", "MUNINN_CLUSTER_SECRET=" + goodSecret},
			check: func(c Config) bool {
				return len(c.Warnings()) == 1 && strings.Contains(c.Warnings()[0], "names no host")
			}},
		"sentinel": {yaml: clusterBase + "  role: Sentinel\n", check: func(c Config) bool {
			return c.Cluster.Kind() == core.KindSentinel && c.Cluster.Role == "sentinel"
		}},
		"boundaries": {yaml: "cluster:\n  heartbeat_ms: 10\n  lease_ttl: 1\n  decay_factor: 0.001\n", check: func(c Config) bool {
			return c.Cluster.Heartbeat() == 10*time.Millisecond
		}},
		"boundaries high":       {yaml: "cluster:\n  heartbeat_ms: 60000\n  lease_ttl: 180\n", check: func(c Config) bool { return c.Cluster.LeaseTTL() == 3*time.Minute }},
		"lease exactly 3 beats": {flags: map[string]string{"cluster.heartbeat_ms": "1000", "cluster.lease_ttl": "3"}, check: func(c Config) bool { return c.Cluster.DownAfter() == 3*time.Second }},
		// lease_ttl caps the SDOWN window; the core refuses less than two beats.
		"lease exactly 2 beats":  {flags: map[string]string{"cluster.heartbeat_ms": "1000", "cluster.lease_ttl": "2"}, check: func(c Config) bool { return c.Cluster.DownAfter() == 2*time.Second }},
		"lease 2 beats of 500ms": {env: []string{"MUNINN_CLUSTER_HEARTBEAT_MS=500", "MUNINN_CLUSTER_LEASE_TTL=1"}, check: func(c Config) bool { return c.Cluster.DownAfter() == time.Second }},
		"lease caps the window": {yaml: "cluster:\n  heartbeat_ms: 5000\n  lease_ttl: 10\n", check: func(c Config) bool {
			return c.Cluster.DownAfter() == 10*time.Second && c.Cluster.Heartbeat() == 5*time.Second
		}},
		"default window is 3 beats": {check: func(c Config) bool { return c.Cluster.DownAfter() == 3*time.Second }},
		"priority 0 with seeds": {yaml: clusterBase + "  priority: 0\n", check: func(c Config) bool {
			return c.Cluster.NeverCortex() && c.Cluster.Priority == 0 && len(c.Warnings()) == 0
		}},
		"priority bounds": {env: []string{"MUNINN_CLUSTER_PRIORITY=1000"}, check: func(c Config) bool { return c.Cluster.Priority == 1000 && !c.Cluster.NeverCortex() }},
		"priority 1":      {yaml: clusterBase + "  priority: 1\n", check: func(c Config) bool { return c.Cluster.Priority == 1 && len(c.Warnings()) == 0 }},
		"ipv6": {yaml: "http_addr: \"[::1]:8475\"\ncluster:\n  bind_addr: \"[fd00::1]:8474\"\n  seeds: [\"[fd00::2]:8474\"]\n", check: func(c Config) bool {
			return c.AdvertiseHTTP == "http://[::1]:8475"
		}},
		"hostnames":                 {yaml: "cluster:\n  bind_addr: node-1.internal:8474\n  seeds: [node-2.internal:8474]\n", check: func(c Config) bool { return true }},
		"null values keep defaults": {yaml: "data_dir:\ncluster:\n  node_id: ~\ntls:\n", check: func(c Config) bool { return false }},
		"empty file":                {yaml: "# nothing\n", check: func(c Config) bool { return c.DataDir == DefaultDataDir }},
		"empty cluster":             {yaml: "cluster:\n", check: func(c Config) bool { return c.Cluster.BindAddr == DefaultBindAddr }},
		"quoted numbers and upper-case": {yaml: "log_level: WARN\ncluster:\n  heartbeat_ms: \"250\"\n  enabled: False\n", check: func(c Config) bool {
			return c.Cluster.HeartbeatMS == 250 && c.LogLevel == "warn" && c.SlogLevel() == slog.LevelWarn
		}},
		"tls":         {yaml: "cluster:\n  tls:\n    cert: " + cert + "\n    key: " + cert + "\n    ca: " + cert + "\n", check: func(c Config) bool { return c.Cluster.TLS.Enabled() }},
		"http port 0": {flags: map[string]string{"http_addr": "127.0.0.1:0"}, check: func(c Config) bool { return c.AdvertiseHTTP == "" }},
		"anchors":     {yaml: "data_dir: &d /x\ncluster:\n  node_id: *d\n", check: func(c Config) bool { return false }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var data []byte
			if tc.yaml != "" {
				data = []byte(tc.yaml)
			}
			c, err := Parse("f.yaml", data, tc.env, tc.flags)
			switch name {
			case "null values keep defaults":
				// tls: at the top level is unknown; the rest is fine.
				if err == nil || !strings.Contains(err.Error(), "unknown key tls") {
					t.Fatal(err)
				}
				c, err = Parse("f.yaml", []byte("data_dir:\ncluster:\n  node_id: ~\n  tls:\n"), nil, nil)
				if err != nil || c.DataDir != DefaultDataDir || c.Cluster.NodeID != "" {
					t.Fatal(c, err)
				}
				return
			case "anchors":
				// An anchored value reused: "/x" is not a valid node id.
				if err == nil || !strings.Contains(err.Error(), `cluster.node_id = "/x"`) {
					t.Fatal(err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("check failed: %s %v", c, c.Warnings())
			}
		})
	}
}

func TestValidateHandBuilt(t *testing.T) {
	c := Default()
	c.Cluster.Enabled = true
	c.Cluster.NodeID = "n1"
	c.Cluster.Secret = goodSecret
	c.Cluster.BindAddr = "10.0.0.1:8474"
	c.Cluster.Seeds = []string{"10.0.0.2:8474"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Advertise() != "10.0.0.1:8474" || c.AdvertiseURL() != "http://10.0.0.1:8475" {
		t.Fatal(c.Cluster.Advertise(), c.AdvertiseURL())
	}
	c.Cluster.BindAddr = "0.0.0.0:8474"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `cluster.bind_addr = "0.0.0.0:8474" is not an address`) {
		t.Fatal(err)
	}
	c.Cluster.HeartbeatMS = 0
	c.Cluster.Secret = "short"
	err = c.Validate()
	if len(fieldErrors(err)) != 3 || strings.Contains(err.Error(), "short\"") {
		t.Fatal(err)
	}
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MUNINN_CLUSTER_SEEDS=a:1"}, "seeds are ignored"},
		{[]string{"MUNINN_CLUSTER_ROLE=sentinel"}, "role is ignored"},
		{[]string{"MUNINN_CLUSTER_PRIORITY=0"}, "cluster.priority is 0 but cluster.enabled is false: the priority is ignored in standalone mode"},
		{[]string{"MUNINN_CLUSTER_ENABLED=1", "MUNINN_CLUSTER_NODE_ID=s", "MUNINN_CLUSTER_SECRET=" + goodSecret, "MUNINN_CLUSTER_ROLE=sentinel",
			"MUNINN_CLUSTER_BIND_ADDR=10.0.0.1:8474", "MUNINN_CLUSTER_SEEDS=10.0.0.2:8474", "MUNINN_CLUSTER_PRIORITY=5"},
			"cluster.priority is 5 but cluster.role is sentinel: a sentinel never becomes Cortex, so the priority is ignored"},
		{[]string{"MUNINN_CLUSTER_ENABLED=1", "MUNINN_CLUSTER_NODE_ID=n", "MUNINN_CLUSTER_SECRET= " + goodSecret + "\n"}, "whitespace"},
		{[]string{"MUNINN_CLUSTER_ENABLED=1", "MUNINN_CLUSTER_NODE_ID=n", "MUNINN_CLUSTER_SECRET=" + goodSecret,
			"MUNINN_CLUSTER_BIND_ADDR=10.0.0.1:8474", "MUNINN_CLUSTER_SEEDS=10.0.0.2:8474", "MUNINN_HTTP_ADDR=127.0.0.1:8475"}, "advertise_http"},
	} {
		c, err := Load("", tc.env, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, tc.want) || strings.Contains(w, goodSecret) {
			t.Errorf("%v: warnings %q, want %q", tc.env, w, tc.want)
		}
	}
}

// The secret never appears in an error, String(), %v, JSON or slog output.
func TestSecretNeverPrinted(t *testing.T) {
	const s = "S3cr3t-Value-Nobody-Should-See-42"
	const tok = "T0ken-Value-Nobody-Should-See-42"
	inputs := []struct {
		yaml  string
		env   []string
		flags map[string]string
	}{
		{yaml: "cluster:\n  cluster_secret: " + s + "\n  heartbeat_ms: nope\n"},
		{yaml: "cluster:\n  cluster_secret: \"" + s + "\"\n  role: nope\n"},
		{yaml: "cluster:\n  cluster_secret: " + s + "\n  [broken\n"},
		{yaml: "cluster:\n  cluster_secret: [" + s + "]\n"},
		{yaml: "cluster:\n  cluster_secret: {" + s + ": 1}\n"},
		{yaml: "cluster:\n  cluster_secret: " + s + "\n  cluster_secret: " + s + "\n"},
		{yaml: "admin_token: " + tok + "\nlog_level: x\n"},
		{yaml: "admin_token: \"" + tok + "\n"},
		{env: []string{"MUNINN_CLUSTER_SECRET=" + s, "MUNINN_CLUSTER_ENABLED=true"}},
		{env: []string{"MUNINN_CLUSTER_SECRET=" + s[:10]}},
		{flags: map[string]string{"cluster.cluster_secret": s, "cluster.enabled": "x"}},
		{flags: map[string]string{"cluster.cluster_secret": s, "cluster.bind_addr": s}}, // the same text in a non-secret key is scrubbed too
		{env: []string{"MUNINN_" + s + "=1"}, flags: map[string]string{"cluster.cluster_secret": s}},
	}
	for i, in := range inputs {
		var data []byte
		if in.yaml != "" {
			data = []byte(in.yaml)
		}
		_, err := Parse("f.yaml", data, in.env, in.flags)
		if err == nil {
			t.Fatalf("%d: expected an error", i)
		}
		for _, secret := range []string{s, s[:10], tok} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%d: secret in error: %v", i, err)
			}
		}
	}

	c, err := Load("", []string{"MUNINN_CLUSTER_SECRET=" + s, "MUNINN_ADMIN_TOKEN=" + tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", c, "cluster", c.Cluster)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "cfg", c, "cluster", c.Cluster)
	j1, _ := json.Marshal(c)
	j2, _ := json.Marshal(c.Cluster)
	j3, _ := json.Marshal(&c)
	outs := []string{c.String(), c.Cluster.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c),
		fmt.Sprintf("%v %+v %#v", c.Cluster, c.Cluster, c.Cluster), fmt.Sprintf("%v", &c), string(j1), string(j2), string(j3), logs.String(),
		strings.Join(c.Warnings(), " ")}
	for _, o := range outs {
		if strings.Contains(o, s) || strings.Contains(o, tok) {
			t.Errorf("secret printed: %s", o)
		}
	}
	if !strings.Contains(c.String(), "cluster_secret: '[REDACTED]'") || !strings.Contains(string(j1), `"cluster_secret":"[REDACTED]"`) {
		t.Errorf("not redacted visibly:\n%s\n%s", c, j1)
	}
	// Redacted copies do not alias the original.
	r := c.Redacted()
	if c.Cluster.Secret != s || c.AdminToken != tok || r.Cluster.Secret != "[REDACTED]" {
		t.Fatal("Redacted changed the original")
	}
	var back Config
	if err := json.Unmarshal(j1, &back); err != nil || back.DataDir != c.DataDir || back.Cluster.HeartbeatMS != 1000 {
		t.Fatalf("json: %v %+v", err, back.Redacted())
	}
}

// Redaction works on values, never on message text: a short secret that is
// also a word of a message does not punch a hole in it (which would show
// the secret), and values holding a secret are hidden whole.
func TestShortSecretNotRevealedByRedaction(t *testing.T) {
	for _, secret := range []string{"short", "too", "is not"} {
		_, err := Load("", []string{"MUNINN_CLUSTER_SECRET=" + secret}, nil)
		if err == nil {
			t.Fatalf("%q: a %d-byte secret was accepted", secret, len(secret))
		}
		msg := err.Error()
		if strings.Contains(msg, "[REDACTED]") || !strings.Contains(msg, "cluster.cluster_secret (from MUNINN_CLUSTER_SECRET) is too short") ||
			!strings.Contains(msg, "at least 16 bytes") || !strings.Contains(msg, "openssl rand -hex 32") {
			t.Errorf("%q: %v", secret, msg)
		}
	}
	// A value that is the secret is hidden whole, whatever the key.
	_, err := Load("", []string{"MUNINN_CLUSTER_SECRET=short", "MUNINN_CLUSTER_BIND_ADDR=short"}, nil)
	if err == nil || !strings.Contains(err.Error(), "cluster.bind_addr = [REDACTED]") || strings.Contains(err.Error(), `"short"`) {
		t.Errorf("bind_addr holding the secret: %v", err)
	}
}

// yaml.Marshal of a loaded Config reads back to the same Config.
func TestYAMLRoundTrip(t *testing.T) {
	for name, y := range seedFiles {
		c, err := Parse(name, []byte(y), []string{"MUNINN_CLUSTER_ROLE=observer", "MUNINN_ADMIN_TOKEN=" + goodSecret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("out", b, nil, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip:\n%s\n%s", c, back)
		}
	}
}

// The key table covers every field of Config, with the YAML key as path.
func TestKeyTableCoversStruct(t *testing.T) {
	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" {
				t.Fatalf("field %s has no yaml tag", f.Name)
			}
			if js := strings.Split(f.Tag.Get("json"), ",")[0]; js != name {
				t.Fatalf("field %s: json tag %q differs from yaml %q", f.Name, js, name)
			}
			p := join(prefix, name)
			if f.Type.Kind() == reflect.Struct {
				if !sections[p] {
					t.Fatalf("%s is a struct but not a section", p)
				}
				walk(f.Type, p)
				continue
			}
			paths = append(paths, p)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if len(paths) != len(keys) {
		t.Fatalf("struct has %d keys, table %d", len(paths), len(keys))
	}
	for i, p := range paths {
		k := byPath[p]
		if k == nil || keys[i].path != p {
			t.Fatalf("key %s missing or out of order", p)
		}
		// The accessor points at the field with that tag: set through the
		// table, read back through YAML.
		var c Config
		switch q := k.ptr(&c).(type) {
		case *string:
			*q = "probe"
		case *int:
			*q = 7
		case *float64:
			*q = 0.5
		case *bool:
			*q = true
		case *[]string:
			*q = []string{"probe"}
		}
		b, _ := yaml.Marshal(c)
		leaf := p[strings.LastIndex(p, ".")+1:]
		if !strings.Contains(string(b), leaf+":") {
			t.Fatalf("accessor of %s does not write its field:\n%s", p, b)
		}
	}
}

// docs/configuration.md lists every key and variable.
func TestDocsCoverEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, k := range Keys() {
		if !strings.Contains(doc, "`"+k.Path+"`") || !strings.Contains(doc, "`"+k.Env+"`") {
			t.Errorf("docs/configuration.md misses %s / %s", k.Path, k.Env)
		}
	}
	for name, y := range seedFiles {
		body := y[strings.Index(y, "\n")+1:]
		if !strings.Contains(doc, body) {
			t.Errorf("docs/configuration.md misses the seed's %s file", name)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "nope.yaml"), nil, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#"), MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, nil, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(p, []byte("cluster:\n  heartbeat: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, nil, nil); err == nil || !strings.Contains(err.Error(), "at line 2 of "+p) {
		t.Fatal(err)
	}
}

func TestSuggest(t *testing.T) {
	for in, want := range map[string]string{
		"cluster.heartbeat": "cluster.heartbeat_ms", "cluster.nodeid": "cluster.node_id", "cluster.secret": "cluster.cluster_secret",
		"cluster.leasettl": "cluster.lease_ttl", "datadir": "data_dir", "seeds": "cluster.seeds", "cluster.tls.crt": "cluster.tls.cert",
		"qqqqqqqqqqqq": "",
	} {
		if got := suggestKey(in); got != want {
			t.Errorf("suggestKey(%q) = %q, want %q", in, got, want)
		}
	}
}
