package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Node is one node of a topology as deploy/compose.*.yml defines it.
type Node struct {
	// ID is the node_id and the compose service name.
	ID string
	// IP is the fixed container address on the topology's network; the
	// node's bind_addr is IP:8474.
	IP string
	// Port is the host port its API (8475) is published on, on 127.0.0.1.
	Port int
	// Sentinel: a voter that holds no data.
	Sentinel bool
	// Observer: holds data, never votes, takes no writes (cluster.role:
	// observer).
	Observer bool
	// Addr is the API address the harness dials when it is not the
	// published port on 127.0.0.1: the node's own address on the run's
	// bridge (netns runtime), "" otherwise.
	Addr string
	// Release names the earlier release the node runs, a name in
	// e2e/testdata/previous-release ("previous"); "" runs this build.
	// The netns runtime only (release.go).
	Release string
}

// API returns the node's API URL as the harness reaches it.
func (n Node) API() string {
	if n.Addr != "" {
		return "http://" + n.Addr
	}
	return fmt.Sprintf("http://127.0.0.1:%d", n.Port)
}

// Role is the node's cluster.role: auto, sentinel or observer.
func (n Node) Role() string {
	switch {
	case n.Sentinel:
		return "sentinel"
	case n.Observer:
		return "observer"
	}
	return "auto"
}

// Voter reports whether the node votes (every node but an Observer).
func (n Node) Voter() bool { return !n.Observer }

// Topology is one of the product documentation's minimum configurations.
type Topology struct {
	Name string
	// File is the compose file's name in deploy/; "" for a topology that
	// runs in the netns runtime only (NetnsTopologies).
	File   string
	Subnet string
	Nodes  []Node
	// Quorum is the election quorum (of the voters: Observers do not
	// vote).
	Quorum int
	// Spares are nodes the run keeps stopped, outside the membership,
	// until a membership nemesis (churn, snapshot-kill: churn.go) starts
	// one and adds it; a node such a nemesis removes becomes a spare
	// (stopped, its store wiped). The netns runtime only: the compose
	// files define no spare.
	Spares []Node
}

// Topologies are the seed's configurations, in the order "all" runs
// them: its three minimum configurations and three voters with an
// Observer (the seed's fourth role). Their compose files are
// deploy/compose.NAME.yml; a test checks the two agree.
var Topologies = []Topology{
	{Name: "three", File: "compose.three.yml", Subnet: "172.28.3.0/24", Quorum: 2, Nodes: []Node{
		{ID: "muninn-01", IP: "172.28.3.11", Port: 18431},
		{ID: "muninn-02", IP: "172.28.3.12", Port: 18432},
		{ID: "muninn-03", IP: "172.28.3.13", Port: 18433},
	}, Spares: []Node{{ID: "spare-01", IP: "172.28.3.21"}}},
	{Name: "sentinel", File: "compose.sentinel.yml", Subnet: "172.28.2.0/24", Quorum: 2, Nodes: []Node{
		{ID: "muninn-01", IP: "172.28.2.11", Port: 18421},
		{ID: "muninn-02", IP: "172.28.2.12", Port: 18422},
		{ID: "sentinel-01", IP: "172.28.2.13", Port: 18423, Sentinel: true},
	}, Spares: []Node{{ID: "spare-01", IP: "172.28.2.21"}}},
	{Name: "five", File: "compose.five.yml", Subnet: "172.28.5.0/24", Quorum: 3, Nodes: []Node{
		{ID: "muninn-01", IP: "172.28.5.11", Port: 18451},
		{ID: "muninn-02", IP: "172.28.5.12", Port: 18452},
		{ID: "muninn-03", IP: "172.28.5.13", Port: 18453},
		{ID: "muninn-04", IP: "172.28.5.14", Port: 18454},
		{ID: "muninn-05", IP: "172.28.5.15", Port: 18455},
	}, Spares: []Node{{ID: "spare-01", IP: "172.28.5.21"}}},
	{Name: "observer", File: "compose.observer.yml", Subnet: "172.28.4.0/24", Quorum: 2, Nodes: []Node{
		{ID: "muninn-01", IP: "172.28.4.11", Port: 18441},
		{ID: "muninn-02", IP: "172.28.4.12", Port: 18442},
		{ID: "muninn-03", IP: "172.28.4.13", Port: 18443},
		{ID: "observer-01", IP: "172.28.4.14", Port: 18444, Observer: true},
	}, Spares: []Node{{ID: "spare-01", IP: "172.28.4.21"}}},
}

// NetnsTopologies run in the netns runtime only: they have no compose
// file, and their nodes run binaries the image does not hold.
//
// mixed: three data voters like three, muninn-01 (the first seed, so
// usually the first Cortex) on the previous release (the one
// e2e/testdata/previous-release names: protocol 2..2), the others on
// this build (2..3): a cluster in the middle of a rolling upgrade, which
// must run at protocol 2 (docs/protocol.md, rule 21; docs/upgrades.md).
// Its spare runs this build. No port is published: the netns runtime
// dials each node on the run's bridge.
var NetnsTopologies = []Topology{
	{Name: "mixed", Subnet: "172.28.6.0/24", Quorum: 2, Nodes: []Node{
		{ID: "muninn-01", IP: "172.28.6.11", Release: "previous"},
		{ID: "muninn-02", IP: "172.28.6.12"},
		{ID: "muninn-03", IP: "172.28.6.13"},
	}, Spares: []Node{{ID: "spare-01", IP: "172.28.6.21"}}},
}

// NetnsOnly reports whether t runs in the netns runtime only (it has no
// compose file).
func (t Topology) NetnsOnly() bool { return t.File == "" }

// Mixed reports whether some node of t runs an earlier release.
func (t Topology) Mixed() bool {
	return slices.ContainsFunc(append(slices.Clone(t.Nodes), t.Spares...), func(n Node) bool { return n.Release != "" })
}

// TopologyNames lists the topologies' names, the netns-only ones last.
func TopologyNames() []string {
	var ns []string
	for _, t := range append(slices.Clone(Topologies), NetnsTopologies...) {
		ns = append(ns, t.Name)
	}
	return ns
}

// ParseTopologies parses a comma-separated list of topology names or
// "all" for runtime ("docker" or "netns"): all is every topology the
// runtime can run; a netns-only topology named for docker is refused.
func ParseTopologies(s, runtime string) ([]Topology, error) {
	known := slices.Clone(Topologies)
	if runtime == "netns" {
		known = append(known, NetnsTopologies...)
	}
	if s == "all" {
		return known, nil
	}
	var out []Topology
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(known, func(t Topology) bool { return t.Name == name })
		if i < 0 {
			if slices.ContainsFunc(NetnsTopologies, func(t Topology) bool { return t.Name == name }) {
				return nil, fmt.Errorf("topology %q needs --runtime netns: %s", name, netnsOnlyWhy)
			}
			return nil, fmt.Errorf("unknown topology %q: use %s or all", name, strings.Join(TopologyNames(), ", "))
		}
		out = append(out, known[i])
	}
	return out, nil
}

// netnsOnlyWhy says why a netns-only topology cannot run in containers.
const netnsOnlyWhy = "it has no compose file, and its nodes run an earlier release built from this repository's history, which the image does not hold"

// Node returns the node with id.
func (t Topology) Node(id string) (Node, bool) {
	for _, n := range t.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Voters returns the nodes that vote (not Observers).
func (t Topology) Voters() []Node {
	var out []Node
	for _, n := range t.Nodes {
		if n.Voter() {
			out = append(out, n)
		}
	}
	return out
}

// DataNodes returns the nodes that hold data (not Sentinels; Observers
// do).
func (t Topology) DataNodes() []Node {
	var out []Node
	for _, n := range t.Nodes {
		if !n.Sentinel {
			out = append(out, n)
		}
	}
	return out
}

// FindDeployDir returns the repository's deploy/ directory: dir if given,
// else the first deploy/ holding compose.three.yml above the working
// directory.
func FindDeployDir(dir string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "compose.three.yml")); err != nil {
			return "", fmt.Errorf("--deploy-dir %s: no compose.three.yml there", dir)
		}
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "deploy", "compose.three.yml")); err == nil {
			return filepath.Join(d, "deploy"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no deploy/compose.three.yml above the working directory: run from the repository or pass --deploy-dir")
		}
	}
}

// Cluster is a running topology: a compose project (docker runtime) or
// processes in network namespaces (netns runtime).
type Cluster struct {
	// Topo is the topology as this run placed it: in the netns runtime
	// the nodes' addresses are on the run's own subnet.
	Topo    Topology
	Project string
	// File is the topology's compose file (docker runtime).
	File string
	rt   Runtime
	api  *API
	logf func(format string, args ...any)
	// dropHook replaces Drop in tests of the partition plans.
	dropHook func(at string, from []string)
	// data are the nodes' data directories on the host (nil in tests).
	data *dataDirs
	// undo holds what HealAll must do before starting stopped nodes
	// (remove a filler, wipe a damaged store), by key; each entry removes
	// itself once done.
	undo map[string]func(context.Context) error
}

// projectPrefix names the compose projects (and the netns runtime's
// namespaces and data directories) of this harness.
const projectPrefix = "muninn-fault-"

// newCluster makes the Cluster of a run of t (before its nodes start).
func newCluster(t Topology, api *API, logf func(string, ...any)) *Cluster {
	return &Cluster{Topo: t, Project: fmt.Sprintf("%s%s-%d", projectPrefix, t.Name, os.Getpid()), api: api,
		undo: map[string]func(context.Context) error{}, logf: logf}
}

// Up removes what a killed earlier run of the same topology left behind,
// starts the topology under a unique project name with docker compose and
// waits until every node reports a healthy cluster.
func Up(ctx context.Context, d *Docker, api *API, deployDir string, t Topology, logf func(string, ...any)) (*Cluster, error) {
	if t.NetnsOnly() {
		return nil, fmt.Errorf("topology %s needs --runtime netns: %s", t.Name, netnsOnlyWhy)
	}
	prefix := projectPrefix + t.Name + "-"
	stale, err := d.StaleProjects(ctx, prefix)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(deployDir, t.File)
	for _, p := range stale {
		logf("removing project %s left by an earlier run", p)
		if _, err := d.compose(ctx, 2*time.Minute, p, []string{file}, "down", "-v", "--remove-orphans", "-t", "1"); err != nil {
			return nil, err
		}
	}
	if err := removeStaleDataDirs(ctx, prefix, logf, liveRun(prefix)); err != nil {
		return nil, err
	}
	c := newCluster(t, api, logf)
	c.File = file
	data, err := setupDataDirs(ctx, c.Project, t.Nodes, logf)
	if err != nil {
		return nil, fmt.Errorf("data directories for %s: %w", t.Name, err)
	}
	c.data = data
	rt := &dockerRuntime{d: d, project: c.Project, files: []string{file, data.override}, containers: map[string]string{}}
	c.rt = rt
	logf("starting topology %s (project %s, %s, %d nodes, data directories: %s of %d MiB each in %s)", t.Name, c.Project, t.Subnet, len(t.Nodes), data.kind, dataFSSize>>20, data.root)
	if err := rt.up(ctx, t.Nodes); err != nil {
		c.Down(context.WithoutCancel(ctx))
		if strings.Contains(err.Error(), "overlap") {
			return nil, fmt.Errorf("%v\n(another network uses %s: is a demo of deploy/%s still up? docker-compose -p NAME -f deploy/%s down -v)", err, t.Subnet, t.File, t.File)
		}
		return nil, err
	}
	if err := c.WaitHealthy(ctx, 90*time.Second); err != nil {
		c.DumpLogs(context.WithoutCancel(ctx), 40)
		c.Down(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// Runtime returns what runs the cluster's nodes.
func (c *Cluster) Runtime() Runtime { return c.rt }

// Down removes the nodes and everything their runtime made (containers,
// network and volumes, or processes and namespaces), then the data
// directories.
func (c *Cluster) Down(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	if c.rt != nil {
		if err := c.rt.Down(ctx); err != nil {
			c.logf("removing %s (%s runtime): %v", c.Project, c.rt.Name(), err)
			if c.rt.Name() == "docker" {
				return // containers may still use the data directories
			}
		}
	}
	var addrs []string
	for _, n := range append(slices.Clone(c.Topo.Nodes), c.Topo.Spares...) {
		if n.Addr != "" {
			addrs = append(addrs, n.Addr)
		}
	}
	if c.api != nil {
		c.api.disallow(addrs...)
	}
	c.data.remove(ctx, c.logf)
	what := "containers, network, volumes, data directories"
	if c.rt != nil && c.rt.Name() == "netns" {
		what = "processes, namespaces, veths, bridge, data directories"
	}
	c.logf("removed %s (%s)", c.Project, what)
}

// WaitHealthy waits until every node answers 200 on /v1/cluster/health
// and they agree on the Cortex.
func (c *Cluster) WaitHealthy(ctx context.Context, within time.Duration) error {
	_, err := c.waitHealthy(ctx, within)
	return err
}

// waitHealthy is WaitHealthy that also returns the last reason a node gave
// for not being healthy ("" if all were at once).
func (c *Cluster) waitHealthy(ctx context.Context, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	var last string
	for {
		ok, why := c.healthy(ctx)
		if ok {
			return last, nil
		}
		last = why
		if time.Now().After(deadline) {
			return last, fmt.Errorf("topology %s not healthy within %s: %s", c.Topo.Name, within, last)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) (bool, string) {
	cortex := ""
	for _, n := range c.Topo.Nodes {
		h, code, err := c.api.Health(ctx, n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.ID, err)
		}
		if code != 200 {
			return false, fmt.Sprintf("%s: %d %s: %s", n.ID, code, h.Status, h.Reason)
		}
		if cortex != "" && h.Cortex != cortex {
			return false, fmt.Sprintf("%s follows %s, another node %s", n.ID, h.Cortex, cortex)
		}
		cortex = h.Cortex
	}
	return true, ""
}

// Cortex returns the Cortex the first answering node names.
func (c *Cluster) Cortex(ctx context.Context) (string, uint64, error) {
	var lastErr error
	for _, n := range c.Topo.Nodes {
		info, err := c.api.Info(ctx, n)
		if err != nil {
			lastErr = err
			continue
		}
		if info.Cortex != "" {
			return info.Cortex, info.Epoch, nil
		}
		lastErr = fmt.Errorf("%s knows no Cortex", n.ID)
	}
	return "", 0, lastErr
}

// DumpLogs prints the last lines of every node's log.
func (c *Cluster) DumpLogs(ctx context.Context, lines int) {
	for _, n := range c.Topo.Nodes {
		c.logf("---- log of %s (last %d lines) ----\n%s", n.ID, lines, strings.TrimRight(c.rt.Logs(ctx, n.ID, lines), "\n"))
	}
}
