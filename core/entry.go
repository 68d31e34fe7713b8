package core

// EntryType says what an entry carries.
type EntryType uint8

const (
	// EntryData carries an opaque state-machine command (an engram write).
	EntryData EntryType = iota
	// EntryEpochStart is the first entry of every Cortex's epoch (rule 6).
	EntryEpochStart
	// EntryMembership carries the whole new member list (rule 15).
	EntryMembership
)

func (t EntryType) String() string {
	switch t {
	case EntryData:
		return "data"
	case EntryEpochStart:
		return "epoch-start"
	case EntryMembership:
		return "membership"
	}
	return "entry(?)"
}

// Entry is one log entry.
type Entry struct {
	Pos        Pos
	Type       EntryType
	Durability Durability
	// Payload is the state-machine command for EntryData, the encoded member
	// list (EncodeMembers) for EntryMembership, and empty otherwise.
	Payload []byte
}

// Size is an estimate of the entry's encoded size, for batching limits.
func (e Entry) Size() int { return 24 + len(e.Payload) }
