package sim

import (
	"fmt"
	"io"
	"time"

	"github.com/anishathalye/porcupine"
)

// RegisterOp is one operation of a register history recorded outside the
// simulator (the real-cluster fault driver, sim/cluster), checked by
// CheckRegisters against the same porcupine model as the simulator's
// linearizability checker: Registers independent registers, each
// initially "init", written with unique values by quorum writes and read
// by strong reads.
type RegisterOp struct {
	// Client identifies the process that issued the operation: one
	// client's operations never overlap.
	Client int
	// Key is the register, 0 <= Key < Registers.
	Key int
	// Write: a quorum write of Value; otherwise a strong read that
	// returned Value.
	Write bool
	Value string
	// Call and Return are the invocation and completion times (any unit,
	// one clock).
	Call, Return int64
	// Unknown marks a write whose outcome the client never learned: it may
	// take effect at any time after Call, or never. Return is ignored.
	Unknown bool
}

// RegisterCheck is the result of CheckRegisters.
type RegisterCheck struct {
	// Result is porcupine.Ok, porcupine.Illegal, or porcupine.Unknown when
	// the search ran out of time.
	Result porcupine.CheckResult
	// Ops is the number of operations checked.
	Ops  int
	info porcupine.LinearizationInfo
}

// Visualize writes porcupine's HTML visualization of the history (the
// longest linearizable prefixes, and where they stop when Illegal).
func (rc RegisterCheck) Visualize(w io.Writer) error {
	return porcupine.Visualize(registerModel, rc.info, w)
}

// unknownReturn stands for "never returned": later than any real time.
const unknownReturn = int64(1) << 62

// CheckRegisters checks that ops are linearizable, giving up after
// timeout (Result porcupine.Unknown).
func CheckRegisters(ops []RegisterOp, timeout time.Duration) (RegisterCheck, error) {
	hist := make([]porcupine.Operation, 0, len(ops))
	for i, op := range ops {
		if op.Key < 0 || op.Key >= Registers {
			return RegisterCheck{}, fmt.Errorf("register op %d: key %d out of range [0, %d)", i, op.Key, Registers)
		}
		in := regInput{write: op.Write, key: op.Key}
		out := ""
		ret := op.Return
		if op.Write {
			in.value = op.Value
			if op.Unknown {
				ret = unknownReturn
			}
		} else {
			out = op.Value
		}
		if ret < op.Call {
			return RegisterCheck{}, fmt.Errorf("register op %d: returns (%d) before its call (%d)", i, ret, op.Call)
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Output: out, Return: ret})
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, hist, timeout)
	return RegisterCheck{Result: res, Ops: len(hist), info: info}, nil
}
