package node

import (
	"github.com/muninndb/muninn/core"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the node's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry     *prometheus.Registry
	role         *prometheus.GaugeVec
	epoch        prometheus.Gauge
	lastSeq      prometheus.Gauge
	commitSeq    prometheus.Gauge
	elections    prometheus.Counter
	demotions    prometheus.Counter
	storeChanges prometheus.Counter
	quarantined  prometheus.Counter
	saveSeconds  prometheus.Histogram
	decayActive  prometheus.Gauge
	// WriteSeconds and ReadSeconds are observed by the API.
	WriteSeconds *prometheus.HistogramVec
	ReadSeconds  *prometheus.HistogramVec

	// Log archiving (archive.go).
	archivedSeq   prometheus.Gauge
	archiveLag    prometheus.Gauge
	archiveErrors prometheus.Counter
}

func newMetrics(id core.NodeID) *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{
		Registry:     r,
		role:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "muninn_role", Help: "1 for the node's current role."}, []string{"role"}),
		epoch:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_epoch", Help: "Current epoch (the Cortex's fencing token)."}),
		lastSeq:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_last_seq", Help: "Last log sequence number on this node."}),
		commitSeq:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_commit_seq", Help: "Highest sequence known committed."}),
		elections:    prometheus.NewCounter(prometheus.CounterOpts{Name: "muninn_elections_total", Help: "Elections this node ran."}),
		demotions:    prometheus.NewCounter(prometheus.CounterOpts{Name: "muninn_demotions_total", Help: "Quorum-loss self-demotions."}),
		storeChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "muninn_store_changes_total", Help: "Members seen with another store than they counted with, or holding less than they acknowledged (rule 16)."}),
		quarantined:  prometheus.NewCounter(prometheus.CounterOpts{Name: "muninn_quarantined_entries_total", Help: "Entries moved to the quarantine."}),
		saveSeconds:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "muninn_store_save_seconds", Help: "Time from applying a Ready to its fsync returning (pipelined saves).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		decayActive:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_decay_worker_active", Help: "1 while the Cortex-only decay worker runs."}),
		WriteSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "muninn_write_seconds", Help: "Write latency by durability.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"durability"}),
		ReadSeconds:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "muninn_read_seconds", Help: "Read latency by consistency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"consistency"}),
	}
	m.archivedSeq = prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_archive_seq", Help: "Last log seq this node wrote to backup.archive_dir (0 when archiving is off)."})
	m.archiveLag = prometheus.NewGauge(prometheus.GaugeOpts{Name: "muninn_archive_lag_entries", Help: "Committed log entries not archived yet (the log is kept from them on)."})
	m.archiveErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "muninn_archive_errors_total", Help: "Failed attempts to write or read backup.archive_dir."})
	f(m.archivedSeq)
	f(m.archiveLag)
	f(m.archiveErrors)
	for _, c := range []prometheus.Collector{m.role, m.epoch, m.lastSeq, m.commitSeq, m.elections, m.demotions, m.storeChanges, m.quarantined, m.saveSeconds, m.decayActive, m.WriteSeconds, m.ReadSeconds} {
		f(c)
	}
	// The standard process and Go runtime metrics every Go service exposes
	// (process_cpu_seconds_total, process_resident_memory_bytes,
	// go_goroutines, go_gc_duration_seconds, ...): `muninn bench` reads
	// process_cpu_seconds_total to report CPU per write for each node.
	// They describe the whole process, so nodes sharing one process (tests)
	// report the same figures.
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(collectors.NewGoCollector())
	return m
}

func (m *Metrics) observe(st core.Status) {
	for _, r := range []core.Role{core.RoleCortex, core.RoleLobe, core.RoleCandidate, core.RoleSentinel, core.RoleObserver} {
		v := 0.0
		if st.Role == r {
			v = 1
		}
		m.role.WithLabelValues(r.String()).Set(v)
	}
	m.epoch.Set(float64(st.Epoch))
	m.lastSeq.Set(float64(st.Last.Seq))
	m.commitSeq.Set(float64(st.Commit.Seq))
}
