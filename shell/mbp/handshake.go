package mbp

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/muninndb/muninn/core"
	"github.com/muninndb/muninn/shell/ident"
)

// NonceLen is the size of each side's fresh random challenge.
const NonceLen = 32

// MaxAddrLen bounds the addresses a hello advertises.
const MaxAddrLen = 256

// maxReasonLen bounds a refusal's reason.
const maxReasonLen = 256

// macLabel domain-separates MBP proofs from every other use of the secret.
const macLabel = "muninn-mbp-v1"

// Purpose says what an authenticated connection is for.
type Purpose byte

const (
	// PurposeControl is the one persistent connection per peer pair that
	// carries core messages.
	PurposeControl Purpose = 1
	// PurposeSnapshot is a connection of its own for one snapshot stream, so
	// chunks never delay heartbeats.
	PurposeSnapshot Purpose = 2
)

func (p Purpose) String() string {
	switch p {
	case PurposeControl:
		return "control"
	case PurposeSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("purpose(%d)", byte(p))
}

// Hello is what each side says about itself in the handshake. Kinds are
// exchanged here so bootstrap knows the voters among the seeds.
type Hello struct {
	ID      core.NodeID
	Kind    core.Kind
	APIAddr string // the REST API address (8475), for forwarding and clients
	MBPAddr string // the advertised MBP address, for snapshot connections
	Purpose Purpose
	// ClusterID is the sender's cluster id (0: none; docs/protocol.md,
	// rule 19). It travels as an optional 8-byte trailer after the nonce,
	// present only when non-zero, so a hello from a node without cluster
	// ids parses as 0, and a node with id 0 sends the hello it always did.
	ClusterID uint64
	// Version is the sender's binary version (mbp.BinaryVersion) and
	// [ProtoMin, ProtoMax] the protocol versions it speaks (version.go,
	// docs/protocol.md rule 21). They travel in the hello's extension
	// area, sent only when ProtoMax is not 0; a hello without it is from
	// a build before negotiation, which speaks protocol 1 only (Range).
	Version            string
	ProtoMin, ProtoMax uint16
}

// HandshakeConfig is one side's part of a handshake.
type HandshakeConfig struct {
	Local  Hello
	Secret []byte
	// Previous is cluster.cluster_secret_previous: during a secret rotation
	// a peer may prove either secret (docs/protocol.md, the handshake
	// rule). Nil (or equal to Secret) when no rotation is under way.
	Previous []byte
	// Rand supplies nonces; crypto/rand when nil.
	Rand io.Reader
	// AdoptCluster is called when this side has no cluster id
	// (Local.ClusterID 0) and the authenticated peer has one: nil takes it
	// (and must have persisted it), an error refuses the connection (a
	// node whose store holds data keeps the cluster that wrote it). A nil
	// AdoptCluster refuses. See checkCluster.
	AdoptCluster func(peer Hello) error
	// preNegotiation makes this side send the hello of a build before
	// negotiation (no extension, protocol 1): tests only.
	preNegotiation bool
}

// withRange fills Local's protocol range with this build's when it has
// none (version.go), unless the side plays a build before negotiation.
func (hc HandshakeConfig) withRange() HandshakeConfig {
	if hc.preNegotiation {
		hc.Local.ProtoMin, hc.Local.ProtoMax, hc.Local.Version = 0, 0, ""
	} else if hc.Local.ProtoMax == 0 {
		hc.Local.ProtoMin, hc.Local.ProtoMax = ProtocolMin, ProtocolMax
	}
	return hc
}

// Handshake errors. ErrAuth means the peer does not hold our secret (or
// refused ours); the message never contains the secret.
var (
	ErrHandshake = errors.New("mbp: handshake failed")
	ErrAuth      = errors.New("mbp: authentication failed (cluster_secret mismatch?)")
	// ErrCluster: the peer belongs to another cluster (cluster_id.go).
	ErrCluster = errors.New("mbp: the peer belongs to another cluster")
)

// DialHandshake runs the dialer's side over rw and returns the listener's
// hello once both sides have proved they hold the secret:
//
//	dialer   -> hello(dialer, nonce_d)
//	listener -> challenge(hello(listener, nonce_l), proof_l)
//	dialer   -> proof(proof_d)              (after checking proof_l)
//	listener -> accept                      (after checking proof_d)
//
// proof_x = HMAC-SHA256(secret, transcript(x)); see macInput. The caller
// bounds the exchange with a deadline.
//
// With a previous secret (a rotation under way) the listener sends one
// proof per secret it accepts, current first, and the dialer proves with
// the first of its own secrets (current first) that one of them matched.
// The connection is then authenticated with that secret on both ends:
// dialHandshake and acceptHandshake return it.
func DialHandshake(rw io.ReadWriter, hc HandshakeConfig) (Hello, error) {
	h, _, err := dialHandshake(rw, hc)
	return h, err
}

// AcceptHandshake runs the listener's side over rw (see DialHandshake) and
// returns the dialer's hello once it has proved it holds the secret. Any
// frame other than the expected handshake frame is refused.
func AcceptHandshake(rw io.ReadWriter, hc HandshakeConfig) (Hello, error) {
	h, _, err := acceptHandshake(rw, hc)
	return h, err
}

// maxProofs is how many proofs a challenge may carry: one per secret the
// listener accepts (cluster_secret and cluster_secret_previous).
const maxProofs = 2

// secrets lists the secrets this side accepts, current first.
func (hc HandshakeConfig) secrets() [][]byte {
	if len(hc.Previous) == 0 || bytes.Equal(hc.Previous, hc.Secret) {
		return [][]byte{hc.Secret}
	}
	return [][]byte{hc.Secret, hc.Previous}
}

// splitChallenge splits a challenge's payload into the listener's hello
// and its proofs (1 or 2 of sha256.Size bytes). The hello's tail (nonce,
// optional cluster id) is 32 or 40 bytes, so 1 and 2 proofs never read
// alike: a 2-proof payload cut as 1 proof leaves a tail of 64 or 72. With
// the version extension the tail ends in an area whose length it states,
// so a 2-proof payload cut as 1 proof leaves 32 bytes the length does not
// count, and is refused.
func splitChallenge(b []byte) (helloL []byte, proofs [][]byte, peer Hello, nl []byte, err error) {
	var first error
	for k := 1; k <= maxProofs; k++ {
		n := k * sha256.Size
		if len(b) < n+NonceLen {
			break
		}
		h, nonce, perr := parseHello(b[:len(b)-n])
		if perr != nil {
			if first == nil {
				first = perr
			}
			continue
		}
		for i := range k {
			off := len(b) - n + i*sha256.Size
			proofs = append(proofs, b[off:off+sha256.Size])
		}
		return b[:len(b)-n], proofs, h, nonce, nil
	}
	if first == nil {
		first = fmt.Errorf("%w: challenge of %d bytes", ErrHandshake, len(b))
	}
	return nil, nil, Hello{}, nil, first
}

func dialHandshake(rw io.ReadWriter, hc HandshakeConfig) (Hello, []byte, error) {
	hc = hc.withRange()
	nd, err := nonce(hc.Rand)
	if err != nil {
		return Hello{}, nil, err
	}
	helloD := appendHello(nil, hc.Local, nd)
	if err := WriteFrame(rw, FrameHello, 0, helloD); err != nil {
		return Hello{}, nil, fmt.Errorf("%w: sending hello: %v", ErrHandshake, err)
	}
	f, err := readHandshakeFrame(rw, FrameChallenge)
	if err != nil {
		return Hello{}, nil, badHello(err)
	}
	helloL, proofsL, peer, nl, err := splitChallenge(f.Payload)
	if err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	if peer.ID == hc.Local.ID {
		return Hello{}, nil, refuse(rw, fmt.Errorf("%w: peer has our own node id %q (dialed ourselves?)", ErrHandshake, peer.ID))
	}
	if peer.Purpose != hc.Local.Purpose {
		return Hello{}, nil, refuse(rw, fmt.Errorf("%w: peer answered a %s connection as %s", ErrHandshake, hc.Local.Purpose, peer.Purpose))
	}
	// No common protocol version: refused before any proof is checked or
	// sent (the listener does the same with the dialer's hello).
	if err := checkVersion(hc.Local, peer); err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	var used []byte
	for _, s := range hc.secrets() {
		want := proof(s, "listener", hc.Local.ID, peer.ID, nd, nl, helloD, helloL)
		for _, p := range proofsL {
			if hmac.Equal(want, p) {
				used = s
			}
		}
		if used != nil {
			break
		}
	}
	if used == nil {
		return Hello{}, nil, refuse(rw, fmt.Errorf("%w: peer %q did not prove the secret", ErrAuth, peer.ID))
	}
	// The listener's hello is authenticated: its cluster id is its own.
	if err := checkCluster(hc, peer); err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	mine := proof(used, "dialer", hc.Local.ID, peer.ID, nd, nl, helloD, helloL)
	if err := WriteFrame(rw, FrameProof, 0, mine); err != nil {
		return Hello{}, nil, fmt.Errorf("%w: sending proof: %v", ErrHandshake, err)
	}
	if _, err := readHandshakeFrame(rw, FrameAccept); err != nil {
		return Hello{}, nil, refusedCluster(hc.Local, peer, err)
	}
	return peer, used, nil
}

func acceptHandshake(rw io.ReadWriter, hc HandshakeConfig) (Hello, []byte, error) {
	hc = hc.withRange()
	f, err := readHandshakeFrame(rw, FrameHello)
	if err != nil {
		return Hello{}, nil, err
	}
	helloD := f.Payload
	peer, nd, err := parseHello(helloD)
	if err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	if peer.ID == hc.Local.ID {
		return Hello{}, nil, refuse(rw, fmt.Errorf("%w: peer has our own node id %q", ErrHandshake, peer.ID))
	}
	// No common protocol version: refused at once, so a build that cannot
	// read our challenge (one before negotiation) still learns why.
	if err := checkVersion(hc.Local, peer); err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	nl, err := nonce(hc.Rand)
	if err != nil {
		return Hello{}, nil, err
	}
	local := hc.Local
	local.Purpose = peer.Purpose
	helloL := appendHello(nil, local, nl)
	secrets := hc.secrets()
	challenge := helloL[:len(helloL):len(helloL)]
	for _, s := range secrets {
		challenge = append(challenge, proof(s, "listener", peer.ID, hc.Local.ID, nd, nl, helloD, helloL)...)
	}
	if err := WriteFrame(rw, FrameChallenge, 0, challenge); err != nil {
		return Hello{}, nil, fmt.Errorf("%w: sending challenge: %v", ErrHandshake, err)
	}
	f, err = readHandshakeFrame(rw, FrameProof)
	if err != nil {
		return Hello{}, nil, refusedCluster(hc.Local, peer, err)
	}
	var used []byte
	for _, s := range secrets {
		if hmac.Equal(proof(s, "dialer", peer.ID, hc.Local.ID, nd, nl, helloD, helloL), f.Payload) {
			used = s
			break
		}
	}
	if used == nil {
		return Hello{}, nil, refuse(rw, fmt.Errorf("%w: peer %q did not prove the secret", ErrAuth, peer.ID))
	}
	if err := checkCluster(hc, peer); err != nil {
		return Hello{}, nil, refuse(rw, err)
	}
	if err := WriteFrame(rw, FrameAccept, 0, nil); err != nil {
		return Hello{}, nil, fmt.Errorf("%w: sending accept: %v", ErrHandshake, err)
	}
	return peer, used, nil
}

// readHandshakeFrame reads one small frame and insists on type want; a
// refusal from the peer becomes an error carrying its reason.
func readHandshakeFrame(rw io.ReadWriter, want FrameType) (Frame, error) {
	f, err := ReadFrame(rw, handshakeFrameLimit)
	if err != nil {
		if errors.Is(err, ErrVersion) || errors.Is(err, ErrType) || errors.Is(err, ErrFlags) || errors.Is(err, ErrTooLarge) {
			return Frame{}, refuse(rw, fmt.Errorf("%w: %w", ErrHandshake, err))
		}
		return Frame{}, fmt.Errorf("%w: waiting for %s: %w", ErrHandshake, want, err)
	}
	if f.Type == FrameRefuse {
		reason := f.Payload
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen]
		}
		base := ErrHandshake
		switch {
		case bytes.HasPrefix(reason, []byte("auth:")):
			base = ErrAuth
		case bytes.HasPrefix(reason, []byte(clusterReasonPrefix)):
			base = ErrCluster
		case bytes.HasPrefix(reason, []byte(protocolReasonPrefix)):
			base = ErrProtocol
		}
		return Frame{}, fmt.Errorf("%w: refused by peer: %q", base, reason)
	}
	if f.Type != want || f.Flags != 0 {
		return Frame{}, refuse(rw, fmt.Errorf("%w: got a %s frame (flags 0x%02x) before authentication completed, want %s", ErrHandshake, f.Type, byte(f.Flags), want))
	}
	return f, nil
}

// refuse tells the peer why (best effort) and returns err. The reason sent
// is err's text, which never holds the secret; auth failures are prefixed
// "auth:" and cluster id refusals "cluster:" so the peer reports them as
// such.
func refuse(w io.Writer, err error) error {
	reason := err.Error()
	var (
		ce *ClusterError
		ve *VersionError
	)
	switch {
	case errors.Is(err, ErrAuth):
		reason = "auth: cluster_secret mismatch"
	case errors.As(err, &ce):
		reason = ce.wireReason()
	case errors.As(err, &ve):
		reason = ve.wireReason()
	}
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	_ = WriteFrame(w, FrameRefuse, 0, []byte(reason))
	return err
}

func nonce(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	n := make([]byte, NonceLen)
	if _, err := io.ReadFull(r, n); err != nil {
		return nil, fmt.Errorf("%w: no randomness for a nonce: %v", ErrHandshake, err)
	}
	return n, nil
}

// proof is HMAC-SHA256(secret, macInput(...)).
func proof(secret []byte, role string, dialer, listener core.NodeID, nd, nl, helloD, helloL []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(macInput(role, dialer, listener, nd, nl, helloD, helloL))
	return m.Sum(nil)
}

// macInput is what each side's proof covers:
//
//	"muninn-mbp-v1" | role | dialer id | listener id | dialer nonce |
//	listener nonce | version | dialer hello | listener hello
//
// with every variable-length field length-prefixed. The role ("dialer" or
// "listener") stops a proof being reflected back; both nonces make each
// proof single-use; the hellos bind the advertised kind and addresses.
func macInput(role string, dialer, listener core.NodeID, nd, nl, helloD, helloL []byte) []byte {
	b := make([]byte, 0, 128+len(helloD)+len(helloL))
	b = append(b, macLabel...)
	b = appendString(b, role)
	b = appendString(b, string(dialer))
	b = appendString(b, string(listener))
	b = append(b, nd...)
	b = append(b, nl...)
	b = append(b, Version)
	b = appendString(b, string(helloD))
	b = appendString(b, string(helloL))
	return b
}

// clusterIDLen is the size of the hello's optional cluster id trailer.
const clusterIDLen = 8

// appendHello encodes: purpose, id, kind, api addr, mbp addr, nonce, and
// the cluster id (8 bytes, big-endian) only when it is not 0; with a
// protocol range (ProtoMax not 0), the cluster id always (0 allowed) and
// the extension area (version.go).
func appendHello(b []byte, h Hello, nonce []byte) []byte {
	b = append(b, byte(h.Purpose))
	b = appendString(b, string(h.ID))
	b = append(b, byte(h.Kind))
	b = appendString(b, h.APIAddr)
	b = appendString(b, h.MBPAddr)
	b = append(b, nonce...)
	if h.ProtoMax != 0 {
		b = binary.BigEndian.AppendUint64(b, h.ClusterID)
		return appendExt(b, h)
	}
	if h.ClusterID != 0 {
		b = binary.BigEndian.AppendUint64(b, h.ClusterID)
	}
	return b
}

func parseHello(b []byte) (Hello, []byte, error) {
	bad := func(format string, args ...any) (Hello, []byte, error) {
		return Hello{}, nil, fmt.Errorf("%w: bad hello: %s", ErrHandshake, fmt.Sprintf(format, args...))
	}
	var h Hello
	str := func(max int) (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(max) || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	if len(b) < 1 {
		return bad("empty")
	}
	h.Purpose = Purpose(b[0])
	b = b[1:]
	if h.Purpose != PurposeControl && h.Purpose != PurposeSnapshot {
		return bad("unknown purpose %d", byte(h.Purpose))
	}
	id, ok := str(core.MaxNodeIDLen)
	if !ok || id == "" {
		return bad("node id missing or over %d bytes", core.MaxNodeIDLen)
	}
	// A node id may name a directory (snapshot-out/<id>) and a member:
	// the same rule as cluster.node_id.
	if err := ident.CheckNodeID(id); err != nil {
		return bad("node id %q: %v", id, err)
	}
	h.ID = core.NodeID(id)
	if len(b) < 1 {
		return bad("truncated")
	}
	h.Kind = core.Kind(b[0])
	b = b[1:]
	if h.Kind > core.KindObserver {
		return bad("unknown kind %d", byte(h.Kind))
	}
	if h.APIAddr, ok = str(MaxAddrLen); !ok {
		return bad("api address missing or over %d bytes", MaxAddrLen)
	}
	if h.MBPAddr, ok = str(MaxAddrLen); !ok {
		return bad("mbp address missing or over %d bytes", MaxAddrLen)
	}
	switch len(b) {
	case NonceLen:
		// No cluster id: 0 (a node without one, or from before them).
	case NonceLen + clusterIDLen:
		h.ClusterID = binary.BigEndian.Uint64(b[NonceLen:])
		if h.ClusterID == 0 {
			return bad("cluster id 0 sent (0 is sent as no cluster id)")
		}
		b = b[:NonceLen]
	default:
		if len(b) <= NonceLen+clusterIDLen {
			return bad("nonce and cluster id of %d bytes, want %d or %d", len(b), NonceLen, NonceLen+clusterIDLen)
		}
		// A build with negotiation: nonce, cluster id (0 allowed), then
		// the extension area.
		h.ClusterID = binary.BigEndian.Uint64(b[NonceLen:])
		if err := parseExt(b[NonceLen+clusterIDLen:], &h); err != nil {
			return bad("%v", err)
		}
		b = b[:NonceLen]
	}
	return h, b, nil
}
