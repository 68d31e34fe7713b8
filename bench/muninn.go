package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninndb/muninn/shell/apitypes"
	"github.com/muninndb/muninn/shell/client"
)

// Config is one `muninn bench` run.
type Config struct {
	Addr        string        `json:"addr"`
	Clients     int           `json:"clients"`
	Duration    time.Duration `json:"duration_ns"`
	ValueSize   int           `json:"value_size"`
	Writes      float64       `json:"writes"`
	Durability  string        `json:"durability"`
	Consistency string        `json:"consistency"`
	MaxLagMs    int64         `json:"max_lag_ms,omitempty"`
	Vault       string        `json:"vault"`
	// LagEvery is the replication-lag sampling period (50–100 ms).
	LagEvery time.Duration `json:"lag_every_ns"`
	// MaxOps bounds the run by count (0: DefaultMaxOps).
	MaxOps int64 `json:"max_ops,omitempty"`
	// Rate, when above 0, makes the run open-loop: Rate operations per
	// second in total at fixed intervals, spread over Clients workers, with
	// at most MaxOutstanding queued or in flight (0:
	// DefaultMaxOutstanding). 0: closed loop.
	Rate           float64 `json:"rate,omitempty"`
	MaxOutstanding int     `json:"max_outstanding,omitempty"`
	// Batch, when above 0, makes every write a batch of Batch engrams
	// (POST /api/engrams/batch through client.WriteBatch). 0: one engram
	// per request.
	Batch int    `json:"batch,omitempty"`
	Token string `json:"-"`
}

// DefaultConfig is `muninn bench` with no flags.
func DefaultConfig() Config {
	return Config{Addr: client.DefaultAddr, Clients: 16, Duration: 10 * time.Second, ValueSize: 256, Writes: 1,
		Durability: "local", Consistency: "eventual", Vault: "bench", LagEvery: 75 * time.Millisecond}
}

// Validate explains the first bad setting.
func (c Config) Validate() error {
	var errs []string
	if c.Clients < 1 || c.Clients > 4096 {
		errs = append(errs, fmt.Sprintf("--clients %d: use 1 to 4096", c.Clients))
	}
	if c.Duration < 100*time.Millisecond || c.Duration > 24*time.Hour {
		errs = append(errs, fmt.Sprintf("--duration %s: use 100ms to 24h", c.Duration))
	}
	if c.ValueSize < 1 || c.ValueSize > 64<<10 {
		errs = append(errs, fmt.Sprintf("--value-size %d: use 1 to 65536 bytes (the content limit is 64 KiB)", c.ValueSize))
	}
	if c.Writes < 0 || c.Writes > 1 || c.Writes != c.Writes {
		errs = append(errs, fmt.Sprintf("--writes %v: a fraction from 0 (reads only) to 1 (writes only)", c.Writes))
	}
	if c.Durability != "local" && c.Durability != "quorum" {
		errs = append(errs, fmt.Sprintf("--durability %q: local or quorum", c.Durability))
	}
	switch c.Consistency {
	case "eventual", "strong":
		if c.MaxLagMs != 0 {
			errs = append(errs, "--max-lag-ms goes only with --consistency bounded")
		}
	case "bounded":
		if c.MaxLagMs < 1 {
			errs = append(errs, "--consistency bounded needs --max-lag-ms (at least 1)")
		}
	default:
		errs = append(errs, fmt.Sprintf("--consistency %q: eventual, bounded or strong", c.Consistency))
	}
	if c.LagEvery < 50*time.Millisecond || c.LagEvery > 100*time.Millisecond {
		errs = append(errs, fmt.Sprintf("lag sampling every %s: use 50ms to 100ms", c.LagEvery))
	}
	switch {
	case c.Rate != c.Rate || c.Rate < 0 || c.Rate > 1_000_000:
		errs = append(errs, fmt.Sprintf("--rate %v: operations per second, up to 1000000 (0: closed loop)", c.Rate))
	case c.Rate > 0 && c.Duration.Seconds()*c.Rate < 1:
		errs = append(errs, fmt.Sprintf("--rate %v for %s schedules no operation", c.Rate, c.Duration))
	}
	if c.MaxOutstanding < 0 || c.MaxOutstanding > 1_000_000 {
		errs = append(errs, fmt.Sprintf("--max-outstanding %d: use 1 to 1000000 (0: one second of --rate)", c.MaxOutstanding))
	} else if c.MaxOutstanding > 0 && c.Rate == 0 {
		errs = append(errs, "--max-outstanding goes only with --rate (an open loop)")
	}
	switch {
	case c.Batch < 0 || c.Batch > apitypes.MaxBatchItems:
		errs = append(errs, fmt.Sprintf("--batch %d: use 1 to %d engrams per request (0: one write per request)", c.Batch, apitypes.MaxBatchItems))
	case c.Batch > 0 && int64(c.Batch)*int64(c.ValueSize+batchItemOverhead) > apitypes.MaxBatchBody:
		errs = append(errs, fmt.Sprintf("--batch %d of --value-size %d: more than the %d-byte limit of a batch request", c.Batch, c.ValueSize, apitypes.MaxBatchBody))
	}
	if c.Vault == "" {
		errs = append(errs, "vault: required")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Target describes what was measured.
type Target struct {
	Addr      string   `json:"addr"`
	Cluster   bool     `json:"cluster"`
	Cortex    string   `json:"cortex,omitempty"`
	CortexAPI string   `json:"cortex_api,omitempty"`
	Epoch     uint64   `json:"epoch"`
	Members   []string `json:"members"`
	// ReadFrom lists the API URLs reads were spread over.
	ReadFrom []string `json:"read_from,omitempty"`
}

// Report is the outcome of one `muninn bench` run.
type Report struct {
	Config  Config     `json:"config"`
	Target  Target     `json:"target"`
	Prefill int        `json:"prefill"`
	Load    LoadResult `json:"load"`
	// Engrams counts the engrams acknowledged written during the load
	// (with --batch, several per write request), EngramsPerSec over the
	// load's elapsed time.
	Engrams       int64   `json:"engrams"`
	EngramsPerSec float64 `json:"engrams_per_sec"`
	// ItemErrors counts, by code, engrams that failed inside batches
	// answered as a whole (the request succeeded; those engrams did not).
	ItemErrors map[string]int64 `json:"item_errors,omitempty"`
	Lag        LagReport        `json:"lag"`
	CPU        CPUReport        `json:"cpu"`
}

// batchItemOverhead is a generous size of one batch item's JSON besides
// its content (id, concept, quotes and commas).
const batchItemOverhead = 128

// itemErrors counts engrams that failed inside answered batches.
type itemErrors struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *itemErrors) add(code string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[code]++
	e.mu.Unlock()
}

func (e *itemErrors) counts() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m
}

// HTTPClient returns an HTTP client sized for n concurrent requests (the
// default transport keeps only 2 idle connections per host, which makes a
// closed loop of many clients reconnect all the time).
func HTTPClient(n int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4*n + 16,
		MaxIdleConnsPerHost: 2*n + 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// idPool remembers acknowledged engram ids for reads.
type idPool struct {
	mu  sync.Mutex
	ids []string
	n   int
}

const idPoolSize = 1 << 16

func (p *idPool) add(id string) {
	p.mu.Lock()
	if len(p.ids) < idPoolSize {
		p.ids = append(p.ids, id)
	} else {
		p.ids[p.n%idPoolSize] = id
	}
	p.n++
	p.mu.Unlock()
}

func (p *idPool) pick(r *rand.Rand) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	return p.ids[r.IntN(len(p.ids))], true
}

// Value returns a printable value of size bytes, different for each seed.
func Value(size int, seed uint64) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, size)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// codedError is an error with a report code.
type codedError struct{ code, msg string }

func (e codedError) Error() string     { return e.msg }
func (e codedError) ErrorCode() string { return e.code }

// errNoIDs is a read with nothing written yet to read.
var errNoIDs = codedError{"no_ids", "nothing written yet to read"}

// Run runs `muninn bench`: cfg.Clients closed-loop workers write (through
// the client, which follows the Cortex) and read (spread over the data
// members), while a sampler polls the Cortex's replication lag.
func Run(ctx context.Context, cfg Config, progress func(Tick, int64)) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Config: cfg}
	hc := HTTPClient(cfg.Clients)
	opts := []client.Option{client.WithHTTPClient(hc)}
	if cfg.Token != "" {
		opts = append(opts, client.WithToken(cfg.Token))
	}
	wc := client.New(cfg.Addr, opts...)

	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := wc.Info(ictx)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("cannot reach %s: %w (is muninn running there? set --addr)", cfg.Addr, err)
	}
	rep.Target = Target{Addr: wc.Addr(), Cluster: info.ClusterEnabled, Cortex: info.Cortex, CortexAPI: info.CortexAPI, Epoch: info.Epoch}
	readers := []*client.Client{}
	var cpuTargets []cpuTarget
	for _, m := range info.Members {
		rep.Target.Members = append(rep.Target.Members, m.ID)
		if m.API != "" {
			role := m.Role
			if role == "" {
				role = m.Kind
			}
			cpuTargets = append(cpuTargets, cpuTarget{id: m.ID, role: role, api: m.API})
		}
		if m.Kind == "sentinel" || m.Learner || m.API == "" {
			continue
		}
		readers = append(readers, client.New(m.API, append(opts, client.WithEndpoints(cfg.Addr))...))
		rep.Target.ReadFrom = append(rep.Target.ReadFrom, m.API)
	}
	if len(readers) == 0 {
		readers = append(readers, wc)
		rep.Target.ReadFrom = []string{wc.Addr()}
	}
	if len(cpuTargets) == 0 {
		cpuTargets = []cpuTarget{{id: info.NodeID, role: info.Role, api: wc.Addr()}}
	}

	var callOpts []client.CallOption
	switch cfg.Consistency {
	case "bounded":
		callOpts = append(callOpts, client.MaxLag(cfg.MaxLagMs))
	case "strong":
		callOpts = append(callOpts, client.Consistency("strong"))
	}
	dur := client.Durability(cfg.Durability)
	pool := &idPool{}
	var seq atomic.Uint64
	value := func() string {
		// One random base per run; a counter prefix makes each value unique.
		return Value(cfg.ValueSize, 1)
	}()
	content := func() string {
		n := seq.Add(1)
		c := fmt.Sprintf("%016x", n)
		if len(c) < cfg.ValueSize {
			return c + value[len(c):]
		}
		return c[:cfg.ValueSize]
	}
	// engrams counts the engrams acknowledged while counting is on (the
	// load, not the prefill).
	var engrams atomic.Int64
	var counting atomic.Bool
	var itemErrs itemErrors
	write := func(ctx context.Context) error {
		if cfg.Batch == 0 {
			id := client.NewID()
			if _, err := wc.Write(ctx, apitypes.WriteRequest{Vault: cfg.Vault, ID: id, Concept: "bench", Content: content()}, dur); err != nil {
				return err
			}
			if counting.Load() {
				engrams.Add(1)
			}
			pool.add(id)
			return nil
		}
		req := apitypes.BatchWriteRequest{Vault: cfg.Vault, Engrams: make([]apitypes.WriteRequest, cfg.Batch)}
		for i := range req.Engrams {
			req.Engrams[i] = apitypes.WriteRequest{ID: client.NewID(), Concept: "bench", Content: content()}
		}
		res, err := wc.WriteBatch(ctx, req, dur)
		if err != nil {
			return err
		}
		for i, r := range res.Results {
			if r.Error != nil {
				if counting.Load() {
					itemErrs.add(r.Error.Code)
				}
				continue
			}
			if counting.Load() {
				engrams.Add(1)
			}
			if i == 0 {
				pool.add(r.ID) // one id per batch is plenty for reads
			}
		}
		if res.Written == 0 && len(res.Results) > 0 && res.Results[0].Error != nil {
			// Nothing in the batch was written: count the request failed,
			// with its first engram's code.
			e := res.Results[0].Error
			return codedError{e.Code, fmt.Sprintf("batch of %d: none written: %s", len(res.Results), e.Message)}
		}
		return nil
	}

	// Reads need something to read: write a little first.
	if cfg.Writes < 1 {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		pre := RunLoad(pctx, LoadOptions{Clients: min(cfg.Clients, 8), Duration: 30 * time.Second, MaxOps: 1000},
			func(ctx context.Context, _ int) (OpKind, error) { return OpWrite, write(ctx) })
		cancel()
		rep.Prefill = int(pre.Ops)
		if pre.Ops == 0 {
			return rep, fmt.Errorf("prefill: no write succeeded (errors: %v)", pre.ErrorSamples)
		}
	}

	sampler := newLagSampler(func(ctx context.Context) (apitypes.Status, error) { return wc.Status(ctx, false) }, cfg.LagEvery)
	sctx, stopSampler := context.WithCancel(ctx)
	sdone := make(chan struct{})
	if info.ClusterEnabled {
		go func() { defer close(sdone); sampler.run(sctx) }()
	} else {
		close(sdone)
	}

	rngs := make([]*rand.Rand, cfg.Clients)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i)+1, 7))
	}
	var prog func(Tick)
	if progress != nil {
		prog = func(t Tick) { progress(t, sampler.takeMax()) }
	}
	op := func(ctx context.Context, w int) (OpKind, error) {
		r := rngs[w]
		if cfg.Writes >= 1 || r.Float64() < cfg.Writes {
			return OpWrite, write(ctx)
		}
		id, ok := pool.pick(r)
		if !ok {
			return OpRead, errNoIDs
		}
		_, err := readers[w%len(readers)].Get(ctx, cfg.Vault, id, callOpts...)
		return OpRead, err
	}
	lo := LoadOptions{Clients: cfg.Clients, Duration: cfg.Duration, MaxOps: cfg.MaxOps, Progress: prog}
	cpu := startCPU(ctx, hc, cfg.Token, cpuTargets)
	counting.Store(true)
	if cfg.Rate > 0 {
		rep.Load = RunOpenLoad(ctx, lo, OpenLoopOptions{Rate: cfg.Rate, MaxOutstanding: cfg.MaxOutstanding}, op)
	} else {
		rep.Load = RunLoad(ctx, lo, op)
	}
	// The end readings are taken even after an interrupt, so that a run
	// stopped early still reports its CPU.
	ectx, cancelEnd := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	counting.Store(false)
	rep.Engrams = engrams.Load()
	if s := rep.Load.Elapsed.Seconds(); s > 0 {
		rep.EngramsPerSec = float64(rep.Engrams) / s
	}
	rep.ItemErrors = itemErrs.counts()
	rep.CPU = cpu.finish(ectx, rep.Engrams, rep.Load.Ops)
	cancelEnd()
	stopSampler()
	<-sdone
	rep.Lag = sampler.report()
	hc.CloseIdleConnections()
	return rep, nil
}
