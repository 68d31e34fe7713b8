package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock moves only when the scheduler sleeps: SleepUntil sets the time
// to its target at once. An operation can wait for a fake time (a stall).
type fakeClock struct {
	mu   sync.Mutex
	cond *sync.Cond
	now  time.Time
	// before, when set, is called by SleepUntil before the time moves.
	before func(t time.Time)
}

func newFakeClock() *fakeClock {
	c := &fakeClock{now: time.Unix(1_000_000, 0)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) {
	if c.before != nil {
		c.before(t)
	}
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// waitUntil blocks until the fake time reaches t.
func (c *fakeClock) waitUntil(t time.Time) {
	c.mu.Lock()
	for c.now.Before(t) {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

func checkAccounting(t *testing.T, o *OpenLoopResult) {
	t.Helper()
	if o == nil {
		t.Fatal("no open-loop result")
	}
	if o.Issued != o.Scheduled-o.Missed || o.Completed+o.Missed+o.Unfinished != o.Scheduled {
		t.Fatalf("every scheduled operation must be completed, missed or unfinished: %+v", o)
	}
}

// TestOpenLoopStall: one worker, 1,000 ops/s, at most 10 outstanding. The
// first operation stalls for the whole 50 ms schedule. The next 9 queue
// behind it and are charged from their intended times (49 … 41 ms: the
// stall is not hidden); the remaining 40 find 10 outstanding and are
// missed. The fake clock makes every figure exact.
func TestOpenLoopStall(t *testing.T) {
	clk := newFakeClock()
	start := clk.Now()
	var calls atomic.Int64
	started := make(chan struct{})
	op := func(ctx context.Context, w int) (OpKind, error) {
		if calls.Add(1) == 1 {
			close(started)
			clk.waitUntil(start.Add(50 * time.Millisecond))
		}
		return OpWrite, nil
	}
	// The time moves past the start only once the worker has sent the
	// first operation, so that it is sent on time.
	clk.before = func(t time.Time) {
		if t.After(start) {
			<-started
		}
	}
	res := runOpenLoad(context.Background(), clk, LoadOptions{Clients: 1, Duration: 50 * time.Millisecond},
		OpenLoopOptions{Rate: 1000, MaxOutstanding: 10}, op)
	o := res.Open
	checkAccounting(t, o)
	if o.Interval != time.Millisecond || o.Scheduled != 50 || o.Missed != 40 || o.Issued != 10 || o.Completed != 10 || o.Unfinished != 0 {
		t.Fatalf("schedule: %+v", o)
	}
	if res.Write.Count != 10 || res.Ops != 10 || res.ErrorCount != 0 {
		t.Fatalf("result: %+v", res)
	}
	// Latency from the intended time: 50 ms for the stalled one, 50 − i
	// for operation i queued behind it.
	if res.Write.Max != ms(50) || res.Write.P50 != ms(45) || res.Write.Mean != 45500*time.Microsecond {
		t.Fatalf("write latency %+v", res.Write)
	}
	// A closed-loop view (from the actual send) sees one slow operation
	// and nine instant ones.
	if o.Service.Count != 10 || o.Service.Max != ms(50) || o.Service.P90 != 0 {
		t.Fatalf("service latency %+v", o.Service)
	}
	if o.Late != 9 || o.SendDelay.Max != ms(49) || o.SendDelay.P50 != ms(44) {
		t.Fatalf("late %d, send delay %+v", o.Late, o.SendDelay)
	}
	if res.Elapsed != ms(50) || o.AchievedRate != 200 {
		t.Fatalf("elapsed %v, achieved %v", res.Elapsed, o.AchievedRate)
	}
}

// TestOpenLoopKeepsUp: instant operations on 4 workers are all sent
// (none missed); errors are completed operations, counted by code, with
// no latency; MaxOps bounds the schedule. (The fake clock runs ahead of
// the workers here, so send delays are not checked.)
func TestOpenLoopKeepsUp(t *testing.T) {
	clk := newFakeClock()
	var n atomic.Int64
	op := func(ctx context.Context, w int) (OpKind, error) {
		if w < 0 || w >= 4 {
			t.Errorf("worker %d", w)
		}
		k := n.Add(1)
		if k%10 == 0 {
			return OpWrite, codedError{"unavailable", "no Cortex"}
		}
		if k%2 == 0 {
			return OpRead, nil
		}
		return OpWrite, nil
	}
	res := runOpenLoad(context.Background(), clk, LoadOptions{Clients: 4, Duration: 100 * time.Millisecond},
		OpenLoopOptions{Rate: 1000}, op)
	o := res.Open
	checkAccounting(t, o)
	if o.Scheduled != 100 || o.Missed != 0 || o.Completed != 100 || o.MaxOutstanding != 1000 || o.SendDelay.Count != 100 {
		t.Fatalf("%+v", o)
	}
	if res.Errors["unavailable"] != 10 || res.Write.Count+res.Read.Count != 90 || o.Service.Count != 90 {
		t.Fatalf("%+v", res)
	}

	clk = newFakeClock()
	res = runOpenLoad(context.Background(), clk, LoadOptions{Clients: 2, Duration: time.Second, MaxOps: 30},
		OpenLoopOptions{Rate: 1000}, func(context.Context, int) (OpKind, error) { return OpWrite, nil })
	checkAccounting(t, res.Open)
	if res.Open.Scheduled != 30 || res.Write.Count != 30 {
		t.Fatalf("MaxOps: %+v", res.Open)
	}
}

// TestOpenLoopDrain: operations that never finish are cancelled when the
// drain runs out and counted as unfinished, not as errors or latencies.
func TestOpenLoopDrain(t *testing.T) {
	clk := newFakeClock()
	op := func(ctx context.Context, w int) (OpKind, error) {
		<-ctx.Done()
		return OpWrite, ctx.Err()
	}
	res := runOpenLoad(context.Background(), clk, LoadOptions{Clients: 2, Duration: 5 * time.Millisecond},
		OpenLoopOptions{Rate: 1000, MaxOutstanding: 3, Drain: 10 * time.Millisecond}, op)
	o := res.Open
	checkAccounting(t, o)
	if o.Scheduled != 5 || o.Missed != 2 || o.Unfinished != 3 || o.Completed != 0 || res.ErrorCount != 0 || res.Write.Count != 0 {
		t.Fatalf("%+v %+v", o, res)
	}
}

// TestOpenLoopRealClock: a short run on the real clock keeps the
// accounting whole (no timing asserted).
func TestOpenLoopRealClock(t *testing.T) {
	var ticks atomic.Int32
	res := RunOpenLoad(context.Background(), LoadOptions{Clients: 2, Duration: 200 * time.Millisecond},
		OpenLoopOptions{Rate: 500}, func(context.Context, int) (OpKind, error) { return OpWrite, nil })
	checkAccounting(t, res.Open)
	if res.Open.Scheduled < 1 || res.Open.Scheduled > 100 {
		t.Fatalf("%+v", res.Open)
	}
	// An interrupted run stops scheduling and still reports.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = RunOpenLoad(ctx, LoadOptions{Clients: 2, Duration: time.Hour, Progress: func(Tick) { ticks.Add(1) }},
		OpenLoopOptions{Rate: 500}, func(context.Context, int) (OpKind, error) { return OpWrite, errors.New("x") })
	checkAccounting(t, res.Open)
	if res.Open.Scheduled != 0 {
		t.Fatalf("%+v", res.Open)
	}
	if got := DefaultMaxOutstanding(0.5, 16); got != 16 {
		t.Errorf("DefaultMaxOutstanding(0.5, 16) = %d", got)
	}
	if got := DefaultMaxOutstanding(2000, 16); got != 2000 {
		t.Errorf("DefaultMaxOutstanding(2000, 16) = %d", got)
	}
}
