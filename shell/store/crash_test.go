package store

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
)

var (
	crashRounds = flag.Int("crash.rounds", 5, "kill -9 rounds of TestCrashKill9")
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestCrashKill9 (0: from the clock)")
)

const crashEnv = "MUNINN_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild writes forever with 16 concurrent writers, printing "ack <seq>"
// once each synced save returns, until it is killed. Every 50 entries it
// advances the commit point (dropping undo records) and prunes the log.
func crashChild(dir string) error {
	s, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	r, err := s.Load()
	if err != nil {
		return err
	}
	var mu sync.Mutex // orders seq assignment with SaveNoWait
	last := r.Applied
	if last.Seq == 0 {
		err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: []core.Entry{{Pos: core.Pos{Epoch: 1, Seq: 1}, Type: core.EntryEpochStart}}}, true)
		if err != nil {
			return err
		}
		last = core.Pos{Epoch: 1, Seq: 1}
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	errc := make(chan error, 16)
	for w := 0; w < 16; w++ {
		go func() {
			for {
				mu.Lock()
				seq := last.Seq + 1
				rd := SaveBatch{Entries: []core.Entry{dataEntry(nil, 1, seq, fmt.Sprint("seq ", seq))}}
				if seq%50 == 0 {
					rd.HardState = &core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: seq - 20}}
				}
				p, err := s.SaveNoWait(rd, true)
				if err == nil {
					last.Seq = seq
					if seq%50 == 0 {
						_, err = s.Prune(seq - 40)
					}
				}
				mu.Unlock()
				if err == nil {
					err = p.Wait()
				}
				if err != nil {
					errc <- err
					return
				}
				outMu.Lock()
				fmt.Fprintf(out, "ack %d\n", seq)
				out.Flush()
				outMu.Unlock()
			}
		}()
	}
	return <-errc
}

// TestCrashKill9 runs a child process that writes with synced saves and
// reports each acknowledged seq, SIGKILLs it at a random moment, reopens
// the store and checks that every acknowledged write is there and that the
// data, the log and the applied point agree. Repeated -crash.rounds times on
// the same store.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./shell/store -run TestCrashKill9 -crash.seed %d -crash.rounds %d)", seed, seed, *crashRounds)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	acked := map[core.Seq]bool{}
	totalAcks := 0
	for round := 0; round < *crashRounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		first := make(chan struct{})
		done := make(chan []core.Seq)
		go func() {
			var seqs []core.Seq
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "ack "), 10, 64)
				if err != nil {
					continue
				}
				if len(seqs) == 0 {
					close(first)
				}
				seqs = append(seqs, core.Seq(n))
			}
			done <- seqs
		}()
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child acknowledged nothing in 10s: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		seqs := <-done
		cmd.Wait()
		if strings.Contains(stderr.String(), "crash child:") {
			t.Fatalf("round %d: child failed: %s", round, stderr.String())
		}
		for _, q := range seqs {
			acked[q] = true
		}
		totalAcks += len(seqs)

		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		r, err := s.Load()
		if err != nil {
			t.Fatalf("round %d: load: %v", round, err)
		}
		for q := range acked {
			if q > r.Applied.Seq {
				t.Fatalf("round %d: acknowledged seq %d is beyond the applied point %s", round, q, r.Applied)
			}
			e, ok, err := s.Get("v", testID(uint64(q)))
			if err != nil || !ok || e.Content != fmt.Sprint("seq ", q) {
				t.Fatalf("round %d: acknowledged write %d lost: %+v %v %v", round, q, e, ok, err)
			}
		}
		// Data and log agree: exactly the engrams of seqs 2..applied exist.
		n := 0
		cursor := ""
		for {
			p, err := s.List("v", engram.ListOptions{Limit: 1000, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Engrams {
				n++
				if q := engram.IDTime(e.ID) - 1_700_000_000_000; q < 2 || q > uint64(r.Applied.Seq) {
					t.Fatalf("round %d: engram of seq %d beyond the applied point %s", round, q, r.Applied)
				}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if n != int(r.Applied.Seq)-1 {
			t.Fatalf("round %d: %d engrams for applied point %s", round, n, r.Applied)
		}
		if len(r.Entries) > 0 && (r.Entries[0].Pos.Seq != r.Base.Seq+1 || r.Entries[len(r.Entries)-1].Pos != r.Applied) {
			t.Fatalf("round %d: log %s..%s, base %s, applied %s", round, r.Entries[0].Pos, r.Entries[len(r.Entries)-1].Pos, r.Base, r.Applied)
		}
		s.Close()
		t.Logf("round %d: %d acks this round, applied %s, base %s", round, len(seqs), r.Applied, r.Base)
	}
	t.Logf("%d rounds, %d acknowledged writes, none lost", *crashRounds, totalAcks)
}
