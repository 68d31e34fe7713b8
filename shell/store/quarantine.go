package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core"
)

// Quarantined is an entry removed from the log by a truncation (docs/protocol.md,
// rule 10): a write cut off by a failover, kept for the operator to inspect,
// export, replay (a conditional write: protocol rule 10, docs/api.md), or
// drop.
type Quarantined struct {
	Epoch      core.Epoch `json:"epoch"`
	Seq        core.Seq   `json:"seq"`
	Type       string     `json:"type"`
	Durability string     `json:"durability"`
	// Vault, Op and ID are set when the payload decodes as an engram command.
	Vault string `json:"vault,omitempty"`
	Op    string `json:"op,omitempty"`
	ID    string `json:"id,omitempty"`
	// Payload is the entry's payload (base64 in JSON): replaying it as a new
	// write means proposing it again.
	Payload []byte `json:"payload"`
	Reason  string `json:"reason"`
	TimeMS  int64  `json:"time_ms"` // when it was removed, unix ms
	// Base is the state the entry was applied on (engram.Precondition,
	// encoded): a replay applies only if it still holds.
	Base []byte `json:"base,omitempty"`
}

// Pos returns the entry's position.
func (q Quarantined) Pos() core.Pos { return core.Pos{Epoch: q.Epoch, Seq: q.Seq} }

func (s *Store) scanQuarantine(fn func(q Quarantined) error) error {
	if err := s.readable(); err != nil {
		return err
	}
	return s.scanQuarantineLocked(fn)
}

// scanQuarantineLocked is scanQuarantine for a caller holding s.mu.
func (s *Store) scanQuarantineLocked(fn func(q Quarantined) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceQuarantine}, UpperBound: []byte{spaceQuarantine + 1}})
	if err != nil {
		return err
	}
	var ferr error
	err = scan(it, func(k, v []byte) bool {
		var q Quarantined
		if err := json.Unmarshal(v, &q); err != nil {
			ferr = fmt.Errorf("store %s: quarantine record %x: %w", s.dir, k, err)
			return false
		}
		ferr = fn(q)
		return ferr == nil
	})
	if err == nil {
		err = ferr
	}
	return err
}

// Quarantine lists the quarantined entries by (epoch, seq).
func (s *Store) Quarantine() ([]Quarantined, error) {
	var out []Quarantined
	err := s.scanQuarantine(func(q Quarantined) error {
		out = append(out, q)
		return nil
	})
	return out, err
}

// ExportQuarantine writes every quarantined entry to w as JSON lines and
// returns how many it wrote.
func (s *Store) ExportQuarantine(w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	n := 0
	enc := json.NewEncoder(bw)
	err := s.scanQuarantine(func(q Quarantined) error {
		n++
		return enc.Encode(q)
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// DropQuarantine deletes the quarantined entry at p (synced). It reports
// whether there was one.
func (s *Store) DropQuarantine(p core.Pos) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return false, err
	}
	k := quarantineKey(p)
	_, ok, err := s.get(k)
	if err != nil || !ok {
		return false, err
	}
	return true, s.db.Delete(k, pebble.Sync)
}
