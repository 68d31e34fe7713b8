package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// ClusterCmd groups the cluster commands; its flags apply to all of them.
type ClusterCmd struct {
	Addr    string        `help:"API address of the node to ask (default http://localhost:8475)." default:"http://localhost:8475" env:"MUNINN_ADDR" placeholder:"URL"`
	JSON    bool          `help:"Print the API's JSON instead of tables."`
	Token   string        `help:"Admin token (the node's admin_token), for failover, add-node, remove-node, enable, disable and quarantine --replay/--drop." env:"MUNINN_ADMIN_TOKEN" placeholder:"TOKEN"`
	Timeout time.Duration `help:"Give up after this long (default 30s; watch: run until Ctrl-C)." placeholder:"30s"`

	Info       InfoCmd       `cmd:"" help:"Show cluster state: current Cortex, epoch, fencing token, member list."`
	Status     StatusCmd     `cmd:"" help:"Per-node health, replication lag, and last sequence number."`
	Health     HealthCmd     `cmd:"" help:"Cluster health (exit status 1 when degraded)."`
	Failover   FailoverCmd   `cmd:"" help:"Trigger a manual election (graceful handoff to a Lobe)."`
	AddNode    AddNodeCmd    `cmd:"" name:"add-node" help:"Print step-by-step instructions for joining a new node; with --node, add it."`
	RemoveNode RemoveNodeCmd `cmd:"" name:"remove-node" help:"Print step-by-step instructions for safely removing a node; with --node --yes, remove it."`
	Enable     EnableCmd     `cmd:"" help:"Enable cluster mode on a running standalone node."`
	Disable    DisableCmd    `cmd:"" help:"Disable cluster mode (node continues as standalone)."`
	Quarantine QuarantineCmd `cmd:"" help:"List, export, replay or drop writes a failover quarantined on this node."`
	Watch      WatchCmd      `cmd:"" help:"Print the node's cluster events as they happen (elections, Cortex changes, members), until Ctrl-C."`
	Recover    RecoverCmd    `cmd:"" help:"Ask every node (--addr URL, --data-dir DIR; repeat each) for its last position; name the freshest and say what losing the others costs (exit status 2: no quorum runs)."`
	Fenced     FencedCmd     `cmd:"" hidden:"" help:"Deprecated alias of quarantine."`
}

// AfterApply hands the shared flags to the subcommands.
func (c *ClusterCmd) AfterApply(g *Globals) error {
	g.clus = c
	return nil
}

func (g *Globals) client() *client.Client {
	return client.New(g.clus.Addr, client.WithToken(g.clus.Token))
}

// defaultTimeout is --timeout's default, for every cluster command but
// watch, which runs until Ctrl-C.
const defaultTimeout = 30 * time.Second

func (c *ClusterCmd) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

func (g *Globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.clus.timeout())
}

func (g *Globals) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.Out, "%s\n", b)
	return err
}

// unknownOutcome is the error of a command that may or may not have
// changed the cluster (exit status 3): check names the command that tells.
type unknownOutcome struct {
	err   *client.AmbiguousError
	check string
}

func (u unknownOutcome) Error() string {
	return fmt.Sprintf("%v\nmuninn: exit status 3, outcome unknown: do not assume it failed or succeeded; find out with: %s", u.err, u.check)
}

func (u unknownOutcome) Unwrap() error { return u.err }

// explainChange is explain for a command that changes the cluster: an
// ambiguous outcome says so and names check, the command that tells what
// happened.
func (g *Globals) explainChange(err error, check string) error {
	var ae *client.AmbiguousError
	if errors.As(err, &ae) {
		return unknownOutcome{err: ae, check: check}
	}
	return g.explain(err)
}

// explain adds a hint to errors a user can act on.
func (g *Globals) explain(err error) error {
	var ce *client.Error
	if errors.Is(err, client.ErrAmbiguous) || errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s did not answer within %s", g.clus.Addr, g.clus.timeout())
	}
	return fmt.Errorf("cannot reach %s: %v (is muninn running there? set --addr or MUNINN_ADDR)", g.clus.Addr, err)
}

// InfoCmd is `muninn cluster info`.
type InfoCmd struct{}

func (InfoCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	c := g.client()
	info, err := c.Info(ctx)
	if err != nil {
		return g.explain(err)
	}
	st, err := c.Status(ctx, false)
	if err != nil {
		return g.explain(err)
	}
	if g.clus.JSON {
		return g.printJSON(struct {
			Info   apitypes.Info   `json:"info"`
			Status apitypes.Status `json:"status"`
		}{info, st})
	}
	printInfo(g.Out, info, st)
	return nil
}

// StatusCmd is `muninn cluster status`.
type StatusCmd struct {
	Local bool `help:"Show the node's own view instead of the Cortex's."`
}

func (c StatusCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	st, err := g.client().Status(ctx, c.Local)
	if err != nil {
		return g.explain(err)
	}
	if g.clus.JSON {
		return g.printJSON(st)
	}
	statusTable(g.Out, st)
	return nil
}

// HealthCmd is `muninn cluster health`.
type HealthCmd struct{}

var errDegraded = errors.New("the cluster is degraded")

func (HealthCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	h, err := g.client().Health(ctx)
	if err != nil {
		return g.explain(err)
	}
	if g.clus.JSON {
		if err := g.printJSON(h); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.Out, "%s: cortex %s, epoch %d, %d/%d voters reachable (quorum %d), asked %s\n",
			h.Status, orDash(h.Cortex), h.Epoch, h.ReachableVoters, h.Voters, h.Quorum, h.NodeID)
		if h.Reason != "" {
			fmt.Fprintf(g.Out, "reason: %s\n", h.Reason)
		}
		var rows [][]string
		for _, m := range h.Members {
			rows = append(rows, []string{m.ID, m.Health})
		}
		table(g.Out, []string{"NODE ID", "HEALTH"}, rows)
	}
	if h.Status != apitypes.HealthOK {
		return errDegraded
	}
	return nil
}

// FailoverCmd is `muninn cluster failover --yes [--to ID]`.
type FailoverCmd struct {
	Yes bool   `help:"Confirm the handoff."`
	To  string `help:"Lobe to hand the Cortex role to (default: the most caught-up one)." placeholder:"ID"`
}

func (c FailoverCmd) Run(g *Globals) error {
	if !c.Yes {
		return usageError{errors.New("refusing to fail over without --yes: this hands the Cortex role to a Lobe " +
			"(writes pause until the target has caught up and won the election, normally well under a second). " +
			"Re-run as: muninn cluster failover --yes [--to NODE_ID]")}
	}
	ctx, cancel := g.ctx()
	defer cancel()
	res, err := g.client().Failover(ctx, c.To)
	if err != nil {
		return g.explainChange(err, "muninn cluster info --addr "+g.clus.Addr+" (which node is the Cortex now)")
	}
	if g.clus.JSON {
		return g.printJSON(res)
	}
	if res.To != "" {
		fmt.Fprintf(g.Out, "Handed off: %s -> %s (epoch %d).\n", res.From, res.To, res.Epoch)
	} else {
		fmt.Fprintf(g.Out, "%s stepped down for the handoff; the new Cortex was not known yet. Check with: muninn cluster info\n", res.From)
	}
	return nil
}

// AddNodeCmd is `muninn cluster add-node [--node ID --kind auto]`.
type AddNodeCmd struct {
	Node string `help:"The new node's cluster.node_id: add it now (it must be started with seeds pointing at this cluster)." placeholder:"ID"`
	Kind string `help:"The new node's cluster.role: auto (data voter), sentinel or observer." enum:"auto,sentinel,observer" default:"auto"`
}

func (c AddNodeCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	cl := g.client()
	if c.Node == "" {
		info, note := g.infoForSteps(ctx, cl)
		d := addNodePlan(info, g.clus.Addr)
		d.Note = note
		if g.clus.JSON {
			return g.printJSON(d)
		}
		d.print(g.Out)
		return nil
	}
	res, err := cl.AddMember(ctx, c.Node, c.Kind)
	if err != nil {
		return g.explainChange(err, "muninn cluster info --addr "+g.clus.Addr+" (whether "+c.Node+" is a member)")
	}
	if g.clus.JSON {
		return g.printJSON(res)
	}
	if c.Kind == "auto" {
		fmt.Fprintf(g.Out, "Added %s as a learner: the Cortex streams it a snapshot, then the log tail; it is not counted in quorum until it has caught up, then it becomes a voter.\n", c.Node)
		fmt.Fprintf(g.Out, "Watch its progress: muninn cluster status --addr %s\n", g.clus.Addr)
	} else {
		fmt.Fprintf(g.Out, "Added %s as a %s.\n", c.Node, c.Kind)
	}
	return nil
}

// infoForSteps asks the node about the cluster for add-node's and
// remove-node's instructions. When it cannot be asked the instructions use
// placeholders: note says why (also on stderr).
func (g *Globals) infoForSteps(ctx context.Context, cl *client.Client) (apitypes.Info, string) {
	info, err := cl.Info(ctx)
	if err == nil {
		return info, ""
	}
	note := fmt.Sprintf("could not ask %s about the cluster (%v); the steps use placeholders", g.clus.Addr, g.explain(err))
	fmt.Fprintf(g.Err, "note: %s.\n\n", note)
	return apitypes.Info{}, note
}

// RemoveNodeCmd is `muninn cluster remove-node [--node ID] [--yes]`.
type RemoveNodeCmd struct {
	Node string `help:"The node to remove." placeholder:"ID"`
	Yes  bool   `help:"Remove it now (without --yes the steps are printed)."`
}

func (c RemoveNodeCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	cl := g.client()
	if c.Node == "" || !c.Yes {
		info, note := g.infoForSteps(ctx, cl)
		d, err := removeNodePlan(info, c.Node, g.clus.Addr)
		if err != nil {
			return err
		}
		d.Note = note
		if g.clus.JSON {
			return g.printJSON(d)
		}
		d.print(g.Out)
		return nil
	}
	res, err := cl.RemoveMember(ctx, c.Node)
	if err != nil {
		return g.explainChange(err, "muninn cluster info --addr "+g.clus.Addr+" (whether "+c.Node+" is still a member)")
	}
	if g.clus.JSON {
		return g.printJSON(res)
	}
	var ids []string
	for _, m := range res.Members {
		ids = append(ids, m.ID)
	}
	fmt.Fprintf(g.Out, "Removed %s. Members now: %s.\nStop its process, remove it from the other nodes' seeds, and rotate cluster_secret (see the steps of muninn cluster remove-node).\n", c.Node, strings.Join(ids, ", "))
	return nil
}

// EnableCmd and DisableCmd are in enable.go.

// numberedSteps puts each "(n)" step of a message on its own line.
func numberedSteps(msg string) string {
	head, rest, ok := strings.Cut(msg, " (1) ")
	if !ok {
		return msg
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(strings.TrimSpace(head), ":") + ":\n")
	steps := "(1) " + rest
	for i := 2; ; i++ {
		mark := fmt.Sprintf("; (%d) ", i)
		before, after, ok := strings.Cut(steps, mark)
		b.WriteString("  " + strings.TrimSpace(before) + "\n")
		if !ok {
			break
		}
		steps = fmt.Sprintf("(%d) ", i) + after
	}
	return strings.TrimRight(b.String(), "\n")
}

// QuarantineCmd is `muninn cluster quarantine [--export | --replay E.S | --drop E.S --yes]`.
type QuarantineCmd struct {
	Export bool   `help:"Write every quarantined entry as JSON lines (to --out or stdout)." xor:"action"`
	Out    string `help:"File for --export." type:"path" placeholder:"FILE"`
	Replay string `help:"Write the entry EPOCH.SEQ again through the Cortex, only if its engram has not changed since (it is then dropped from every quarantine holding it)." placeholder:"EPOCH.SEQ" xor:"action"`
	Drop   string `help:"Delete the entry EPOCH.SEQ from the quarantine (needs --yes)." placeholder:"EPOCH.SEQ" xor:"action"`
	Yes    bool   `help:"Confirm --drop."`
}

func parseRef(s string) (uint64, uint64, error) {
	e, q, ok := strings.Cut(s, ".")
	epoch, err1 := strconv.ParseUint(e, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if !ok || err1 != nil || err2 != nil || epoch == 0 || seq == 0 {
		return 0, 0, usageError{fmt.Errorf("%q is not an entry: use EPOCH.SEQ as listed by muninn cluster quarantine, e.g. 3.1042", s)}
	}
	return epoch, seq, nil
}

func (c QuarantineCmd) Run(g *Globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	cl := g.client()
	switch {
	case c.Export:
		var w io.Writer = g.Out
		if c.Out != "" {
			f, err := os.Create(c.Out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		n, err := cl.ExportQuarantine(ctx, w)
		if err != nil {
			return g.explain(err)
		}
		if c.Out != "" {
			fmt.Fprintf(g.Err, "wrote %d bytes to %s\n", n, c.Out)
		}
		return nil
	case c.Replay != "":
		epoch, seq, err := parseRef(c.Replay)
		if err != nil {
			return err
		}
		res, err := cl.ReplayQuarantined(ctx, epoch, seq)
		if err != nil {
			return g.explainChange(err, fmt.Sprintf("muninn cluster quarantine --addr %s (whether %d.%d is still quarantined), then read the engram back", g.clus.Addr, epoch, seq))
		}
		if g.clus.JSON {
			return g.printJSON(res)
		}
		fmt.Fprintf(g.Out, "Replayed %d.%d at %d.%d; it leaves the quarantine as that write reaches this node.\n", epoch, seq, res.Epoch, res.Seq)
		return nil
	case c.Drop != "":
		epoch, seq, err := parseRef(c.Drop)
		if err != nil {
			return err
		}
		if !c.Yes {
			return usageError{fmt.Errorf("refusing to drop %d.%d without --yes: the write it holds is deleted for good (export it first with --export)", epoch, seq)}
		}
		if err := cl.DropQuarantined(ctx, epoch, seq); err != nil {
			return g.explainChange(err, fmt.Sprintf("muninn cluster quarantine --addr %s (whether %d.%d is still quarantined)", g.clus.Addr, epoch, seq))
		}
		fmt.Fprintf(g.Out, "Dropped %d.%d from the quarantine.\n", epoch, seq)
		return nil
	}
	ql, err := cl.Quarantine(ctx)
	if err != nil {
		return g.explain(err)
	}
	if g.clus.JSON {
		return g.printJSON(ql)
	}
	quarantineTable(g.Out, ql)
	return nil
}

// FencedCmd is `muninn cluster fenced`, the deprecated name of `muninn
// cluster quarantine`: the same flags and answers, and a note on stderr.
type FencedCmd struct {
	QuarantineCmd `embed:""`
}

func (c FencedCmd) Run(g *Globals) error {
	fmt.Fprintln(g.Err, "muninn: `muninn cluster fenced` is deprecated; use `muninn cluster quarantine` (same flags)")
	return c.QuarantineCmd.Run(g)
}
