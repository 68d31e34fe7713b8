// Package retry is the shell's one retry policy: capped exponential
// backoff with jitter, built on github.com/cenkalti/backoff/v5. Each use
// has a constructor (Admin, Request, Redial) so the bounds of every retry
// loop in the shell are read in one place.
//
// Do retries a call until it succeeds, fails with a Permanent error, runs
// out of attempts or time, or its context ends. A loop that is not "retry
// one call" (the transport's redial loop) takes the same delays from
// Policy.BackOff.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is a capped exponential backoff.
type Policy struct {
	// Initial is the first delay and Max the largest: each delay is the
	// previous one times Multiplier (2 when zero), capped at Max.
	Initial, Max time.Duration
	Multiplier   float64
	// Jitter is the random part of each delay, from 0 to 1: a delay d
	// waits a uniformly random time in [d×(1−Jitter), d], so d is always
	// the most a wait lasts. 0 waits exactly d.
	Jitter float64
	// MaxElapsed bounds the time Do spends: it starts no wait that would
	// end past it. 0: no bound but the context's.
	MaxElapsed time.Duration
	// MaxAttempts bounds the calls Do makes (1: no retry). 0: no bound.
	MaxAttempts uint
	// Notify, if set, is called before each wait with the error that
	// caused it and the wait.
	Notify func(err error, wait time.Duration)
}

// Admin is an admin call waiting out an election, a handoff or a
// membership change (shell/api): 10 ms doubling to 200 ms, no jitter,
// 5 s in all.
func Admin() Policy {
	return Policy{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, MaxElapsed: 5 * time.Second}
}

// Request is the Go client's retry of one request across a failover
// (shell/client): 50 ms doubling to 1 s, half of each delay random, at
// most budget in all; a budget of 0 or less makes one attempt.
func Request(budget time.Duration) Policy {
	p := Policy{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: 0.5, MaxElapsed: budget}
	if budget <= 0 {
		p.MaxElapsed, p.MaxAttempts = 0, 1
	}
	return p
}

// Hold is the node holding a request while the cluster is between
// Cortexes (shell/node, rule 13): 5 ms doubling to 100 ms, no jitter,
// within window.
func Hold(window time.Duration) Policy {
	return Policy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: window}
}

// Redial is the transport's redial of a peer and resume of a broken
// snapshot stream (shell/mbp): min doubling to max, half of each delay
// random, for as long as the context lasts.
func Redial(min, max time.Duration) Policy {
	return Policy{Initial: min, Max: max, Jitter: 0.5}
}

// BackOff returns the policy's delays: each NextBackOff is the next wait
// (never backoff.Stop: the bounds on attempts and time are Do's), Reset
// starts again from Initial.
func (p Policy) BackOff() backoff.BackOff {
	// backoff/v5 randomizes around a centre, d×(1±f); the policy's delays
	// are [d×(1−Jitter), d]: centre d×(1−Jitter/2), f = (Jitter/2)/centre.
	j := min(max(p.Jitter, 0), 1)
	centre := 1 - j/2
	m := p.Multiplier
	if m <= 0 {
		m = 2
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     time.Duration(float64(p.Initial) * centre),
		RandomizationFactor: j / 2 / centre,
		Multiplier:          m,
		MaxInterval:         time.Duration(float64(max(p.Max, p.Initial)) * centre),
	}
	b.Reset()
	return b
}

// Permanent marks err as not worth retrying: Do returns err at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return backoff.Permanent(err)
}

// Do calls op until it returns nil or a Permanent error, the policy's
// attempts or time run out, or ctx ends. It returns nil on success and
// otherwise the last error op returned (unwrapped from Permanent), also
// when ctx ended: a caller that must tell checks ctx.Err(). op is called
// at least once, even if ctx has already ended.
func Do(ctx context.Context, p Policy, op func() error) error {
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		last = op()
		return struct{}{}, last
	}, p.options()...)
	if err == nil {
		return nil
	}
	if perm := (*backoff.PermanentError)(nil); errors.As(last, &perm) {
		return perm.Err
	}
	return last
}

func (p Policy) options() []backoff.RetryOption {
	opts := []backoff.RetryOption{
		backoff.WithBackOff(p.BackOff()),
		// Always set: backoff/v5 otherwise gives up after 15 minutes.
		backoff.WithMaxElapsedTime(p.MaxElapsed),
	}
	if p.MaxAttempts > 0 {
		opts = append(opts, backoff.WithMaxTries(p.MaxAttempts))
	}
	if p.Notify != nil {
		opts = append(opts, backoff.WithNotify(backoff.Notify(p.Notify)))
	}
	return opts
}
