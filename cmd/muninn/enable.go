package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/api"
	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/config"
	"github.com/muninndb/muninn/shell/node"
)

// ---------------------------------------------------------------- CLI

// EnableCmd is `muninn cluster enable`: the node at --addr, running
// standalone, becomes the Cortex of a one-node cluster under --node-id,
// keeping its data.
type EnableCmd struct {
	NodeID        string `name:"node-id" help:"The node's cluster.node_id from now on (its data is kept under it)." placeholder:"ID"`
	BindAddr      string `name:"bind-addr" help:"MBP listen address, host:port (this node's LAN IP and port 8474)." placeholder:"HOST:PORT"`
	AdvertiseAddr string `name:"advertise-addr" help:"MBP address other nodes dial (default: --bind-addr)." placeholder:"HOST:PORT"`
	SecretFile    string `name:"secret-file" help:"File holding the cluster secret (default: MUNINN_CLUSTER_SECRET in this environment, else the node's own cluster.cluster_secret)." type:"path" placeholder:"FILE"`
}

func (c EnableCmd) Run(g *Globals) error {
	if c.NodeID == "" || c.BindAddr == "" {
		return g.enableUsage()
	}
	req := api.EnableRequest{NodeID: c.NodeID, BindAddr: c.BindAddr, AdvertiseAddr: c.AdvertiseAddr}
	switch {
	case c.SecretFile != "":
		b, err := readSecretFile(c.SecretFile)
		if err != nil {
			return err
		}
		req.ClusterSecret = b
	default:
		req.ClusterSecret = envValue(g.Env, config.EnvVar("cluster.cluster_secret"))
	}
	var res api.ModeResult
	if err := g.postMode("/v1/cluster/enable", req, &res); err != nil {
		return g.modeError(err, "enabled")
	}
	if g.clus.JSON {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.Out, "Cluster mode enabled: %s is the %s of a one-node cluster (epoch %d), MBP on %s; its data is kept (last seq %d). The switch took %d ms.\n",
		res.NodeID, res.Role, res.Epoch, res.MBPAddr, res.LastSeq, res.SwitchMs)
	fmt.Fprintf(g.Out, "Recorded in %s: the node starts in cluster mode from now on (see docs/configuration.md; put the same settings in its config file).\n", res.Recorded)
	fmt.Fprintf(g.Out, "Next: start each new node with cluster.seeds: [%q] and the same cluster_secret, then run muninn cluster add-node --node ID against this node.\n", res.MBPAddr)
	return nil
}

// enableUsage answers enable without --node-id or --bind-addr: how to
// switch the running node, and the restart that does the same.
func (g *Globals) enableUsage() error {
	id := "standalone"
	ctx, cancel := g.ctx()
	defer cancel()
	if info, err := g.client().Info(ctx); err == nil && info.NodeID != "" {
		if info.ClusterEnabled {
			return fmt.Errorf("cluster mode was not enabled: %s already runs in cluster mode (muninn cluster info --addr %s)", info.NodeID, g.clus.Addr)
		}
		id = info.NodeID
	}
	fmt.Fprintf(g.Out, "To switch the running node to cluster mode now, name its node id and MBP address:\n  muninn cluster enable --addr %s --node-id muninn-01 --bind-addr 10.0.1.5:8474 --secret-file /etc/muninn/cluster-secret\n", g.clus.Addr)
	fmt.Fprintln(g.Out, numberedSteps("Or switch it by a restart: "+api.EnableRestartSteps(id)))
	return errors.New("cluster mode was not enabled: --node-id and --bind-addr are required to switch the running node (see above)")
}

// DisableCmd is `muninn cluster disable`: the node at --addr, alone in its
// cluster, becomes a standalone node, keeping its data and node id.
type DisableCmd struct{}

func (DisableCmd) Run(g *Globals) error {
	var res api.ModeResult
	if err := g.postMode("/v1/cluster/disable", nil, &res); err != nil {
		return g.modeError(err, "disabled")
	}
	if g.clus.JSON {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.Out, "Cluster mode disabled: %s runs standalone with its data (last seq %d); its MBP listener is closed. The switch took %d ms.\n", res.NodeID, res.LastSeq, res.SwitchMs)
	fmt.Fprintf(g.Out, "Recorded in %s: the node starts standalone from now on (see docs/configuration.md; set cluster.enabled: false in its config file).\n", res.Recorded)
	return nil
}

// maxSecretFile bounds --secret-file.
const maxSecretFile = 4096

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--secret-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("--secret-file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("--secret-file %s: over %d bytes: it should hold only the secret (e.g. the output of openssl rand -hex 32)", path, maxSecretFile)
	}
	// One trailing newline is the file's, not the secret's.
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("--secret-file %s is empty: write the cluster secret into it (e.g. openssl rand -hex 32 > %s)", path, path)
	}
	return s, nil
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// postMode posts to an enable/disable endpoint; a refusal comes back as a
// *client.Error.
func (g *Globals) postMode(path string, body, out any) error {
	ctx, cancel := g.ctx()
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(g.clus.Addr, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("--addr %q: %v", g.clus.Addr, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if g.clus.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.clus.Token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, apitypes.MaxBody))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		var eb apitypes.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			return &client.Error{Status: res.StatusCode, Code: "http_" + strconv.Itoa(res.StatusCode), Message: strings.TrimSpace(string(b)), Node: res.Header.Get(apitypes.HeaderNode)}
		}
		return &client.Error{Status: res.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Node: res.Header.Get(apitypes.HeaderNode)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s answered %s with a body that is not its result (%v): is --addr a muninn node?", g.clus.Addr, path, err)
	}
	return nil
}

// modeError explains a refused switch: a process that cannot switch a
// running node answers with the restart procedure, printed as steps.
func (g *Globals) modeError(err error, what string) error {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != apitypes.CodeNotImplemented {
		if errors.As(err, &ce) {
			return fmt.Errorf("cluster mode was not %s: %w", what, err)
		}
		return g.explain(err)
	}
	if g.clus.JSON {
		g.printJSON(apitypes.ErrorBody{Error: apitypes.ErrorDetail{Code: ce.Code, Message: ce.Message}})
	} else {
		fmt.Fprintln(g.Out, numberedSteps(ce.Message))
	}
	return fmt.Errorf("cluster mode was not %s: this node's process cannot switch modes while it runs; follow the steps above", what)
}

// ---------------------------------------------------------------- start

// recordedMode applies the mode recorded in the data directory by
// cluster enable/disable (node.ModeFile) over the configuration: the record
// decides cluster.enabled and cluster.node_id and, in cluster mode,
// cluster.bind_addr and cluster.advertise_addr; the cluster secret is the
// config's (or MUNINN_CLUSTER_SECRET's) when set, else the record's. It
// returns the config to run and the lines to log (a disagreement between
// the config and the record, named with how to make them agree).
func recordedMode(path string, env []string, flags map[string]string) (config.Config, []string, error) {
	cfg, err := config.Load(path, env, flags)
	base, secret := cfg, cfg.Cluster.Secret // secret: the config's own
	if err != nil {
		// A config whose cluster section is incomplete may be completed by
		// the record (a secret given only to enable): read data_dir with
		// the cluster section off.
		c0, err0 := config.Load(path, env, withFlags(flags, map[string]string{"cluster.enabled": "false"}))
		if err0 != nil {
			return cfg, nil, err
		}
		base, secret = c0, c0.Cluster.Secret
		base.Cluster.Enabled = flagBool(flags, "cluster.enabled", false)
	}
	rec, ok, rerr := node.ReadMode(base.DataDir)
	if rerr != nil {
		return cfg, nil, rerr
	}
	if !ok {
		return cfg, nil, err
	}
	if err != nil && rec.Secret != "" {
		// What the config says of the mode, its secret filled in.
		if c1, err1 := config.Load(path, env, withFlags(flags, map[string]string{"cluster.cluster_secret": rec.Secret})); err1 == nil {
			base = c1
		}
	}
	over := withFlags(flags, nil)
	over["cluster.enabled"] = strconv.FormatBool(rec.Cluster())
	over["cluster.node_id"] = rec.NodeID
	if rec.Cluster() {
		over["cluster.bind_addr"] = rec.BindAddr
		if rec.AdvertiseAddr != "" {
			over["cluster.advertise_addr"] = rec.AdvertiseAddr
		}
		if secret == "" && rec.Secret != "" {
			over["cluster.cluster_secret"] = rec.Secret
		}
	}
	out, err := config.Load(path, env, over)
	file := path
	if file == "" {
		file = "the configuration (no --config file)"
	}
	if err != nil {
		return out, nil, fmt.Errorf("the data directory records %s mode (%s, set by %s): with it, %w\nfix the config, or remove %s while the node is stopped to let the config decide",
			rec.Mode, node.ModePath(base.DataDir), rec.By, err, node.ModePath(base.DataDir))
	}
	var lines []string
	where := fmt.Sprintf("the data directory %s records %s mode (node_id %s, set by %s at %s, in %s)", base.DataDir, rec.Mode, rec.NodeID, rec.By, rec.At.UTC().Format(time.RFC3339), node.ModeFile)
	if base.Cluster.Enabled != rec.Cluster() {
		fix := fmt.Sprintf("set cluster.enabled: false (keep cluster.node_id: %q) in %s, or run muninn cluster enable to switch back", rec.NodeID, file)
		if rec.Cluster() {
			fix = fmt.Sprintf("set cluster.enabled: true, cluster.node_id: %q, cluster.bind_addr: %q and cluster.cluster_secret in %s, or run muninn cluster disable to switch back", rec.NodeID, rec.BindAddr, file)
		}
		lines = append(lines, fmt.Sprintf("%s but %s has cluster.enabled: %t: running in %s mode as recorded (the data directory wins). To make them agree, %s", where, file, base.Cluster.Enabled, rec.Mode, fix))
	}
	if id := base.Cluster.NodeID; id != "" && id != rec.NodeID {
		lines = append(lines, fmt.Sprintf("%s but %s sets cluster.node_id: %q: running as %s as recorded (the data directory wins). To make them agree, set cluster.node_id: %q in %s", where, file, id, rec.NodeID, rec.NodeID, file))
	}
	if rec.Cluster() && secret != "" && rec.Secret != "" && secret != rec.Secret {
		lines = append(lines, fmt.Sprintf("%s with a cluster secret that differs from the configured cluster.cluster_secret: using the configured one. If the cluster uses the recorded one, set it in %s (or MUNINN_CLUSTER_SECRET)", where, file))
	}
	return out, lines, nil
}

// withFlags is flags with over's keys set (a new map).
func withFlags(flags, over map[string]string) map[string]string {
	out := make(map[string]string, len(flags)+len(over))
	maps.Copy(out, flags)
	maps.Copy(out, over)
	return out
}

func flagBool(flags map[string]string, key string, def bool) bool {
	if v, ok := flags[key]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// switchGate sits in front of the API: while the node switches modes it
// answers 503 (code starting, Retry-After: 1, which the Go client
// retries), and it counts the requests in flight so the switch can wait
// for them.
type switchGate struct {
	next      http.Handler
	switching atomic.Pointer[string] // the 503's message while switching
	inflight  atomic.Int64
}

func (g *switchGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	if msg := g.switching.Load(); msg != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		b, _ := json.Marshal(apitypes.ErrorBody{Error: apitypes.ErrorDetail{Code: apitypes.CodeStarting, Message: *msg}})
		w.Write(append(b, '\n'))
		return
	}
	g.next.ServeHTTP(w, r)
}

// drainWait bounds how long a switch waits for the requests in flight
// (longer than the node's RequestWait, so a write held by the loop gets
// its own answer, not the shutdown's).
const drainWait = node.DefaultRequestWait + 2*time.Second

// modeSwitcher carries out cluster enable/disable for muninn start: it
// closes the running node (and its API handler) and starts the other mode
// on the same data directory, keeping the HTTP listener (node.Switcher).
type modeSwitcher struct {
	mu      sync.Mutex // held by a switch, and by the shutdown (no switch after it)
	gate    *switchGate
	api     *starting
	load    func(over map[string]string) (config.Config, error)
	apiURL  string
	apiOpts api.Options
	log     *slog.Logger
	// setup wires a new API handler as the first one was (reload hooks,
	// the admin token as last reloaded); nil: nothing to do.
	setup   func(n *node.Node, a *api.Server)
	changed chan struct{} // a new node runs: watch its Fatal
	fatal   chan error    // neither mode could be started

	curMu sync.Mutex // guards n and a
	n     *node.Node
	a     *api.Server
}

// current is the node and API handler serving now.
func (m *modeSwitcher) current() (*node.Node, *api.Server) {
	m.curMu.Lock()
	defer m.curMu.Unlock()
	return m.n, m.a
}

func (m *modeSwitcher) switchMode(ctx context.Context, c node.ModeChange) (*node.Node, error) {
	if !m.mu.TryLock() {
		return nil, &node.ModeError{Status: http.StatusServiceUnavailable, Msg: "another mode switch (or the shutdown) is under way on this node; retry shortly"}
	}
	defer m.mu.Unlock()
	old, oldAPI := m.current()
	if err := old.CheckModeChange(c); err != nil {
		return nil, err
	}
	oldOpts := old.Options()
	over := map[string]string{"cluster.enabled": strconv.FormatBool(c.Cluster)}
	rec := node.RecordedMode{At: time.Now().UTC(), NodeID: string(c.ID)}
	if c.Cluster {
		over["cluster.node_id"] = string(c.ID)
		over["cluster.bind_addr"] = c.BindAddr
		over["cluster.advertise_addr"] = c.AdvertiseAddr
		if c.AdvertiseAddr == "" {
			over["cluster.advertise_addr"] = c.BindAddr
		}
		rec.Mode, rec.By = node.ModeCluster, "muninn cluster enable"
		rec.BindAddr, rec.AdvertiseAddr = c.BindAddr, c.AdvertiseAddr
		if c.Secret != "" {
			// The configuration's secret wins at every later start: a
			// different one here would cut the members that joined under
			// it off at the next restart. Only a node whose configuration
			// sets none records the request's.
			probe := map[string]string{"cluster.enabled": "false"}
			base, err := m.load(probe)
			if err != nil {
				return nil, &node.ModeError{Status: http.StatusBadRequest, Msg: strings.ReplaceAll(err.Error(), "\n", " ")}
			}
			switch {
			case base.Cluster.Secret == "":
				over["cluster.cluster_secret"] = c.Secret
				rec.Secret = c.Secret
			case base.Cluster.Secret != c.Secret:
				return nil, &node.ModeError{Status: http.StatusBadRequest, Msg: "cluster_secret: the node's configuration already sets cluster.cluster_secret (file or MUNINN_CLUSTER_SECRET in its environment) and the request gives another one, which the next restart would replace: leave it out of the request (unset MUNINN_CLUSTER_SECRET in your shell, no --secret-file) or change the node's configuration"}
			}
		}
	} else {
		over["cluster.node_id"] = string(oldOpts.ID)
		rec.Mode, rec.By, rec.NodeID = node.ModeStandalone, "muninn cluster disable", string(oldOpts.ID)
	}
	cfg, err := m.load(over)
	if err != nil {
		return nil, &node.ModeError{Status: http.StatusBadRequest, Msg: strings.ReplaceAll(err.Error(), "\n", " ")}
	}
	if cfg.DataDir != oldOpts.DataDir {
		return nil, &node.ModeError{Status: http.StatusConflict, Msg: fmt.Sprintf("the configuration now names data_dir %s but the node runs on %s: restart it instead", cfg.DataDir, oldOpts.DataDir)}
	}
	opts := nodeOptions(cfg, m.apiURL, m.log)
	if c.Cluster {
		// Refuse a bind_addr in use before anything stops.
		ln, err := net.Listen("tcp", opts.BindAddr)
		if err != nil {
			return nil, &node.ModeError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("bind_addr %s: cannot listen there (%v): pick a free address with --bind-addr", opts.BindAddr, err)}
		}
		ln.Close()
	}
	prev, hadPrev, err := node.ReadMode(oldOpts.DataDir)
	if err != nil {
		return nil, &node.ModeError{Status: http.StatusConflict, Msg: err.Error()}
	}

	start := time.Now()
	what := "cluster mode (muninn cluster enable)"
	if !c.Cluster {
		what = "standalone (muninn cluster disable)"
	}
	m.log.Info(fmt.Sprintf("switching %s to %s: requests wait for it (503, Retry-After: 1)", oldOpts.ID, what))
	msg := fmt.Sprintf("the node is switching to %s; retry in a moment", what)
	m.gate.switching.Store(&msg)
	defer m.gate.switching.Store(nil)
	oldAPI.Close() // ends event streams
	// The request asking for the switch is one of those in flight.
	for deadline := time.Now().Add(drainWait); m.gate.inflight.Load() > 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if k := m.gate.inflight.Load() - 1; k > 0 {
		m.log.Warn(fmt.Sprintf("%d request(s) still in flight after %s; they get the shutdown's answer", k, drainWait))
	}
	// A request that was in flight at the first check (an add-node) may
	// have changed what the switch needs: check again before stopping.
	if err := old.CheckModeChange(c); err != nil {
		m.install(old)
		return nil, err
	}
	old.Close()
	n, err := m.startRecorded(opts, rec)
	if err != nil {
		m.log.Error(fmt.Sprintf("the switch to %s failed; starting the node again as it was", what), "err", err)
		restore := func() error {
			if hadPrev {
				return node.WriteMode(oldOpts.DataDir, prev)
			}
			return node.RemoveMode(oldOpts.DataDir)
		}
		if rerr := restore(); rerr != nil {
			m.log.Error("restoring the recorded mode failed", "err", rerr)
		}
		back, berr := node.Start(oldOpts)
		if berr != nil {
			fatalErr := fmt.Errorf("switching to %s failed (%v), and starting the node again as it was failed too: %w", what, err, berr)
			select {
			case m.fatal <- fatalErr:
			default:
			}
			return nil, fmt.Errorf("switching to %s failed (%v), and the node could not be started again as it was (%v): it is stopping", what, err, berr)
		}
		m.install(back)
		return nil, &node.ModeError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("switching to %s failed: %v; the node runs as before (%s)", what, err, back.ID())}
	}
	m.install(n)
	m.log.Info(fmt.Sprintf("switched to %s in %d ms: node_id=%s, data kept, mode recorded in %s", what, time.Since(start).Milliseconds(), n.ID(), node.ModePath(opts.DataDir)))
	return n, nil
}

// startRecorded records the new mode, then starts the node in it; the
// record comes first so a crash in between restarts in the mode asked for.
func (m *modeSwitcher) startRecorded(opts node.Options, rec node.RecordedMode) (*node.Node, error) {
	if err := node.WriteMode(opts.DataDir, rec); err != nil {
		return nil, err
	}
	return node.Start(opts)
}

// install makes n the node the API serves (m.mu held).
func (m *modeSwitcher) install(n *node.Node) {
	a := api.New(n, m.apiOpts)
	if m.setup != nil {
		m.setup(n, a)
	}
	n.SetSwitcher(m.switchMode)
	m.curMu.Lock()
	m.n, m.a = n, a
	m.curMu.Unlock()
	m.api.h.Store(a)
	select {
	case m.changed <- struct{}{}:
	default:
	}
}
