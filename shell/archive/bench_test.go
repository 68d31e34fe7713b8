package archive

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninndb/muninn/core"
)

// BenchmarkSegment writes and reads back a full segment of 65536 entries
// with 256-byte payloads (about 18 MiB).
func BenchmarkSegment(b *testing.B) {
	es := make([]core.Entry, MaxSegmentEntries)
	payload := []byte(strings.Repeat("p", 256))
	for i := range es {
		es[i] = core.Entry{Pos: core.Pos{Epoch: 1, Seq: core.Seq(i + 1)}, Payload: payload}
	}
	b.SetBytes(int64(len(es) * (26 + len(payload))))
	for i := 0; b.Loop(); i++ {
		dir := b.TempDir()
		s, err := Write(dir, "n", 0, es)
		if err != nil {
			b.Fatal(err)
		}
		if _, got, err := ReadFile(filepath.Join(dir, s.Name())); err != nil || len(got) != len(es) {
			b.Fatal(err)
		}
	}
}
