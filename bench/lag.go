package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
)

// LagMethod explains where the lag figures come from; reports print it.
const LagMethod = "sampled from GET /v1/cluster/status (the Cortex's view). " +
	"lag_ms is the Cortex's own measurement: the age of the oldest entry the member lacks, " +
	"i.e. now minus the time the Cortex's last seq first exceeded the member's acknowledged seq " +
	"(the Cortex samples its last seq every 2 ms, so it is a lower bound short by at most 2 ms; 0 = holds everything). " +
	"seq_behind is the Cortex's last_seq minus the member's acknowledged last_seq in the same answer"

// MemberLag is one Lobe's (or Observer's) replication lag over a run.
type MemberLag struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// LagMs is the distribution of the Cortex's lag_ms for the member.
	LagMs IntSummary `json:"lag_ms"`
	// SeqBehind is the distribution of Cortex last_seq − member last_seq.
	SeqBehind IntSummary `json:"seq_behind"`
	// Unknown counts samples in which lag_ms was null (never answered
	// this Cortex).
	Unknown int `json:"unknown"`
}

// LagReport is what the lag sampler saw.
type LagReport struct {
	Every   time.Duration `json:"every_ns"`
	Samples int           `json:"samples"`
	// Failed counts status requests that failed or answered with a
	// non-Cortex view (an election).
	Failed  int         `json:"failed"`
	Members []MemberLag `json:"members"`
	Method  string      `json:"method"`
}

// StatusFunc fetches the cluster status (client.Status).
type StatusFunc func(ctx context.Context) (apitypes.Status, error)

// lagSampler polls the status every period until stopped.
type lagSampler struct {
	get   StatusFunc
	every time.Duration

	mu      sync.Mutex
	lag     map[string][]int64
	behind  map[string][]int64
	unknown map[string]int
	role    map[string]string
	order   []string
	samples int
	failed  int
	// maxLag is the largest lag_ms seen since the last takeMax (progress).
	maxLag atomic.Int64
}

func newLagSampler(get StatusFunc, every time.Duration) *lagSampler {
	s := &lagSampler{get: get, every: every, lag: map[string][]int64{}, behind: map[string][]int64{},
		unknown: map[string]int{}, role: map[string]string{}}
	s.maxLag.Store(-1)
	return s
}

// run samples until ctx is done; bounded by ctx.
func (s *lagSampler) run(ctx context.Context) {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := s.get(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.record(st, err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *lagSampler) record(st apitypes.Status, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || st.View != "cortex" {
		s.failed++
		return
	}
	s.samples++
	for _, m := range st.Members {
		if m.Role == "cortex" || m.Kind == "sentinel" || m.ID == st.Cortex {
			continue
		}
		if _, ok := s.role[m.ID]; !ok {
			s.order = append(s.order, m.ID)
		}
		s.role[m.ID] = m.Role
		if m.LagMs == nil {
			s.unknown[m.ID]++
		} else {
			s.lag[m.ID] = append(s.lag[m.ID], *m.LagMs)
			if *m.LagMs > s.maxLag.Load() {
				s.maxLag.Store(*m.LagMs)
			}
		}
		if m.LastSeq != nil && st.LastSeq >= *m.LastSeq {
			s.behind[m.ID] = append(s.behind[m.ID], int64(st.LastSeq-*m.LastSeq))
		}
	}
}

// takeMax returns the largest lag seen since the last call (-1: none).
func (s *lagSampler) takeMax() int64 { return s.maxLag.Swap(-1) }

func (s *lagSampler) report() LagReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := LagReport{Every: s.every, Samples: s.samples, Failed: s.failed, Method: LagMethod}
	ids := slices.Clone(s.order)
	slices.Sort(ids)
	for _, id := range ids {
		r.Members = append(r.Members, MemberLag{ID: id, Role: s.role[id], LagMs: SummarizeInts(s.lag[id]),
			SeqBehind: SummarizeInts(s.behind[id]), Unknown: s.unknown[id]})
	}
	return r
}
