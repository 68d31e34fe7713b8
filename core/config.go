package core

import (
	"errors"
	"fmt"
	"time"
)

// Defaults from the seed (clustering.txt) and the design.
const (
	DefaultHeartbeat   = 1000 * time.Millisecond // cluster.heartbeat_ms
	MissedBeats        = 3                       // SDOWN after 3 missed heartbeats
	DefaultQuorumLoss  = 5 * time.Second         // quorum self-demotion
	DefaultLeaseTTL    = 10 * time.Second        // cluster.lease_ttl
	DefaultBatchDelay  = 5 * time.Millisecond    // replication batch window
	DefaultBatchSize   = 100                     // entries per batch
	DefaultMaxInflight = 8                       // unacknowledged appends per peer
	DefaultLogTail     = 10000                   // entries kept below every member's match
	DefaultPriority    = 100                     // cluster.priority
	MaxPriority        = 1000                    // cluster.priority
)

// Config is a node's static configuration.
type Config struct {
	ID   NodeID
	Kind Kind
	// Heartbeat is cluster.heartbeat_ms.
	Heartbeat time.Duration
	// LeaseTTL is cluster.lease_ttl: it caps the SDOWN window, so a silent
	// Cortex is never in charge longer than this, whatever Heartbeat is. It
	// is at least two heartbeats (Validate).
	LeaseTTL time.Duration
	// Priority is cluster.priority among equally fresh candidates: lower
	// runs first (rule 4). 0 here means DefaultPriority; NeverCortex is
	// cluster.priority 0.
	Priority int
	// NeverCortex: this data voter votes and holds data but never runs.
	NeverCortex bool
	// QuorumLoss is how long a Cortex keeps going without a quorum's echo.
	QuorumLoss time.Duration
	// BatchDelay and BatchSize are the replication batching rule.
	BatchDelay time.Duration
	BatchSize  int
	// MaxInflight caps unacknowledged appends per peer.
	MaxInflight int
	// LogTail is how many entries are kept below what every member has.
	LogTail int
	// Seed seeds the election jitter; a driver draws it from its own source.
	Seed uint64
	// Bootstrap is the first voter set, used only when nothing is persisted.
	Bootstrap Members
	// Store is the identity of this node's store (rule 16): minted when the
	// store was created, so a wiped store comes back with a new one. 0 means
	// unknown (tests that model no identities).
	Store uint64
	// Addr is this node's advertised MBP address, recorded in the
	// membership so every member can reach it (rule 15).
	Addr string
	// Broken selects a deliberately broken protocol variant (simulator
	// canaries only; the node refuses it).
	Broken Broken
}

// Broken names a deliberately broken variant used to prove the checkers.
type Broken uint8

const (
	BrokenNone Broken = iota
	// BrokenNoLogCheck: voters skip the up-to-date check of rule 5.
	BrokenNoLogCheck
	// BrokenNoDemotion: a Cortex never demotes itself (rule 11).
	BrokenNoDemotion
	// BrokenNoStoreCheck: a member counts whatever store it reports, so a
	// wiped voter votes (rule 16).
	BrokenNoStoreCheck
	// BrokenTrustHint: a crash hint starts an election at once, without
	// ODOWN, and votes report no lease to wait out (rule 18).
	BrokenTrustHint
)

// WithDefaults fills zero fields with the defaults.
func (c Config) WithDefaults() Config {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.QuorumLoss == 0 {
		c.QuorumLoss = DefaultQuorumLoss
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = DefaultBatchDelay
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.LogTail == 0 {
		c.LogTail = DefaultLogTail
	}
	return c
}

// Validate checks a Config after WithDefaults.
func (c Config) Validate() error {
	if c.ID == "" {
		return errors.New("node id is empty: set cluster.node_id")
	}
	if len(c.ID) > MaxNodeIDLen {
		return fmt.Errorf("node id %q is longer than %d bytes", c.ID, MaxNodeIDLen)
	}
	if c.Heartbeat < time.Millisecond {
		return fmt.Errorf("heartbeat %v is below 1ms: set cluster.heartbeat_ms >= 1", c.Heartbeat)
	}
	if c.LeaseTTL < 2*c.Heartbeat {
		return fmt.Errorf("lease_ttl %v is below two heartbeats (%v): a Cortex would be taken for dead between two heartbeats; raise cluster.lease_ttl or lower cluster.heartbeat_ms", c.LeaseTTL, 2*c.Heartbeat)
	}
	if c.Priority < 1 || c.Priority > MaxPriority {
		return fmt.Errorf("priority %d is out of range: use 1 to %d (or NeverCortex for cluster.priority 0)", c.Priority, MaxPriority)
	}
	return nil
}

// DownAfter is the SDOWN window: 3 missed heartbeats, capped by LeaseTTL.
func (c Config) DownAfter() time.Duration {
	return min(MissedBeats*c.Heartbeat, c.LeaseTTL)
}

// Lease is how long after a quorum's echo of its send time the Cortex may
// serve strong reads alone (rule 12), and so how long a Cortex elected on
// crash hints waits before it commits (rule 18): half a heartbeat, so that
// wait fits in a fast failover. The Cortex beats every LeaseBeat to keep it.
func (c Config) Lease() time.Duration { return min(c.Heartbeat/2, c.DownAfter()) }

// LeaseBeat is the Cortex's heartbeat period: a lease renewed every
// LeaseBeat never lapses between heartbeats on a healthy cluster.
func (c Config) LeaseBeat() time.Duration { return max(c.Lease()/2, time.Millisecond) }

// DriftMargin is subtracted from leases: clocks may run up to 5% apart.
func (c Config) DriftMargin() time.Duration { return c.Lease() / 10 }
