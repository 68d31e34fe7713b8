package store

import (
	"bytes"

	"github.com/muninndb/muninn/core/engram"
)

// Vaults lists the vaults that hold data, in name order. It walks the data
// keyspace once, jumping past each vault (vault names never contain the
// 0x00/0x01 separators).
func (s *Store) Vaults() ([]string, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	var out []string
	start := engram.DataStart
	for {
		var found []byte
		err := readKV{s}.Scan(start, engram.DataEnd, func(k, _ []byte) bool {
			found = k
			return false
		})
		if err != nil || found == nil {
			return out, err
		}
		i := bytes.IndexAny(found[1:], "\x00\x01")
		if i < 0 {
			return out, nil
		}
		v := string(found[1 : 1+i])
		if v != "" { // the decay-all state, not a vault
			out = append(out, v)
		}
		// Next vault: everything after 'd' v 0xff.
		start = append(append([]byte{engram.DataPrefix}, v...), 0x02)
	}
}
