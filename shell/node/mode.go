package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/muninndb/muninn/core"
)

// Switching modes on a running node (muninn cluster enable / disable).
//
// The node does not change mode in place: the process that runs it (muninn
// start) closes it cleanly and starts a new Node on the same data
// directory with the other mode's options, as a restart would, but keeping
// its HTTP listener; requests arriving meanwhile get 503 with Retry-After.
// The protocol needs nothing new: a store that ran alone and comes back in
// cluster mode is a one-voter cluster (adoptStandalone renames its single
// member when the node id changes), and a one-voter cluster that comes back
// standalone is the same. The mode chosen is recorded in the data
// directory (ModeFile) so a restart keeps it.

// ModeFile is the file in the data directory that records the mode set by
// muninn cluster enable / disable.
const ModeFile = "cluster-mode.json"

// maxModeFile bounds the recorded mode's size when read.
const maxModeFile = 64 << 10

// Mode names in the recorded file.
const (
	ModeCluster    = "cluster"
	ModeStandalone = "standalone"
)

// RecordedMode is the content of ModeFile.
type RecordedMode struct {
	// Mode is "cluster" or "standalone".
	Mode string `json:"mode"`
	// NodeID is the node id the data is recorded under.
	NodeID string `json:"node_id"`
	// BindAddr and AdvertiseAddr are the MBP addresses given to enable.
	BindAddr      string `json:"bind_addr,omitempty"`
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
	// Secret is the cluster secret given to enable, recorded only when the
	// node's config did not set one (the file is then 0600). Secret.
	Secret string `json:"cluster_secret,omitempty"`
	// At is when the mode was set, and By what set it.
	At time.Time `json:"at"`
	By string    `json:"by"`
}

// Cluster reports whether the recorded mode is cluster mode.
func (m RecordedMode) Cluster() bool { return m.Mode == ModeCluster }

// ModePath is the recorded mode's path in a data directory.
func ModePath(dataDir string) string { return filepath.Join(dataDir, ModeFile) }

// ReadMode reads the mode recorded in a data directory; ok is false when
// none is (the config file alone decides).
func ReadMode(dataDir string) (m RecordedMode, ok bool, err error) {
	path := ModePath(dataDir)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("reading the recorded cluster mode %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModeFile+1))
	if err != nil {
		return m, false, fmt.Errorf("reading the recorded cluster mode %s: %w", path, err)
	}
	if len(b) > maxModeFile {
		return m, false, fmt.Errorf("the recorded cluster mode %s is over %d bytes: it is not a file muninn wrote; remove it (the config file then decides the mode) or run muninn cluster enable/disable again", path, maxModeFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, false, fmt.Errorf("the recorded cluster mode %s is not valid JSON (%v): remove it (the config file then decides the mode) or run muninn cluster enable/disable again", path, err)
	}
	if m.Mode != ModeCluster && m.Mode != ModeStandalone {
		return m, false, fmt.Errorf("the recorded cluster mode %s: mode %q: want %q or %q; remove the file (the config file then decides the mode)", path, m.Mode, ModeCluster, ModeStandalone)
	}
	if m.NodeID == "" {
		return m, false, fmt.Errorf("the recorded cluster mode %s: node_id is empty; remove the file (the config file then decides the mode)", path)
	}
	if m.Cluster() && m.BindAddr == "" {
		return m, false, fmt.Errorf("the recorded cluster mode %s: mode cluster without bind_addr; remove the file (the config file then decides the mode)", path)
	}
	return m, true, nil
}

// WriteMode records m in the data directory atomically (temp file, fsync,
// rename, directory fsync), readable by the owner only since it may hold
// the cluster secret.
func WriteMode(dataDir string, m RecordedMode) error {
	path := ModePath(dataDir)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("recording the cluster mode in %s: %w (check data_dir is writable)", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("recording the cluster mode in %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("recording the cluster mode in %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the cluster mode in %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the cluster mode in %s: %w", path, err)
	}
	return syncDirOf(path)
}

// RemoveMode removes the recorded mode (a failed switch restoring "none").
func RemoveMode(dataDir string) error {
	path := ModePath(dataDir)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the recorded cluster mode %s: %w", path, err)
	}
	return syncDirOf(path)
}

func syncDirOf(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("fsync of the directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of the directory of %s: %w", path, err)
	}
	return nil
}

// ModeChange is what muninn cluster enable or disable asks for.
type ModeChange struct {
	// Cluster is true to enable cluster mode, false to disable it.
	Cluster bool
	// ID, BindAddr, AdvertiseAddr and Secret are enable's settings
	// (Secret empty: the node's configured cluster_secret).
	ID            core.NodeID
	BindAddr      string
	AdvertiseAddr string
	Secret        string
}

// Switcher carries out a mode change for the process that runs the node:
// it closes the node and returns the one started in its place. A
// *ModeError reports a refusal made before anything was stopped.
type Switcher func(ctx context.Context, c ModeChange) (*Node, error)

// ModeError is a mode change refused before the node was touched: Status
// is the HTTP status the API answers (400 bad settings, 409 conflict, 503
// busy).
type ModeError struct {
	Status int
	Msg    string
}

func (e *ModeError) Error() string { return e.Msg }

// SetSwitcher installs the process's Switcher (muninn start does).
func (n *Node) SetSwitcher(s Switcher) { n.switcher.Store(&s) }

// CanSwitch reports whether the process can switch this node's mode while
// it runs (a Switcher is installed).
func (n *Node) CanSwitch() bool { return n.switcher.Load() != nil }

// ErrNoSwitcher is SwitchMode's answer on a node run without a Switcher
// (embedded in a test or another program).
var ErrNoSwitcher = errors.New("this node's process cannot switch modes while running (it was not started by muninn start): restart it with cluster.enabled set as wanted")

// SwitchMode asks the process to switch this node's mode; it returns the
// node now serving. The caller checked what only the API knows (admin
// rights); the checks on the node's state are CheckModeChange's.
func (n *Node) SwitchMode(ctx context.Context, c ModeChange) (*Node, error) {
	if err := n.CheckModeChange(c); err != nil {
		return nil, err
	}
	s := n.switcher.Load()
	if s == nil {
		return nil, ErrNoSwitcher
	}
	return (*s)(ctx, c)
}

// CheckModeChange refuses a change the node's state does not allow:
// enabling on a cluster node, disabling on a standalone node, and
// disabling while the membership names other nodes (they are named), or
// while this node is not the Cortex of its one-voter cluster.
func (n *Node) CheckModeChange(c ModeChange) error {
	st := n.Status().Core
	if c.Cluster {
		if n.opts.Cluster {
			return &ModeError{Status: 409, Msg: fmt.Sprintf("cluster mode is already enabled on %s (%d member(s)); nothing to do", n.opts.ID, len(st.Members))}
		}
		if n.opts.Kind != core.KindAuto {
			return &ModeError{Status: 409, Msg: fmt.Sprintf("this node is a %s: only a data node can become the first node of a cluster", n.opts.Kind)}
		}
		return nil
	}
	if !n.opts.Cluster {
		return &ModeError{Status: 409, Msg: fmt.Sprintf("this node (%s) already runs standalone; nothing to do", n.opts.ID)}
	}
	var others []string
	for _, m := range st.Members {
		if m.ID != n.opts.ID {
			others = append(others, fmt.Sprintf("%s (%s)", m.ID, m.Kind))
		}
	}
	if len(others) > 0 {
		msg := fmt.Sprintf("cannot disable cluster mode on %s: the cluster has %d other member(s): %s. Remove each first (muninn cluster remove-node --node ID --yes, against the Cortex", n.opts.ID, len(others), joinComma(others))
		if st.Cortex != n.opts.ID && st.Cortex != "" {
			msg += fmt.Sprintf("; %s is not the Cortex: hand off to it first with muninn cluster failover --yes --to %s", n.opts.ID, n.opts.ID)
		}
		return &ModeError{Status: 409, Msg: msg + "), then run disable again"}
	}
	if _, ok := st.Members.Get(n.opts.ID); !ok {
		return &ModeError{Status: 409, Msg: fmt.Sprintf("cannot disable cluster mode on %s: it is not a member of the cluster it knows (joining, or removed); a node that was never added has no data of its own to keep: stop it instead", n.opts.ID)}
	}
	if st.Role != core.RoleCortex {
		return &ModeError{Status: 503, Msg: fmt.Sprintf("cannot disable cluster mode on %s yet: it is %s, not the Cortex of its one-node cluster (an election is under way); retry in a few seconds", n.opts.ID, st.Role)}
	}
	return nil
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
