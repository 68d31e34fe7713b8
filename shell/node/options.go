// Package node is the runner: one goroutine owns the protocol core and
// drives it with real time, the Pebble store and the MBP transport, in the
// order core.Ready prescribes. Everything else (HTTP handlers, the decay
// worker, snapshot streams) talks to it through channels.
package node

import (
	"log/slog"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/mbp"
)

// Options configure a Node.
type Options struct {
	ID      core.NodeID
	Kind    core.Kind
	DataDir string
	// Cluster is false for a standalone node: a one-voter cluster of itself,
	// the same code path with no transport.
	Cluster bool
	// Secret authenticates MBP peers (cluster mode).
	Secret []byte
	// SecretPrevious is cluster.cluster_secret_previous: also accepted
	// from peers during a secret rotation (nil: none).
	SecretPrevious []byte
	// BindAddr is the MBP listen address; AdvertiseAddr what peers dial.
	BindAddr      string
	AdvertiseAddr string
	// APIAddr is this node's REST API URL, told to peers so Lobes can
	// forward to the Cortex.
	APIAddr string
	// Seeds are peer MBP addresses to dial.
	Seeds []string
	// TLS, when set, wraps MBP in mutual TLS (cluster.tls).
	TLS *mbp.TLSFiles

	Heartbeat time.Duration
	LeaseTTL  time.Duration
	// Priority is cluster.priority, 0 meaning the default; NeverCortex is
	// cluster.priority 0 (cluster mode only: standalone is its own Cortex).
	Priority       int
	NeverCortex    bool
	SnapshotRateMB int
	// ForwardWait bounds how long a write waits for a Cortex to be known.
	ForwardWait time.Duration
	// RequestWait bounds how long a request handed to the loop waits for
	// its answer (docs/api.md, "What each answer guarantees").
	RequestWait time.Duration
	// DecayInterval and DecayFactor drive the Cortex-only decay worker
	// (interval 0: off).
	DecayInterval time.Duration
	DecayFactor   float64
	// ArchiveDir, when set, makes a data node archive its committed log
	// there every ArchiveInterval (backup.archive_dir; archive.go).
	ArchiveDir      string
	ArchiveInterval time.Duration

	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Heartbeat == 0 {
		o.Heartbeat = core.DefaultHeartbeat
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = core.DefaultLeaseTTL
	}
	if o.ForwardWait == 0 {
		o.ForwardWait = 5 * time.Second
	}
	if o.RequestWait == 0 {
		o.RequestWait = DefaultRequestWait
	}
	if o.SnapshotRateMB == 0 {
		o.SnapshotRateMB = 100
	}
	if o.DecayFactor == 0 {
		o.DecayFactor = 0.95
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AdvertiseAddr == "" {
		o.AdvertiseAddr = o.BindAddr
	}
	if o.ID == "" && !o.Cluster {
		o.ID = "standalone"
	}
}
