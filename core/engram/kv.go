package engram

import (
	"bytes"
	"slices"
)

// KV is the small key-value interface the state machine is written against.
// Pebble implements it in shell/store (over an indexed batch, so reads see the
// batch's own writes); MemKV implements it in memory for the simulator and
// for tests. Both run the same Apply code.
type KV interface {
	// Get returns the value of key; the slice is only valid until the next
	// call on the KV, so callers copy what they keep.
	Get(key []byte) ([]byte, bool, error)
	Set(key, val []byte) error
	Delete(key []byte) error
	// Scan calls fn for each key in [start, end) in ascending order until fn
	// returns false. A nil end means no upper bound. fn must not mutate the
	// KV, and must copy k and v to keep them.
	Scan(start, end []byte, fn func(k, v []byte) bool) error
}

type memItem struct {
	k string
	v []byte
}

// MemKV is a sorted in-memory KV. It is deterministic (iteration is in key
// order, never map order) and not safe for concurrent use. The zero value is
// an empty store.
type MemKV struct {
	items []memItem // sorted by k
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{} }

func (m *MemKV) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(m.items, key, func(it memItem, k []byte) int {
		return bytes.Compare([]byte(it.k), k)
	})
}

// Get implements KV.
func (m *MemKV) Get(key []byte) ([]byte, bool, error) {
	i, ok := m.find(key)
	if !ok {
		return nil, false, nil
	}
	return m.items[i].v, true, nil
}

// Set implements KV. It copies val.
func (m *MemKV) Set(key, val []byte) error {
	v := bytes.Clone(val)
	if v == nil {
		v = []byte{}
	}
	i, ok := m.find(key)
	if ok {
		m.items[i].v = v
		return nil
	}
	m.items = slices.Insert(m.items, i, memItem{k: string(key), v: v})
	return nil
}

// Delete implements KV.
func (m *MemKV) Delete(key []byte) error {
	if i, ok := m.find(key); ok {
		m.items = slices.Delete(m.items, i, i+1)
	}
	return nil
}

// Scan implements KV.
func (m *MemKV) Scan(start, end []byte, fn func(k, v []byte) bool) error {
	i, _ := m.find(start)
	for ; i < len(m.items); i++ {
		it := m.items[i]
		if end != nil && bytes.Compare([]byte(it.k), end) >= 0 {
			break
		}
		if !fn([]byte(it.k), it.v) {
			break
		}
	}
	return nil
}

// Len returns the number of keys.
func (m *MemKV) Len() int { return len(m.items) }

// Clone returns an independent copy, for simulator snapshots. Values are
// never mutated in place, so the copy shares them.
func (m *MemKV) Clone() *MemKV { return &MemKV{items: slices.Clone(m.items)} }

// Equal reports whether m and o hold exactly the same keys and values.
func (m *MemKV) Equal(o *MemKV) bool {
	return slices.EqualFunc(m.items, o.items, func(a, b memItem) bool {
		return a.k == b.k && bytes.Equal(a.v, b.v)
	})
}

// Dump calls fn for every key and value in order (for digests and tests).
func (m *MemKV) Dump(fn func(k, v []byte)) {
	for _, it := range m.items {
		fn([]byte(it.k), it.v)
	}
}
