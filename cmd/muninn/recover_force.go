package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/store"
)

// voterDialWait bounds the check that no other voter runs: every voter's
// MBP address is dialed at once, each for at most this long.
var voterDialWait = time.Second

// storeDirOf is the store directory of a data_dir argument: DIR/db when
// there is one, else DIR itself.
func storeDirOf(dir string) string {
	if fi, err := os.Stat(filepath.Join(dir, "db")); err == nil && fi.IsDir() {
		return filepath.Join(dir, "db")
	}
	return dir
}

// force is `muninn cluster recover --force --node ID`: the survey, then,
// if nothing forbids it, the stopped survivor's store is made the only
// voter of a new epoch (store.ForceSoleVoter).
func (c RecoverCmd) force(g *Globals, addrs []string, wait time.Duration) error {
	switch {
	case !c.Force:
		return usageError{errors.New("--node and --accept-loss go with --force: without it, muninn cluster recover only surveys")}
	case c.Node == "":
		return usageError{errors.New("refusing --force without --node ID: name the survivor that is to carry on alone " +
			"(run muninn cluster recover without --force: it names the freshest data node)")}
	case g.clus.JSON:
		return usageError{errors.New("--json goes with the survey only: --force prints what it did as text")}
	}
	rep := analyze(survey(addrs, c.DataDir, g.clus.Token, wait))
	rep.print(g.Out)
	fmt.Fprintln(g.Out)
	id := c.Node
	// Two data directories given as one member's (ID= twice, or a store
	// whose membership names it as that member): which is its log?
	seen := map[string]string{}
	for _, n := range rep.Nodes {
		if n.Via != "data_dir" || n.NodeID == "" {
			continue
		}
		if first, ok := seen[n.NodeID]; ok {
			return fmt.Errorf("refusing --force: two data directories are given as %s's, %s and %s: give each member's data directory once "+
				"(the survey above says whose each store is)", n.NodeID, first, n.Source)
		}
		seen[n.NodeID] = n.Source
	}

	var surv *surveyed
	for i := range rep.Nodes {
		n := &rep.Nodes[i]
		if n.NodeID != id {
			continue
		}
		if n.Via == "api" && n.Error == "" {
			return fmt.Errorf("refusing --force: %s is running (it answered at %s): stop it first, then give its data directory as --data-dir %s=DIR. "+
				"--force rewrites the store of a stopped node", id, n.Source, id)
		}
		if n.Via == "data_dir" && surv == nil {
			surv = n
		}
	}
	switch {
	case surv == nil:
		return fmt.Errorf("refusing --force: no data directory of %s was given: stop it and give its data directory as --data-dir %s=DIR", id, id)
	case surv.Error != "":
		return fmt.Errorf("refusing --force: cannot use %s's data directory %s: %s", id, surv.Source, surv.Error)
	case rep.QuorumReachable:
		return fmt.Errorf("refusing --force: a quorum of voters runs (%s of %d voters: %s): the cluster can elect a Cortex on its own, nothing needs forcing",
			fmt.Sprint(len(rep.RunningVoters)), len(rep.Voters), strings.Join(rep.RunningVoters, ", "))
	case len(rep.Voters) > 0 && len(rep.RunningVoters)+len(rep.StoppedVoters) >= rep.Quorum:
		// The issue: "it refuses while a quorum is reachable". Voters
		// whose data was read can be started again; with those running a
		// quorum elects the freshest log on its own and loses nothing,
		// where --force would drop the others' entries past the survivor's
		// log and leave them learners.
		return fmt.Errorf("refusing --force: a quorum is reachable: the voters given, %s, are %d of %d (quorum %d) and would form a quorum if started: "+
			"start them again instead (muninn start, each with its own config and data directory as they are); a quorum elects a Cortex on its own, "+
			"the freshest log first, so nothing acknowledged is lost. Use --force only when too few voters survive for a quorum",
			givenVoters(rep), len(rep.RunningVoters)+len(rep.StoppedVoters), len(rep.Voters), rep.Quorum)
	}
	dir := storeDirOf(surv.Source)
	// The survivor's own membership, with the addresses the survey does
	// not carry.
	sum, err := store.Inspect(dir)
	if err != nil {
		return fmt.Errorf("refusing --force: %w", err)
	}
	me, ok := core.Members(sum.Members).Get(core.NodeID(id))
	if !ok || !me.DataVoter() {
		var dv []string
		for _, m := range sum.Members {
			if m.DataVoter() {
				dv = append(dv, string(m.ID))
			}
		}
		return fmt.Errorf("refusing --force: %s is not a data voter in its store's membership (%s); the data voters are %s: give one of them as --node",
			id, orDash(memberList(surv.Members)), orDash(strings.Join(dv, ", ")))
	}
	dial := otherVoters(sum.Members, rep.Nodes, surv)
	running, unchecked := runningVoters(dial, core.NodeID(id), voterDialWait)
	if len(running) > 0 {
		return fmt.Errorf("refusing --force: %s accept%s connections at %s recorded MBP address (%s): %s running. "+
			"Stop %s first: a running voter could elect a second Cortex beside the recovered node",
			strings.Join(running, ", "), plural(len(running), "s", ""), plural(len(running), "its", "their"),
			strings.Join(runningAddrs(dial, running), ", "), plural(len(running), "it is", "they are"), plural(len(running), "it", "them"))
	}
	if f := rep.Freshest; f != nil && f != surv && ahead(*f, *surv) {
		loss := lossText(*surv, *f)
		if !c.AcceptLoss {
			return fmt.Errorf("refusing --force: %s is not the freshest data node: %s. Give --node %s, or add --accept-loss to lose them", id, loss, label(*f))
		}
		fmt.Fprintf(g.Out, "Accepting the loss (--accept-loss): %s.\n", loss)
	}
	minEpoch := uint64(0)
	for _, n := range rep.Nodes {
		if n.Error == "" {
			minEpoch = max(minEpoch, n.Epoch, n.LastEpoch)
		}
	}

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return fmt.Errorf("refusing --force: open %s's store: %w (is the node running? stop it first)", id, err)
	}
	res, err := st.ForceSoleVoter(core.NodeID(id), core.Epoch(minEpoch), time.Now().UnixMilli())
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--force on %s: %w", id, err)
	}
	printForced(g.Out, res, surv.Source, unchecked)
	return nil
}

// givenVoters names the voters the survey heard from, each with how: "a
// (running at URL)", "b (stopped, data dir DIR)".
func givenVoters(rep recoverReport) string {
	var out []string
	for _, v := range rep.RunningVoters {
		out = append(out, v+" (running)")
	}
	for _, v := range rep.StoppedVoters {
		d := ""
		for _, n := range rep.Nodes {
			if n.Via == "data_dir" && n.Error == "" && n.NodeID == v {
				d = ", data dir " + n.Source
				break
			}
		}
		out = append(out, v+" (stopped"+d+")")
	}
	return strings.Join(out, ", ")
}

// lossText says what making surv carry on loses of f's log, f being ahead.
func lossText(surv, f surveyed) string {
	s := fmt.Sprintf("%s's log is ahead of %s's (%s: last %d.%d, commit %d; %s: last %d.%d, commit %d): "+
		"the entries %s holds past the point where the two logs part, up to %d.%d, would be lost (%s's copies go to its quarantine if it rejoins)",
		label(f), label(surv), label(f), f.LastEpoch, f.LastSeq, f.CommitSeq, label(surv), surv.LastEpoch, surv.LastSeq, surv.CommitSeq,
		label(f), f.LastEpoch, f.LastSeq, label(f))
	if f.CommitSeq > surv.LastSeq {
		s += fmt.Sprintf(", among them committed entries up to seq %d, which were acknowledged to clients", f.CommitSeq)
	}
	return s
}

// otherVoters is ms, plus the voters the other stopped nodes' stores
// record that ms lacks (a member added after the survivor's last
// membership, when it is not the freshest), so that every voter known is
// checked.
func otherVoters(ms core.Members, nodes []surveyed, surv *surveyed) core.Members {
	out := slices.Clone(ms)
	for i := range nodes {
		n := &nodes[i]
		if n == surv || n.Via != "data_dir" || n.Error != "" {
			continue
		}
		sum, err := store.Inspect(storeDirOf(n.Source))
		if err != nil {
			continue
		}
		for _, m := range sum.Members {
			if _, ok := out.Get(m.ID); !ok && m.Voter() {
				out = append(out, m)
			}
		}
	}
	return out
}

// runningVoters dials every voter of ms but self at its recorded MBP
// address, all at once, each for at most wait, and returns those that
// accepted a connection, and those with no address to dial.
func runningVoters(ms core.Members, self core.NodeID, wait time.Duration) (running, unchecked []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.ID == self || !m.Voter() {
			continue
		}
		if m.Addr == "" {
			unchecked = append(unchecked, string(m.ID))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", m.Addr, wait)
			if err != nil {
				return
			}
			conn.Close()
			mu.Lock()
			running = append(running, string(m.ID))
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(running)
	return running, unchecked
}

func runningAddrs(ms core.Members, ids []string) []string {
	var out []string
	for _, id := range ids {
		if m, ok := core.Members(ms).Get(core.NodeID(id)); ok {
			out = append(out, m.Addr)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// printForced says what --force did and what to do next.
func printForced(w io.Writer, r store.SoleVoter, dir string, unchecked []string) {
	var voters []string
	for _, m := range r.BeforeMembers {
		if m.Voter() {
			voters = append(voters, string(m.ID))
		}
	}
	var after []string
	for _, m := range r.Members {
		switch {
		case m.ID == r.Node:
			after = append(after, string(m.ID)+" (the only voter)")
		case m.Learner:
			after = append(after, string(m.ID)+" (learner)")
		default:
			after = append(after, string(m.ID)+" ("+m.Kind.String()+")")
		}
	}
	fmt.Fprintf(w, "Forced: %s (data dir %s) is the only voter of epoch %d.\n", r.Node, dir, r.Epoch)
	fmt.Fprintf(w, "  before: epoch %d, last %s, commit %d; voters %s\n", r.Before.Epoch, r.BeforeLast, r.Before.Commit.Seq, strings.Join(voters, ", "))
	fmt.Fprintf(w, "  after:  epoch %d, last %s (the new membership entry), commit %d (unchanged); members %s\n",
		r.Epoch, r.Entry, r.Before.Commit.Seq, strings.Join(after, ", "))
	fmt.Fprintf(w, "  every entry %s held is kept: they commit with its first entry as Cortex\n", r.Node)
	if len(r.Dropped) > 0 {
		fmt.Fprintf(w, "  dropped: %s (Sentinels hold no data, so they cannot be learners; add them again once the cluster runs)\n", joinIDs(r.Dropped))
	}
	if len(unchecked) > 0 {
		fmt.Fprintf(w, "  warning: no MBP address is recorded for %s, so whether %s running could not be checked: make sure %s stopped\n",
			strings.Join(unchecked, ", "), plural(len(unchecked), "it is", "they are"), plural(len(unchecked), "it is", "they are"))
	}
	fmt.Fprintln(w, "Next steps:")
	fmt.Fprintf(w, "  1. Start %s (muninn start, its config unchanged). It elects itself Cortex after one SDOWN window and commits every entry it holds.\n", r.Node)
	fmt.Fprintf(w, "  2. Check it: muninn cluster status --addr <%s's API URL> (Cortex %s, epoch above %d).\n", r.Node, r.Node, r.Epoch)
	if len(r.Learners) > 0 {
		fmt.Fprintf(w, "  3. While %s runs, start the other surviving nodes (%s) one at a time, with their data directories as they are, or empty ones if theirs are lost. "+
			"Each rejoins as a learner: entries of its log that differ from %s's are removed and kept in its quarantine (muninn cluster quarantine --addr <its API URL>), "+
			"and once caught up it is promoted to voter by the Cortex on its own. Do not start them while %s is down: they would still count the old voters.\n",
			r.Node, joinIDs(r.Learners), r.Node, r.Node)
		fmt.Fprintln(w, "  4. Members that will not come back: muninn cluster remove-node --node ID --yes.")
	}
	if len(r.Dropped) > 0 {
		fmt.Fprintf(w, "  %d. Sentinels: muninn cluster add-node --node ID --kind sentinel, for each of %s.\n", 3+2*min(len(r.Learners), 1), joinIDs(r.Dropped))
	}
}

func joinIDs(ids []core.NodeID) string {
	var s []string
	for _, id := range ids {
		s = append(s, string(id))
	}
	return strings.Join(s, ", ")
}
