package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints bytes, rate and ETA on one terminal line, at most five
// times a second; on anything but a terminal it prints nothing.
type progress struct {
	w     io.Writer
	on    bool
	start time.Time
	mu    sync.Mutex
	last  time.Time
	verb  string
}

func newProgress(w io.Writer, verb string) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, on: ok && isTerminal(f), start: time.Now(), verb: verb}
}

// update is a ReadOptions.Progress / Encode progress function.
func (p *progress) update(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond && done != total {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	eta := "?"
	if rate > 0 && total >= done {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.w, "\r%s %s of %s (%.0f%%), %s/s, ETA %s   ", p.verb, mib(done), mib(total), pct, mib(int64(rate)), eta)
}

// end clears the progress line.
func (p *progress) end() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func mib(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// rateOf is n bytes over d in MB/s (10^6), for summaries.
func rateOf(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB/s", float64(n)/1e6/d.Seconds())
}
