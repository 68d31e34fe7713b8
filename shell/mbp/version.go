package mbp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/muninndb/muninn/core"
)

// Protocol versions (docs/protocol.md, rule 21; docs/wire.md, "Hello
// extensions").
// A protocol version names what two nodes may say to each other once
// connected; the frame header's Version byte (3) is the framing only and
// does not change with it.
//
//   - 1: the wire as it was before negotiation (frame version 3, cluster
//     ids and secret rotation, rules 19 and 20). A hello without a
//     version extension is from such a build: it speaks 1 only.
//   - 2: 1 plus the hello's version extension (this node's binary version
//     and protocol range) and negotiation: a peer with no common version
//     is refused.
//   - 3: 2 plus member versions in GET /v1/cluster/health, on once the
//     cluster's active protocol is 3 (shell/node/version.go, Features).
const (
	// ProtocolPreNegotiation is what a hello without a range speaks.
	ProtocolPreNegotiation uint16 = 1
	// ProtocolMin and ProtocolMax are the range this build speaks.
	ProtocolMin uint16 = 2
	ProtocolMax uint16 = 3
)

// MaxBinaryVersionLen bounds the binary version a hello carries.
const MaxBinaryVersionLen = 128

// The hello's extension area (wire.md, "Hello extensions"): after the
// nonce and the 8-byte cluster id (always present when the extension is,
// 0 allowed there), a magic byte, a big-endian uint16 length, then that
// many bytes of TLVs (type u8, length u8, value). Unknown types are
// skipped, so a later build can add fields an older one ignores.
const (
	extMagic   = 0xE7
	maxExtLen  = 1024
	tlvRange   = 1 // min u16 BE | max u16 BE
	tlvVersion = 2 // the binary version, UTF-8, at most MaxBinaryVersionLen
)

// ErrProtocol: the two nodes have no protocol version in common.
var ErrProtocol = errors.New("mbp: no common protocol version")

// protocolReasonPrefix marks a refusal for the protocol version.
const protocolReasonPrefix = "protocol:"

// Range returns the protocol versions h's sender speaks: [1, 1] for a
// hello without a range (a build before negotiation).
func (h Hello) Range() (lo, hi uint16) {
	if h.ProtoMax == 0 {
		return ProtocolPreNegotiation, ProtocolPreNegotiation
	}
	return h.ProtoMin, h.ProtoMax
}

// Negotiated reports whether h carried a version extension.
func (h Hello) Negotiated() bool { return h.ProtoMax != 0 }

// fmtRange shows a range as "2" or "2..3".
func fmtRange(lo, hi uint16) string {
	if lo == hi {
		return fmt.Sprintf("%d", lo)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

// describeVersion is a hello's binary version as shown in errors.
func describeVersion(h Hello) string {
	switch {
	case !h.Negotiated():
		return "a build before protocol negotiation"
	case h.Version == "":
		return "version unknown"
	}
	return h.Version
}

// describe names a hello's sender with its binary version and range.
func describe(h Hello) string {
	lo, hi := h.Range()
	return fmt.Sprintf("%s (%s, protocol %s)", h.ID, describeVersion(h), fmtRange(lo, hi))
}

// VersionError is a connection refused because the two ranges do not
// overlap. errors.Is(err, ErrProtocol) holds for it.
type VersionError struct {
	Local, Peer Hello
}

func (e *VersionError) Is(target error) bool { return target == ErrProtocol }

// Fix says what the operator does: upgrade the older side, or roll the
// newer one back.
func (e *VersionError) Fix() string {
	old, young, lo, hi := e.sides()
	return fmt.Sprintf("upgrade %s to a release that speaks protocol %s before joining it to this cluster, or roll %s back to a release that speaks protocol %s",
		describe(old), fmtRange(lo, hi), young.ID, fmtRange(old.Range()))
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("mbp: refused peer %s: this node is %s; no common protocol version: %s", describe(e.Peer), describe(e.Local), e.Fix())
}

// wireReason is the refusal sent to the peer: both sides described and a
// short fix, so it fits the 256 bytes a refusal carries with node ids and
// versions of a usual length (TestVersionWireReasonFits); with node ids
// near their 64-byte limit the end is cut.
func (e *VersionError) wireReason() string {
	old, young, lo, hi := e.sides()
	return fmt.Sprintf("%s %s refuses %s: upgrade %s to a release that speaks protocol %s, or roll %s back",
		protocolReasonPrefix, describe(e.Local), describe(e.Peer), old.ID, fmtRange(lo, hi), young.ID)
}

// sides returns the older and the younger side and the younger's range.
func (e *VersionError) sides() (old, young Hello, lo, hi uint16) {
	llo, lhi := e.Local.Range()
	plo, phi := e.Peer.Range()
	if plo > lhi {
		return e.Local, e.Peer, plo, phi
	}
	return e.Peer, e.Local, llo, lhi
}

// checkVersion refuses a peer whose protocol range does not overlap ours.
func checkVersion(local, peer Hello) error {
	llo, lhi := local.Range()
	plo, phi := peer.Range()
	if max(llo, plo) <= min(lhi, phi) {
		return nil
	}
	return &VersionError{Local: local, Peer: peer}
}

// FixBadHello is added to a "bad hello" refusal from a peer: the usual
// cause is a build that cannot read this node's hello.
const FixBadHello = "the peer cannot read this node's hello: it probably runs a build before protocol negotiation (protocol 1); upgrade it to a release that speaks this node's protocol range"

// appendExt encodes h's version extension (h.ProtoMax != 0).
func appendExt(b []byte, h Hello) []byte {
	v := h.Version
	if len(v) > MaxBinaryVersionLen {
		v = v[:MaxBinaryVersionLen]
	}
	var tlv []byte
	tlv = append(tlv, tlvRange, 4)
	tlv = binary.BigEndian.AppendUint16(tlv, h.ProtoMin)
	tlv = binary.BigEndian.AppendUint16(tlv, h.ProtoMax)
	if v != "" {
		tlv = append(tlv, tlvVersion, byte(len(v)))
		tlv = append(tlv, v...)
	}
	b = append(b, extMagic)
	b = binary.BigEndian.AppendUint16(b, uint16(len(tlv)))
	return append(b, tlv...)
}

// parseExt decodes an extension area into h; it must be exactly b.
func parseExt(b []byte, h *Hello) error {
	if len(b) < 3 || b[0] != extMagic {
		return fmt.Errorf("extension does not start with 0x%02x and a length", extMagic)
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	b = b[3:]
	if n > maxExtLen || n != len(b) {
		return fmt.Errorf("extension of %d bytes says %d (at most %d)", len(b), n, maxExtLen)
	}
	seen := map[byte]bool{}
	for len(b) > 0 {
		if len(b) < 2 || int(b[1]) > len(b)-2 {
			return fmt.Errorf("truncated extension field")
		}
		typ, val := b[0], b[2:2+int(b[1])]
		b = b[2+int(b[1]):]
		if seen[typ] {
			return fmt.Errorf("extension field %d twice", typ)
		}
		seen[typ] = true
		switch typ {
		case tlvRange:
			if len(val) != 4 {
				return fmt.Errorf("protocol range of %d bytes, want 4", len(val))
			}
			h.ProtoMin, h.ProtoMax = binary.BigEndian.Uint16(val), binary.BigEndian.Uint16(val[2:])
			if h.ProtoMin == 0 || h.ProtoMin > h.ProtoMax {
				return fmt.Errorf("protocol range %d..%d", h.ProtoMin, h.ProtoMax)
			}
		case tlvVersion:
			if len(val) > MaxBinaryVersionLen {
				return fmt.Errorf("binary version over %d bytes", MaxBinaryVersionLen)
			}
			h.Version = strings.ToValidUTF8(string(val), "?")
		default:
			// A field of a later build: skipped.
		}
	}
	if !seen[tlvRange] {
		return fmt.Errorf("extension without a protocol range")
	}
	return nil
}

// BinaryVersion is this build's version as muninn version prints it
// without the Go and platform parts: "muninn <version> (<commit>)", the
// version from -ldflags "-X main.version=..." ("dev" without), the commit
// from the VCS stamp (with -dirty for a modified tree).
func BinaryVersion() string {
	version, commit := "dev", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if len(s.Value) >= 12 {
					commit = s.Value[:12]
				}
			case "-ldflags":
				for _, f := range strings.Fields(s.Value) {
					if v, ok := strings.CutPrefix(f, "main.version="); ok && v != "" {
						version = v
					}
				}
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.modified" && s.Value == "true" && commit != "" {
				commit += "-dirty"
			}
		}
	}
	v := "muninn " + version
	if commit != "" {
		v += " (" + commit + ")"
	}
	return v
}

// badHello adds FixBadHello to a peer's "bad hello" refusal.
func badHello(err error) error {
	if err != nil && errors.Is(err, ErrHandshake) && strings.Contains(err.Error(), "bad hello") {
		return fmt.Errorf("%w (%s)", err, FixBadHello)
	}
	return err
}

// logProtocol logs a connection refused for its protocol versions, naming
// both binary versions and ranges (or the peer's refusal, which does), at
// most once a minute per peer (a refused node redials every few seconds).
func (t *Transport) logProtocol(remote string, err error) {
	key := core.NodeID(remote)
	var ve *VersionError
	if errors.As(err, &ve) {
		key = ve.Peer.ID
	}
	ok, quiet := t.clusterLog.allow(key, time.Now())
	if !ok {
		return
	}
	attrs := []any{"remote", remote, "version", t.cfg.BinaryVersion, "protocol", fmtRange(t.cfg.ProtoMin, t.cfg.ProtoMax)}
	if ve != nil {
		lo, hi := ve.Peer.Range()
		attrs = append(attrs, "peer", string(ve.Peer.ID), "peer_version", describeVersion(ve.Peer), "peer_protocol", fmtRange(lo, hi))
	}
	attrs = append(attrs, "not_logged_since", quiet, "err", err)
	t.log.Warn("mbp connection refused: no common protocol version (a node too old or too new for this cluster)", attrs...)
}
