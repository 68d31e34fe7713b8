package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// recoverReport is what muninn cluster recover found and concludes.
type recoverReport struct {
	Nodes    []surveyed `json:"nodes"`
	Answered int        `json:"answered"`
	// Freshest is the data node with the highest last position (ties by
	// commit point): the one whose log holds the most.
	Freshest *surveyed `json:"freshest,omitempty"`
	// MembershipFrom names the answer whose membership is used: the answer
	// with the highest last position, whose log has the latest changes.
	MembershipFrom string   `json:"membership_from,omitempty"`
	Voters         []string `json:"voters"`
	Quorum         int      `json:"quorum"`
	// RunningVoters answered through the API; StoppedVoters were read
	// from a data dir; MissingVoters were heard from in neither way.
	RunningVoters   []string `json:"running_voters"`
	StoppedVoters   []string `json:"stopped_voters"`
	MissingVoters   []string `json:"missing_voters"`
	QuorumReachable bool     `json:"quorum_reachable"`
	Notes           []string `json:"notes,omitempty"`
}

// ahead reports whether a's log is ahead of b's: a higher last epoch, then
// a higher last seq (the election rule), then a higher commit point.
func ahead(a, b surveyed) bool {
	if a.LastEpoch != b.LastEpoch {
		return a.LastEpoch > b.LastEpoch
	}
	if a.LastSeq != b.LastSeq {
		return a.LastSeq > b.LastSeq
	}
	return a.CommitSeq > b.CommitSeq
}

func analyze(nodes []surveyed) recoverReport {
	r := recoverReport{Nodes: nodes}
	var from *surveyed
	for i := range nodes {
		n := &nodes[i]
		if n.Error != "" {
			continue
		}
		r.Answered++
		if n.Note != "" {
			r.Notes = append(r.Notes, n.Source+": "+n.Note)
		}
		// A Sentinel holds no data: it cannot carry the cluster on.
		if n.Kind != "sentinel" && (r.Freshest == nil || ahead(*n, *r.Freshest)) {
			r.Freshest = n
		}
		if len(n.Members) > 0 && (from == nil || ahead(*n, *from)) {
			from = n
		}
	}
	if from == nil {
		return r
	}
	r.MembershipFrom = label(*from)
	for _, n := range nodes {
		if n.Error == "" && len(n.Members) > 0 && !slices.Equal(n.Members, from.Members) {
			r.Notes = append(r.Notes, fmt.Sprintf("%s sees another membership than %s (%s); the latter, from the log furthest ahead, is used", label(n), label(*from), memberList(n.Members)))
		}
	}
	running, stopped := map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		switch {
		case n.Error != "" || n.NodeID == "":
		case n.Via == "api":
			running[n.NodeID] = true
		default:
			stopped[n.NodeID] = true
		}
	}
	for _, m := range from.Members {
		if !m.voter() {
			continue
		}
		r.Voters = append(r.Voters, m.ID)
		switch {
		case running[m.ID]:
			r.RunningVoters = append(r.RunningVoters, m.ID)
		case stopped[m.ID]:
			r.StoppedVoters = append(r.StoppedVoters, m.ID)
		default:
			r.MissingVoters = append(r.MissingVoters, m.ID)
		}
	}
	r.Quorum = len(r.Voters)/2 + 1
	r.QuorumReachable = len(r.Voters) > 0 && len(r.RunningVoters) >= r.Quorum
	return r
}

// label names an answer by node id, or by where it came from.
func label(n surveyed) string {
	if n.NodeID != "" {
		return n.NodeID
	}
	return n.Source
}

func memberList(ms []surveyMember) string {
	var parts []string
	for _, m := range ms {
		p := m.ID
		switch {
		case m.Learner:
			p += " (learner)"
		case m.Kind != "auto":
			p += " (" + m.Kind + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func (r recoverReport) print(w io.Writer) {
	var rows [][]string
	var failed []string
	for _, n := range r.Nodes {
		src := n.Source
		if n.Via == "data_dir" {
			src += " (stopped)"
		}
		if n.Error != "" {
			rows = append(rows, []string{src, orDash(n.NodeID), dash, dash, dash, dash, dash, "no answer"})
			failed = append(failed, fmt.Sprintf("  %s: %s", n.Source, n.Error))
			continue
		}
		rows = append(rows, []string{src, orDash(n.NodeID), orDash(n.Kind), orDash(n.Role), fmt.Sprint(n.Epoch),
			fmt.Sprintf("%d.%d", n.LastEpoch, n.LastSeq), fmt.Sprint(n.CommitSeq), orDash(memberList(n.Members))})
	}
	table(w, []string{"SOURCE", "NODE ID", "KIND", "ROLE", "EPOCH", "LAST", "COMMIT", "MEMBERS"}, rows)
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nNo answer from:\n%s\n", strings.Join(failed, "\n"))
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s.\n", n)
	}
	if r.Freshest == nil {
		fmt.Fprintln(w, "No data node answered: nothing to compare.")
	} else {
		f := r.Freshest
		how := "running, at " + f.Source
		if f.Via == "data_dir" {
			how = "stopped, data dir " + f.Source
		}
		fmt.Fprintf(w, "Freshest data node: %s (last %d.%d, commit %d; %s).\n", label(*f), f.LastEpoch, f.LastSeq, f.CommitSeq, how)
	}
	if r.MembershipFrom == "" {
		fmt.Fprintln(w, "No membership known: no node that answered reported one.")
		return
	}
	fmt.Fprintf(w, "Membership (as %s sees it): %d voters (%s), quorum %d.\n", r.MembershipFrom, len(r.Voters), strings.Join(r.Voters, ", "), r.Quorum)
	if r.QuorumReachable {
		fmt.Fprintf(w, "Running voters: %d of %d (%s): a quorum. No recovery is needed: the cluster elects a Cortex on its own (muninn cluster info shows it).\n",
			len(r.RunningVoters), len(r.Voters), strings.Join(r.RunningVoters, ", "))
		return
	}
	fmt.Fprintf(w, "Running voters: %d of %d (%s): no quorum; the cluster cannot elect a Cortex on its own.\n",
		len(r.RunningVoters), len(r.Voters), orDash(strings.Join(r.RunningVoters, ", ")))
	if len(r.StoppedVoters) > 0 {
		verdict := "not enough for a quorum on their own"
		if len(r.RunningVoters)+len(r.StoppedVoters) >= r.Quorum {
			verdict = "starting them again gives a quorum, which elects a Cortex on its own"
		}
		fmt.Fprintf(w, "Stopped voters whose data was read: %s: start them again with their data intact (%s).\n", strings.Join(r.StoppedVoters, ", "), verdict)
	}
	if len(r.MissingVoters) == 0 {
		fmt.Fprintln(w, "Not heard from: none. Every voter's log was read, so nothing is known to be lost.")
	}
	pos := "its log's start"
	if f := r.Freshest; f != nil {
		pos = fmt.Sprintf("%d.%d (the freshest survivor's last position)", f.LastEpoch, f.LastSeq)
	}
	for _, id := range r.MissingVoters {
		fmt.Fprintf(w, "Not heard from: %s. Entries past %s that only %s may have held would be lost if the cluster carried on without it.\n", id, pos, id)
	}
	if len(r.RunningVoters)+len(r.StoppedVoters) >= r.Quorum {
		// --force refuses this case: a quorum is reachable.
		fmt.Fprintln(w, "Start the stopped voters again: with those running they make a quorum. --force is refused while a quorum is reachable.")
		return
	}
	if f := r.Freshest; f != nil && f.Via == "data_dir" && f.NodeID != "" {
		fmt.Fprintf(w, "If those voters are gone for good: stop every node, then muninn cluster recover --force --node %s --data-dir %s=%s makes %s the only voter of a new epoch (docs/cli.md).\n", f.NodeID, f.NodeID, f.Source, f.NodeID)
	} else {
		fmt.Fprintln(w, "If those voters are gone for good: stop every node, then muninn cluster recover --force --node ID --data-dir ID=DIR makes that survivor the only voter of a new epoch (docs/cli.md).")
	}
}
