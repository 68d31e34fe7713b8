package fuzz

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/muninndb/muninn/core"
)

// FuzzStep feeds arbitrary message sequences, ticks and proposals to a
// node of a three-node cluster and checks it never panics and keeps its own
// invariants: epochs never go back, a Cortex's epoch is its own, the commit
// point never passes the log, the log stays contiguous.
func FuzzStep(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte("\x03\x01\x00\x00\x00\x00\x00\x00\x00\x02\x01\x05"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms := core.Members{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "s1", Kind: core.KindSentinel}}
		n := core.New(core.Config{ID: "n1", Heartbeat: 100 * time.Millisecond, Bootstrap: ms}, core.Restored{}, 0)
		now := core.Time(0)
		peers := []core.NodeID{"n2", "n3", "s1", "x9"}
		var lastEpoch core.Epoch
		next := func(k int) uint64 {
			if len(data) < k {
				data = nil
				return 0
			}
			var v uint64
			for i := 0; i < k; i++ {
				v = v<<8 | uint64(data[i])
			}
			data = data[k:]
			return v
		}
		for steps := 0; len(data) > 0 && steps < 500; steps++ {
			op := next(1)
			now += core.Time(next(1)) * core.Time(5*time.Millisecond)
			switch op % 4 {
			case 0:
				n.Tick(now)
			case 1:
				n.Propose(now, uint64(steps), []byte{byte(op)}, core.Durability(op>>2&1))
			case 2:
				n.Read(now, uint64(steps), core.Consistency(op>>2%3), int64(next(1)))
			default:
				m := core.Message{
					Type:   core.MsgType(next(1)%9 + 1),
					From:   peers[next(1)%4],
					To:     "n1",
					Epoch:  core.Epoch(next(1) % 6),
					Role:   core.Role(next(1) % 5),
					SentAt: core.Time(next(2)) * core.Time(time.Millisecond),
					Last:   core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: core.Seq(next(1) % 20)},
					Commit: core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: core.Seq(next(1) % 20)},
					Prev:   core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: core.Seq(next(1) % 20)},
					Match:  core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: core.Seq(next(1) % 20)},
					Hint:   core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: core.Seq(next(1) % 20)},
				}
				flags := next(1)
				m.Reject, m.Down, m.Handoff, m.Granted = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
				for k := next(1) % 4; k > 0; k-- {
					seq := m.Prev.Seq + core.Seq(len(m.Entries)) + 1
					m.Entries = append(m.Entries, core.Entry{Pos: core.Pos{Epoch: core.Epoch(next(1) % 6), Seq: seq}, Payload: binary.AppendUvarint(nil, uint64(seq))})
				}
				n.Step(now, m)
			}
			for n.HasReady() {
				rd := n.Ready()
				for _, e := range rd.Events {
					if e.Kind == core.EventViolation {
						// Hostile messages may claim impossible things; the
						// core must notice and refuse, which it just did.
						_ = e
					}
				}
				n.Advance()
			}
			st := n.Status()
			if st.Epoch < lastEpoch {
				t.Fatalf("epoch went back from %d to %d", lastEpoch, st.Epoch)
			}
			lastEpoch = st.Epoch
			if st.Role == core.RoleCortex && st.Cortex != "n1" {
				t.Fatalf("Cortex follows %s", st.Cortex)
			}
			if st.Commit.Seq > st.Last.Seq && st.Commit.Seq > st.Snap.Seq {
				t.Fatalf("commit %s beyond last %s", st.Commit, st.Last)
			}
			if n.NextDeadline() < now && n.NextDeadline() != 0 {
				n.Tick(now)
				if n.NextDeadline() < now {
					t.Fatalf("deadline %d stays in the past at %d (the driver would spin)", n.NextDeadline(), now)
				}
			}
		}
	})
}
