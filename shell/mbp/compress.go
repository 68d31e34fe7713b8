package mbp

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// CompressAbove is the payload size above which a frame is zstd-compressed
// (the seed: "Batches larger than 1KB are compressed with Zstd"). A
// compressed payload is sent only when it is smaller.
const CompressAbove = 1 << 10

// maxWindow bounds the zstd window a peer may ask us to keep (both for the
// encoder we run and the decoder's refusal of larger windows).
const maxWindow = 1 << 20

// Compressor holds one reused zstd encoder and decoder. Both are safe for
// concurrent use (EncodeAll and DecodeAll). Decompressed output is bounded
// by the frame limit: a small frame that expands past it (a zip bomb) is
// refused, not allocated.
type Compressor struct {
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	limit int
}

// ErrDecompress wraps every decompression error.
var ErrDecompress = errors.New("mbp: bad zstd payload")

// NewCompressor returns a Compressor whose output is at most limit bytes
// (MaxFrame when limit is 0 or above it).
func NewCompressor(limit int) (*Compressor, error) {
	limit = checkLimit(limit)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(maxWindow),
		zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(limit)),
		zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderLowmem(true))
	if err != nil {
		enc.Close()
		return nil, err
	}
	return &Compressor{enc: enc, dec: dec, limit: limit}, nil
}

// Limit is the largest output Decompress returns.
func (c *Compressor) Limit() int { return c.limit }

// Compress returns src compressed and true when src is over CompressAbove
// and the compressed form is smaller; otherwise src and false.
func (c *Compressor) Compress(src []byte) ([]byte, bool) {
	if len(src) <= CompressAbove {
		return src, false
	}
	out := c.enc.EncodeAll(src, make([]byte, 0, len(src)/2))
	if len(out) >= len(src) {
		return src, false
	}
	return out, true
}

// Decompress decodes a zstd payload of at most Limit bytes of output. It
// refuses a declared content size over the limit before allocating, and
// stops decoding as soon as the output passes it.
func (c *Compressor) Decompress(src []byte) ([]byte, error) {
	h := zstd.Header{}
	if err := h.Decode(src); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	if h.HasFCS && h.FrameContentSize > uint64(c.limit) {
		return nil, fmt.Errorf("%w: declares %d bytes, limit %d", ErrDecompress, h.FrameContentSize, c.limit)
	}
	out, err := c.dec.DecodeAll(src, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	if len(out) > c.limit {
		return nil, fmt.Errorf("%w: expands past %d bytes", ErrDecompress, c.limit)
	}
	return out, nil
}

// Close releases the encoder and decoder.
func (c *Compressor) Close() {
	c.enc.Close()
	c.dec.Close()
}
