//go:build linux

package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The netns runtime runs every node as a process of a muninn binary built
// from the checkout, each in a network namespace of its own that the run
// makes:
//
//	host: mfXXXXXXXX 10.77.N.1/24 ──veth── hub namespace: bridge br0
//	                                         ├─ n0 ──veth── NODE namespace: eth0 10.77.N.11/24
//	                                         ├─ n1 ──veth── ...
//
// The bridge lives in a namespace of its own (PROJECT-hub), so the host's
// firewall (a docker host drops forwarded bridge traffic) never sees the
// nodes' traffic; the host reaches the nodes' APIs over its end of the
// uplink veth, as the endpoint, never routing. A node's namespace has only
// its loopback and eth0 with the connected /24: no default route, so
// nothing it sends goes beyond the bridge. Namespaces are named
// PROJECT-NODE (PROJECT is muninn-fault-TOPOLOGY-PID), so parallel runs
// never clash, and a later run removes those of a run that is gone.
//
// Each node runs as `ip netns exec NS muninn start --config FILE`, in a
// process group of its own; its stdout and stderr go to a log file (with
// the time each write arrived, for LogsSince). kill is SIGKILL to the
// group, pause SIGSTOP, unpause SIGCONT, stop SIGTERM (then SIGKILL after
// 10 s), start a new process on the same data directory.

// netnsRuntime runs one topology's nodes in network namespaces.
type netnsRuntime struct {
	project string
	binary  string
	// binaries are the nodes that run another binary than binary (an
	// earlier release: Node.Release), node id -> path.
	binaries map[string]string
	subnet   netip.Prefix
	// dir holds the config and log files.
	dir   string
	nodes []Node
	logf  func(string, ...any)

	mu    sync.Mutex
	procs map[string]*nodeProc
	logs  map[string]*timedLog
	// made lists the namespaces created, in order; hostLink the host's
	// veth ("" until made).
	made     []string
	hostLink string
	// started are the pids of every process started (for the tests: all
	// must be gone after Down).
	started []int
}

// nodeProc is one run of a node's process.
type nodeProc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	exit    Exit
	paused  bool
}

func (p *nodeProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// NetnsReady checks what the netns runtime needs: root, and the ip,
// nsenter, iptables and tc commands.
func NetnsReady() error {
	if os.Geteuid() != 0 {
		return errors.New("the netns runtime needs root (it creates network namespaces, veths and mounts)")
	}
	if _, err := lookTool("ip"); err != nil {
		return fmt.Errorf("the netns runtime needs the ip command (Debian: apt-get install iproute2): %w", err)
	}
	return nil
}

// ipCmd runs ip with args.
func ipCmd(ctx context.Context, args ...string) (string, error) {
	return execOut(ctx, 30*time.Second, nil, hostTool("ip"), args...)
}

// netnsLock serializes subnet picking between runs on one host.
const netnsLock = "/run/muninn-fault-netns.lock"

// lockSubnets takes an exclusive lock on netnsLock (bounded wait) and
// returns its release.
func lockSubnets(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(netnsLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", netnsLock, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: held by another run for 30 s (%v)", netnsLock, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid is a live process.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// removeStaleNetns removes the namespaces named prefix+PID-... whose run
// is gone (or is this process: a cluster it failed to take down): kills
// the processes still in them (by pid, from ip netns pids) and deletes
// them.
func removeStaleNetns(ctx context.Context, prefix string, logf func(string, ...any)) error {
	out, err := ipCmd(ctx, "netns", "list")
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		pid, ok := netnsOwner(name, prefix)
		if !ok || (pid != os.Getpid() && alive(pid)) {
			continue
		}
		logf("removing network namespace %s left by an earlier run (pid %d)", name, pid)
		if err := killNetnsPids(ctx, name); err != nil {
			errs = append(errs, err)
		}
		if _, err := ipCmd(ctx, "netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNetnsPids sends SIGKILL to every process in namespace name, by pid,
// and waits (bounded) until they are gone.
func killNetnsPids(ctx context.Context, name string) error {
	out, err := ipCmd(ctx, "netns", "pids", name)
	if err != nil {
		return err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		left := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return !alive(p) || zombie(p) })
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in namespace %s still alive 10 s after SIGKILL", left, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// zombie reports whether pid has exited but not been reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// usedPrefixes lists the host's IPv4 addresses and routes.
func usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	addrs, err := ipCmd(ctx, "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	routes, err := ipCmd(ctx, "-4", "route", "show", "table", "all")
	if err != nil {
		if routes, err = ipCmd(ctx, "-4", "route", "show"); err != nil {
			return nil, err
		}
	}
	return parseUsedPrefixes(addrs, routes), nil
}

// NetnsEnv is what every topology of a netns run shares.
type NetnsEnv struct {
	// Binary is the muninn binary built from the checkout.
	Binary   string
	Settings netnsSettings
	// Root is the repository, whose history the earlier releases of the
	// mixed topology are built from ("": found above the working
	// directory, as FindDeployDir does).
	Root string

	relMu sync.Mutex
	// releases are the earlier releases built by this run, name -> binary.
	releases map[string]string
}

// release returns the binary of the earlier release name, built once per
// run (and cached per commit across runs: release.go).
func (e *NetnsEnv) release(ctx context.Context, name string, logf func(string, ...any)) (string, error) {
	e.relMu.Lock()
	defer e.relMu.Unlock()
	if b := e.releases[name]; b != "" {
		return b, nil
	}
	root := e.Root
	if root == "" {
		deploy, err := FindDeployDir("")
		if err != nil {
			return "", fmt.Errorf("release %s: %w", name, err)
		}
		root = filepath.Dir(deploy)
	}
	b, err := BuildRelease(ctx, root, name, logf)
	if err != nil {
		return "", err
	}
	if e.releases == nil {
		e.releases = map[string]string{}
	}
	e.releases[name] = b
	return b, nil
}

// BuildMuninn builds ./cmd/muninn of the repository at root into dir.
func BuildMuninn(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "muninn")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/muninn")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/muninn in %s: %v\n%s", root, err, truncate(string(out), 4000))
	}
	return bin, nil
}

// UpNetns removes what a gone earlier run of the same topology left, picks
// a free subnet, makes the namespaces, bridge and veths, writes each
// node's configuration, starts the nodes and waits until every node
// reports a healthy cluster. On any error it removes what it made.
func UpNetns(ctx context.Context, env *NetnsEnv, api *API, t Topology, logf func(string, ...any)) (c *Cluster, err error) {
	prefix := projectPrefix + t.Name + "-"
	if err := removeStaleNetns(ctx, prefix, logf); err != nil {
		return nil, err
	}
	if err := removeStaleDataDirs(ctx, prefix, logf, liveRun(prefix)); err != nil {
		return nil, err
	}
	// Earlier releases first: a build that fails leaves nothing to
	// remove.
	binaries := map[string]string{}
	for _, n := range append(slices.Clone(t.Nodes), t.Spares...) {
		if n.Release == "" {
			continue
		}
		b, err := env.release(ctx, n.Release, logf)
		if err != nil {
			return nil, fmt.Errorf("topology %s: node %s runs release %s: %w", t.Name, n.ID, n.Release, err)
		}
		binaries[n.ID] = b
	}
	c = newCluster(t, api, logf)
	rt := &netnsRuntime{project: c.Project, binary: env.Binary, binaries: binaries, logf: logf, procs: map[string]*nodeProc{}, logs: map[string]*timedLog{}}
	c.rt = rt
	defer func() {
		if err != nil {
			c.DumpLogs(context.WithoutCancel(ctx), 40)
			c.Down(context.WithoutCancel(ctx))
			c = nil
		}
	}()
	unlock, err := lockSubnets(ctx)
	if err != nil {
		return c, err
	}
	used, err := usedPrefixes(ctx)
	if err == nil {
		rt.subnet, err = pickSubnet(used)
	}
	if err == nil {
		c.Topo, err = placeTopology(t, rt.subnet)
	}
	if err == nil {
		// The spares get their namespace, configuration and log now;
		// a membership nemesis starts them.
		rt.nodes = append(slices.Clone(c.Topo.Nodes), c.Topo.Spares...)
		err = rt.network(ctx)
	}
	unlock()
	if err != nil {
		return c, err
	}
	var addrs []string
	for _, n := range rt.nodes {
		addrs = append(addrs, n.Addr)
	}
	api.allow(addrs...)
	data, err := setupDataDirs(ctx, c.Project, rt.nodes, logf)
	if err != nil {
		return c, fmt.Errorf("data directories for %s: %w", t.Name, err)
	}
	c.data = data
	rt.dir = data.root
	for _, n := range rt.nodes {
		// Seeds are the topology's first members only (nodeConfig lists
		// c.Topo.Nodes): a fresh node waits for every seed, and a spare
		// finds the running cluster through them and waits to be added.
		cfg := nodeConfig(c.Topo, n, data.dir(n.ID), env.Settings)
		if err := writeFileSync(rt.confPath(n.ID), []byte(cfg), 0o600); err != nil {
			return c, err
		}
		l, err := openTimedLog(filepath.Join(rt.dir, n.ID+".log"))
		if err != nil {
			return c, err
		}
		rt.logs[n.ID] = l
	}
	logf("starting topology %s (netns runtime: %s, namespaces %s-*, %d node processes of %s, data directories: %s of %d MiB each in %s)",
		t.Name, rt.subnet, c.Project, len(t.Nodes), env.Binary, data.kind, dataFSSize>>20, data.root)
	for _, id := range slices.Sorted(mapKeys(binaries)) {
		logf("topology %s: %s runs %s", t.Name, id, binaries[id])
	}
	for _, n := range c.Topo.Nodes {
		if err := rt.start(n.ID); err != nil {
			return c, err
		}
	}
	if err := c.WaitHealthy(ctx, 90*time.Second); err != nil {
		return c, err
	}
	return c, nil
}

func (r *netnsRuntime) confPath(node string) string { return filepath.Join(r.dir, node+".yaml") }

func (r *netnsRuntime) nsName(node string) string { return netnsName(r.project, node) }

// network makes the hub namespace with its bridge, the host's veth into
// it (.1 of the subnet), and one namespace per node with eth0 on the
// bridge. Each thing made is recorded first, so Down removes it.
func (r *netnsRuntime) network(ctx context.Context) error {
	hub := hubName(r.project)
	run := func(args ...string) error {
		_, err := ipCmd(ctx, args...)
		return err
	}
	if err := run("netns", "add", hub); err != nil {
		return err
	}
	r.made = append(r.made, hub)
	host := hostVeth(r.project)
	steps := [][]string{
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"link", "add", host, "type", "veth", "peer", "name", "uplink", "netns", hub},
	}
	for i, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
		if i == len(steps)-1 {
			r.hostLink = host
		}
	}
	for _, s := range [][]string{
		{"-n", hub, "link", "set", "uplink", "master", "br0", "up"},
		{"addr", "add", hostAddr(r.subnet).String(), "dev", host},
		{"link", "set", host, "up"},
	} {
		if err := run(s...); err != nil {
			return err
		}
	}
	for i, n := range r.nodes {
		ns := r.nsName(n.ID)
		if err := run("netns", "add", ns); err != nil {
			return err
		}
		r.made = append(r.made, ns)
		v := hubVeth(i)
		for _, s := range [][]string{
			{"-n", hub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", hub, "link", "set", v, "master", "br0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "addr", "add", fmt.Sprintf("%s/%d", n.IP, r.subnet.Bits()), "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		} {
			if err := run(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// start starts node's process (it must not be running).
func (r *netnsRuntime) start(node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.procs[node]; p != nil && p.running() {
		return fmt.Errorf("%s is already running (pid %d)", node, p.cmd.Process.Pid)
	}
	l := r.logs[node]
	if l == nil {
		return fmt.Errorf("no node %s in %s", node, r.project)
	}
	cmd := exec.Command(hostTool("ip"), "netns", "exec", r.nsName(node), r.binaryOf(node), "start", "--config", r.confPath(node))
	// Only what the node needs: MUNINN_* variables of the harness's
	// environment would override the file.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TMPDIR=" + os.TempDir()}
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = l, l
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", node, err)
	}
	p := &nodeProc{cmd: cmd, started: time.Now(), done: make(chan struct{})}
	r.procs[node] = p
	r.started = append(r.started, cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		code := 0
		if ps := cmd.ProcessState; ps != nil {
			code = ps.ExitCode()
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal()) // as docker reports it
			}
		} else if err != nil {
			code = -1
		}
		r.mu.Lock()
		p.exit = Exit{Status: "exited", Code: code, StartedAt: p.started}
		p.paused = false
		r.mu.Unlock()
		close(p.done)
	}()
	return nil
}

func (r *netnsRuntime) Name() string { return "netns" }

// binaryOf is the muninn binary node runs: its release's, or this
// build's. A node restarted runs it again, as on a host where it is
// installed.
func (r *netnsRuntime) binaryOf(node string) string {
	if b := r.binaries[node]; b != "" {
		return b
	}
	return r.binary
}

func (r *netnsRuntime) proc(node string) (*nodeProc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[node]
	if p == nil {
		return nil, fmt.Errorf("node %s of %s was never started", node, r.project)
	}
	return p, nil
}

// signal sends sig to the node's process group.
func (r *netnsRuntime) signal(p *nodeProc, sig syscall.Signal) error {
	if !p.running() {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func (r *netnsRuntime) Do(ctx context.Context, verb, node string) error {
	if verb == "start" {
		return r.start(node)
	}
	p, err := r.proc(node)
	if err != nil {
		return err
	}
	switch verb {
	case "kill":
		return r.signal(p, syscall.SIGKILL)
	case "pause":
		if err := r.signal(p, syscall.SIGSTOP); err != nil {
			return err
		}
		r.mu.Lock()
		p.paused = p.running()
		r.mu.Unlock()
		return nil
	case "unpause":
		if err := r.signal(p, syscall.SIGCONT); err != nil {
			return err
		}
		r.mu.Lock()
		p.paused = false
		r.mu.Unlock()
		return nil
	case "stop":
		r.signal(p, syscall.SIGCONT)
		if err := r.signal(p, syscall.SIGTERM); err != nil {
			return err
		}
		if _, ok, _ := r.WaitExited(ctx, node, 10*time.Second); !ok {
			if err := r.signal(p, syscall.SIGKILL); err != nil {
				return err
			}
			if _, ok, err := r.WaitExited(ctx, node, 10*time.Second); !ok {
				return fmt.Errorf("%s still running 10 s after SIGKILL (%v)", node, err)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown verb %q for node %s", verb, node)
}

func (r *netnsRuntime) Inspect(ctx context.Context, node string) (Exit, error) {
	p, err := r.proc(node)
	if err != nil {
		return Exit{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !p.running() {
		return p.exit, nil
	}
	st := "running"
	if p.paused {
		st = "paused"
	}
	return Exit{Status: st, StartedAt: p.started}, nil
}

func (r *netnsRuntime) State(ctx context.Context, node string) (string, error) {
	e, err := r.Inspect(ctx, node)
	return e.Status, err
}

func (r *netnsRuntime) WaitExited(ctx context.Context, node string, within time.Duration) (Exit, bool, error) {
	p, err := r.proc(node)
	if err != nil {
		return Exit{}, false, err
	}
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
		e, _ := r.Inspect(ctx, node)
		return e, false, ctx.Err()
	}
	e, err := r.Inspect(ctx, node)
	return e, e.Status == "exited", err
}

func (r *netnsRuntime) Pid(ctx context.Context, node string) (int, error) {
	p, err := r.proc(node)
	if err != nil {
		return 0, err
	}
	if !p.running() {
		return 0, fmt.Errorf("node %s is not running", node)
	}
	return p.cmd.Process.Pid, nil
}

func (r *netnsRuntime) NetNS(node string) string {
	return filepath.Join("/run/netns", r.nsName(node))
}

func (r *netnsRuntime) Logs(ctx context.Context, node string, lines int) string {
	l := r.logs[node]
	if l == nil {
		return "(no log for " + node + ")"
	}
	b, err := l.tail(4 << 20)
	if err != nil {
		return string(b) + "\n(reading the log: " + err.Error() + ")"
	}
	ls := strings.SplitAfter(string(b), "\n")
	if len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "")
}

func (r *netnsRuntime) LogsSince(ctx context.Context, node string, since time.Time) (string, error) {
	l := r.logs[node]
	if l == nil {
		return "", fmt.Errorf("no log for %s", node)
	}
	b, err := l.since(since, 16<<20)
	return string(b), err
}

// Down kills every node process (by pid, its group), whatever else runs
// in the namespaces, deletes the namespaces (their veths and the bridge
// go with them) and checks the host's veth is gone. Bounded in time.
func (r *netnsRuntime) Down(ctx context.Context) error {
	var errs []error
	r.mu.Lock()
	procs := make(map[string]*nodeProc, len(r.procs))
	for k, v := range r.procs {
		procs[k] = v
	}
	r.mu.Unlock()
	for _, id := range slices.Sorted(mapKeys(procs)) {
		p := procs[id]
		r.signal(p, syscall.SIGCONT)
		if err := r.signal(p, syscall.SIGKILL); err != nil {
			errs = append(errs, fmt.Errorf("killing %s: %w", id, err))
		}
	}
	for _, id := range slices.Sorted(mapKeys(procs)) {
		if _, ok, err := r.WaitExited(ctx, id, 10*time.Second); !ok {
			errs = append(errs, fmt.Errorf("%s still running 10 s after SIGKILL (%v)", id, err))
		}
	}
	for i := len(r.made) - 1; i >= 0; i-- {
		ns := r.made[i]
		if err := killNetnsPids(ctx, ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := ipCmd(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
			continue
		}
		r.made = r.made[:i]
	}
	if r.hostLink != "" {
		if _, err := ipCmd(ctx, "link", "show", r.hostLink); err == nil {
			if _, err := ipCmd(ctx, "link", "del", r.hostLink); err != nil {
				errs = append(errs, err)
			}
		}
		r.hostLink = ""
	}
	for _, l := range r.logs {
		l.Close()
	}
	return errors.Join(errs...)
}

func (r *netnsRuntime) KeepHint() string {
	var pids []string
	r.mu.Lock()
	for _, id := range slices.Sorted(mapKeys(r.procs)) {
		if p := r.procs[id]; p.running() {
			pids = append(pids, strconv.Itoa(p.cmd.Process.Pid))
		}
	}
	r.mu.Unlock()
	var dels []string
	for _, ns := range r.made {
		dels = append(dels, "ip netns del "+ns)
	}
	return fmt.Sprintf("kill -9 %s; %s", strings.Join(pids, " "), strings.Join(dels, "; "))
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// timedLog is a node's log file; it remembers when each write arrived, so
// that LogsSince can start at a time (as docker logs --since does).
type timedLog struct {
	mu    sync.Mutex
	f     *os.File
	size  int64
	marks []logMark
}

type logMark struct {
	at  time.Time
	off int64
}

// maxLogMarks bounds the index; past it, every other mark is dropped
// (LogsSince then starts a little earlier than asked).
const maxLogMarks = 1 << 16

func openTimedLog(path string) (*timedLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &timedLog{f: f, size: st.Size()}, nil
}

func (l *timedLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return len(b), nil
	}
	if len(l.marks) >= maxLogMarks {
		kept := l.marks[:0]
		for i := 0; i < len(l.marks); i += 2 {
			kept = append(kept, l.marks[i])
		}
		l.marks = kept
	}
	l.marks = append(l.marks, logMark{at: time.Now(), off: l.size})
	n, err := l.f.Write(b)
	l.size += int64(n)
	return n, err
}

// since returns the log from the first write at or after t (at most max
// bytes, the last ones).
func (l *timedLog) since(t time.Time, max int64) ([]byte, error) {
	l.mu.Lock()
	off := l.size
	for _, m := range l.marks {
		if !m.at.Before(t) {
			off = m.off
			break
		}
	}
	size := l.size
	f := l.f
	l.mu.Unlock()
	if f == nil {
		return nil, errors.New("log closed")
	}
	if size-off > max {
		off = size - max
	}
	b := make([]byte, size-off)
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return b[:n], err
}

// tail returns the last max bytes of the log.
func (l *timedLog) tail(max int64) ([]byte, error) {
	l.mu.Lock()
	size, f := l.size, l.f
	l.mu.Unlock()
	if f == nil {
		return nil, errors.New("log closed")
	}
	off := max64(0, size-max)
	b := make([]byte, size-off)
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return b[:n], err
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func (l *timedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
