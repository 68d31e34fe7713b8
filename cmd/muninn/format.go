package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// thousands formats n with comma separators: 10421 -> "10,421".
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// dash is what the tables print where a value does not apply.
const dash = "—"

// fmtLag formats a lag in ms: "0ms", "2ms", "850ms", "1.2s", "2m3s".
func fmtLag(ms int64) string {
	switch {
	case ms < 1000:
		return fmt.Sprintf("%dms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1fs", float64(ms)/1000)
	}
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

func seqCell(p *uint64) string {
	if p == nil {
		return dash
	}
	return thousands(*p)
}

// lagCell is the LAG column: "—" for the Cortex and Sentinels (the lag of
// the log against itself, or of no data), "?" when this view cannot know.
func lagCell(m apitypes.MemberStatus) string {
	switch {
	case m.LagMs != nil:
		return fmtLag(*m.LagMs)
	case m.Role == "cortex" || m.Kind == "sentinel":
		return dash
	}
	return "?"
}

// table writes rows with columns separated by at least three spaces, as
// the seed's `muninn cluster info` output.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// infoTable is `muninn cluster info`: the seed's NODE ID / ROLE / LAST SEQ
// / LAG table from the Cortex's status.
func infoTable(w io.Writer, st apitypes.Status) {
	var rows [][]string
	for _, m := range st.Members {
		rows = append(rows, []string{m.ID, m.Role, seqCell(m.LastSeq), lagCell(m)})
	}
	table(w, []string{"NODE ID", "ROLE", "LAST SEQ", "LAG"}, rows)
}

// infoSummary is the line under the table: Cortex, epoch, fencing token.
func infoSummary(w io.Writer, info apitypes.Info) {
	cortex := info.Cortex
	if cortex == "" {
		cortex = "(none: election under way)"
	}
	mode := "cluster"
	if !info.ClusterEnabled {
		mode = "standalone"
	}
	fmt.Fprintf(w, "\nCortex: %s   Epoch: %d   Fencing token: %d   Members: %d (quorum %d)   Mode: %s\n",
		cortex, info.Epoch, info.FencingToken, len(info.Members), info.Quorum, mode)
	if info.ClusterID != "" {
		fmt.Fprintf(w, "Cluster id: %s\n", info.ClusterID)
	}
	if info.Handoff != "" {
		fmt.Fprintf(w, "Handoff to %s under way.\n", info.Handoff)
	}
	if info.Joining {
		fmt.Fprintf(w, "%s is not a member yet: add it with muninn cluster add-node --node %s\n", info.NodeID, info.NodeID)
	}
	var rows [][]string
	for _, m := range info.Members {
		rows = append(rows, []string{m.ID, orDash(m.Version), orDash(m.Protocol)})
	}
	versions(w, info.ActiveProtocol, rows)
}

// versions is the lines on versions under cluster info and status: the
// active protocol version, then each member's binary version and the
// protocol versions it speaks (docs/upgrades.md). Nothing from a node that
// reports no active protocol (a build before negotiation).
func versions(w io.Writer, active uint16, rows [][]string) {
	if active == 0 || len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "Protocol: %d active (the highest version every voter speaks)\n\n", active)
	table(w, []string{"NODE ID", "VERSION", "PROTOCOL"}, rows)
}

// statusTable is `muninn cluster status`.
func statusTable(w io.Writer, st apitypes.Status) {
	var rows [][]string
	for _, m := range st.Members {
		conn := "no"
		if m.Connected {
			conn = "yes"
		}
		heard := dash
		if m.LastHeardMs != nil {
			heard = fmtLag(*m.LastHeardMs) + " ago"
		}
		note := ""
		if c := m.CatchUp; c != nil {
			note = fmt.Sprintf("catching up: %.1f%% (%s of %s)", c.Percent, thousands(c.MatchSeq), thousands(c.TargetSeq))
		}
		rows = append(rows, []string{m.ID, m.Role, m.Health, seqCell(m.LastSeq), lagCell(m), conn, heard, note})
	}
	table(w, []string{"NODE ID", "ROLE", "HEALTH", "LAST SEQ", "LAG", "CONNECTED", "LAST HEARD", "NOTE"}, rows)
	view := fmt.Sprintf("the Cortex's view (%s)", st.NodeID)
	if st.View != "cortex" {
		view = fmt.Sprintf("%s's own view: lags of other nodes are only known to the Cortex", st.NodeID)
	}
	fmt.Fprintf(w, "\nHealth: %s", st.Health)
	if st.Reason != "" {
		fmt.Fprintf(w, " (%s)", st.Reason)
	}
	fmt.Fprintf(w, "\nEpoch: %d   Commit: %s   Last: %s   From: %s\n", st.Epoch, thousands(st.CommitSeq), thousands(st.LastSeq), view)
	var vrows [][]string
	for _, m := range st.Members {
		vrows = append(vrows, []string{m.ID, orDash(m.Version), orDash(m.Protocol)})
	}
	versions(w, st.ActiveProtocol, vrows)
}

func quarantineTable(w io.Writer, fl apitypes.QuarantineList) {
	if len(fl.Entries) == 0 {
		fmt.Fprintf(w, "No quarantined entries on %s.\n", fl.NodeID)
		return
	}
	var rows [][]string
	for _, e := range fl.Entries {
		when := dash
		if e.TimeMS > 0 {
			when = time.UnixMilli(e.TimeMS).UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{fmt.Sprintf("%d.%d", e.Epoch, e.Seq), e.Type, e.Durability, orDash(e.Vault), orDash(e.Op), orDash(e.ID), when, e.Reason})
	}
	table(w, []string{"ENTRY", "TYPE", "DURABILITY", "VAULT", "OP", "ID", "QUARANTINED", "REASON"}, rows)
	fmt.Fprintf(w, "\n%d entries quarantined on %s. Replay one (applied only if its engram has not changed since): muninn cluster quarantine --replay EPOCH.SEQ; export all: --export.\n", len(fl.Entries), fl.NodeID)
}

func orDash(s string) string {
	if s == "" {
		return dash
	}
	return s
}
