package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/apitypes"
)

// printInfo is `muninn cluster info`: the seed's table (with a PRIORITY
// column when any member's cluster.priority is not the default), the
// summary line and the timing that decides failover.
func printInfo(w io.Writer, info apitypes.Info, st apitypes.Status) {
	prio := priorityCells(info)
	if prio == nil {
		infoTable(w, st)
	} else {
		var rows [][]string
		for _, m := range st.Members {
			cell, ok := prio[m.ID]
			if !ok {
				cell = "?"
			}
			rows = append(rows, []string{m.ID, m.Role, seqCell(m.LastSeq), lagCell(m), cell})
		}
		table(w, []string{"NODE ID", "ROLE", "LAST SEQ", "LAG", "PRIORITY"}, rows)
	}
	infoSummary(w, info)
	if !info.ClusterEnabled {
		return
	}
	if info.DownAfterMs > 0 {
		fmt.Fprintf(w, "Failure detection: a Cortex silent for %s is taken for down (3 heartbeats of %s, or cluster.lease_ttl if shorter); read lease %s.\n",
			fmtLag(info.DownAfterMs), fmtLag(info.HeartbeatMs), fmtLag(info.LeaseMs))
	}
	if wait := max(info.LeaseWaitMs, st.LeaseWaitMs); wait > 0 {
		fmt.Fprintf(w, "The Cortex was elected on crash hints: it commits nothing for another %s, until the old Cortex's lease has run out.\n", fmtLag(wait))
	}
}

// priorityCells is the PRIORITY column by member id, or nil when every
// data member known has the default (the seed's table then). "—" marks a
// Sentinel or Observer (never Cortex), "?" a priority not known yet.
func priorityCells(info apitypes.Info) map[string]string {
	cells := map[string]string{}
	show := false
	for _, m := range info.Members {
		switch {
		case m.Kind != core.KindAuto.String():
			cells[m.ID] = dash
		case m.Priority == nil:
			cells[m.ID] = "?"
		case *m.Priority == 0:
			cells[m.ID], show = "0 (never)", true
		default:
			cells[m.ID] = strconv.Itoa(*m.Priority)
			show = show || *m.Priority != core.DefaultPriority
		}
	}
	if !show {
		return nil
	}
	return cells
}
