package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/ident"
	"github.com/muninndb/muninn/shell/node"
)

// EnableRequest and ModeResult live in apitypes, shared with the Go
// client.
type (
	EnableRequest = apitypes.EnableRequest
	ModeResult    = apitypes.ModeResult
)

// cortexWait bounds how long enable waits for the new one-voter cluster to
// elect its Cortex before answering.
const cortexWait = 15 * time.Second

// POST /v1/cluster/enable: a running standalone node becomes the Cortex of
// a one-voter cluster under node_id, keeping its data (node/mode.go).
func (s *Server) handleEnable(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	if err := s.canSwitch(node.ModeChange{Cluster: true}); err != nil {
		return err
	}
	var req EnableRequest
	if len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	if req.NodeID == "" {
		return badRequest("node_id: required: the node's cluster.node_id from now on (%s); muninn cluster enable --node-id ID", ident.NodeIDRule)
	}
	if err := ident.CheckNodeID(req.NodeID); err != nil {
		return badRequest("node_id: %s is not a valid node id (%v): use %s, the rule of cluster.node_id", quoteID(req.NodeID), strings.TrimPrefix(err.Error(), ident.ErrInvalid.Error()+": "), ident.NodeIDRule)
	}
	if req.BindAddr == "" {
		return badRequest("bind_addr: required: the MBP listen address, host:port (this node's LAN IP and port 8474, e.g. 10.0.1.5:8474); muninn cluster enable --bind-addr HOST:PORT")
	}
	for _, a := range []struct{ key, v string }{{"bind_addr", req.BindAddr}, {"advertise_addr", req.AdvertiseAddr}} {
		if a.v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			return badRequest("%s: %q is not host:port (e.g. 10.0.1.5:8474)", a.key, a.v)
		}
	}
	return s.switchMode(w, r, node.ModeChange{Cluster: true, ID: core.NodeID(req.NodeID), BindAddr: req.BindAddr,
		AdvertiseAddr: req.AdvertiseAddr, Secret: req.ClusterSecret})
}

// POST /v1/cluster/disable: the Cortex of a one-voter cluster becomes a
// standalone node, keeping its data and node id. Refused (409) while the
// membership names other nodes.
func (s *Server) handleDisable(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.checkAdmin(r, body); err != nil {
		return err
	}
	if err := s.canSwitch(node.ModeChange{Cluster: false}); err != nil {
		return err
	}
	if len(body) > 0 {
		var none struct{}
		if err := decodeJSON(body, &none); err != nil {
			return err
		}
	}
	return s.switchMode(w, r, node.ModeChange{Cluster: false})
}

// canSwitch answers what refuses a switch before its settings are read: the
// node's state (409), and a process that cannot switch a running node
// (501 with the restart procedure).
func (s *Server) canSwitch(c node.ModeChange) error {
	if err := modeAPIError(s.n.CheckModeChange(c)); err != nil {
		return err
	}
	if !s.n.CanSwitch() {
		return noSwitcher(c, s.n.ID())
	}
	return nil
}

func noSwitcher(c node.ModeChange, id core.NodeID) error {
	proc := DisableProcedure(string(id))
	if c.Cluster {
		proc = EnableProcedure(string(id))
	}
	return &apiError{status: http.StatusNotImplemented, code: apitypes.CodeNotImplemented, msg: proc}
}

func (s *Server) switchMode(w http.ResponseWriter, r *http.Request, c node.ModeChange) error {
	old := s.n.ID()
	start := time.Now()
	n, err := s.n.SwitchMode(r.Context(), c)
	if err != nil {
		if errors.Is(err, node.ErrNoSwitcher) {
			return noSwitcher(c, old)
		}
		if e := modeAPIError(err); e != nil {
			return e
		}
		return &apiError{status: http.StatusInternalServerError, code: apitypes.CodeInternal, msg: err.Error()}
	}
	mode := node.ModeStandalone
	if c.Cluster {
		mode = node.ModeCluster
		// The one-voter cluster elects itself within an SDOWN window.
		ctx, cancel := context.WithTimeout(r.Context(), cortexWait)
		for ctx.Err() == nil && n.Status().Core.Role != core.RoleCortex {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
	}
	st := n.Status().Core
	res := ModeResult{NodeID: string(n.ID()), Mode: mode, Role: st.Role.String(), Cortex: string(st.Cortex), Epoch: uint64(st.Epoch),
		LastSeq: uint64(st.Last.Seq), CommitSeq: uint64(st.Commit.Seq), Members: []string{},
		Recorded: node.ModePath(n.Options().DataDir), SwitchMs: time.Since(start).Milliseconds()}
	if o := n.Options(); o.Cluster {
		res.MBPAddr = o.AdvertiseAddr
	}
	for _, m := range st.Members {
		res.Members = append(res.Members, string(m.ID))
	}
	s.log.Info(fmt.Sprintf("cluster mode %s on %s (was %s): role %s, epoch %d, last seq %d", map[bool]string{true: "enabled", false: "disabled"}[c.Cluster], n.ID(), old, st.Role, st.Epoch, st.Last.Seq))
	writeJSON(w, http.StatusOK, res)
	return nil
}

// modeAPIError maps a *node.ModeError to the API's answer (nil for nil).
func modeAPIError(err error) error {
	if err == nil {
		return nil
	}
	var me *node.ModeError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Status {
	case http.StatusBadRequest:
		return &apiError{status: me.Status, code: apitypes.CodeBadRequest, msg: me.Msg}
	case http.StatusConflict:
		return &apiError{status: me.Status, code: apitypes.CodeConflict, msg: me.Msg}
	case http.StatusServiceUnavailable:
		return &apiError{status: me.Status, code: apitypes.CodeUnavailable, msg: me.Msg}
	case http.StatusNotImplemented:
		return &apiError{status: me.Status, code: apitypes.CodeNotImplemented, msg: me.Msg}
	}
	return &apiError{status: http.StatusInternalServerError, code: apitypes.CodeInternal, msg: me.Msg}
}

// EnableProcedure and DisableProcedure are the restart-based procedures
// that switch a node's mode, the answer (501) of a node whose process
// cannot switch it while running (one embedded in another program; muninn
// start can). The node keeps its id: its data and membership are recorded
// under it.
func EnableProcedure(id string) string {
	return "this process cannot switch the node to cluster mode while it runs; do it by a restart: " + EnableRestartSteps(id)
}

// EnableRestartSteps are EnableProcedure's numbered steps.
func EnableRestartSteps(id string) string {
	return "(1) stop the node (SIGTERM; it shuts down cleanly); " +
		fmt.Sprintf("(2) add to its config: cluster.enabled: true, cluster.node_id (keep %q, or pick a new id: a single node's data is carried over to it), ", id) +
		"cluster.bind_addr (its LAN IP:8474) and cluster.cluster_secret, with no seeds (it is the first node); " +
		"(3) start it with muninn start --config FILE: it comes back with its data as the Cortex of a one-node cluster; " +
		"(4) start each new node with seeds pointing at it and add it with muninn cluster add-node --node ID; " +
		"it receives a snapshot and becomes a voter once caught up"
}

func DisableProcedure(id string) string {
	return "this process cannot switch the node to standalone while it runs; do it by a restart: " +
		fmt.Sprintf("(1) if %s is not the Cortex, hand off to it (muninn cluster failover --yes --to %s); ", id, id) +
		"(2) remove every other member (muninn cluster remove-node --node ID --yes) and stop them; " +
		fmt.Sprintf("(3) stop this node, set cluster.enabled: false in its config (keep cluster.node_id: %q), and start it again: it keeps its data and runs standalone", id)
}
