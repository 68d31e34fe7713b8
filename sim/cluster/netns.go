package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// chain is the iptables chain the nemesis fills inside a container's
// network namespace (jumped to from INPUT); healing flushes it.
const chain = "muninn-nemesis"

// tools holds the absolute paths of nsenter, iptables and tc once
// EnsureTools found them (nsenter runs the others by path, whatever PATH
// the harness was started with).
var tools = map[string]string{}

// lookTool finds a host tool in PATH or in the sbin directories a non-root
// PATH often lacks.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// tool returns the path EnsureTools found for name (name itself before).
func tool(name string) string {
	if p := tools[name]; p != "" {
		return p
	}
	return name
}

// EnsureTools checks for nsenter, iptables and tc on the host, installing
// the Debian packages (iptables, iproute2, util-linux) when they are
// missing and apt-get is available to root.
func EnsureTools(ctx context.Context, logf func(string, ...any)) error {
	missing := func() []string {
		var m []string
		for _, t := range []string{"nsenter", "iptables", "tc"} {
			p, err := lookTool(t)
			if err != nil {
				m = append(m, t)
				continue
			}
			tools[t] = p
		}
		return m
	}
	m := missing()
	if len(m) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return fmt.Errorf("missing %s: install them (Debian: apt-get install iptables iproute2 util-linux) and run as root", strings.Join(m, ", "))
	}
	logf("missing %s: installing iptables iproute2 util-linux with apt-get", strings.Join(m, ", "))
	if _, err := execOut(ctx, 5*time.Minute, nil, "apt-get", "update"); err != nil {
		return err
	}
	if _, err := execOut(ctx, 10*time.Minute, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "install", "-y", "--no-install-recommends", "iptables", "iproute2", "util-linux"); err != nil {
		return err
	}
	if m := missing(); len(m) > 0 {
		return fmt.Errorf("still missing after apt-get install: %s", strings.Join(m, ", "))
	}
	return nil
}

// nsenter runs a command in node id's network namespace.
func (c *Cluster) nsenter(ctx context.Context, id string, args ...string) (string, error) {
	var full []string
	if ns := c.rt.NetNS(id); ns != "" {
		// The netns runtime's namespaces outlive the node's process.
		full = []string{"--net=" + ns}
	} else {
		pid, err := c.rt.Pid(ctx, id)
		if err != nil {
			return "", err
		}
		full = []string{"-t", strconv.Itoa(pid), "-n"}
	}
	full = append(append(full, "--", tool(args[0])), args[1:]...)
	return execOut(ctx, 20*time.Second, nil, tool("nsenter"), full...)
}

// ensureChain creates the nemesis chain in node id's namespace and jumps
// to it first thing in INPUT.
func (c *Cluster) ensureChain(ctx context.Context, id string) error {
	if _, err := c.nsenter(ctx, id, "iptables", "-w", "-N", chain); err != nil && !strings.Contains(err.Error(), "exists") {
		return err
	}
	if _, err := c.nsenter(ctx, id, "iptables", "-w", "-C", "INPUT", "-j", chain); err != nil {
		if _, err := c.nsenter(ctx, id, "iptables", "-w", "-I", "INPUT", "1", "-j", chain); err != nil {
			return err
		}
	}
	return nil
}

// Drop makes node at drop every packet from the nodes in from.
func (c *Cluster) Drop(ctx context.Context, at string, from ...string) error {
	if c.dropHook != nil {
		c.dropHook(at, from)
		return nil
	}
	if err := c.ensureChain(ctx, at); err != nil {
		return err
	}
	for _, f := range from {
		n, ok := c.Topo.Node(f)
		if !ok {
			return fmt.Errorf("no node %s", f)
		}
		if _, err := c.nsenter(ctx, at, "iptables", "-w", "-A", chain, "-s", n.IP, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// netemMode caches whether the kernel has sch_netem.
var netemMode struct {
	sync.Mutex
	probed, missing bool
}

// Degrade adds latency and loss on node id's interface: tc netem (delay
// 50ms ± 10ms, loss 5%). Kernels built without sch_netem get the closest
// substitute: 5% random loss on input by iptables (statistic match) and a
// token-bucket rate limit on output (queueing delay under load). It
// returns a description of what was applied.
func (c *Cluster) Degrade(ctx context.Context, id string) (string, error) {
	netemMode.Lock()
	missing := netemMode.missing
	netemMode.Unlock()
	if !missing {
		_, err := c.nsenter(ctx, id, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "50ms", "10ms", "loss", "5%")
		if err == nil {
			return "tc netem delay 50ms 10ms loss 5%", nil
		}
		if !strings.Contains(err.Error(), "unknown") {
			return "", err
		}
		netemMode.Lock()
		netemMode.missing = true
		netemMode.Unlock()
		c.logf("tc netem is not available in this kernel (CONFIG_NET_SCH_NETEM): using iptables statistic loss + tc tbf instead")
	}
	if err := c.ensureChain(ctx, id); err != nil {
		return "", err
	}
	if _, err := c.nsenter(ctx, id, "iptables", "-w", "-A", chain, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"); err != nil {
		return "", err
	}
	if _, err := c.nsenter(ctx, id, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "16kb", "latency", "200ms"); err != nil {
		return "", err
	}
	return "no netem in kernel: iptables loss 5% (statistic) + tc tbf rate 4mbit latency 200ms", nil
}

// HealNet removes every iptables rule and qdisc the nemesis added on every
// running node. It tries every node and returns the errors together.
func (c *Cluster) HealNet(ctx context.Context) error {
	var errs []error
	for _, n := range c.Topo.Nodes {
		if c.rt.NetNS(n.ID) == "" {
			st, err := c.rt.State(ctx, n.ID)
			if err != nil || st != "running" {
				continue // a stopped container gets a fresh namespace when started
			}
		}
		if _, err := c.nsenter(ctx, n.ID, "iptables", "-w", "-F", chain); err != nil && !strings.Contains(err.Error(), "No chain") && !strings.Contains(err.Error(), "does not exist") {
			errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
		}
		if _, err := c.nsenter(ctx, n.ID, "tc", "qdisc", "del", "dev", "eth0", "root"); err != nil && !strings.Contains(err.Error(), "handle of zero") && !strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Invalid handle") {
			errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
		}
	}
	return errors.Join(errs...)
}
