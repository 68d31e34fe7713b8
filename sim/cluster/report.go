package cluster

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// printReport prints one segment's report as text.
func printReport(w io.Writer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(w, "  "+format+"\n", args...) }
	verdict := "ok"
	if len(r.Anomalies) > 0 {
		verdict = fmt.Sprintf("%d ANOMALIES", len(r.Anomalies))
	}
	fmt.Fprintf(w, "\n== %s / %s (round %d): %s\n", r.Topology, r.Nemesis, r.Round, verdict)
	for _, f := range r.Faults {
		extra := f.Sides
		if extra == "" {
			extra = f.Note
		}
		p("fault      %s %s from %s to %s (Cortex %s, epoch %d) %s", f.Kind, strings.Join(f.Targets, ","), ms(f.Start), ms(f.End), f.Cortex, f.Epoch, extra)
	}
	ok, fail, unk := outcomeTotals(r.Ops)
	p("ops        %d: %d ok, %d failed, %d unknown  %s", r.TotalOps, ok, fail, unk, opBreakdown(r.Ops))
	p("linear     %s over %d register ops (quorum writes + strong reads)", r.Linear.Result, r.Linear.Ops)
	p("quorum     %d acknowledged unique writes, %d missing", r.Writes.QuorumAcked, r.Writes.QuorumMissing)
	withStore := ""
	if r.Writes.LocalLostWithStore > 0 {
		withStore = fmt.Sprintf(", %d only on the destroyed store", r.Writes.LocalLostWithStore)
	}
	p("local      %d acknowledged, %d lost, %d of them quarantined%s; unknown writes %d (%d took effect)",
		r.Writes.LocalAcked, r.Writes.LocalLost, r.Writes.LocalQuarantined, withStore, r.Writes.Unknown, r.Writes.UnknownApplied)
	p("quarantine %d entries of this segment on all nodes; whole quarantines: %s", r.QuarantinedEntries, byNode(r.QuarantineByNode))
	if len(r.Failovers) > 0 || r.NoFailover > 0 {
		var fs []string
		for _, d := range r.Failovers {
			fs = append(fs, d.Round(time.Millisecond).String())
		}
		p("failover   %s (fault → first write acknowledged in a newer epoch); none: %d", strings.Join(fs, ", "), r.NoFailover)
	}
	if len(r.Elections) > 0 {
		p("election   %s elected %s after the fault began (node logs)", r.ElectedCortex, r.Elections[0].Round(time.Millisecond))
	}
	for _, h := range r.Health {
		p("health     %s at %s: %d (scope=node %d) %s", h.Node, ms(h.At), h.Status, h.ScopeNode, h.Reason)
	}
	if r.RecoveryWaitedOn != "" {
		p("recovery   last waited on: %s", truncate(r.RecoveryWaitedOn, 300))
	}
	for _, l := range r.Storage.lines() {
		p("storage    %s", l)
	}
	for _, l := range r.LobeDown.lines() {
		p("lobe-down  %s", l)
	}
	for _, l := range r.Membership.lines() {
		p("membership %s", l)
	}
	for _, l := range r.Events.lines() {
		p("events     %s", l)
	}
	p("recovery   healthy %s and converged %s after heal; Cortex %s epoch %d", r.RecoveredAfter.Round(time.Millisecond), r.ConvergedAfter.Round(time.Millisecond), r.FinalCortex, r.FinalEpoch)
	for _, wn := range r.Warnings {
		p("warning    %s", wn)
	}
	for _, a := range r.Anomalies {
		p("ANOMALY    %s: %s", a.Check, a.Detail)
	}
	if r.Replay != "" && len(r.Anomalies) > 0 {
		p("replay     %s", r.Replay)
	}
}

func byNode(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func outcomeTotals(c OpCounts) (ok, fail, unk int) {
	for _, m := range c {
		ok += m[OK]
		fail += m[Fail]
		unk += m[Unknown]
	}
	return
}

func opBreakdown(c OpCounts) string {
	var parts []string
	for _, k := range OpKinds {
		m := c[k]
		if m == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d/%d", k, m[OK], m[Fail], m[Unknown]))
	}
	return "(" + strings.Join(parts, ", ") + " ok/failed/unknown)"
}

// Row aggregates one topology × nemesis over its rounds.
type Row struct {
	Topology         string `json:"topology"`
	Nemesis          string `json:"nemesis"`
	Rounds           int    `json:"rounds"`
	Ops              int    `json:"ops"`
	OK               int    `json:"ok"`
	Failed           int    `json:"failed"`
	Unknown          int    `json:"unknown"`
	LinearOps        int    `json:"linear_ops"`
	Linear           string `json:"linear"`
	Anomalies        int    `json:"anomalies"`
	QuorumAcked      int    `json:"quorum_acked"`
	QuorumMissing    int    `json:"quorum_missing"`
	LocalAcked       int    `json:"local_acked"`
	LocalLost        int    `json:"local_lost"`
	LocalQuarantined int    `json:"local_quarantined"`
	// LocalWithStore: lost local writes whose only copy was on a store a
	// storage nemesis destroyed (see Writes.LocalLostWithStore).
	LocalWithStore int         `json:"local_lost_with_store,omitempty"`
	Failover       Percentiles `json:"failover"`
	NoFailover     int         `json:"no_failover"`
	Election       Percentiles `json:"election"`
	Health503      string      `json:"health_503"`
	RecoveredMax   string      `json:"recovered_max"`
}

// Rows aggregates the segments per topology and nemesis, in run order.
func (s *Summary) Rows() []Row {
	var rows []Row
	idx := map[string]int{}
	fo := map[string][]time.Duration{}
	el := map[string][]time.Duration{}
	rec := map[string]time.Duration{}
	for _, r := range s.Segments {
		key := r.Topology + "/" + r.Nemesis
		i, ok := idx[key]
		if !ok {
			i = len(rows)
			idx[key] = i
			rows = append(rows, Row{Topology: r.Topology, Nemesis: r.Nemesis, Linear: "ok", Health503: "-"})
		}
		row := &rows[i]
		row.Rounds++
		nOK, nFail, nUnk := outcomeTotals(r.Ops)
		row.Ops += r.TotalOps
		row.OK += nOK
		row.Failed += nFail
		row.Unknown += nUnk
		row.LinearOps += r.Linear.Ops
		if r.Linear.Result != "ok" && row.Linear != "illegal" {
			row.Linear = r.Linear.Result
		}
		row.Anomalies += len(r.Anomalies)
		row.QuorumAcked += r.Writes.QuorumAcked
		row.QuorumMissing += r.Writes.QuorumMissing
		row.LocalAcked += r.Writes.LocalAcked
		row.LocalLost += r.Writes.LocalLost
		row.LocalQuarantined += r.Writes.LocalQuarantined
		row.LocalWithStore += r.Writes.LocalLostWithStore
		row.NoFailover += r.NoFailover
		fo[key] = append(fo[key], r.Failovers...)
		el[key] = append(el[key], r.Elections...)
		rec[key] = max(rec[key], r.RecoveredAfter)
		for _, h := range r.Health {
			v := "503"
			if h.Status != 503 || h.ScopeNode != 503 {
				v = "NO"
			}
			if row.Health503 == "-" || v == "NO" {
				row.Health503 = v
			}
		}
	}
	for i := range rows {
		key := rows[i].Topology + "/" + rows[i].Nemesis
		rows[i].Failover = percentiles(fo[key])
		rows[i].Election = percentiles(el[key])
		rows[i].RecoveredMax = rec[key].Round(10 * time.Millisecond).String()
	}
	return rows
}

// local formats the local writes: acknowledged, lost, quarantined, and
// those only on a destroyed store when there are any.
func (r Row) local(sep string) string {
	s := fmt.Sprintf("%d%s%d%s%d", r.LocalAcked, sep, r.LocalLost, sep, r.LocalQuarantined)
	if r.LocalWithStore > 0 {
		s += fmt.Sprintf(" (%d only on a destroyed store)", r.LocalWithStore)
	}
	return s
}

// printTable prints the run's table.
func printTable(w io.Writer, s *Summary) {
	rt := ""
	if s.Runtime != "" {
		rt = ", runtime " + s.Runtime
	}
	fmt.Fprintf(w, "\n== summary: %d segments, heartbeat %d ms, %s per nemesis%s, wall %s\n", len(s.Segments), s.HeartbeatMs, s.Duration, rt, s.Wall.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPOLOGY\tNEMESIS\tOPS\tOK/FAIL/UNK\tLINEAR (OPS)\tANOMALIES\tQUORUM ACKED/MISSING\tLOCAL ACKED/LOST/QUAR\tFAILOVER MIN/MED/P99/MAX\tELECTION MED/MAX\tHEALTH 503\tRECOVERED")
	for _, r := range s.Rows() {
		fo := r.Failover.String()
		if r.NoFailover > 0 {
			fo += fmt.Sprintf(" (+%d none)", r.NoFailover)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d/%d\t%s (%d)\t%d\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", r.Topology, r.Nemesis, r.Ops, r.OK, r.Failed, r.Unknown,
			r.Linear, r.LinearOps, r.Anomalies, r.QuorumAcked, r.QuorumMissing, r.local("/"), fo, r.Election.MedMax(), r.Health503, r.RecoveredMax)
	}
	tw.Flush()
	if s.Error != "" {
		fmt.Fprintf(w, "harness error: %s\n", s.Error)
	}
	fmt.Fprintf(w, "anomalies: %d\n", s.Anomalies())
}

// Markdown renders the table for docs/reliability.md (a soak's sorted by
// topology and nemesis).
func (s *Summary) Markdown() string {
	var b strings.Builder
	rows := s.Rows()
	if s.Soak > 0 {
		slices.SortStableFunc(rows, func(a, b Row) int {
			return cmp.Or(cmp.Compare(a.Topology, b.Topology), cmp.Compare(a.Nemesis, b.Nemesis))
		})
	}
	b.WriteString("| topology | nemesis | rounds | ops | ok / failed / unknown | linearizable (ops) | anomalies | quorum acked / missing | local acked / lost / quarantined | failover min / median / p99 / max | election median / max | cut-off node 503 | recovered |\n")
	b.WriteString("|---|---|---:|---:|---|---|---:|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fo := r.Failover.String()
		if r.NoFailover > 0 {
			fo += fmt.Sprintf(" (%d without)", r.NoFailover)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d / %d / %d | %s (%d) | %d | %d / %d | %s | %s | %s | %s | %s |\n", r.Topology, r.Nemesis, r.Rounds, r.Ops, r.OK, r.Failed, r.Unknown,
			r.Linear, r.LinearOps, r.Anomalies, r.QuorumAcked, r.QuorumMissing, r.local(" / "), fo, r.Election.MedMax(), r.Health503, r.RecoveredMax)
	}
	return b.String()
}

// writeReport writes a segment's files: NAME.json (report), NAME.txt,
// NAME.history.jsonl (every operation), NAME.svg (timeline), NAME.logs/
// (the nodes' logs) and, when the history is not linearizable,
// NAME.linear.html (porcupine's visualization).
func writeReport(ctx context.Context, dir string, r *Report, s *segment) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, s.name())
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", b, 0o644); err != nil {
		return err
	}
	var txt strings.Builder
	printReport(&txt, r)
	if err := os.WriteFile(base+".txt", []byte(txt.String()), 0o644); err != nil {
		return err
	}
	hf, err := os.Create(base + ".history.jsonl")
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(hf)
	enc := json.NewEncoder(bw)
	for _, op := range s.ops {
		if err := enc.Encode(op); err != nil {
			hf.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		hf.Close()
		return err
	}
	if err := hf.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(base+".svg", []byte(timelineSVG(r, s.ops, s.o.Duration)), 0o644); err != nil {
		return err
	}
	if r.Linear.Result == "illegal" {
		f, err := os.Create(base + ".linear.html")
		if err != nil {
			return err
		}
		if err := s.lin.check.Visualize(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	logs := base + ".logs"
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	for _, n := range s.c.Topo.Nodes {
		if err := os.WriteFile(filepath.Join(logs, n.ID+".log"), []byte(s.c.rt.Logs(ctx, n.ID, 2000)), 0o644); err != nil {
			return err
		}
		if len(r.Anomalies) == 0 || n.Sentinel {
			continue
		}
		// The evidence for a quarantine anomaly: the node's whole
		// quarantine and its view of the cluster.
		if fl, err := s.api.Quarantine(ctx, n); err == nil {
			b, _ := json.MarshalIndent(fl, "", "  ")
			if err := os.WriteFile(filepath.Join(logs, n.ID+".quarantine.json"), b, 0o644); err != nil {
				return err
			}
		}
		if info, err := s.api.Info(ctx, n); err == nil {
			b, _ := json.MarshalIndent(info, "", "  ")
			if err := os.WriteFile(filepath.Join(logs, n.ID+".info.json"), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeSummary writes summary.json, summary.txt and summary.md.
func writeSummary(dir string, s *Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := struct {
		*Summary
		Rows []Row `json:"rows"`
	}{s, s.Rows()}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), b, 0o644); err != nil {
		return err
	}
	var txt strings.Builder
	printTable(&txt, s)
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(txt.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(s.Markdown()), 0o644)
}
