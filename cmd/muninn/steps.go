package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/muninndb/muninn/shell/apitypes"
)

var idNumber = regexp.MustCompile(`^(.*?)(\d+)$`)

// suggestNodeID proposes the next id of a numbered series (muninn-03 ->
// muninn-04), or a placeholder.
func suggestNodeID(ms []apitypes.Member) string {
	prefix, width, top := "", 0, -1
	for _, m := range ms {
		p := idNumber.FindStringSubmatch(m.ID)
		if p == nil {
			continue
		}
		n, err := strconv.Atoi(p[2])
		if err != nil {
			continue
		}
		if top >= 0 && p[1] != prefix {
			return "<new-node-id>"
		}
		prefix, width = p[1], max(width, len(p[2]))
		top = max(top, n)
	}
	if top < 0 {
		return "<new-node-id>"
	}
	return fmt.Sprintf("%s%0*d", prefix, width, top+1)
}

func clusterLine(w io.Writer, info apitypes.Info) {
	if info.NodeID == "" {
		return
	}
	if !info.ClusterEnabled {
		fmt.Fprintf(w, "The node %s runs standalone: enable cluster mode on it first (muninn cluster enable prints how).\n\n", info.NodeID)
		return
	}
	var ms []string
	for _, m := range info.Members {
		s := m.ID + " (" + m.Role + ")"
		ms = append(ms, s)
	}
	cortex := orDash(info.Cortex)
	if info.CortexAPI != "" {
		cortex += " at " + info.CortexAPI
	}
	fmt.Fprintf(w, "Cluster: Cortex %s, epoch %d, %d members: %s.\n\n", cortex, info.Epoch, len(info.Members), strings.Join(ms, ", "))
}

func adminNote(w io.Writer) {
	fmt.Fprintln(w, "  Admin commands need --token (or MUNINN_ADMIN_TOKEN) when the nodes have an admin_token;")
	fmt.Fprintln(w, "  without one they are accepted only from the node's own host (loopback).")
}

// addNodeSteps prints the seed's step-by-step instructions for joining a
// node, filled in with what the cluster reports.
func addNodeSteps(w io.Writer, info apitypes.Info, addr string) {
	id := suggestNodeID(info.Members)
	var seeds []string
	for _, m := range info.Members {
		if m.MBP != "" && m.Kind != "observer" {
			seeds = append(seeds, m.MBP)
		}
	}
	if len(seeds) == 0 {
		seeds = []string{"<member-LAN-IP>:8474"}
	}
	fmt.Fprintln(w, "Adding a node to the cluster")
	fmt.Fprintln(w)
	clusterLine(w, info)
	fmt.Fprintln(w, "Step 1 — Prepare the new host")
	fmt.Fprintln(w, "  Open port 8474 TCP (MBP replication) between it and every member, in both directions,")
	fmt.Fprintln(w, "  and port 8475 (REST API) for clients. Keep 8474 on a private network or VPN.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Step 2 — Write /etc/muninn/muninn.yaml on the new host")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  cluster:")
	fmt.Fprintln(w, "    enabled: true")
	fmt.Fprintf(w, "    node_id: %q        # unique, stable across restarts\n", id)
	fmt.Fprintln(w, `    bind_addr: "<its LAN IP>:8474"  # reachable by every member: not 0.0.0.0 or localhost`)
	fmt.Fprintln(w, "    seeds:")
	for _, s := range seeds {
		fmt.Fprintf(w, "      - %q\n", s)
	}
	fmt.Fprintln(w, `    cluster_secret: "<the same secret as the other nodes>"  # or MUNINN_CLUSTER_SECRET`)
	fmt.Fprintln(w, "    # role: sentinel             # or observer; the default, auto, is a data voter")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Step 3 — Start it")
	fmt.Fprintln(w, "  muninn start --config /etc/muninn/muninn.yaml")
	fmt.Fprintln(w, "  It connects to the seeds, sees the running cluster, and waits to be added.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Step 4 — Add it to the cluster (any node forwards this to the Cortex)")
	fmt.Fprintf(w, "  muninn cluster add-node --node %s --kind auto --addr %s\n", id, addr)
	adminNote(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Step 5 — Watch it catch up")
	fmt.Fprintln(w, "  The Cortex streams its current Pebble snapshot to the new node (rate-limited to 100 MB/s),")
	fmt.Fprintln(w, "  then the replication log tail. The node is not counted in quorum until it has caught up;")
	fmt.Fprintln(w, "  then it becomes a voter. For large vaults this can take several minutes:")
	fmt.Fprintf(w, "  muninn cluster status --addr %s   # its lag drops toward zero\n", addr)
}

// removeNodeSteps prints the instructions for removing node (or a
// placeholder), with the quorum the cluster keeps afterwards.
func removeNodeSteps(w io.Writer, info apitypes.Info, node, addr string) error {
	target := node
	if target == "" {
		target = "<node-id>"
	}
	var victim *apitypes.Member
	for i, m := range info.Members {
		if m.ID == node {
			victim = &info.Members[i]
		}
	}
	if info.NodeID != "" && !info.ClusterEnabled {
		return fmt.Errorf("the node at %s (%s) runs standalone: it has no other nodes to remove", addr, info.NodeID)
	}
	if node != "" && info.NodeID != "" && victim == nil {
		var ids []string
		for _, m := range info.Members {
			ids = append(ids, m.ID)
		}
		return fmt.Errorf("%s is not a member of this cluster (members: %s)", node, strings.Join(ids, ", "))
	}
	fmt.Fprintf(w, "Removing %s from the cluster\n\n", target)
	clusterLine(w, info)
	if victim != nil {
		voters := 0
		for _, m := range info.Members {
			if !m.Learner && m.Kind != "observer" {
				voters++
			}
		}
		if !victim.Learner && victim.Kind != "observer" {
			voters--
		}
		q := voters/2 + 1
		fmt.Fprintf(w, "After the removal: %d voters, quorum %d/%d, tolerating %d node failure(s).\n", voters, q, voters, voters-q)
		if voters-q == 0 {
			fmt.Fprintln(w, "Warning: the cluster will not survive the loss of any node; add a Lobe or a Sentinel (muninn cluster add-node) first.")
		}
		fmt.Fprintln(w)
	}
	step := 1
	if victim == nil || victim.ID == info.Cortex {
		fmt.Fprintf(w, "Step %d — If %s is the Cortex, hand off first\n", step, target)
		fmt.Fprintf(w, "  muninn cluster failover --yes --addr %s\n\n", addr)
		step++
	}
	fmt.Fprintf(w, "Step %d — Remove it from the membership (while it still runs, or after it stopped)\n", step)
	fmt.Fprintf(w, "  muninn cluster remove-node --node %s --yes --addr %s\n", target, addr)
	adminNote(w)
	fmt.Fprintln(w)
	step++
	fmt.Fprintf(w, "Step %d — Stop MuninnDB on that host (SIGTERM shuts it down cleanly)\n", step)
	fmt.Fprintln(w, "  Delete its data directory if it will not come back: a removed node restarted with its")
	fmt.Fprintln(w, "  old data is not a member, and waits to be added again.")
	fmt.Fprintln(w)
	step++
	seed := "its address"
	if victim != nil && victim.MBP != "" {
		seed = victim.MBP
	}
	fmt.Fprintf(w, "Step %d — Remove %s from cluster.seeds in the other nodes' configs\n\n", step, seed)
	step++
	fmt.Fprintf(w, "Step %d — Rotate cluster_secret\n", step)
	fmt.Fprintln(w, "  Update the secret on all remaining nodes, then restart them one at a time.")
	fmt.Fprintln(w)
	step++
	fmt.Fprintf(w, "Step %d — Verify\n", step)
	fmt.Fprintf(w, "  muninn cluster status --addr %s\n", addr)
	if node != "" {
		fmt.Fprintf(w, "\nRe-run with --yes to remove %s now.\n", node)
	}
	return nil
}
