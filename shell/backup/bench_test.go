package backup

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/core/engram"
	"github.com/muninndb/muninn/shell/store"
)

// benchStore fills a store with MUNINN_BACKUP_BENCH_MB (default 300) MB
// of engram content: random base64 text, 4 KiB per engram (the log holds
// each write's command too, so the store is larger).
func benchStore(b *testing.B) *store.Store {
	mb := 300
	if v, err := strconv.Atoi(os.Getenv("MUNINN_BACKUP_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "src"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	const size = 4 << 10
	raw := make([]byte, size*3/4)
	count := mb << 20 / size
	var es []core.Entry
	seq := core.Seq(0)
	for i := range count {
		rand.Read(raw)
		seq++
		cmd, err := engram.EncodeCommand(engram.Command{Op: engram.OpWrite, Vault: "v", ID: engramID(uint64(i)), At: uint64(i), Concept: "c", Content: base64.StdEncoding.EncodeToString(raw), Confidence: 0.5})
		if err != nil {
			b.Fatal(err)
		}
		es = append(es, core.Entry{Pos: core.Pos{Epoch: 1, Seq: seq}, Type: core.EntryData, Payload: cmd})
		if len(es) == 512 || i == count-1 {
			hs := core.HardState{Epoch: 1, Commit: core.Pos{Epoch: 1, Seq: seq}}
			if err := st.Save(store.SaveBatch{HardState: &hs, Entries: es, Members: core.Members{{ID: "a"}}}, false); err != nil {
				b.Fatal(err)
			}
			es = nil
		}
	}
	return st
}

// BenchmarkBackupRestore measures, on one store, an online backup to a
// local tar.zst file (checkpoint, hashing, compressing, writing, fsync)
// and a restore of it (checking, extracting, fsync, opening), in MB/s of
// store bytes.
//
//	go test -run '^$' -bench BackupRestore -benchtime 3x ./shell/backup
func BenchmarkBackupRestore(b *testing.B) {
	st := benchStore(b)
	defer st.Close()
	dir := b.TempDir()
	file := filepath.Join(dir, "b.tar.zst")
	var m Manifest
	b.Run("backup", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			os.Remove(file)
			ck := filepath.Join(dir, "ck"+strconv.Itoa(i))
			var err error
			if m, err = Take(st, ck, "a"); err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(file)
			if err != nil {
				b.Fatal(err)
			}
			if err := Encode(f, m, ck, nil); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			os.RemoveAll(ck)
			b.SetBytes(m.TotalBytes)
		}
		if fi, err := os.Stat(file); err == nil {
			b.ReportMetric(float64(m.TotalBytes)/(1<<20), "store-MiB")
			b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
		}
	})
	b.Run("restore", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			target := filepath.Join(dir, "r"+strconv.Itoa(i))
			m, _, err := Restore(file, target, ReadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(m.TotalBytes)
			os.RemoveAll(target)
		}
	})
}
