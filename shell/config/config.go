// Package config reads a MuninnDB node's configuration from a YAML file,
// MUNINN_* environment variables and command-line flags, in that order of
// increasing precedence over the built-in defaults, and validates it.
//
// Every key, its environment variable, its default and its rules are listed
// in docs/configuration.md. The cluster keys and their environment variables
// are the ones of the product documentation's configuration reference.
//
// Errors name the key (and the file line, environment variable or flag the
// value came from), the offending value and the fix. The values of
// cluster.cluster_secret and admin_token never appear in an error, in
// String() or in JSON/slog output.
package config

import (
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
)

// Defaults. The cluster values are the product documentation's.
const (
	DefaultDataDir        = "./muninn-data"
	DefaultHTTPAddr       = ":8475"
	DefaultLogFormat      = "auto"
	DefaultLogLevel       = "info"
	DefaultBindAddr       = ":8474"
	DefaultRole           = "auto"
	DefaultLeaseTTL       = 10   // cluster.lease_ttl, seconds
	DefaultHeartbeatMS    = 1000 // cluster.heartbeat_ms
	DefaultSnapshotRateMB = 100  // cluster.snapshot_rate_mb, 10^6 bytes/s
	DefaultForwardWaitMS  = 5000 // cluster.forward_wait_ms
	DefaultDecayIntervalS = 60   // cluster.decay_interval_s
	DefaultDecayFactor    = 0.95 // cluster.decay_factor
	DefaultPriority       = core.DefaultPriority
	// DefaultArchiveIntervalMS is backup.archive_interval_ms.
	DefaultArchiveIntervalMS = 1000
)

// Limits checked by Validate.
const (
	MinHeartbeatMS    = 10
	MaxHeartbeatMS    = 60000
	MaxLeaseTTL       = 3600               // seconds
	MaxPriority       = core.MaxPriority   // cluster.priority; 0 is never Cortex
	MaxForwardWaitMS  = 3_600_000          // one hour
	MaxDecayIntervalS = 7 * 86400          // one week
	MaxSnapshotRateMB = 1_000_000          // 1 TB/s: effectively unlimited
	MinSecretLen      = 16                 // bytes, for cluster_secret and admin_token
	MaxNodeIDLen      = ident.MaxNodeIDLen // cluster.node_id: [A-Za-z0-9._-], not starting with '.'
	MaxFileSize       = 1 << 20            // a config file larger than this is refused
	// backup.archive_interval_ms bounds.
	MinArchiveIntervalMS = 10
	MaxArchiveIntervalMS = 3_600_000
	redacted             = "[REDACTED]"
)

// Config is a node's configuration. The YAML tags are the file's keys; a
// Config marshalled with yaml.Marshal reads back to the same Config.
type Config struct {
	// DataDir is where the node keeps its data (data_dir).
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// HTTPAddr is the REST API's listen address, host:port (http_addr).
	HTTPAddr string `yaml:"http_addr" json:"http_addr"`
	// AdvertiseHTTP is the API's base URL as other nodes and clients should
	// use it (advertise_http). Load fills it when unset; see AdvertiseURL.
	AdvertiseHTTP string `yaml:"advertise_http,omitempty" json:"advertise_http,omitempty"`
	// LogFormat is auto, text or json (log_format).
	LogFormat string `yaml:"log_format" json:"log_format"`
	// LogLevel is debug, info, warn or error (log_level).
	LogLevel string `yaml:"log_level" json:"log_level"`
	// AdminToken is the bearer token admin endpoints require; empty means
	// admin endpoints accept loopback callers only (admin_token). Secret.
	AdminToken string `yaml:"admin_token,omitempty" json:"admin_token,omitempty"`
	// Cluster is the cluster: section.
	Cluster Cluster `yaml:"cluster" json:"cluster"`
	// Backup is the backup: section.
	Backup Backup `yaml:"backup" json:"backup"`
}

// Backup is the backup: section: continuous log archiving
// (docs/backup.md, "Continuous archiving").
type Backup struct {
	// ArchiveDir, when set, makes every data node write its committed log
	// entries there in segment files (backup.archive_dir). Not inside
	// data_dir.
	ArchiveDir string `yaml:"archive_dir,omitempty" json:"archive_dir,omitempty"`
	// ArchiveIntervalMS is how often the archiver writes a segment of what
	// was committed since its last one (backup.archive_interval_ms).
	ArchiveIntervalMS int `yaml:"archive_interval_ms" json:"archive_interval_ms"`
}

// ArchiveInterval is backup.archive_interval_ms as a duration.
func (b Backup) ArchiveInterval() time.Duration {
	return time.Duration(b.ArchiveIntervalMS) * time.Millisecond
}

// Cluster is the cluster: section.
type Cluster struct {
	// Enabled turns cluster mode on (cluster.enabled).
	Enabled bool `yaml:"enabled" json:"enabled"`
	// NodeID is the node's unique name, stable across restarts
	// (cluster.node_id).
	NodeID string `yaml:"node_id,omitempty" json:"node_id,omitempty"`
	// BindAddr is the MBP replication listen address (cluster.bind_addr).
	BindAddr string `yaml:"bind_addr" json:"bind_addr"`
	// AdvertiseAddr is the MBP address other nodes dial; Load fills it with
	// BindAddr when unset (cluster.advertise_addr). See Advertise.
	AdvertiseAddr string `yaml:"advertise_addr,omitempty" json:"advertise_addr,omitempty"`
	// Seeds are the peers contacted at startup, host:port (cluster.seeds).
	// The node's own address may be listed; see PeerSeeds.
	Seeds []string `yaml:"seeds,omitempty" json:"seeds,omitempty"`
	// Secret is the shared HMAC secret (cluster.cluster_secret). Secret.
	Secret string `yaml:"cluster_secret,omitempty" json:"cluster_secret,omitempty"`
	// SecretPrevious is the secret being retired during a rotation: peers
	// proving it are still accepted (cluster.cluster_secret_previous;
	// docs/clustering.md, "Rotating cluster_secret"). Secret.
	SecretPrevious string `yaml:"cluster_secret_previous,omitempty" json:"cluster_secret_previous,omitempty"`
	// Role is auto, sentinel or observer (cluster.role). See Kind.
	Role string `yaml:"role" json:"role"`
	// Priority ranks equally up-to-date candidates for Cortex, lower first;
	// 0 never runs (cluster.priority). See NeverCortex.
	Priority int `yaml:"priority" json:"priority"`
	// LeaseTTLSeconds is cluster.lease_ttl. See LeaseTTL.
	LeaseTTLSeconds int `yaml:"lease_ttl" json:"lease_ttl"`
	// HeartbeatMS is cluster.heartbeat_ms. See Heartbeat.
	HeartbeatMS int `yaml:"heartbeat_ms" json:"heartbeat_ms"`
	// SnapshotRateMB caps outgoing snapshot streaming, in 10^6 bytes/s
	// (cluster.snapshot_rate_mb).
	SnapshotRateMB int `yaml:"snapshot_rate_mb" json:"snapshot_rate_mb"`
	// ForwardWaitMS is how long a Lobe holds a write while no Cortex is
	// known (cluster.forward_wait_ms). See ForwardWait.
	ForwardWaitMS int `yaml:"forward_wait_ms" json:"forward_wait_ms"`
	// DecayIntervalS is the Cortex's activation-decay period
	// (cluster.decay_interval_s). See DecayInterval.
	DecayIntervalS int `yaml:"decay_interval_s" json:"decay_interval_s"`
	// DecayFactor multiplies activations every DecayIntervalS, in (0, 1)
	// (cluster.decay_factor).
	DecayFactor float64 `yaml:"decay_factor" json:"decay_factor"`
	// TLS optionally encrypts MBP (cluster.tls).
	TLS TLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// TLS is the optional cluster.tls: section: MBP runs mutual TLS 1.3 when it
// is set. Cert (this node's certificate), Key (its private key) and CA (the
// cluster CA bundle every node's certificate chains to) are set together or
// not at all (see shell/mbp.LoadTLS).
type TLS struct {
	Cert string `yaml:"cert,omitempty" json:"cert,omitempty"`
	Key  string `yaml:"key,omitempty" json:"key,omitempty"`
	CA   string `yaml:"ca,omitempty" json:"ca,omitempty"`
}

// Enabled reports whether any cluster.tls key is set (Validate requires all
// three then).
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Default returns the built-in defaults. AdvertiseAddr and AdvertiseHTTP are
// left empty: they are derived (see Cluster.Advertise and AdvertiseURL).
func Default() Config {
	return Config{
		DataDir:   DefaultDataDir,
		HTTPAddr:  DefaultHTTPAddr,
		LogFormat: DefaultLogFormat,
		LogLevel:  DefaultLogLevel,
		Cluster: Cluster{
			BindAddr:        DefaultBindAddr,
			Role:            DefaultRole,
			Priority:        DefaultPriority,
			LeaseTTLSeconds: DefaultLeaseTTL,
			HeartbeatMS:     DefaultHeartbeatMS,
			SnapshotRateMB:  DefaultSnapshotRateMB,
			ForwardWaitMS:   DefaultForwardWaitMS,
			DecayIntervalS:  DefaultDecayIntervalS,
			DecayFactor:     DefaultDecayFactor,
		},
		Backup: Backup{ArchiveIntervalMS: DefaultArchiveIntervalMS},
	}
}

// Heartbeat is cluster.heartbeat_ms as a duration.
func (c Cluster) Heartbeat() time.Duration {
	return time.Duration(c.HeartbeatMS) * time.Millisecond
}

// LeaseTTL is cluster.lease_ttl as a duration.
func (c Cluster) LeaseTTL() time.Duration {
	return time.Duration(c.LeaseTTLSeconds) * time.Second
}

// DownAfter is the SDOWN window cluster.lease_ttl sets: a Cortex silent
// this long is taken for down, min(3 × heartbeat_ms, lease_ttl) (core's
// rule, so the log and the API show what the core does).
func (c Cluster) DownAfter() time.Duration {
	return core.Config{Heartbeat: c.Heartbeat(), LeaseTTL: c.LeaseTTL()}.DownAfter()
}

// NeverCortex reports cluster.priority 0: the node votes and holds data
// but never runs for Cortex.
func (c Cluster) NeverCortex() bool { return c.Priority == 0 }

// ForwardWait is cluster.forward_wait_ms as a duration.
func (c Cluster) ForwardWait() time.Duration {
	return time.Duration(c.ForwardWaitMS) * time.Millisecond
}

// DecayInterval is cluster.decay_interval_s as a duration.
func (c Cluster) DecayInterval() time.Duration {
	return time.Duration(c.DecayIntervalS) * time.Second
}

// SnapshotRate is cluster.snapshot_rate_mb in bytes per second.
func (c Cluster) SnapshotRate() int64 { return int64(c.SnapshotRateMB) * 1_000_000 }

// Kind is cluster.role as a core.Kind; an invalid role (which Validate
// refuses) reads as core.KindAuto.
func (c Cluster) Kind() core.Kind {
	k, err := core.ParseKind(strings.ToLower(strings.TrimSpace(c.Role)))
	if err != nil {
		return core.KindAuto
	}
	return k
}

// Advertise is the MBP address other nodes should dial: AdvertiseAddr, or
// BindAddr when that is unset.
func (c Cluster) Advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.BindAddr
}

// PeerSeeds is Seeds without duplicates and without the node's own
// BindAddr/advertised address (listing itself in its seeds is allowed, so
// every node of a cluster can share one seed list).
func (c Cluster) PeerSeeds() []string {
	own := map[string]bool{normAddr(c.BindAddr): true, normAddr(c.Advertise()): true}
	var out []string
	for _, s := range c.Seeds {
		n := normAddr(s)
		if own[n] {
			continue
		}
		own[n] = true
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// normAddr canonicalises host:port for comparisons (case, spaces).
func normAddr(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if h, p, err := net.SplitHostPort(a); err == nil {
		return net.JoinHostPort(h, p)
	}
	return a
}

// AdvertiseURL is the API's base URL as other nodes and clients should use
// it: AdvertiseHTTP when set, otherwise http://HOST:PORT with PORT from
// HTTPAddr and HOST from HTTPAddr when it names a host, else from the
// cluster's advertised address when that names one, else localhost. It is
// empty when HTTPAddr's port is 0 (only known once listening) or malformed.
func (c Config) AdvertiseURL() string {
	if c.AdvertiseHTTP != "" {
		return strings.TrimRight(c.AdvertiseHTTP, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if isUnspecified(host) {
		host = "localhost"
		if h, _, err := net.SplitHostPort(c.Cluster.Advertise()); err == nil && !isUnspecified(h) {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// SlogLevel is log_level as a slog.Level (info when invalid).
func (c Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Redacted returns a copy with the secrets (cluster.cluster_secret,
// cluster.cluster_secret_previous, admin_token) replaced by "[REDACTED]" when set.
func (c Config) Redacted() Config {
	if c.AdminToken != "" {
		c.AdminToken = redacted
	}
	c.Cluster = c.Cluster.Redacted()
	return c
}

// Redacted returns a copy with Secret and SecretPrevious replaced by
// "[REDACTED]" when set.
func (c Cluster) Redacted() Cluster {
	if c.Secret != "" {
		c.Secret = redacted
	}
	if c.SecretPrevious != "" {
		c.SecretPrevious = redacted
	}
	c.Seeds = append([]string(nil), c.Seeds...)
	return c
}

// String is the configuration as YAML with the secrets redacted.
func (c Config) String() string {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// GoString keeps %#v from printing the secrets.
func (c Config) GoString() string { return "config.Config(" + strconv.Quote(c.String()) + ")" }

// String is the cluster section as YAML with the secret redacted.
func (c Cluster) String() string {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// GoString keeps %#v from printing the secret.
func (c Cluster) GoString() string { return "config.Cluster(" + strconv.Quote(c.String()) + ")" }

// The JSON and slog forms are redacted too, so a Config can be logged or
// served without leaking the secrets. (YAML is the file format and is not
// redacted.)
type (
	plainConfig  Config
	plainCluster Cluster
)

// MarshalJSON encodes the redacted configuration.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(plainConfig(c.Redacted()))
}

// MarshalJSON encodes the redacted cluster section.
func (c Cluster) MarshalJSON() ([]byte, error) {
	return json.Marshal(plainCluster(c.Redacted()))
}

// LogValue logs the redacted configuration.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("data_dir", r.DataDir),
		slog.String("http_addr", r.HTTPAddr),
		slog.String("advertise_http", r.AdvertiseURL()),
		slog.String("log_format", r.LogFormat),
		slog.String("log_level", r.LogLevel),
		slog.String("admin_token", r.AdminToken),
		slog.Any("cluster", r.Cluster),
		slog.String("backup.archive_dir", r.Backup.ArchiveDir),
		slog.Int("backup.archive_interval_ms", r.Backup.ArchiveIntervalMS),
	)
}

// LogValue logs the redacted cluster section.
func (c Cluster) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.Bool("enabled", r.Enabled),
		slog.String("node_id", r.NodeID),
		slog.String("bind_addr", r.BindAddr),
		slog.String("advertise_addr", r.Advertise()),
		slog.String("seeds", strings.Join(r.Seeds, ",")),
		slog.String("cluster_secret", r.Secret),
		slog.String("cluster_secret_previous", r.SecretPrevious),
		slog.String("role", r.Role),
		slog.Int("priority", r.Priority),
		slog.Int("lease_ttl", r.LeaseTTLSeconds),
		slog.Int("heartbeat_ms", r.HeartbeatMS),
		slog.Int("snapshot_rate_mb", r.SnapshotRateMB),
		slog.Int("forward_wait_ms", r.ForwardWaitMS),
		slog.Int("decay_interval_s", r.DecayIntervalS),
		slog.Float64("decay_factor", r.DecayFactor),
		slog.Bool("tls", r.TLS.Enabled()),
	)
}
