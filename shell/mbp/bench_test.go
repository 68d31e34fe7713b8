package mbp

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// benchPair returns two connected transports.
func benchPair(b *testing.B) (*Transport, *Transport) {
	mk := func(id core.NodeID) *Transport {
		tr := New(Config{ID: id, Secret: []byte(testSecret), ListenAddr: "127.0.0.1:0", QueueLen: 1 << 14})
		if err := tr.Listen(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		return tr
	}
	a, c := mk("node-a"), mk("node-b")
	_ = a.Connect(c.Addr())
	for !connected(a, "node-b") || !connected(c, "node-a") {
		time.Sleep(time.Millisecond)
	}
	return a, c
}

func batch(n, size int, compressible bool) core.Message {
	m := core.Message{Type: core.MsgAppend, Epoch: 1, Prev: core.Pos{Epoch: 1, Seq: 1}}
	for i := 0; i < n; i++ {
		p := make([]byte, size)
		if compressible {
			copy(p, fmt.Sprintf(`{"vault":"default","concept":"engram %d","content":"the quick brown fox jumps over the lazy dog %d"}`, i, i))
		} else {
			_, _ = rand.Read(p)
		}
		m.Entries = append(m.Entries, core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(i + 2)}, Payload: p})
	}
	return m
}

// BenchmarkLoopback measures messages/s and payload MB/s from Send to Recv
// over loopback TCP, including encoding, zstd and decoding.
func BenchmarkLoopback(b *testing.B) {
	cases := []struct {
		name string
		m    core.Message
	}{
		{"heartbeat", core.Message{Type: core.MsgHeartbeat, Epoch: 1, Last: core.Pos{Epoch: 1, Seq: 99}}},
		{"batch100x100B-compressible", batch(100, 100, true)},
		{"batch100x100B-random", batch(100, 100, false)},
		{"batch1000x1KiB-compressible", batch(1000, 1024, true)},
		{"batch1000x1KiB-random", batch(1000, 1024, false)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			a, r := benchPair(b)
			b.SetBytes(int64(len(EncodeMessage(c.m))))
			done := make(chan struct{})
			go func() {
				for i := 0; i < b.N; i++ {
					<-r.Recv()
				}
				close(done)
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for !a.Send("node-b", c.m) {
					runtime.Gosched() // queue full: wait for the writer
				}
			}
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLatencyIdle measures enqueue-to-delivery latency on an idle link
// (one message in flight at a time) and reports p50 and p99.
func BenchmarkLatencyIdle(b *testing.B) {
	for _, c := range []struct {
		name string
		m    core.Message
	}{
		{"heartbeat", core.Message{Type: core.MsgHeartbeat, Epoch: 1}},
		{"batch100x100B", batch(100, 100, true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			a, r := benchPair(b)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				a.Send("node-b", c.m)
				<-r.Recv()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkLatencyLoaded measures heartbeat enqueue-to-delivery latency
// while 100-entry appends stream at about 10,000 entries/s (the issue's
// "high load"), and reports p50 and p99.
func BenchmarkLatencyLoaded(b *testing.B) {
	a, r := benchPair(b)
	app := batch(100, 200, true)
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() { // 100 appends/s of 100 entries
		defer close(loadDone)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				a.Send("node-b", app)
			case <-stop:
				return
			}
		}
	}()
	got := make(chan struct{}, 1)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for m := range r.Recv() {
			if m.Type == core.MsgHeartbeat {
				got <- struct{}{}
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		a.Send("node-b", core.Message{Type: core.MsgHeartbeat, Epoch: 1})
		<-got
		lat = append(lat, time.Since(start))
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	close(stop)
	<-loadDone
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	a.Close()
	r.Close()
	<-recvDone
}
