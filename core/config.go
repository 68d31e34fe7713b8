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
)

// Config is a node's static configuration.
type Config struct {
	ID   NodeID
	Kind Kind
	// Heartbeat is cluster.heartbeat_ms.
	Heartbeat time.Duration
	// LeaseTTL is cluster.lease_ttl: it caps the SDOWN window, so a dead
	// Cortex is never in charge longer than this, whatever Heartbeat is.
	LeaseTTL time.Duration
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
)

// WithDefaults fills zero fields with the defaults.
func (c Config) WithDefaults() Config {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
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
	if c.LeaseTTL < c.Heartbeat {
		return fmt.Errorf("lease_ttl %v is below the heartbeat %v: raise cluster.lease_ttl", c.LeaseTTL, c.Heartbeat)
	}
	return nil
}

// DownAfter is the SDOWN window: 3 missed heartbeats, capped by LeaseTTL.
func (c Config) DownAfter() time.Duration {
	return min(MissedBeats*c.Heartbeat, c.LeaseTTL)
}

// DriftMargin is subtracted from leases: clocks may run up to 5% apart.
func (c Config) DriftMargin() time.Duration { return c.DownAfter() / 10 }
