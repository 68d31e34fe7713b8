package bench

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muninndb/muninn/shell/client"
)

// OpKind says what one operation was.
type OpKind uint8

const (
	OpWrite OpKind = iota
	OpRead
)

// Op performs one operation for worker w (0 ≤ w < Clients) and reports
// what it was and whether it failed.
type Op func(ctx context.Context, w int) (OpKind, error)

// DefaultMaxOps bounds a load run by count as well as by time.
const DefaultMaxOps = 50_000_000

// LoadOptions shape a closed-loop run: Clients workers each issue one
// operation after another until Duration has passed or MaxOps operations
// were started.
type LoadOptions struct {
	Clients  int
	Duration time.Duration
	// MaxOps bounds the operations started (0: DefaultMaxOps).
	MaxOps int64
	// Progress, when set, is called about once a second with the last
	// second's counts (from its own goroutine).
	Progress func(Tick)
}

// Tick is one progress report: counts during the last interval.
type Tick struct {
	Elapsed  time.Duration
	Interval time.Duration
	Writes   int64
	Reads    int64
	Errors   int64
	// Missed counts open-loop operations not sent because too many were
	// outstanding (Open: the run is open-loop).
	Missed int64
	Open   bool
}

// OpsPerSec is the interval's operation rate.
func (t Tick) OpsPerSec() float64 {
	if t.Interval <= 0 {
		return 0
	}
	return float64(t.Writes+t.Reads) / t.Interval.Seconds()
}

// LoadResult is what a load run measured. Latencies are of successful
// operations. In a closed loop (RunLoad) operations cut off by the end of
// the run are not counted at all; in an open loop (RunOpenLoad, Open set)
// latencies run from the intended send time and every scheduled operation
// is accounted for in Open.
type LoadResult struct {
	Elapsed      time.Duration    `json:"elapsed_ns"`
	Ops          int64            `json:"ops"`
	OpsPerSec    float64          `json:"ops_per_sec"`
	WritesPerSec float64          `json:"writes_per_sec"`
	ReadsPerSec  float64          `json:"reads_per_sec"`
	Write        Summary          `json:"write_latency"`
	Read         Summary          `json:"read_latency"`
	Errors       map[string]int64 `json:"errors"`
	ErrorCount   int64            `json:"error_count"`
	// ErrorSamples keeps one message per error code.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Open is set for an open-loop run (RunOpenLoad): its latencies are
	// from each operation's intended send time.
	Open *OpenLoopResult `json:"open_loop,omitempty"`
}

type workerStats struct {
	write, read []time.Duration
	errs        map[string]int64
	samples     map[string]string
}

// RunLoad runs op from opts.Clients goroutines until opts.Duration has
// passed (or ctx is done, or MaxOps were started) and summarizes it.
func RunLoad(ctx context.Context, opts LoadOptions, op Op) LoadResult {
	if opts.Clients < 1 {
		opts.Clients = 1
	}
	maxOps := opts.MaxOps
	if maxOps <= 0 {
		maxOps = DefaultMaxOps
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()

	var started, writes, reads, errs atomic.Int64
	stats := make([]workerStats, opts.Clients)
	start := time.Now()

	progDone := make(chan struct{})
	if opts.Progress != nil {
		go func() {
			defer close(progDone)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			last := start
			var lw, lr, le int64
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tick.C:
					w, r, e := writes.Load(), reads.Load(), errs.Load()
					opts.Progress(Tick{Elapsed: now.Sub(start), Interval: now.Sub(last), Writes: w - lw, Reads: r - lr, Errors: e - le})
					last, lw, lr, le = now, w, r, e
				}
			}
		}()
	} else {
		close(progDone)
	}

	var wg sync.WaitGroup
	for w := range opts.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[w]
			st.errs = map[string]int64{}
			st.samples = map[string]string{}
			for ctx.Err() == nil && started.Add(1) <= maxOps {
				t0 := time.Now()
				kind, err := op(ctx, w)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return // cut off by the end of the run
					}
					code := ErrorCode(err)
					st.errs[code]++
					if _, ok := st.samples[code]; !ok {
						st.samples[code] = err.Error()
					}
					errs.Add(1)
					continue
				}
				if kind == OpRead {
					st.read = append(st.read, d)
					reads.Add(1)
				} else {
					st.write = append(st.write, d)
					writes.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-progDone

	res := LoadResult{Elapsed: elapsed, Errors: map[string]int64{}, ErrorSamples: map[string]string{}}
	var wl, rl []time.Duration
	for _, st := range stats {
		wl = append(wl, st.write...)
		rl = append(rl, st.read...)
		for k, v := range st.errs {
			res.Errors[k] += v
			res.ErrorCount += v
		}
		for k, v := range st.samples {
			res.ErrorSamples[k] = v
		}
	}
	res.Write = Summarize(wl)
	res.Read = Summarize(rl)
	res.Ops = int64(len(wl) + len(rl))
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Ops) / s
		res.WritesPerSec = float64(len(wl)) / s
		res.ReadsPerSec = float64(len(rl)) / s
	}
	return res
}

// ErrorCode names an error for the "errors by code" report: the API's
// stable code for an error a node answered (not_found, unavailable, ...),
// the code of an error that has an ErrorCode method (other systems'
// drivers), or a transport class (timeout, connection_refused,
// connection_reset, connection, canceled, other).
func ErrorCode(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	return "other"
}
