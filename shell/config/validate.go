package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
)

// resolve normalises spellings and fills the derived fields.
func (c *Config) resolve() {
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.Cluster.Role = strings.ToLower(strings.TrimSpace(c.Cluster.Role))
	if c.Cluster.Role == "" {
		c.Cluster.Role = DefaultRole
	}
	for i, s := range c.Cluster.Seeds {
		c.Cluster.Seeds[i] = strings.TrimSpace(s)
	}
	if c.Cluster.AdvertiseAddr == "" {
		c.Cluster.AdvertiseAddr = c.Cluster.BindAddr
	}
	if c.AdvertiseHTTP == "" {
		c.AdvertiseHTTP = c.AdvertiseURL()
	}
}

// Validate checks every rule of docs/configuration.md and returns all the
// problems found, joined (each a *FieldError), or nil. Load calls it; call
// it yourself on a Config built or changed in code.
func (c Config) Validate() error {
	errs := c.validate(nil, nil)
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// validator collects problems, phrasing each as
// "KEY = VALUE (where it came from) PROBLEM: FIX".
type validator struct {
	c       *Config
	from    map[string]string
	secrets []string // never shown: see user
	errs    []*FieldError
}

// user is a value the user gave, "[REDACTED]" when it holds a secret.
func (v *validator) user(s string) string { return redactValue(s, v.secrets) }

func (v *validator) subject(path string) string {
	k := byPath[path]
	s := path
	if !k.secret {
		s += " = " + v.valueText(k.ptr(v.c))
	}
	if src := v.from[path]; src != "" {
		s += " (" + src + ")"
	}
	return s
}

func (v *validator) valueText(p any) string {
	switch p := p.(type) {
	case *string:
		s := *p
		if v.user(s) != s {
			return redacted
		}
		if len(s) > 80 {
			s = s[:80] + "..."
		}
		return strconv.Quote(s)
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *[]string:
		q := make([]string, len(*p))
		for i, s := range *p {
			q[i] = strconv.Quote(s)
			if v.user(s) != s {
				q[i] = redacted
			}
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return "?"
}

// bad reports a problem with a key's value.
func (v *validator) bad(path, format string, a ...any) {
	v.errs = append(v.errs, &FieldError{Key: path, Msg: v.subject(path) + " " + fmt.Sprintf(format, a...)})
}

// missing reports a key that must be set.
func (v *validator) missing(path, format string, a ...any) {
	v.errs = append(v.errs, &FieldError{Key: path, Msg: path + " " + fmt.Sprintf(format, a...)})
}

// validate checks c; from says where each value came from, and secrets
// lists secret values given (besides c's own) that no message may show.
func (c Config) validate(from map[string]string, secrets []string) []*FieldError {
	v := &validator{c: &c, from: from, secrets: append(c.secretValues(), secrets...)}
	cl := &c.Cluster

	if strings.TrimSpace(c.DataDir) == "" {
		v.missing("data_dir", "is empty: set data_dir or MUNINN_DATA_DIR to the directory for the node's data (default %s)", DefaultDataDir)
	} else if strings.ContainsRune(c.DataDir, 0) {
		v.bad("data_dir", "contains a NUL byte: use a plain path")
	}
	v.listenAddr("http_addr", c.HTTPAddr, "8475")
	if c.AdvertiseHTTP != "" {
		if msg := checkURL(c.AdvertiseHTTP); msg != "" {
			v.bad("advertise_http", "%s: write the API's base URL as other nodes and clients reach it, e.g. http://10.0.1.10:8475", msg)
		}
	}
	switch strings.ToLower(c.LogFormat) {
	case "auto", "text", "json":
	default:
		v.bad("log_format", "is not a log format: use auto (colour text on a terminal, JSON otherwise), text or json")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		v.bad("log_level", "is not a log level: use debug, info, warn or error")
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinSecretLen {
		v.bad("admin_token", "is too short: use at least %d bytes; generate one with: openssl rand -hex 32", MinSecretLen)
	}

	// cluster: values, checked whether or not cluster mode is on.
	if cl.NodeID != "" && !validNodeID(cl.NodeID) {
		v.bad("cluster.node_id", "is not a valid node id: use %s, e.g. \"muninn-01\" (it names directories and travels in the handshake)", ident.NodeIDRule)
	}
	v.listenAddr("cluster.bind_addr", cl.BindAddr, "8474")
	if cl.AdvertiseAddr != "" && cl.AdvertiseAddr != cl.BindAddr {
		if msg := checkAddr(cl.AdvertiseAddr, false, false); msg != "" {
			v.bad("cluster.advertise_addr", "%s: write the address other nodes dial, as host:port, e.g. 10.0.1.10:8474", msg)
		}
	}
	for _, s := range cl.Seeds {
		if msg := checkAddr(s, false, false); msg != "" {
			v.bad("cluster.seeds", "has %s, which %s: write each seed as host:port, e.g. 10.0.1.11:8474", v.quote(s), msg)
		}
	}
	if cl.Secret != "" && len(cl.Secret) < MinSecretLen {
		v.bad("cluster.cluster_secret", "is too short: use at least %d bytes, the same on every node; generate one with: openssl rand -hex 32", MinSecretLen)
	}
	if cl.SecretPrevious != "" && len(cl.SecretPrevious) < MinSecretLen {
		v.bad("cluster.cluster_secret_previous", "is too short: it must be the secret being retired (at least %d bytes); remove it once every node has the new cluster.cluster_secret", MinSecretLen)
	}
	if cl.SecretPrevious != "" && cl.Secret == "" {
		v.missing("cluster.cluster_secret", "is empty but cluster.cluster_secret_previous is set: during a rotation set cluster.cluster_secret to the new secret and cluster.cluster_secret_previous to the old one")
	}
	if _, err := core.ParseKind(strings.ToLower(strings.TrimSpace(cl.Role))); err != nil {
		v.bad("cluster.role", "is not a role: use auto (holds data, votes, may become Cortex), sentinel (votes only) or observer (read-only replica)")
	}
	hbOK := true
	if cl.HeartbeatMS < MinHeartbeatMS || cl.HeartbeatMS > MaxHeartbeatMS {
		hbOK = false
		v.bad("cluster.heartbeat_ms", "is out of range: set it between %d and %d milliseconds (default %d)", MinHeartbeatMS, MaxHeartbeatMS, DefaultHeartbeatMS)
	}
	switch {
	case cl.LeaseTTLSeconds <= 0 || cl.LeaseTTLSeconds > MaxLeaseTTL:
		v.bad("cluster.lease_ttl", "is out of range: set it between 1 and %d seconds (default %d)", MaxLeaseTTL, DefaultLeaseTTL)
	case hbOK && int64(cl.LeaseTTLSeconds)*1000 < 2*int64(cl.HeartbeatMS):
		// The core's rule: lease_ttl caps the SDOWN window, which must
		// span two heartbeats or a live Cortex is taken for down between
		// two of them.
		need := (2*cl.HeartbeatMS + 999) / 1000
		v.bad("cluster.lease_ttl", "is shorter than 2 × cluster.heartbeat_ms = %d (%d ms): a live Cortex would be taken for down between two heartbeats; raise cluster.lease_ttl to at least %d or lower cluster.heartbeat_ms to at most %d", cl.HeartbeatMS, 2*cl.HeartbeatMS, need, cl.LeaseTTLSeconds*500)
	}
	if cl.Priority < 0 || cl.Priority > MaxPriority {
		v.bad("cluster.priority", "is out of range: set it between 0 and %d (default %d); among equally up-to-date candidates the lower number becomes Cortex first, and 0 never does", MaxPriority, DefaultPriority)
	}
	if cl.SnapshotRateMB <= 0 || cl.SnapshotRateMB > MaxSnapshotRateMB {
		v.bad("cluster.snapshot_rate_mb", "is out of range: set it between 1 and %d MB/s (default %d)", MaxSnapshotRateMB, DefaultSnapshotRateMB)
	}
	if cl.ForwardWaitMS <= 0 || cl.ForwardWaitMS > MaxForwardWaitMS {
		v.bad("cluster.forward_wait_ms", "is out of range: set it between 1 and %d milliseconds (default %d)", MaxForwardWaitMS, DefaultForwardWaitMS)
	}
	if cl.DecayIntervalS <= 0 || cl.DecayIntervalS > MaxDecayIntervalS {
		v.bad("cluster.decay_interval_s", "is out of range: set it between 1 and %d seconds (default %d)", MaxDecayIntervalS, DefaultDecayIntervalS)
	}
	if math.IsNaN(cl.DecayFactor) || cl.DecayFactor <= 0 || cl.DecayFactor >= 1 {
		v.bad("cluster.decay_factor", "is out of range: set it above 0 and below 1 (default %g; each interval multiplies activations by it)", DefaultDecayFactor)
	}
	v.tls()
	v.backup()

	if cl.Enabled {
		v.clusterMode()
	}
	return v.errs
}

func (v *validator) tls() {
	t := v.c.Cluster.TLS
	if t.Enabled() {
		// MBP runs mutual TLS against a cluster CA: all three files or none.
		for _, p := range []string{"cluster.tls.cert", "cluster.tls.key", "cluster.tls.ca"} {
			if *byPath[p].ptr(v.c).(*string) == "" {
				v.missing(p, "is empty but other cluster.tls keys are set: MBP TLS needs cluster.tls.cert (this node's certificate), cluster.tls.key (its private key) and cluster.tls.ca (the cluster CA bundle) together, or none of them")
			}
		}
	}
	for _, p := range []string{"cluster.tls.cert", "cluster.tls.key", "cluster.tls.ca"} {
		name := *byPath[p].ptr(v.c).(*string)
		if name == "" {
			continue
		}
		if st, err := os.Stat(name); err != nil {
			v.bad(p, "cannot be read (%v): give the path of a PEM file", errors.Unwrap(err))
		} else if st.IsDir() {
			v.bad(p, "is a directory: give the path of a PEM file")
		}
	}
}

// backup checks the backup: section.
func (v *validator) backup() {
	b := v.c.Backup
	if b.ArchiveIntervalMS < MinArchiveIntervalMS || b.ArchiveIntervalMS > MaxArchiveIntervalMS {
		v.bad("backup.archive_interval_ms", "is out of range: set it between %d and %d milliseconds (default %d)", MinArchiveIntervalMS, MaxArchiveIntervalMS, DefaultArchiveIntervalMS)
	}
	if b.ArchiveDir == "" {
		return
	}
	if strings.ContainsRune(b.ArchiveDir, 0) {
		v.bad("backup.archive_dir", "contains a NUL byte: use a plain path")
		return
	}
	if inside(b.ArchiveDir, v.c.DataDir) {
		v.bad("backup.archive_dir", "is inside data_dir %s: the archive must outlive the node's data (a wiped or restored data directory would take it along); use a directory outside it, ideally on another disk or a mounted share", strconv.Quote(v.c.DataDir))
	}
}

// inside reports whether path is dir or below it (both made absolute and
// clean; symlinks are not followed).
func inside(path, dir string) bool {
	if dir == "" {
		return false
	}
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	return p == d || strings.HasPrefix(p, d+string(filepath.Separator)) || d == string(filepath.Separator)
}

func (v *validator) clusterMode() {
	cl := &v.c.Cluster
	if cl.NodeID == "" {
		v.missing("cluster.node_id", "is required when cluster.enabled is true: set cluster.node_id or MUNINN_CLUSTER_NODE_ID to a name unique in the cluster and stable across restarts, e.g. \"muninn-01\"")
	}
	if cl.Secret == "" {
		v.missing("cluster.cluster_secret", "is required when cluster.enabled is true: set cluster.cluster_secret or MUNINN_CLUSTER_SECRET, the same on every node; generate one with: openssl rand -hex 32")
	}
	adv := cl.Advertise()
	advKey := "cluster.advertise_addr"
	if cl.AdvertiseAddr == "" || cl.AdvertiseAddr == cl.BindAddr {
		advKey = "cluster.bind_addr"
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return // reported above
	}
	peers := cl.PeerSeeds()
	var remote []string
	for _, s := range peers {
		if h, _, err := net.SplitHostPort(s); err == nil && !isLocal(h) {
			remote = append(remote, s)
		}
	}
	if len(remote) > 0 && isLocal(host) {
		what := "is not an address other hosts can reach"
		if isLoopback(host) {
			what = "is a loopback address"
		}
		if advKey == "cluster.bind_addr" {
			v.bad(advKey, "%s, but cluster.seeds lists nodes on other hosts (%s): set cluster.bind_addr to this node's LAN IP, e.g. 10.0.1.10:8474 (do not use 0.0.0.0 or localhost in a multi-node cluster), or keep it and set cluster.advertise_addr to the host:port other nodes should dial", what, v.user(remote[0]))
		} else {
			v.bad(advKey, "%s, but cluster.seeds lists nodes on other hosts (%s): set cluster.advertise_addr to this node's LAN IP and port, e.g. 10.0.1.10:8474", what, v.user(remote[0]))
		}
	}
	if port == "0" {
		v.bad(advKey, "has port 0, which other nodes cannot dial: set a fixed port (default 8474) or set cluster.advertise_addr")
	}
	if k := cl.Kind(); k != core.KindAuto && len(peers) == 0 {
		v.bad("cluster.role", "needs cluster.seeds: a %s cannot start a cluster on its own; list the data nodes in cluster.seeds", k)
	}
	if cl.Kind() == core.KindAuto && cl.NeverCortex() && len(peers) == 0 {
		v.bad("cluster.priority", "needs cluster.seeds: a node that never becomes Cortex cannot start a cluster on its own; list the other data nodes in cluster.seeds, or set cluster.priority between 1 and %d (default %d)", MaxPriority, DefaultPriority)
	}
}

// Warnings lists advice that is not an error: settings that are allowed but
// probably not what the operator wants. The node logs them at startup.
func (c Config) Warnings() []string {
	var w []string
	cl := c.Cluster
	if c.Backup.ArchiveDir != "" && cl.Enabled && cl.Kind() == core.KindSentinel {
		w = append(w, "backup.archive_dir is set but cluster.role is sentinel: a Sentinel holds no log to archive, so it archives nothing; the data nodes do")
	}
	if !cl.Enabled {
		if len(cl.Seeds) > 0 {
			w = append(w, "cluster.seeds is set but cluster.enabled is false: the seeds are ignored until cluster mode is enabled")
		}
		if cl.Kind() != core.KindAuto {
			w = append(w, fmt.Sprintf("cluster.role is %s but cluster.enabled is false: the role is ignored in standalone mode", cl.Kind()))
		}
		if cl.Priority != DefaultPriority {
			w = append(w, fmt.Sprintf("cluster.priority is %d but cluster.enabled is false: the priority is ignored in standalone mode", cl.Priority))
		}
		return w
	}
	if k := cl.Kind(); k != core.KindAuto && cl.Priority != DefaultPriority {
		// Warned, not refused: a config shared by every node may set it.
		w = append(w, fmt.Sprintf("cluster.priority is %d but cluster.role is %s: a %s never becomes Cortex, so the priority is ignored; remove cluster.priority from its config", cl.Priority, k, k))
	}
	if h, _, err := net.SplitHostPort(cl.Advertise()); err == nil && isUnspecified(h) {
		w = append(w, fmt.Sprintf("cluster.bind_addr %s names no host, so other nodes cannot be told how to reach this one: set cluster.bind_addr to this node's LAN IP (or set cluster.advertise_addr) before adding nodes", quoteValue(cl.Advertise(), c.secretValues())))
	}
	switch cl.Secret {
	case "replace-with-a-strong-secret", "your-shared-secret":
		w = append(w, "cluster.cluster_secret is the documentation's example value: generate a real one with: openssl rand -hex 32")
	}
	if cl.SecretPrevious != "" && cl.SecretPrevious == cl.Secret {
		w = append(w, "cluster.cluster_secret_previous is the same as cluster.cluster_secret: it has no effect; set cluster.cluster_secret to the new secret, or remove cluster.cluster_secret_previous")
	}
	if cl.Secret != strings.TrimSpace(cl.Secret) {
		w = append(w, "cluster.cluster_secret starts or ends with whitespace: every node must have exactly the same bytes; check it is not a stray newline")
	}
	remote := false
	for _, s := range cl.PeerSeeds() {
		if h, _, err := net.SplitHostPort(s); err == nil && !isLocal(h) {
			remote = true
		}
	}
	if remote {
		if u, err := url.Parse(c.AdvertiseURL()); err == nil && isLocal(u.Hostname()) {
			w = append(w, fmt.Sprintf("advertise_http is %s but the cluster spans hosts: clients sent to this node will not reach it; set advertise_http or give http_addr a LAN IP", quoteValue(c.AdvertiseURL(), c.secretValues())))
		}
	}
	return w
}

// listenAddr checks a listen address: host:port, host optional, port 0-65535.
func (v *validator) listenAddr(path, a, defPort string) {
	if msg := checkAddr(a, true, true); msg != "" {
		v.bad(path, "%s: write it as host:port, e.g. 10.0.1.10:%s, or :%s for every interface", msg, defPort, defPort)
	}
}

// checkAddr returns why a is not a valid host:port, or "". Listen addresses
// may omit the host (anyHost) and use port 0 (anyPort).
func checkAddr(a string, anyHost, anyPort bool) string {
	if a == "" {
		return "is empty"
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return "has no port"
		}
		return "is not a host:port address"
	}
	if host == "" && !anyHost {
		return "has no host"
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return "has an invalid host name"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (port != strconv.Itoa(n)) {
		return "has an invalid port (use 1-65535)"
	}
	if n == 0 && !anyPort {
		return "has port 0 (use 1-65535)"
	}
	return ""
}

func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "is not a URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must start with http:// or https://"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "has no host"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "has an invalid port (use 1-65535)"
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "must be just scheme://host:port"
	}
	return ""
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validNodeID is the node id rule shared with the admin API and the MBP
// handshake (shell/ident).
func validNodeID(id string) bool { return ident.CheckNodeID(id) == nil }

// isUnspecified: no host, 0.0.0.0 or ::.
func isUnspecified(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

func isLoopback(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// isLocal: a host other machines cannot reach this node by.
func isLocal(h string) bool { return isUnspecified(h) || isLoopback(h) }

// secretValues lists c's secret values, which no message may show.
func (c *Config) secretValues() []string {
	return []string{c.Cluster.Secret, strings.TrimSpace(c.Cluster.Secret), c.Cluster.SecretPrevious, strings.TrimSpace(c.Cluster.SecretPrevious), c.AdminToken, strings.TrimSpace(c.AdminToken)}
}

// quote is a user's value for a message: quoted and cut short, or
// "[REDACTED]" when it holds a secret.
func (v *validator) quote(s string) string { return quoteValue(s, v.secrets) }

func quoteValue(s string, secrets []string) string {
	if redactValue(s, secrets) != s {
		return redacted
	}
	return strconv.Quote(trunc(s))
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
