package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// TestRetryAdmin: transient refusals (election, handoff, a change under
// way) are waited out; anything else is answered at once, and so is the
// last refusal when the caller goes away.
func TestRetryAdmin(t *testing.T) {
	s := &Server{}
	transient := []*core.Error{
		{Code: core.CodeNoCortex}, {Code: core.CodeNotCortex}, {Code: core.CodeTransferring}, {Code: core.CodeBusy},
	}
	for _, ce := range transient {
		calls := 0
		err := s.retryAdmin(context.Background(), func(context.Context) error {
			if calls++; calls < 3 {
				return ce
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Errorf("%s: err %v after %d calls, want nil after 3", ce.Code, err, calls)
		}
	}
	plain := errors.New("disk on fire")
	for _, want := range []error{&core.Error{Code: core.CodeNotCortex, Cortex: "n2"}, &core.Error{Code: core.CodeQuorumUnavailable}, plain} {
		calls := 0
		err := s.retryAdmin(context.Background(), func(context.Context) error { calls++; return want })
		if err != want || calls != 1 {
			t.Errorf("%v: err %v after %d calls, want it after 1", want, err, calls)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.retryAdmin(ctx, func(context.Context) error { return transient[0] })
	if err != transient[0] || time.Since(start) > time.Second {
		t.Errorf("cancelled: err %v after %v, want the last refusal at once", err, time.Since(start))
	}
}
