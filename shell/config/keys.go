package config

import (
	"sort"
	"strings"
)

// key describes one configuration key: its dotted path (the YAML key path
// and the flag name), its environment variable, and where its value lives.
type key struct {
	path   string
	env    string
	secret bool   // never printed
	unit   string // for numbers: "milliseconds", "seconds", ...
	ptr    func(*Config) any
}

// sections are the keys that hold mappings of other keys.
var sections = map[string]bool{"cluster": true, "cluster.tls": true, "backup": true}

// envOverride maps a key to an environment variable that does not follow
// the MUNINN_ + PATH scheme (the product documentation names it so).
var envOverride = map[string]string{
	"cluster.cluster_secret":          "MUNINN_CLUSTER_SECRET",
	"cluster.cluster_secret_previous": "MUNINN_CLUSTER_SECRET_PREVIOUS",
}

// cliEnv are MUNINN_* variables that belong to the command-line tool
// (server address for cluster commands, config file path); Load ignores them.
var cliEnv = map[string]bool{"MUNINN_ADDR": true, "MUNINN_CONFIG": true}

var keys = []*key{
	{path: "data_dir", ptr: func(c *Config) any { return &c.DataDir }},
	{path: "http_addr", ptr: func(c *Config) any { return &c.HTTPAddr }},
	{path: "advertise_http", ptr: func(c *Config) any { return &c.AdvertiseHTTP }},
	{path: "log_format", ptr: func(c *Config) any { return &c.LogFormat }},
	{path: "log_level", ptr: func(c *Config) any { return &c.LogLevel }},
	{path: "admin_token", secret: true, ptr: func(c *Config) any { return &c.AdminToken }},
	{path: "cluster.enabled", ptr: func(c *Config) any { return &c.Cluster.Enabled }},
	{path: "cluster.node_id", ptr: func(c *Config) any { return &c.Cluster.NodeID }},
	{path: "cluster.bind_addr", ptr: func(c *Config) any { return &c.Cluster.BindAddr }},
	{path: "cluster.advertise_addr", ptr: func(c *Config) any { return &c.Cluster.AdvertiseAddr }},
	{path: "cluster.seeds", ptr: func(c *Config) any { return &c.Cluster.Seeds }},
	{path: "cluster.cluster_secret", secret: true, ptr: func(c *Config) any { return &c.Cluster.Secret }},
	{path: "cluster.cluster_secret_previous", secret: true, ptr: func(c *Config) any { return &c.Cluster.SecretPrevious }},
	{path: "cluster.role", ptr: func(c *Config) any { return &c.Cluster.Role }},
	{path: "cluster.priority", ptr: func(c *Config) any { return &c.Cluster.Priority }},
	{path: "cluster.lease_ttl", unit: "seconds", ptr: func(c *Config) any { return &c.Cluster.LeaseTTLSeconds }},
	{path: "cluster.heartbeat_ms", unit: "milliseconds", ptr: func(c *Config) any { return &c.Cluster.HeartbeatMS }},
	{path: "cluster.snapshot_rate_mb", unit: "MB/s (10^6 bytes per second)", ptr: func(c *Config) any { return &c.Cluster.SnapshotRateMB }},
	{path: "cluster.forward_wait_ms", unit: "milliseconds", ptr: func(c *Config) any { return &c.Cluster.ForwardWaitMS }},
	{path: "cluster.decay_interval_s", unit: "seconds", ptr: func(c *Config) any { return &c.Cluster.DecayIntervalS }},
	{path: "cluster.decay_factor", ptr: func(c *Config) any { return &c.Cluster.DecayFactor }},
	{path: "cluster.tls.cert", ptr: func(c *Config) any { return &c.Cluster.TLS.Cert }},
	{path: "cluster.tls.key", ptr: func(c *Config) any { return &c.Cluster.TLS.Key }},
	{path: "cluster.tls.ca", ptr: func(c *Config) any { return &c.Cluster.TLS.CA }},
	{path: "backup.archive_dir", ptr: func(c *Config) any { return &c.Backup.ArchiveDir }},
	{path: "backup.archive_interval_ms", unit: "milliseconds", ptr: func(c *Config) any { return &c.Backup.ArchiveIntervalMS }},
}

var (
	byPath = map[string]*key{}
	byEnv  = map[string]*key{}
	// schemeEnv maps the MUNINN_+PATH spelling of an overridden key to its
	// real variable, for suggestions (MUNINN_CLUSTER_CLUSTER_SECRET).
	schemeEnv = map[string]string{}
)

func init() {
	for _, k := range keys {
		scheme := "MUNINN_" + strings.ToUpper(strings.ReplaceAll(k.path, ".", "_"))
		k.env = scheme
		if e, ok := envOverride[k.path]; ok {
			k.env = e
			schemeEnv[scheme] = e
		}
		byPath[k.path] = k
		byEnv[k.env] = k
	}
}

// Key describes a configuration key, for documentation and tooling.
type Key struct {
	Path   string // dotted key path: the YAML key and the flag name
	Env    string // environment variable
	Secret bool   // the value is never printed
}

// Keys lists every configuration key in file order.
func Keys() []Key {
	out := make([]Key, len(keys))
	for i, k := range keys {
		out[i] = Key{Path: k.path, Env: k.env, Secret: k.secret}
	}
	return out
}

// EnvVar is the environment variable for a dotted key path, or "".
func EnvVar(path string) string {
	if k := byPath[path]; k != nil {
		return k.env
	}
	return ""
}

// suggestKey proposes the known key path closest to an unknown one: a
// small edit distance on the whole path or on its last segment (which
// catches a key placed in the wrong section).
func suggestKey(p string) string {
	leaf := p[strings.LastIndex(p, ".")+1:]
	limit := max(2, len(leaf)/3+1)
	best, bestD := "", limit+1
	cands := make([]string, 0, len(keys)+len(sections))
	for _, k := range keys {
		cands = append(cands, k.path)
	}
	for s := range sections {
		cands = append(cands, s)
	}
	sort.Strings(cands)
	for _, c := range cands {
		cleaf := c[strings.LastIndex(c, ".")+1:]
		d := min(levenshtein(p, c), levenshtein(leaf, cleaf)+1)
		if len(leaf) >= 4 && strings.Contains(cleaf, leaf) {
			d = min(d, 2) // "secret" -> cluster_secret
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == p {
		return ""
	}
	return best
}

// suggestEnv proposes the known variable closest to an unknown MUNINN_ one.
func suggestEnv(name string) string {
	if e, ok := schemeEnv[name]; ok {
		return e
	}
	suffix := strings.TrimPrefix(name, "MUNINN_")
	limit := max(2, len(suffix)/4)
	best, bestD := "", limit+1
	var tail []string
	for _, k := range keys {
		if d := levenshtein(name, k.env); d < bestD {
			best, bestD = k.env, d
		}
		if suffix != "" && strings.HasSuffix(k.env, "_"+suffix) {
			tail = append(tail, k.env)
		}
	}
	if best == "" && len(tail) == 1 {
		return tail[0] // MUNINN_NODE_ID -> MUNINN_CLUSTER_NODE_ID
	}
	return best
}

func levenshtein(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
