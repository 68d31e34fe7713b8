// Package mbp is the Muninn Binary Protocol: the cluster transport on port
// 8474. It frames, authenticates, compresses and carries core.Messages
// between nodes over persistent TCP connections, and streams snapshots.
//
// Layers, one file each: frame.go (the fixed frame header and size limit),
// codec.go (the binary encoding of core.Message), compress.go (zstd with
// bounded output), handshake.go (mutual HMAC-SHA256 challenge-response),
// transport.go (connections, queues, reconnects) and snapshot.go
// (rate-limited, resumable checkpoint streaming). docs/wire.md describes the
// bytes on the wire.
package mbp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version carried in every frame header. It is the
// first byte on the wire, so a stray HTTP client ("G") or TLS hello (0x16)
// on 8474 is refused at once as an unknown version.
const Version byte = 3

// HeaderLen is the size of the fixed frame header: version, type, flags and
// a big-endian uint32 payload length.
const HeaderLen = 7

// MaxFrame is the hard limit on a frame payload. A Config may set a lower
// limit; nothing may raise it.
const MaxFrame = 16 << 20

// handshakeFrameLimit bounds frames read before authentication, so an
// unauthenticated peer cannot make us allocate more than this.
const handshakeFrameLimit = 4 << 10

// FrameType says what a frame's payload holds.
type FrameType byte

const (
	// Handshake frames (handshake.go), the only ones allowed before
	// authentication completes.
	FrameHello     FrameType = 0x01 // dialer -> listener: hello + dialer nonce
	FrameChallenge FrameType = 0x02 // listener -> dialer: hello + listener nonce + listener proof
	FrameProof     FrameType = 0x03 // dialer -> listener: dialer proof
	FrameAccept    FrameType = 0x04 // listener -> dialer: authenticated
	FrameRefuse    FrameType = 0x05 // either way: a reason, then the connection closes

	// FrameMessage carries one encoded core.Message (codec.go).
	FrameMessage FrameType = 0x10

	// Snapshot stream frames (snapshot.go), on a connection of their own.
	FrameSnapOffer  FrameType = 0x20 // sender: snapshot id and file manifest
	FrameSnapResume FrameType = 0x21 // receiver: where to start
	FrameSnapChunk  FrameType = 0x22 // sender: file index, offset, data
	FrameSnapAck    FrameType = 0x23 // receiver: a chunk is written
	FrameSnapDone   FrameType = 0x24 // receiver: every file is verified
)

var frameNames = map[FrameType]string{
	FrameHello: "hello", FrameChallenge: "challenge", FrameProof: "proof", FrameAccept: "accept",
	FrameRefuse: "refuse", FrameMessage: "message", FrameSnapOffer: "snap-offer",
	FrameSnapResume: "snap-resume", FrameSnapChunk: "snap-chunk", FrameSnapAck: "snap-ack",
	FrameSnapDone: "snap-done",
}

func (t FrameType) String() string {
	if s, ok := frameNames[t]; ok {
		return s
	}
	return fmt.Sprintf("frame(0x%02x)", byte(t))
}

// Valid reports whether t is a known frame type.
func (t FrameType) Valid() bool { _, ok := frameNames[t]; return ok }

// Flags are the frame header's flag bits.
type Flags byte

const (
	// FlagZstd: the payload is zstd-compressed (compress.go).
	FlagZstd Flags = 1 << 0

	knownFlags = FlagZstd
)

// Frame is one frame read from the wire.
type Frame struct {
	Type    FrameType
	Flags   Flags
	Payload []byte
}

// Errors a frame reader returns. Each is wrapped with the offending value.
var (
	ErrVersion  = errors.New("mbp: unknown protocol version")
	ErrType     = errors.New("mbp: unknown frame type")
	ErrFlags    = errors.New("mbp: unknown frame flags")
	ErrTooLarge = errors.New("mbp: frame payload over the limit")
)

// checkLimit clamps a limit to (0, MaxFrame].
func checkLimit(limit int) int {
	if limit <= 0 || limit > MaxFrame {
		return MaxFrame
	}
	return limit
}

// ParseHeader checks a frame header and returns its type, flags and payload
// length. Unknown versions, types and flags, and lengths over limit, are
// errors naming the value.
func ParseHeader(h [HeaderLen]byte, limit int) (FrameType, Flags, int, error) {
	limit = checkLimit(limit)
	if h[0] != Version {
		return 0, 0, 0, fmt.Errorf("%w %d (0x%02x); this node speaks version %d", ErrVersion, h[0], h[0], Version)
	}
	t := FrameType(h[1])
	if !t.Valid() {
		return 0, 0, 0, fmt.Errorf("%w 0x%02x", ErrType, h[1])
	}
	f := Flags(h[2])
	if f&^knownFlags != 0 {
		return 0, 0, 0, fmt.Errorf("%w 0x%02x on a %s frame", ErrFlags, h[2], t)
	}
	n := binary.BigEndian.Uint32(h[3:])
	if uint64(n) > uint64(limit) {
		return 0, 0, 0, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrTooLarge, t, n, limit)
	}
	return t, f, int(n), nil
}

// ReadFrame reads one frame whose payload is at most limit bytes (MaxFrame
// when limit is 0 or above it). The header is checked before the payload is
// allocated. The payload is freshly allocated: callers may keep it.
func ReadFrame(r io.Reader, limit int) (Frame, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	t, f, n, err := ParseHeader(h, limit)
	if err != nil {
		return Frame{}, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("mbp: reading %d-byte %s payload: %w", n, t, err)
	}
	return Frame{Type: t, Flags: f, Payload: p}, nil
}

// AppendHeader appends a frame header to dst.
func AppendHeader(dst []byte, t FrameType, f Flags, n int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, Version, byte(t), byte(f)), uint32(n))
}

// WriteFrame writes one frame. It refuses payloads over MaxFrame; callers
// with a lower limit check before (the peer would refuse the frame).
func WriteFrame(w io.Writer, t FrameType, f Flags, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrTooLarge, t, len(payload), MaxFrame)
	}
	var hb [HeaderLen]byte
	h := AppendHeader(hb[:0], t, f, len(payload))
	if _, err := w.Write(h); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}
