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

// clusterLine is the line about the cluster above the steps ("" when the
// node could not be asked).
func clusterLine(info apitypes.Info) string {
	if info.NodeID == "" {
		return ""
	}
	if !info.ClusterEnabled {
		return fmt.Sprintf("The node %s runs standalone: enable cluster mode on it first (muninn cluster enable prints how).", info.NodeID)
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
	return fmt.Sprintf("Cluster: Cortex %s, epoch %d, %d members: %s.", cortex, info.Epoch, len(info.Members), strings.Join(ms, ", "))
}

// adminNote is said under every admin command of the steps.
var adminNote = []string{
	"Admin commands need --token (or MUNINN_ADMIN_TOKEN) when the nodes have an admin_token;",
	"without one they are accepted only from the node's own host (loopback).",
}

// step is one step of the instructions add-node and remove-node print.
type step struct {
	N     int    `json:"n"`
	Title string `json:"title"`
	// Text is the step's lines as printed (unindented; "" is a blank
	// line), commands included.
	Text []string `json:"text"`
	// Commands are the commands the step asks to run, in order.
	Commands []string `json:"commands"`
}

// steps builds a numbered list of steps.
type steps []step

// add starts the next step; the pointer is valid until the next add.
func (l *steps) add(format string, args ...any) *step {
	*l = append(*l, step{N: len(*l) + 1, Title: fmt.Sprintf(format, args...), Text: []string{}, Commands: []string{}})
	return &(*l)[len(*l)-1]
}

func (s *step) say(lines ...string) *step {
	s.Text = append(s.Text, lines...)
	return s
}

// run adds a command to run, with a comment printed after it.
func (s *step) run(cmd, comment string) *step {
	line := cmd
	if comment != "" {
		line += "   # " + comment
	}
	s.Text = append(s.Text, line)
	s.Commands = append(s.Commands, cmd)
	return s
}

func (l steps) print(w io.Writer) {
	for i, s := range l {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Step %d — %s\n", s.N, s.Title)
		for _, t := range s.Text {
			if t == "" {
				fmt.Fprintln(w)
			} else {
				fmt.Fprintln(w, "  "+t)
			}
		}
	}
}

// stepsHead is what both instruction documents start with (--json).
type stepsHead struct {
	// Command is "add-node" or "remove-node"; Mode is "instructions":
	// nothing was changed.
	Command string `json:"command"`
	Mode    string `json:"mode"`
	// Addr is the node asked; Cluster its /v1/cluster/info, null when it
	// could not be asked (Note says why, and the steps use placeholders).
	Addr    string         `json:"addr"`
	Cluster *apitypes.Info `json:"cluster"`
	Note    string         `json:"note,omitempty"`
	// Title and Summary are the lines printed above the steps.
	Title   string   `json:"title"`
	Summary []string `json:"summary"`
}

func head(command string, info apitypes.Info, addr, title string) stepsHead {
	h := stepsHead{Command: command, Mode: "instructions", Addr: addr, Title: title, Summary: []string{}}
	if info.NodeID != "" {
		h.Cluster = &info
	}
	if l := clusterLine(info); l != "" {
		h.Summary = append(h.Summary, l)
	}
	return h
}

func (h stepsHead) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n", h.Title)
	for _, l := range h.Summary {
		fmt.Fprintf(w, "%s\n\n", l)
	}
}

// addNodeDoc is `muninn cluster add-node` without --node.
type addNodeDoc struct {
	stepsHead
	// Standalone: the node asked runs standalone; enable cluster mode
	// on it first.
	Standalone bool `json:"standalone"`
	// NodeID is the suggested id for the new node ("<new-node-id>" when
	// none can be suggested); Kind the kind the add command uses.
	NodeID string `json:"node_id"`
	Kind   string `json:"kind"`
	// Seeds are the members' MBP addresses for the new node's
	// cluster.seeds ("<member-LAN-IP>:8474" when unknown).
	Seeds []string `json:"seeds"`
	// ConfigFile and Config: the new node's configuration, with
	// placeholders in <angle brackets> to fill in.
	ConfigFile string `json:"config_file"`
	Config     string `json:"config"`
	// AddCommand adds the node once it runs.
	AddCommand string `json:"add_command"`
	Steps      steps  `json:"steps"`
}

const newNodeConfig = "/etc/muninn/muninn.yaml"

// addNodePlan is the seed's step-by-step instructions for joining a node,
// filled in with what the cluster reports.
func addNodePlan(info apitypes.Info, addr string) addNodeDoc {
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
	config := []string{
		"cluster:",
		"  enabled: true",
		fmt.Sprintf("  node_id: %q        # unique, stable across restarts", id),
		`  bind_addr: "<its LAN IP>:8474"  # reachable by every member: not 0.0.0.0 or localhost`,
		"  seeds:",
	}
	for _, s := range seeds {
		config = append(config, fmt.Sprintf("    - %q", s))
	}
	config = append(config,
		`  cluster_secret: "<the same secret as the other nodes>"  # or MUNINN_CLUSTER_SECRET`,
		"  # role: sentinel             # or observer; the default, auto, is a data voter")
	d := addNodeDoc{
		stepsHead:  head("add-node", info, addr, "Adding a node to the cluster"),
		Standalone: info.NodeID != "" && !info.ClusterEnabled,
		NodeID:     id, Kind: "auto", Seeds: seeds,
		ConfigFile: newNodeConfig, Config: strings.Join(config, "\n") + "\n",
		AddCommand: fmt.Sprintf("muninn cluster add-node --node %s --kind auto --addr %s", id, addr),
	}
	d.Steps.add("Prepare the new host").say(
		"Open port 8474 TCP (MBP replication) between it and every member, in both directions,",
		"and port 8475 (REST API) for clients. Keep 8474 on a private network or VPN.")
	d.Steps.add("Write %s on the new host", newNodeConfig).say("").say(config...)
	d.Steps.add("Start it").run("muninn start --config "+newNodeConfig, "").
		say("It connects to the seeds, sees the running cluster, and waits to be added.")
	d.Steps.add("Add it to the cluster (any node forwards this to the Cortex)").run(d.AddCommand, "").say(adminNote...)
	d.Steps.add("Watch it catch up").say(
		"The Cortex streams its current Pebble snapshot to the new node (rate-limited to 100 MB/s),",
		"then the replication log tail. The node is not counted in quorum until it has caught up;",
		"then it becomes a voter. For large vaults this can take several minutes:").
		run("muninn cluster status --addr "+addr, "its lag drops toward zero")
	return d
}

func (d addNodeDoc) print(w io.Writer) {
	d.stepsHead.print(w)
	d.Steps.print(w)
}

// addNodeSteps prints addNodePlan.
func addNodeSteps(w io.Writer, info apitypes.Info, addr string) {
	addNodePlan(info, addr).print(w)
}

// removeNodeDoc is `muninn cluster remove-node` without --yes.
type removeNodeDoc struct {
	stepsHead
	// NodeID is the node to remove ("" when --node was not given: the
	// steps say "<node-id>"); Member is its entry in the membership, null
	// when unknown.
	NodeID string           `json:"node_id"`
	Member *apitypes.Member `json:"member"`
	// HandoffFirst: the steps start with a failover, because the node is
	// the Cortex (or is not known not to be).
	HandoffFirst bool `json:"handoff_first"`
	// After is the cluster once the node is removed; null when unknown.
	After *quorumAfter `json:"after"`
	// Warnings are printed above the steps.
	Warnings []string `json:"warnings"`
	// RemoveCommand removes the node.
	RemoveCommand string `json:"remove_command"`
	Steps         steps  `json:"steps"`
}

// quorumAfter is the voting membership once a node is removed.
type quorumAfter struct {
	Voters    int `json:"voters"`
	Quorum    int `json:"quorum"`
	Tolerates int `json:"tolerates"` // node failures it survives
}

// removeNodePlan is the instructions for removing node (or a placeholder),
// with the quorum the cluster keeps afterwards.
func removeNodePlan(info apitypes.Info, node, addr string) (removeNodeDoc, error) {
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
		return removeNodeDoc{}, fmt.Errorf("the node at %s (%s) runs standalone: it has no other nodes to remove", addr, info.NodeID)
	}
	if node != "" && info.NodeID != "" && victim == nil {
		var ids []string
		for _, m := range info.Members {
			ids = append(ids, m.ID)
		}
		return removeNodeDoc{}, fmt.Errorf("%s is not a member of this cluster (members: %s)", node, strings.Join(ids, ", "))
	}
	d := removeNodeDoc{
		stepsHead: head("remove-node", info, addr, fmt.Sprintf("Removing %s from the cluster", target)),
		NodeID:    node, Member: victim, Warnings: []string{},
		HandoffFirst:  victim == nil || victim.ID == info.Cortex,
		RemoveCommand: fmt.Sprintf("muninn cluster remove-node --node %s --yes --addr %s", target, addr),
	}
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
		d.After = &quorumAfter{Voters: voters, Quorum: q, Tolerates: voters - q}
		if voters-q == 0 {
			d.Warnings = append(d.Warnings, "the cluster will not survive the loss of any node; add a Lobe or a Sentinel (muninn cluster add-node) first.")
		}
	}
	if d.HandoffFirst {
		d.Steps.add("If %s is the Cortex, hand off first", target).run("muninn cluster failover --yes --addr "+addr, "")
	}
	d.Steps.add("Remove it from the membership (while it still runs, or after it stopped)").run(d.RemoveCommand, "").say(adminNote...)
	d.Steps.add("Stop MuninnDB on that host (SIGTERM shuts it down cleanly)").say(
		"Delete its data directory if it will not come back: a removed node restarted with its",
		"old data is not a member, and waits to be added again.")
	seed := "its address"
	if victim != nil && victim.MBP != "" {
		seed = victim.MBP
	}
	d.Steps.add("Remove %s from cluster.seeds in the other nodes' configs", seed)
	d.Steps.add("Rotate cluster_secret").say("Update the secret on all remaining nodes, then restart them one at a time.")
	d.Steps.add("Verify").run("muninn cluster status --addr "+addr, "")
	return d, nil
}

func (d removeNodeDoc) print(w io.Writer) {
	d.stepsHead.print(w)
	if a := d.After; a != nil {
		fmt.Fprintf(w, "After the removal: %d voters, quorum %d/%d, tolerating %d node failure(s).\n", a.Voters, a.Quorum, a.Voters, a.Tolerates)
		for _, s := range d.Warnings {
			fmt.Fprintf(w, "Warning: %s\n", s)
		}
		fmt.Fprintln(w)
	}
	d.Steps.print(w)
	if d.NodeID != "" {
		fmt.Fprintf(w, "\nRe-run with --yes to remove %s now.\n", d.NodeID)
	}
}

// removeNodeSteps prints removeNodePlan.
func removeNodeSteps(w io.Writer, info apitypes.Info, node, addr string) error {
	d, err := removeNodePlan(info, node, addr)
	if err != nil {
		return err
	}
	d.print(w)
	return nil
}
