package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// logEvery is how often one kind of Pebble message is logged at most; the
// ones in between are counted and the count is logged with the next.
const logEvery = 10 * time.Second

// limiter lets one line per key through every logEvery and counts the rest.
type limiter struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, now: time.Now, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of this key may be logged now, and how many
// were suppressed since the last one that was.
func (l *limiter) allow(key string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		l.held[key]++
		return false, 0
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return true, n
}

// pebbleLog sends Pebble's messages and events to the node's log,
// rate-limited per kind: a failing flush is retried in a loop, and the log
// must say so without being flooded.
type pebbleLog struct {
	log *slog.Logger
	lim *limiter
}

func newPebbleLog(log *slog.Logger) *pebbleLog {
	return &pebbleLog{log: log, lim: newLimiter(logEvery)}
}

func (p *pebbleLog) emit(level slog.Level, key, msg string, attrs ...any) {
	ok, held := p.lim.allow(key)
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", fmt.Sprintf("%d similar lines in the last %s", held, logEvery))
	}
	p.log.Log(context.Background(), level, msg, attrs...)
}

// Infof, Errorf and Fatalf make pebbleLog a pebble.Logger.
func (p *pebbleLog) Infof(format string, args ...any) {
	p.emit(slog.LevelInfo, "info:"+format, "pebble: "+fmt.Sprintf(format, args...))
}

func (p *pebbleLog) Errorf(format string, args ...any) {
	p.emit(slog.LevelError, "error:"+format, "pebble: "+fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: Pebble does not expect it to return.
func (p *pebbleLog) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error("pebble: fatal: " + msg)
	panic(msg)
}

var _ pebble.Logger = (*pebbleLog)(nil)

// listener is the EventListener the store gives Pebble: the errors and the
// events an operator must see (background, flush and compaction errors, a
// slow disk, write stalls, low disk space) go to the log; corruption is
// also recorded so the store refuses further writes.
func (s *Store) listener(p *pebbleLog) *pebble.EventListener {
	dir := s.dir
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			p.emit(slog.LevelError, "background-error", "pebble: background error", "dir", dir, "err", err)
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err != nil {
				p.emit(slog.LevelError, "flush-error", "pebble: flushing a memtable failed; Pebble retries", "dir", dir, "err", info.Err)
			}
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if info.Err != nil && !errors.Is(info.Err, pebble.ErrCancelledCompaction) {
				p.emit(slog.LevelError, "compaction-error", "pebble: compaction failed; Pebble retries", "dir", dir, "err", info.Err)
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			// Called on Pebble's disk-health goroutine, which must not
			// block on I/O: the log line is written by another goroutine
			// (rate-limited, so they are few).
			if ok, held := p.lim.allow("disk-slow"); ok {
				go p.log.Warn("pebble: disk slow", "dir", dir, "path", info.Path, "op", info.OpType.String(), "duration", info.Duration, "suppressed", held)
			}
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			p.emit(slog.LevelWarn, "write-stall", "pebble: write stall: writes are delayed", "dir", dir, "reason", info.Reason)
		},
		WriteStallEnd: func() {
			p.emit(slog.LevelInfo, "write-stall-end", "pebble: write stall ended", "dir", dir)
		},
		LowDiskSpace: func(info pebble.LowDiskSpaceInfo) {
			p.emit(slog.LevelWarn, "low-disk", "pebble: low disk space", "dir", dir, "info", info.String())
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			// Pebble's default is to Fatalf. Record it instead: reads of
			// the damaged range fail with an error naming the file, and
			// the store refuses further writes.
			err := fmt.Errorf("store %s: on-disk corruption in %s: %w; restore this node from a snapshot", dir, info.Path, info.Details)
			s.corrupt.CompareAndSwap(nil, &err)
			p.emit(slog.LevelError, "corruption", "pebble: on-disk corruption", "dir", dir, "path", info.Path, "err", info.Details)
		},
	}
}
