package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

// lagDesc is muninn_replication_lag_seconds{member}: the replication lag
// GET /v1/cluster/status reports as lag_ms, in seconds, for alerting (the
// "lag over 1 s" rule of deploy/prometheus/muninn-alerts.yml). On the
// Cortex it has a series per data member it has heard from; on another
// node, only its own (its staleness bound). Computed at scrape time from
// the same view as the status endpoint.
var lagDesc = prometheus.NewDesc("muninn_replication_lag_seconds",
	"Replication lag by member: on the Cortex, the age of the oldest entry the member lacks; elsewhere this node's own staleness bound.",
	[]string{"member"}, nil)

type lagCollector struct{ s *Server }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.s.status(c.s.view()).Members {
		if m.LagMs != nil {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(*m.LagMs)/1000, m.ID)
		}
	}
}

// registerLagMetric adds the lag gauge to the node's registry once (a
// node may serve more than one API server in tests).
func (s *Server) registerLagMetric() {
	reg := s.n.Metrics().Registry
	// A node served again by a new Server (a mode switch that stayed) is
	// measured by the new one.
	reg.Unregister(lagCollector{s})
	if err := reg.Register(lagCollector{s}); err != nil {
		s.log.Warn("replication lag metric not registered", "err", err)
	}
}
