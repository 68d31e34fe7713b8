package cluster

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The netns runtime's plan, kept apart from the system calls so that it
// is tested everywhere: the subnet a run picks, where each node goes on
// it, the names of what it creates, and each node's configuration file.

// netnsSubnetBase is the first two octets of the /24s a netns run picks
// from (10.77.0.0/24 to 10.77.255.0/24).
var netnsSubnetBase = [2]byte{10, 77}

// pickSubnet returns the first 10.77.N.0/24 that overlaps none of used
// (the host's addresses and routes): the run's private bridge subnet.
func pickSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for n := 0; n < 256; n++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{netnsSubnetBase[0], netnsSubnetBase[1], byte(n), 0}), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every subnet %d.%d.0.0/24 to %d.%d.255.0/24 is in use on this host (ip -4 addr, ip -4 route): remove what earlier runs left (ip netns list | grep %s) or free one",
		netnsSubnetBase[0], netnsSubnetBase[1], netnsSubnetBase[0], netnsSubnetBase[1], projectPrefix)
}

// parseUsedPrefixes reads the prefixes in use from the output of
// `ip -4 -o addr show` (ADDR/LEN after "inet") and `ip -4 route show`
// (the destination, first field; "default" is skipped: it overlaps
// everything and routes nothing of ours).
func parseUsedPrefixes(addrOut, routeOut string) []netip.Prefix {
	var out []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(addrOut))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	sc = bufio.NewScanner(strings.NewReader(routeOut))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		// "broadcast", "local" and similar route types come first in
		// some tables.
		dst := f[0]
		if _, err := netip.ParseAddr(strings.SplitN(dst, "/", 2)[0]); err != nil && len(f) > 1 {
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// placeTopology puts t on subnet p: every node keeps the host part of its
// compose address (.11, .12, ...) on p, and the harness dials its API at
// that address, port 8475.
func placeTopology(t Topology, p netip.Prefix) (Topology, error) {
	if !p.Addr().Is4() || p.Bits() != 24 {
		return t, fmt.Errorf("subnet %s: want an IPv4 /24", p)
	}
	out := t
	out.Subnet = p.Masked().String()
	out.Nodes, out.Spares = nil, nil
	base := p.Masked().Addr().As4()
	seen := map[byte]string{}
	for i, n := range append(slices.Clone(t.Nodes), t.Spares...) {
		a, err := netip.ParseAddr(n.IP)
		if err != nil || !a.Is4() {
			return t, fmt.Errorf("node %s of %s: address %q is not IPv4", n.ID, t.Name, n.IP)
		}
		host := a.As4()[3]
		if host <= 1 || host == 255 {
			return t, fmt.Errorf("node %s of %s: host part .%d is reserved (.1 is the host's end of the bridge)", n.ID, t.Name, host)
		}
		if other, dup := seen[host]; dup {
			return t, fmt.Errorf("nodes %s and %s of %s share host part .%d", other, n.ID, t.Name, host)
		}
		seen[host] = n.ID
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], host})
		n.IP = ip.String()
		n.Addr = net.JoinHostPort(n.IP, "8475")
		if i < len(t.Nodes) {
			out.Nodes = append(out.Nodes, n)
		} else {
			out.Spares = append(out.Spares, n)
		}
	}
	return out, nil
}

// hostAddr is the host's address on a run's subnet (.1): the end of the
// run's bridge the harness dials from.
func hostAddr(p netip.Prefix) netip.Prefix {
	b := p.Masked().Addr().As4()
	b[3] = 1
	return netip.PrefixFrom(netip.AddrFrom4(b), p.Bits())
}

// netnsName is node's network namespace in a run (project names the run
// and topology: muninn-fault-TOPOLOGY-PID).
func netnsName(project, node string) string { return project + "-" + node }

// hubName is the namespace holding a run's bridge.
func hubName(project string) string { return project + "-hub" }

// hostVeth is the host's end of the veth to a run's bridge: "mf" and a
// hash of the project, within the 15 bytes of an interface name.
func hostVeth(project string) string {
	h := fnv.New32a()
	h.Write([]byte(project))
	return fmt.Sprintf("mf%08x", h.Sum32())
}

// hubVeth is a node's veth end on the bridge (in the hub namespace); its
// other end is eth0 in the node's namespace.
func hubVeth(i int) string { return "n" + strconv.Itoa(i) }

// netnsOwner returns the pid of the run that made namespace (or data
// directory) name, of the form PREFIX PID [-...], and whether it parsed.
func netnsOwner(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pid, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// netnsSettings are the settings every node of a netns run shares (those
// the compose files take from the environment).
type netnsSettings struct {
	Secret      string
	Token       string
	HeartbeatMs int
	LeaseTTL    int
	LogLevel    string
}

// nodeConfig is node n's configuration file (YAML, docs/configuration.md)
// in a netns run of t: the settings of deploy/compose.NAME.yml, with the
// node's own address on the run's subnet and its data directory on the
// host.
func nodeConfig(t Topology, n Node, dataDir string, s netnsSettings) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# Written by muninn-sim cluster (netns runtime): node %s of topology %s.\n", n.ID, t.Name)
	fmt.Fprintf(&b, "data_dir: %s\n", q(dataDir))
	b.WriteString("http_addr: \":8475\"\n")
	b.WriteString("log_format: json\n")
	level := s.LogLevel
	if level == "" {
		level = "info"
	}
	fmt.Fprintf(&b, "log_level: %s\n", level)
	fmt.Fprintf(&b, "admin_token: %s\n", q(s.Token))
	b.WriteString("cluster:\n")
	b.WriteString("  enabled: true\n")
	fmt.Fprintf(&b, "  node_id: %s\n", q(n.ID))
	fmt.Fprintf(&b, "  bind_addr: %s\n", q(net.JoinHostPort(n.IP, "8474")))
	fmt.Fprintf(&b, "  role: %s\n", n.Role())
	b.WriteString("  seeds:\n")
	for _, m := range t.Nodes {
		fmt.Fprintf(&b, "    - %s\n", q(net.JoinHostPort(m.IP, "8474")))
	}
	fmt.Fprintf(&b, "  cluster_secret: %s\n", q(s.Secret))
	fmt.Fprintf(&b, "  heartbeat_ms: %d\n", s.HeartbeatMs)
	fmt.Fprintf(&b, "  lease_ttl: %d\n", s.LeaseTTL)
	return b.String()
}

// leaseTTL is the nodes' cluster.lease_ttl for a heartbeat: at least 3
// heartbeats, at least the default 10 s.
func leaseTTL(heartbeatMs int) int { return max(10, (3*heartbeatMs+999)/1000) }

// writeFileSync writes a file whole: a temp file, fsync, rename, directory
// fsync.
func writeFileSync(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
