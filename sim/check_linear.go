package sim

import (
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/muninndb/muninn/core"
)

type regInput struct {
	write bool
	key   int
	value string
}

// registerModel is a set of independent registers, partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		var parts [Registers][]porcupine.Operation
		for _, op := range history {
			k := op.Input.(regInput).key
			parts[k] = append(parts[k], op)
		}
		var out [][]porcupine.Operation
		for _, p := range parts {
			if len(p) > 0 {
				out = append(out, p)
			}
		}
		return out
	},
	Init: func() interface{} { return "init" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.write {
			return "write(" + itoa(uint64(in.key)) + ", " + in.value + ")"
		}
		return "read(" + itoa(uint64(in.key)) + ") -> " + output.(string)
	},
}

// LinearTimeout bounds porcupine's search per run.
const LinearTimeout = 2 * time.Second

// checkLinearizable runs porcupine over the register history: quorum writes
// (acknowledged, or unknown: then they may take effect any time after their
// call) and acknowledged strong reads.
func (c *Checkers) checkLinearizable() {
	var hist []porcupine.Operation
	for _, op := range c.w.work.ops {
		switch op.Kind {
		case OpRegWrite, OpReplay:
			if op.Outcome == OK || op.Outcome == Unknown || op.Outcome == Pending {
				ret := op.Return
				if op.Outcome != OK {
					ret = 1 << 62
				}
				hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: regInput{write: true, key: op.Key, value: op.Value}, Call: op.Call, Output: "", Return: ret})
			}
		case OpRegRead:
			if op.Outcome == OK {
				hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: regInput{key: op.Key}, Call: op.Call, Output: op.Read, Return: op.Return})
			}
		}
	}
	c.w.stats.LinearOps = len(hist)
	switch porcupine.CheckOperationsTimeout(registerModel, hist, LinearTimeout) {
	case porcupine.Illegal:
		c.violate("linearizability", false, "", "the strong-read/quorum-write register history is not linearizable ("+itoa(uint64(len(hist)))+" operations)")
	case porcupine.Unknown:
		c.w.stats.LinearTimeouts++
	}
}

// onStrongRead: a strong read is served from a state machine that holds
// nothing uncommitted (rule 12; the contract on core.Ready, step 4), or it
// could see a write a failover later removes. Writes queued behind the read
// are appended in the Ready that releases it: serving after that Ready's
// save would show them.
func (c *Checkers) onStrongRead(sn *SimNode, r core.Result) {
	if last, commit := sn.st.Last(), sn.n.Commit(); commit.Seq < last.Seq {
		c.violate("read-uncommitted", false, sn.id, "strong read served from a state holding entries up to "+last.String()+" above the commit point "+commit.String())
	}
}
