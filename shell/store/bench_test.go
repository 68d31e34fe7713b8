package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// benchSaves runs b.N durable single-entry saves from `writers` goroutines
// and reports writes/s and latency percentiles.
func benchSaves(b *testing.B, writers int) {
	s := openT(b, b.TempDir())
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}}, true); err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = writeCmd(b, "v", uint64(i+1), fmt.Sprintf("engram %d: a few hundred bytes of content, as a typical memory would carry, with some words to index for activation later on", i))
	}
	var mu sync.Mutex
	next := 0
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t0 := time.Now()
				mu.Lock()
				i := next
				if i >= b.N {
					mu.Unlock()
					return
				}
				next++
				e := core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(i + 1)}, Type: core.EntryData, Payload: payloads[i]}
				p, err := s.SaveNoWait(SaveBatch{Entries: []core.Entry{e}}, true)
				mu.Unlock()
				if err == nil {
					err = p.Wait()
				}
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkSaveDurable1(b *testing.B)  { benchSaves(b, 1) }
func BenchmarkSaveDurable64(b *testing.B) { benchSaves(b, 64) }

func BenchmarkGet(b *testing.B) {
	s := openT(b, b.TempDir())
	const n = 10000
	var es []core.Entry
	for i := core.Seq(1); i <= n; i++ {
		es = append(es, dataEntry(b, 1, i, "some content for a read benchmark"))
	}
	if err := s.Save(SaveBatch{HardState: &core.HardState{Epoch: 1}, Entries: es}, true); err != nil {
		b.Fatal(err)
	}
	s.db.Flush()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			i = i*7 + 1
			if _, ok, err := s.Get("v", testID(i%n+1)); !ok || err != nil {
				b.Error(ok, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
