package bench

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLateAfter is how far behind its intended time an open-loop
// operation may be sent before it counts as late.
const DefaultLateAfter = time.Millisecond

// DefaultDrain bounds how long an open-loop run waits, after its schedule
// ends, for the operations already issued (queued or in flight).
const DefaultDrain = 5 * time.Second

// OpenLoopOptions make a load run open-loop: operations are scheduled at
// fixed intervals whatever the server does, and each one's latency is
// measured from the time it was meant to be sent.
type OpenLoopOptions struct {
	// Rate is the operations per second scheduled in total.
	Rate float64
	// MaxOutstanding bounds the operations issued and not finished
	// (queued for a worker or in flight). An operation whose intended
	// time comes while MaxOutstanding are outstanding is missed: counted,
	// never sent. 0: DefaultMaxOutstanding(Rate, Clients).
	MaxOutstanding int
	// LateAfter: an operation sent more than this after its intended time
	// is late (0: DefaultLateAfter).
	LateAfter time.Duration
	// Drain bounds the wait for outstanding operations after the schedule
	// ends (0: DefaultDrain); those still unfinished then are cancelled
	// and counted as unfinished.
	Drain time.Duration
}

// DefaultMaxOutstanding is one second of the schedule, and at least one
// operation per worker: a stall of up to a second is queued and shows up
// in the latencies; beyond that, operations are missed.
func DefaultMaxOutstanding(rate float64, clients int) int {
	return max(clients, int(math.Min(math.Ceil(rate), 1_000_000)))
}

// OpenLoopResult is what the schedule did. Every scheduled operation is
// exactly one of: completed (succeeded or failed), missed, unfinished.
type OpenLoopResult struct {
	Rate           float64       `json:"rate"`
	Interval       time.Duration `json:"interval_ns"`
	MaxOutstanding int           `json:"max_outstanding"`
	// Scheduled counts the intended send times that fell within the run.
	Scheduled int64 `json:"scheduled"`
	// Issued = Scheduled − Missed: handed to the worker pool.
	Issued int64 `json:"issued"`
	// Missed: MaxOutstanding operations were outstanding at its intended
	// time, so it was never sent (the server, or the load generator, did
	// not keep up).
	Missed int64 `json:"missed"`
	// Completed: issued and finished (successfully or not) before the
	// drain ran out.
	Completed int64 `json:"completed"`
	// Unfinished: issued, but queued or in flight when the drain ran out
	// (or the run was interrupted); cancelled and not counted elsewhere.
	Unfinished int64 `json:"unfinished"`
	// Late: completed operations sent more than LateAfter after their
	// intended time (they waited for a free worker).
	Late      int64         `json:"late"`
	LateAfter time.Duration `json:"late_after_ns"`
	// SendDelay is sent − intended over completed operations.
	SendDelay Summary `json:"send_delay"`
	// Service is finished − sent over successful operations: the latency a
	// closed-loop tool would report, hiding the queueing.
	Service Summary `json:"service_latency"`
	// AchievedRate is Completed / elapsed.
	AchievedRate float64 `json:"achieved_rate"`
}

// clock is the open loop's time source (a fake one in tests).
type clock interface {
	Now() time.Time
	// SleepUntil returns when t has come or ctx is done.
	SleepUntil(ctx context.Context, t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// RunOpenLoad runs op open-loop at ol.Rate per second for opts.Duration
// (or until ctx is done, or MaxOps were scheduled), on opts.Clients
// workers, and summarizes it. Write and read latencies are measured from
// each operation's intended send time, so time spent queued behind a
// stalled server counts (no coordinated omission).
func RunOpenLoad(ctx context.Context, opts LoadOptions, ol OpenLoopOptions, op Op) LoadResult {
	return runOpenLoad(ctx, realClock{}, opts, ol, op)
}

type openWorkerStats struct {
	workerStats
	delay, service []time.Duration
	late           int64
	completed      int64
}

func runOpenLoad(ctx context.Context, clk clock, opts LoadOptions, ol OpenLoopOptions, op Op) LoadResult {
	if opts.Clients < 1 {
		opts.Clients = 1
	}
	maxOps := opts.MaxOps
	if maxOps <= 0 {
		maxOps = DefaultMaxOps
	}
	if ol.MaxOutstanding <= 0 {
		ol.MaxOutstanding = DefaultMaxOutstanding(ol.Rate, opts.Clients)
	}
	if ol.LateAfter <= 0 {
		ol.LateAfter = DefaultLateAfter
	}
	if ol.Drain <= 0 {
		ol.Drain = DefaultDrain
	}
	interval := time.Duration(float64(time.Second) / ol.Rate)
	if interval <= 0 {
		interval = 1
	}
	// Operations run under opCtx: cancelled by the caller's ctx or when
	// the drain runs out, not when the schedule ends.
	opCtx, cancelOps := context.WithCancel(ctx)
	defer cancelOps()

	var writes, reads, errs, missed, outstanding atomic.Int64
	stats := make([]openWorkerStats, opts.Clients)
	queue := make(chan time.Time, ol.MaxOutstanding) // intended send times
	start := clk.Now()
	end := start.Add(opts.Duration)

	progCtx, stopProg := context.WithCancel(ctx)
	progDone := make(chan struct{})
	if opts.Progress != nil {
		go func() {
			defer close(progDone)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			realStart := time.Now()
			last := realStart
			var lw, lr, le, lm int64
			for {
				select {
				case <-progCtx.Done():
					return
				case now := <-tick.C:
					w, r, e, m := writes.Load(), reads.Load(), errs.Load(), missed.Load()
					opts.Progress(Tick{Elapsed: now.Sub(realStart), Interval: now.Sub(last),
						Writes: w - lw, Reads: r - lr, Errors: e - le, Missed: m - lm, Open: true})
					last, lw, lr, le, lm = now, w, r, e, m
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
			for intended := range queue {
				if opCtx.Err() != nil {
					continue // unfinished: counted from outstanding at the end
				}
				sent := clk.Now()
				kind, err := op(opCtx, w)
				done := clk.Now()
				if err != nil && opCtx.Err() != nil {
					continue // cut off by the drain's end or an interrupt: unfinished
				}
				outstanding.Add(-1)
				st.completed++
				delay := sent.Sub(intended)
				st.delay = append(st.delay, delay)
				if delay > ol.LateAfter {
					st.late++
				}
				if err != nil {
					code := ErrorCode(err)
					st.errs[code]++
					if _, ok := st.samples[code]; !ok {
						st.samples[code] = err.Error()
					}
					errs.Add(1)
					continue
				}
				st.service = append(st.service, done.Sub(sent))
				if kind == OpRead {
					st.read = append(st.read, done.Sub(intended))
					reads.Add(1)
				} else {
					st.write = append(st.write, done.Sub(intended))
					writes.Add(1)
				}
			}
		}()
	}

	// The scheduler: operation i is due at start + i×interval. It wakes at
	// the next due time and issues every operation due by then, each with
	// its own intended time, so a late wake-up (of the scheduler or of a
	// worker) is charged to the operations it delayed.
	var scheduled int64
	complete := false // the schedule ran to its end
	for ctx.Err() == nil && scheduled < maxOps {
		due := start.Add(time.Duration(scheduled) * interval)
		if !due.Before(end) {
			complete = true
			break
		}
		clk.SleepUntil(ctx, due)
		if ctx.Err() != nil {
			break
		}
		now := clk.Now()
		for scheduled < maxOps {
			at := start.Add(time.Duration(scheduled) * interval)
			if at.After(now) || !at.Before(end) {
				break
			}
			scheduled++
			// Only the scheduler adds to outstanding, so the check and the
			// add cannot race; the queue holds MaxOutstanding, so the send
			// never blocks.
			if outstanding.Load() >= int64(ol.MaxOutstanding) {
				missed.Add(1)
				continue
			}
			outstanding.Add(1)
			queue <- at
		}
	}
	// The schedule is over: the workers finish what is queued or in
	// flight, for at most the drain.
	if complete {
		clk.SleepUntil(ctx, end)
	}
	close(queue)
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	drain := time.NewTimer(ol.Drain)
	select {
	case <-allDone:
	case <-drain.C:
		cancelOps()
		<-allDone
	case <-ctx.Done():
		cancelOps()
		<-allDone
	}
	drain.Stop()
	elapsed := clk.Now().Sub(start)
	stopProg()
	<-progDone

	res := LoadResult{Elapsed: elapsed, Errors: map[string]int64{}, ErrorSamples: map[string]string{}}
	o := &OpenLoopResult{Rate: ol.Rate, Interval: interval, MaxOutstanding: ol.MaxOutstanding, LateAfter: ol.LateAfter,
		Scheduled: scheduled, Missed: missed.Load(), Unfinished: outstanding.Load()}
	o.Issued = o.Scheduled - o.Missed
	var wl, rl, dl, sl []time.Duration
	for _, st := range stats {
		wl = append(wl, st.write...)
		rl = append(rl, st.read...)
		dl = append(dl, st.delay...)
		sl = append(sl, st.service...)
		o.Late += st.late
		o.Completed += st.completed
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
	o.SendDelay = Summarize(dl)
	o.Service = Summarize(sl)
	res.Ops = int64(len(wl) + len(rl))
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Ops) / s
		res.WritesPerSec = float64(len(wl)) / s
		res.ReadsPerSec = float64(len(rl)) / s
		o.AchievedRate = float64(o.Completed) / s
	}
	res.Open = o
	return res
}
