package mbp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCompressRoundTrip(t *testing.T) {
	c, err := NewCompressor(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	small := bytes.Repeat([]byte("a"), CompressAbove)
	if _, ok := c.Compress(small); ok {
		t.Fatal("compressed a payload of exactly 1 KiB")
	}
	big := bytes.Repeat([]byte("engram payload "), 1000)
	z, ok := c.Compress(big)
	if !ok || len(z) >= len(big) {
		t.Fatalf("not compressed: ok=%v %d bytes", ok, len(z))
	}
	out, err := c.Decompress(z)
	if err != nil || !bytes.Equal(out, big) {
		t.Fatalf("decompress: %v", err)
	}
	random := make([]byte, 8<<10)
	_, _ = rand.Read(random)
	if _, ok := c.Compress(random); ok {
		t.Fatal("sent incompressible data compressed")
	}
}

// A small frame that expands past the limit is refused: with a declared
// content size before decoding, without one as soon as output passes it.
func TestDecompressBomb(t *testing.T) {
	const limit = 64 << 10
	c, err := NewCompressor(limit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	zeros := make([]byte, 4<<20)
	enc, _ := zstd.NewWriter(nil, zstd.WithWindowSize(maxWindow))
	declared := enc.EncodeAll(zeros, nil)
	var stream bytes.Buffer // streaming writes carry no content size
	w, _ := zstd.NewWriter(&stream, zstd.WithWindowSize(maxWindow))
	_, _ = w.Write(zeros)
	_ = w.Close()
	enc.Close()
	for name, bomb := range map[string][]byte{"declared": declared, "undeclared": stream.Bytes()} {
		if len(bomb) > limit {
			t.Fatalf("%s bomb is %d bytes", name, len(bomb))
		}
		if _, err := c.Decompress(bomb); !errors.Is(err, ErrDecompress) {
			t.Fatalf("%s: err = %v", name, err)
		}
	}
	if _, err := c.Decompress([]byte("not zstd at all")); !errors.Is(err, ErrDecompress) {
		t.Fatalf("garbage: err = %v", err)
	}
}

// A frame asking for a window over maxWindow is refused.
func TestDecompressWindow(t *testing.T) {
	c, _ := NewCompressor(0)
	defer c.Close()
	enc, _ := zstd.NewWriter(nil, zstd.WithWindowSize(8<<20))
	var buf bytes.Buffer
	enc.Reset(&buf)
	data := make([]byte, 9<<20)
	_, _ = rand.Read(data[:1<<20])
	_, _ = enc.Write(data)
	_ = enc.Close()
	if _, err := c.Decompress(buf.Bytes()); err == nil {
		t.Fatal("accepted an 8 MiB window")
	}
}
