package store

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninndb/muninn/core/engram"
)

// batchKV is engram.KV over an indexed batch: reads see the DB with the
// batch's own writes on top, writes go into the batch.
type batchKV struct{ b *pebble.Batch }

var _ engram.KV = batchKV{}

func (kv batchKV) Get(key []byte) ([]byte, bool, error) {
	v, c, err := kv.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte{}, v...)
	return out, true, c.Close()
}

func (kv batchKV) Set(key, val []byte) error { return kv.b.Set(key, val, nil) }
func (kv batchKV) Delete(key []byte) error   { return kv.b.Delete(key, nil) }

func (kv batchKV) Scan(start, end []byte, fn func(k, v []byte) bool) error {
	it, err := kv.b.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	return scan(it, fn)
}

func scan(it *pebble.Iterator, fn func(k, v []byte) bool) error {
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Close()
}

// readKV is a read-only engram.KV over the DB, for queries.
type readKV struct{ s *Store }

var errReadOnly = errors.New("store: read-only view")

func (kv readKV) Get(key []byte) ([]byte, bool, error) { return kv.s.get(key) }
func (kv readKV) Set(key, val []byte) error            { return errReadOnly }
func (kv readKV) Delete(key []byte) error              { return errReadOnly }
func (kv readKV) Scan(start, end []byte, fn func(k, v []byte) bool) error {
	it, err := kv.s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	return scan(it, fn)
}
