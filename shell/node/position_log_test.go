package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// lockedBuffer is a log sink safe for the node's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPositionLogged: a node logs its last log position and commit point
// when its store opens and when it stops, so an operator can find the
// freshest node from the logs (the seed's recovery Scenario 3).
func TestPositionLogged(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last core.Pos
	for round := 0; round < 2; round++ {
		var buf lockedBuffer
		n, err := Start(Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		opened := fmt.Sprintf(`msg="store opened: last epoch=%d seq=%d commit=%d"`, last.Epoch, last.Seq, last.Seq)
		if round == 0 {
			opened = `msg="store opened: last epoch=0 seq=0 commit=0"`
		}
		for i := 0; i < 3; i++ {
			if last, err = n.Write(ctx, writeCmd(t, NewEngramID(), "x"), core.Quorum); err != nil {
				t.Fatalf("round %d: write: %v", round, err)
			}
		}
		n.Close()
		out := buf.String()
		if !strings.Contains(out, opened) {
			t.Errorf("round %d: no %s in the log:\n%s", round, opened, out)
		}
		// A standalone node commits each quorum write at once: its commit
		// point at stop is its last entry.
		stopped := fmt.Sprintf(`msg="stopped: last epoch=%d seq=%d commit=%d"`, last.Epoch, last.Seq, last.Seq)
		if !strings.Contains(out, stopped) {
			t.Errorf("round %d: no %s in the log:\n%s", round, stopped, out)
		}
		if strings.Index(out, "stopped: ") < strings.Index(out, "store opened: ") {
			t.Errorf("round %d: the stop line comes before the open line:\n%s", round, out)
		}
	}
}
