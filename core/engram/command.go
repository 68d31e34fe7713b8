package engram

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/muninndb/muninn/core"
)

// Limits on engrams and commands. They are checked when a command is built
// (Validate), when it is decoded from the log (DecodeCommand) and again on
// apply, so a bad command can never enter the state.
const (
	MaxVaultLen = 64
	MaxConcept  = 512       // bytes
	MaxContent  = 64 << 10  // bytes
	MaxTags     = 32        // per engram
	MaxTagLen   = 64        // bytes
	MaxCommand  = 128 << 10 // an encoded command, bytes
)

// Op is a command's operation.
type Op uint8

const (
	// OpWrite creates an engram with the given id.
	OpWrite Op = iota + 1
	// OpUpdate patches concept, content, tags and/or confidence (Fields).
	OpUpdate
	// OpForget soft-deletes an engram (it stays, marked Deleted).
	OpForget
	// OpDecay multiplies the activation of every engram of a vault by Factor.
	OpDecay
	// OpAccess records a retrieval: access count +1, activation +1.
	OpAccess
	// OpDecayAll multiplies the activation of every engram of every vault
	// by Factor: one entry per decay interval, however many vaults.
	OpDecayAll
)

var opNames = [...]string{"", "write", "update", "forget", "decay", "access", "decay-all"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Fields says which fields an OpUpdate sets.
type Fields uint8

const (
	FieldConcept Fields = 1 << iota
	FieldContent
	FieldTags
	FieldConfidence
	fieldsAll = FieldConcept | FieldContent | FieldTags | FieldConfidence
)

// Command is the payload of a core.EntryData entry. Times and ids come from
// the proposer (the Cortex's shell), never from the apply, so every replica
// computes the same state.
type Command struct {
	Op    Op
	Vault string
	// ID names the engram (write, update, forget, access).
	ID string
	// At is the command's time in unix ms: CreatedAt/UpdatedAt.
	At uint64
	// Concept, Content, Tags and Confidence are the engram's fields (write)
	// or the patch (update: only those named in Set).
	Concept    string
	Content    string
	Tags       []string
	Confidence float64
	Set        Fields
	// Factor is the decay factor, in (0, 1].
	Factor float64
	// If, on a replay from the quarantine, is the base the command requires
	// (replay.go); Consumes the quarantined entry it replays.
	If       *Precondition
	Consumes core.Pos
}

// ValidateVault checks a vault name: ^[a-z0-9][a-z0-9_-]{0,63}$.
func ValidateVault(v string) error {
	if v == "" {
		return fmt.Errorf("vault: empty name: use 1-%d characters of a-z, 0-9, '_' and '-'", MaxVaultLen)
	}
	if len(v) > MaxVaultLen {
		return fmt.Errorf("vault %q: %d characters exceeds the limit of %d", clip(v), len(v), MaxVaultLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("vault %q: character %q at %d is not allowed: names match ^[a-z0-9][a-z0-9_-]{0,63}$", v, c, i)
		}
	}
	return nil
}

func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s: %d bytes exceeds the limit of %d bytes", field, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	return nil
}

func checkTags(tags []string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("tags: %d tags exceeds the limit of %d", len(tags), MaxTags)
	}
	for i, t := range tags {
		if t == "" {
			return fmt.Errorf("tags[%d]: empty tag", i)
		}
		if len(t) > MaxTagLen || !utf8.ValidString(t) {
			// The field's name is only formatted for the error.
			return checkText(fmt.Sprintf("tags[%d]", i), t, MaxTagLen)
		}
	}
	return nil
}

func checkConfidence(c float64) error {
	if !(c >= 0 && c <= 1) { // also refuses NaN
		return fmt.Errorf("confidence: %v is outside [0, 1]", c)
	}
	return nil
}

// Validate checks c against the limits; the error names the field.
func (c *Command) Validate() error {
	if c.Op < OpWrite || c.Op > OpDecayAll {
		return fmt.Errorf("op: unknown operation %d", c.Op)
	}
	if c.Op == OpDecayAll {
		if c.Vault != "" || c.ID != "" {
			return fmt.Errorf("vault: decay-all applies to every vault and takes no vault or id (got %q, %q)", clip(c.Vault), clip(c.ID))
		}
		if !(c.Factor > 0 && c.Factor <= 1) {
			return fmt.Errorf("factor: %v is outside (0, 1]", c.Factor)
		}
		return nil
	}
	if err := ValidateVault(c.Vault); err != nil {
		return err
	}
	if c.Op != OpDecay {
		if err := ValidateID(c.ID); err != nil {
			return err
		}
	} else if c.ID != "" {
		return fmt.Errorf("id: decay applies to a whole vault and takes no id (got %q)", clip(c.ID))
	}
	switch c.Op {
	case OpWrite, OpUpdate:
		set := c.Set
		if c.Op == OpWrite {
			set = fieldsAll
		} else if set == 0 || set&^fieldsAll != 0 {
			return fmt.Errorf("fields: update sets no known field (mask %#x)", uint8(c.Set))
		}
		if set&FieldConcept != 0 {
			if err := checkText("concept", c.Concept, MaxConcept); err != nil {
				return err
			}
		}
		if set&FieldContent != 0 {
			if err := checkText("content", c.Content, MaxContent); err != nil {
				return err
			}
		}
		if set&FieldTags != 0 {
			if err := checkTags(c.Tags); err != nil {
				return err
			}
		}
		if set&FieldConfidence != 0 {
			if err := checkConfidence(c.Confidence); err != nil {
				return err
			}
		}
	case OpDecay:
		if !(c.Factor > 0 && c.Factor <= 1) {
			return fmt.Errorf("factor: %v is outside (0, 1]", c.Factor)
		}
	}
	return nil
}

const (
	commandVersion = 1
	replayVersion  = 2 // a command with a replay trailer (replay.go)
)

// EncodeCommand validates c and encodes it in a compact binary form:
//
//	version op vault id at(uvarint) then per op:
//	write:  concept content ntags tags... confidence(f64)
//	update: fields(byte) then the fields it names, in that order
//	decay:  factor(f64)
//
// Strings are uvarint length + bytes; floats are big-endian IEEE bits.
func EncodeCommand(c Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("engram command: %w", err)
	}
	n := 48 + len(c.Vault) + len(c.ID) + len(c.Concept) + len(c.Content)
	for _, t := range c.Tags {
		n += 1 + len(t)
	}
	b := make([]byte, 0, n)
	version := byte(commandVersion)
	if c.If != nil {
		version = replayVersion
	}
	b = append(b, version, byte(c.Op))
	b = encodeBody(b, c)
	if c.If != nil {
		b = appendReplay(b, c.If, c.Consumes)
	}
	return b, nil
}

func encodeBody(b []byte, c Command) []byte {
	b = appendString(b, c.Vault)
	b = appendString(b, c.ID)
	b = binary.AppendUvarint(b, c.At)
	set := c.Set
	switch c.Op {
	case OpWrite:
		set = fieldsAll
	case OpUpdate:
		b = append(b, byte(set))
	case OpDecay, OpDecayAll:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(c.Factor))
	default:
		return b
	}
	if set&FieldConcept != 0 {
		b = appendString(b, c.Concept)
	}
	if set&FieldContent != 0 {
		b = appendString(b, c.Content)
	}
	if set&FieldTags != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Tags)))
		for _, t := range c.Tags {
			b = appendString(b, t)
		}
	}
	if set&FieldConfidence != 0 {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.Confidence))
	}
	return b
}

// DecodeCommand decodes and validates EncodeCommand's output. Errors name
// the field; oversized fields are refused before they are copied.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxCommand {
		return c, fmt.Errorf("engram command: %d bytes exceeds the limit of %d bytes", len(b), MaxCommand)
	}
	d := decoder{b: b, what: "engram command"}
	version := d.byte("version")
	if d.err == nil && version != commandVersion && version != replayVersion {
		return c, fmt.Errorf("engram command: version: unknown version %d", version)
	}
	c.Op = Op(d.byte("op"))
	if d.err == nil && (c.Op < OpWrite || c.Op > OpDecayAll) {
		return c, fmt.Errorf("engram command: op: unknown operation %d", c.Op)
	}
	c.Vault = d.string("vault", MaxVaultLen)
	c.ID = d.string("id", IDLen)
	c.At = d.uvarint("at", math.MaxUint64)
	set := Fields(0)
	switch c.Op {
	case OpWrite:
		set = fieldsAll
	case OpUpdate:
		set = Fields(d.byte("fields"))
		c.Set = set
	case OpDecay, OpDecayAll:
		c.Factor = d.float("factor")
	}
	if set&FieldConcept != 0 {
		c.Concept = d.string("concept", MaxConcept)
	}
	if set&FieldContent != 0 {
		c.Content = d.string("content", MaxContent)
	}
	if set&FieldTags != 0 {
		n := d.uvarint("tags", MaxTags)
		if n > 0 {
			c.Tags = make([]string, 0, n)
		}
		for i := 0; i < int(n) && d.err == nil; i++ {
			c.Tags = append(c.Tags, d.stringAt("tags", i, MaxTagLen))
		}
	}
	if set&FieldConfidence != 0 {
		c.Confidence = d.float("confidence")
	}
	if version == replayVersion {
		c.If, c.Consumes = d.replay()
	}
	if err := d.finish(); err != nil {
		return Command{}, err
	}
	if err := c.Validate(); err != nil {
		return Command{}, fmt.Errorf("engram command: %w", err)
	}
	return c, nil
}
