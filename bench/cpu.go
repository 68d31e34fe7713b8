package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CPUMethod explains where the CPU figures come from; reports print it.
const CPUMethod = "process_cpu_seconds_total (user + system CPU of each member's whole process) from its GET /metrics " +
	"just before and just after the load; per write = CPU seconds ÷ writes acknowledged in the run, whichever node took them " +
	"(a Lobe's is per write replicated to it); the load generator's from getrusage"

// ParseMetrics reads the Prometheus text exposition format and returns
// every sample by its series, as written without spaces: the metric name
// alone ("process_cpu_seconds_total") or with its labels
// (`muninn_role{role="cortex"}`). Comments, HELP and TYPE lines and
// timestamps are skipped.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest, err := splitSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w: %q", n, err, line)
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: want a value and an optional timestamp after the series: %q", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value: %w", n, err)
		}
		out[series] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// splitSeries splits a sample line into its series (name and labels, with
// the spaces outside label values removed) and the rest.
func splitSeries(line string) (series, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", "", errors.New("no metric name")
	}
	if line[i] != '{' {
		return line[:i], line[i:], nil
	}
	var b strings.Builder
	b.WriteString(line[:i+1])
	inQuote, escaped := false, false
	for j := i + 1; j < len(line); j++ {
		c := line[j]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == ' ' || c == '\t'):
			continue
		case !inQuote && c == '}':
			b.WriteByte(c)
			return b.String(), line[j+1:], nil
		}
		b.WriteByte(c)
	}
	return "", "", errors.New("unterminated labels")
}

// ProcessCPUMetric is the standard process collector's CPU counter.
const ProcessCPUMetric = "process_cpu_seconds_total"

// ScrapeCPU reads process_cpu_seconds_total from base's /metrics.
func ScrapeCPU(ctx context.Context, hc *http.Client, base, token string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		return 0, fmt.Errorf("GET %s/metrics: HTTP %d", base, res.StatusCode)
	}
	m, err := ParseMetrics(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	v, ok := m[ProcessCPUMetric]
	if !ok {
		return 0, fmt.Errorf("%s/metrics has no %s (a node without the process collector, or a platform it does not support)", base, ProcessCPUMetric)
	}
	return v, nil
}

// NodeCPU is one process's CPU over a run.
type NodeCPU struct {
	ID   string `json:"id"`
	Role string `json:"role,omitempty"`
	API  string `json:"api,omitempty"`
	// CPUSeconds is user + system CPU time spent during the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Cores is CPUSeconds over the run's elapsed time.
	Cores float64 `json:"cores"`
	// CPUUsPerWrite is CPU microseconds per acknowledged write (engram);
	// CPUUsPerOp per successful operation (request), when they differ.
	CPUUsPerWrite float64 `json:"cpu_us_per_write"`
	CPUUsPerOp    float64 `json:"cpu_us_per_op"`
	Error         string  `json:"error,omitempty"`
}

// CPUReport is CPU per node over a run.
type CPUReport struct {
	Nodes []NodeCPU `json:"nodes"`
	// Client is the load generator (this process).
	Client *NodeCPU `json:"load_generator,omitempty"`
	// Writes and Ops are the denominators: acknowledged writes (engrams)
	// and successful operations (requests).
	Writes  int64         `json:"writes"`
	Ops     int64         `json:"ops"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Method  string        `json:"method"`
}

// cpuTarget is a member whose CPU is measured.
type cpuTarget struct{ id, role, api string }

// cpuProbe holds the readings at the start of a run.
type cpuProbe struct {
	hc      *http.Client
	token   string
	targets []cpuTarget
	start   []float64
	errs    []error
	self    float64
	selfErr error
	t0      time.Time
}

// scrapeAll reads every target's CPU at once.
func (p *cpuProbe) scrapeAll(ctx context.Context) ([]float64, []error) {
	vals := make([]float64, len(p.targets))
	errs := make([]error, len(p.targets))
	var wg sync.WaitGroup
	for i, t := range p.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			vals[i], errs[i] = ScrapeCPU(sctx, p.hc, t.api, p.token)
		}()
	}
	wg.Wait()
	return vals, errs
}

// startCPU takes the start readings.
func startCPU(ctx context.Context, hc *http.Client, token string, targets []cpuTarget) *cpuProbe {
	p := &cpuProbe{hc: hc, token: token, targets: targets}
	p.start, p.errs = p.scrapeAll(ctx)
	p.self, p.selfErr = selfCPU()
	p.t0 = time.Now()
	return p
}

// finish takes the end readings and divides by writes and ops.
func (p *cpuProbe) finish(ctx context.Context, writes, ops int64) CPUReport {
	end, errs := p.scrapeAll(ctx)
	self, selfErr := selfCPU()
	elapsed := time.Since(p.t0)
	r := CPUReport{Writes: writes, Ops: ops, Elapsed: elapsed, Method: CPUMethod}
	fill := func(n *NodeCPU, secs float64) {
		n.CPUSeconds = secs
		if elapsed > 0 {
			n.Cores = secs / elapsed.Seconds()
		}
		if writes > 0 {
			n.CPUUsPerWrite = secs * 1e6 / float64(writes)
		}
		if ops > 0 {
			n.CPUUsPerOp = secs * 1e6 / float64(ops)
		}
	}
	for i, t := range p.targets {
		n := NodeCPU{ID: t.id, Role: t.role, API: t.api}
		switch {
		case p.errs[i] != nil:
			n.Error = p.errs[i].Error()
		case errs[i] != nil:
			n.Error = errs[i].Error()
		case end[i] < p.start[i]:
			n.Error = fmt.Sprintf("%s went down from %g to %g: the process restarted during the run", ProcessCPUMetric, p.start[i], end[i])
		default:
			fill(&n, end[i]-p.start[i])
		}
		r.Nodes = append(r.Nodes, n)
	}
	c := &NodeCPU{ID: "load generator (this process)"}
	if p.selfErr != nil || selfErr != nil {
		c.Error = errors.Join(p.selfErr, selfErr).Error()
	} else {
		fill(c, self-p.self)
	}
	r.Client = c
	return r
}
