package engram

import "fmt"

// IDLen is the length of an engram id.
const IDLen = 26

// crockford is Crockford's base32 alphabet, as ULID uses it: ids sort in
// byte order the same way as their (time, random) value.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var crockfordIndex = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] = int8(i)
	}
	return t
}()

// NewID returns a ULID-style id: 48 bits of unix milliseconds then 80 random
// bits, in 26 Crockford base32 characters. The core has no clock and no
// randomness: the caller passes both. Ids from later milliseconds sort after
// earlier ones. ms above 2^48-1 is masked to 48 bits.
func NewID(ms uint64, rnd [10]byte) string {
	var b [16]byte
	ms &= 1<<48 - 1
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	copy(b[6:], rnd[:])
	// 128 bits in 26 characters of 5 bits: the first carries 3 bits.
	var out [IDLen]byte
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := IDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// IDTime returns the milliseconds encoded in a valid id.
func IDTime(id string) uint64 {
	var ms uint64
	for i := 0; i < 10; i++ {
		ms = ms<<5 | uint64(crockfordIndex[id[i]])
	}
	return ms
}

// ValidateID checks that id is a canonical engram id: 26 upper-case Crockford
// base32 characters, the first at most '7' (a 128-bit value).
func ValidateID(id string) error {
	if len(id) != IDLen {
		return fmt.Errorf("id %q: must be %d characters, got %d", clip(id), IDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		if crockfordIndex[id[i]] < 0 {
			return fmt.Errorf("id %q: character %q at %d is not upper-case Crockford base32 (0-9, A-Z without I, L, O, U)", id, id[i], i)
		}
	}
	if id[0] > '7' {
		return fmt.Errorf("id %q: first character must be 0-7 (the id overflows 128 bits)", id)
	}
	return nil
}

// clip shortens s for error messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
