package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

// fast is a policy short enough for tests.
func fast() Policy {
	return Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond, Jitter: 0.5}
}

func TestDoSucceedsAfterRetries(t *testing.T) {
	calls := 0
	err := Do(context.Background(), fast(), func() error {
		calls++
		if calls < 3 {
			return errBusy
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestDoBoundedAttempts(t *testing.T) {
	p := fast()
	p.MaxAttempts = 4
	calls := 0
	err := Do(context.Background(), p, func() error { calls++; return errBusy })
	if !errors.Is(err, errBusy) || calls != 4 {
		t.Fatalf("err %v after %d calls, want busy after 4", err, calls)
	}
	// Request(0): one attempt, no wait.
	calls = 0
	err = Do(context.Background(), Request(0), func() error { calls++; return errBusy })
	if !errors.Is(err, errBusy) || calls != 1 {
		t.Fatalf("Request(0): err %v after %d calls, want busy after 1", err, calls)
	}
}

func TestDoBoundedTime(t *testing.T) {
	p := fast()
	p.MaxElapsed = 50 * time.Millisecond
	start := time.Now()
	calls := 0
	err := Do(context.Background(), p, func() error { calls++; return errBusy })
	if took := time.Since(start); !errors.Is(err, errBusy) || took > p.MaxElapsed+25*time.Millisecond || calls < 5 {
		t.Fatalf("err %v after %d calls in %v, want busy within %v", err, calls, took, p.MaxElapsed)
	}
}

func TestDoPermanentNotRetried(t *testing.T) {
	calls := 0
	err := Do(context.Background(), fast(), func() error { calls++; return Permanent(errBusy) })
	if err != errBusy || calls != 1 {
		t.Fatalf("err %#v after %d calls, want the unwrapped error after 1", err, calls)
	}
	// Also when the last attempt allowed is permanent.
	p := fast()
	p.MaxAttempts = 1
	if err := Do(context.Background(), p, func() error { return Permanent(errBusy) }); err != errBusy {
		t.Fatalf("err %#v, want the unwrapped error", err)
	}
}

func TestDoStopsOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := Policy{Initial: time.Hour, Max: time.Hour}
	calls := 0
	done := make(chan error, 1)
	go func() { done <- Do(ctx, p, func() error { calls++; return errBusy }) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		// The last attempt's error, not the context's.
		if err != errBusy || calls != 1 {
			t.Fatalf("err %v after %d calls, want busy after 1", err, calls)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not stop when its context ended")
	}
	// Already ended: one attempt, no retry.
	calls = 0
	if err := Do(ctx, fast(), func() error { calls++; return errBusy }); err != errBusy || calls != 1 {
		t.Fatalf("ended context: err %v after %d calls", err, calls)
	}
}

func TestDoNotify(t *testing.T) {
	p := fast()
	p.MaxAttempts = 3
	var waits []time.Duration
	p.Notify = func(err error, d time.Duration) {
		if err != errBusy {
			t.Errorf("notified of %v", err)
		}
		waits = append(waits, d)
	}
	Do(context.Background(), p, func() error { return errBusy })
	if len(waits) != 2 {
		t.Fatalf("notified %d times, want 2 (one per wait)", len(waits))
	}
}

// TestBackOffBounds checks the delays: d doubling from Initial to Max,
// each wait in [d×(1−Jitter), d].
func TestBackOffBounds(t *testing.T) {
	for _, p := range []Policy{
		Redial(100*time.Millisecond, 5*time.Second),
		Request(10 * time.Second),
		Admin(),
		{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Multiplier: 3, Jitter: 1},
	} {
		for range 50 {
			b := p.BackOff()
			d := p.Initial
			m := p.Multiplier
			if m == 0 {
				m = 2
			}
			for i := range 12 {
				got := b.NextBackOff()
				lo := time.Duration(float64(d) * (1 - p.Jitter))
				if got < lo-time.Microsecond || got > d+time.Microsecond {
					t.Fatalf("%+v: wait %d is %v, want within [%v, %v]", p, i, got, lo, d)
				}
				if p.Jitter == 0 && got != d {
					t.Fatalf("%+v: wait %d is %v, want exactly %v", p, i, got, d)
				}
				d = min(time.Duration(float64(d)*m), p.Max)
			}
			b.Reset()
			if got := b.NextBackOff(); got > p.Initial+time.Microsecond {
				t.Fatalf("%+v: after Reset the wait is %v, want at most %v", p, got, p.Initial)
			}
		}
	}
}
