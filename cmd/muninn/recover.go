package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/store"
)

// RecoverCmd is `muninn cluster recover [--addr URL ...] [--data-dir DIR
// ...]`, issue 15's part 4. It asks every node given for its place in the
// log, names the freshest data node and says what losing the silent voters
// would cost. With --force --node ID it then makes that stopped survivor
// the only voter of a new epoch, if nothing forbids it (recover_force.go).
type RecoverCmd struct {
	DataDir    []string `name:"data-dir" help:"A stopped node's data_dir, read without changing it (repeat for each). Write ID=DIR when its store identity is not recorded in the membership." placeholder:"[ID=]DIR"`
	Force      bool     `help:"Make the stopped survivor --node the only voter of a new epoch, when no quorum runs and no other voter is running (changes its data directory)."`
	Node       string   `help:"With --force: the survivor to carry on alone; its data directory must be given with --data-dir." placeholder:"ID"`
	AcceptLoss bool     `name:"accept-loss" help:"With --force: carry on from --node even though another node's log is ahead of it (those entries are lost)."`
}

// Exit status of a survey that reached no quorum of running voters: the
// cluster cannot elect a Cortex on its own (docs/cli.md).
const exitNoQuorum = 2

// defaultRecoverWait bounds each node's answer (--timeout overrides).
const defaultRecoverWait = 3 * time.Second

func (c RecoverCmd) Run(g *Globals, kctx *kong.Context) error {
	addrs := addrFlags(kctx.Args)
	if len(addrs) == 0 && len(c.DataDir) == 0 {
		addrs = []string{g.clus.Addr}
	}
	wait := defaultRecoverWait
	if g.clus.Timeout > 0 {
		wait = g.clus.Timeout
	}
	if c.Force || c.Node != "" || c.AcceptLoss {
		return c.force(g, addrs, wait)
	}
	rep := analyze(survey(addrs, c.DataDir, g.clus.Token, wait))
	if g.clus.JSON {
		if err := g.printJSON(rep); err != nil {
			return err
		}
	} else {
		rep.print(g.Out)
	}
	switch {
	case rep.Freshest == nil && rep.Answered == 0:
		return errors.New("no node answered: check the --addr URLs (is muninn running there?) and the --data-dir paths")
	case !rep.QuorumReachable:
		fmt.Fprintf(g.Err, "muninn: no quorum of voters is running (exit status %d)\n", exitNoQuorum)
		panic(exitPanic{exitNoQuorum})
	}
	return nil
}

// addrFlags is every --addr on the command line. The cluster commands'
// --addr is one string (the last one given wins), so recover reads the
// repeated flag from the arguments themselves.
func addrFlags(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out
		case a == "--addr" && i+1 < len(args):
			out = append(out, args[i+1])
			i++
		case strings.HasPrefix(a, "--addr="):
			out = append(out, strings.TrimPrefix(a, "--addr="))
		}
	}
	return out
}

// surveyed is one node's answer (or why there is none).
type surveyed struct {
	Source string `json:"source"`
	// Via is "api" (a running node) or "data_dir" (a stopped node's store).
	Via       string         `json:"via"`
	NodeID    string         `json:"node_id,omitempty"`
	Kind      string         `json:"kind,omitempty"`
	Role      string         `json:"role,omitempty"`
	Epoch     uint64         `json:"epoch"`
	LastEpoch uint64         `json:"last_epoch"`
	LastSeq   uint64         `json:"last_seq"`
	CommitSeq uint64         `json:"commit_seq"`
	Members   []surveyMember `json:"members,omitempty"`
	Error     string         `json:"error,omitempty"`
	Note      string         `json:"note,omitempty"`
}

type surveyMember struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Learner bool   `json:"learner,omitempty"`
}

// voter is core.Member.Voter on the survey's strings.
func (m surveyMember) voter() bool { return !m.Learner && m.Kind != "observer" }

// survey asks every node at once, each for at most wait.
func survey(addrs, dirs []string, token string, wait time.Duration) []surveyed {
	out := make([]surveyed, len(addrs)+len(dirs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = askAPI(a, token, wait)
		}()
	}
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[len(addrs)+i] = readDataDir(d)
		}()
	}
	wg.Wait()
	return out
}

func askAPI(addr, token string, wait time.Duration) surveyed {
	s := surveyed{Source: addr, Via: "api"}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	info, err := client.New(addr, client.WithToken(token), client.WithRetryBudget(wait)).Info(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		s.Error = fmt.Sprintf("did not answer within %s", wait)
		return s
	case err != nil:
		s.Error = fmt.Sprintf("cannot ask it: %v", err)
		return s
	}
	s.NodeID, s.Kind, s.Role = info.NodeID, info.Kind, info.Role
	s.Epoch, s.LastEpoch, s.LastSeq, s.CommitSeq = info.Epoch, info.LastEpoch, info.LastSeq, info.CommitSeq
	for _, m := range info.Members {
		s.Members = append(s.Members, surveyMember{ID: m.ID, Kind: m.Kind, Learner: m.Learner})
	}
	return s
}

// readDataDir reads a stopped node's store: DIR is its data_dir (holding
// db/) or the store itself, optionally prefixed by the node's id (ID=DIR).
func readDataDir(arg string) surveyed {
	id, dir := "", arg
	if before, after, ok := strings.Cut(arg, "="); ok && before != "" && after != "" && !strings.ContainsAny(before, `/\`) {
		id, dir = before, after
	}
	s := surveyed{Source: dir, Via: "data_dir", NodeID: id}
	sum, err := store.Inspect(storeDirOf(dir))
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Epoch, s.LastEpoch, s.LastSeq = uint64(sum.HardState.Epoch), uint64(sum.Last.Epoch), uint64(sum.Last.Seq)
	s.CommitSeq = uint64(sum.HardState.Commit.Seq)
	for _, m := range sum.Members {
		s.Members = append(s.Members, surveyMember{ID: string(m.ID), Kind: m.Kind.String(), Learner: m.Learner})
		// The membership records the store each member held when it was
		// last caught up (rule 16): it tells whose store this is.
		if id == "" && sum.Identity != 0 && m.Store == sum.Identity {
			s.NodeID = string(m.ID)
		}
	}
	if s.NodeID == "" {
		s.Note = fmt.Sprintf("which member this store belongs to is not recorded in its membership: give it as --data-dir ID=%s", dir)
	}
	if id != "" {
		if why := notIDs(id, dir, sum.Identity, sum.Members); why != "" {
			// Not counted as id's: its log is another node's.
			s.Error = why
			return s
		}
	}
	for _, m := range s.Members {
		if m.ID == s.NodeID {
			s.Kind = m.Kind
		}
	}
	return s
}

// notIDs says why the store read from dir, given as --data-dir id=dir, is
// not id's, or "" when nothing says so. The membership records, per
// member, the store it counts with (rule 16): another store recorded for
// id, or this store recorded for another member, means the label is wrong
// (a mixed-up path, a copy of another node's directory).
func notIDs(id, dir string, identity uint64, ms core.Members) string {
	if identity == 0 {
		return ""
	}
	var recorded uint64
	owner := ""
	for _, m := range ms {
		switch {
		case string(m.ID) == id:
			recorded = m.Store
		case m.Store == identity:
			owner = string(m.ID)
		}
	}
	switch {
	case owner != "":
		return fmt.Sprintf("given as %s's, but this store is %s's: its membership records this store (identity %016x) for %s%s; "+
			"give it as --data-dir %s=%s, or without ID=", id, owner, identity, owner, recordedFor(id, recorded), owner, dir)
	case recorded != 0 && recorded != identity:
		return fmt.Sprintf("given as %s's, but this store (identity %016x) is not %s's: its membership records store %016x for %s; "+
			"give %s's own data directory (a store recover can name needs no ID=)", id, identity, id, recorded, id, id)
	}
	return ""
}

func recordedFor(id string, recorded uint64) string {
	if recorded == 0 {
		return ""
	}
	return fmt.Sprintf(" and store %016x for %s", recorded, id)
}
