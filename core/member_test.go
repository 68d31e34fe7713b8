package core

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestMembersRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var ms Members
		for range rapid.IntRange(0, 8).Draw(t, "n") {
			m := Member{
				ID:      NodeID(rapid.StringN(1, 20, MaxNodeIDLen).Draw(t, "id")),
				Kind:    Kind(rapid.IntRange(0, int(KindObserver)).Draw(t, "kind")),
				Learner: rapid.Bool().Draw(t, "learner"),
				Store:   rapid.Uint64().Draw(t, "store"),
				Addr:    rapid.StringN(0, 30, MaxAddrLen).Draw(t, "addr"),
			}
			ms = append(ms, m)
		}
		got, err := DecodeMembers(EncodeMembers(ms))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, ms) && !(len(got) == 0 && len(ms) == 0) {
			t.Fatalf("round trip: got %+v, want %+v", got, ms)
		}
	})
}

// A membership written before store identities and addresses (flags hold
// only the learner bit and the kind) still decodes.
func TestMembersOldFormat(t *testing.T) {
	old := []byte{2, 2, 'n', '1', 0, 2, 's', '1', byte(KindSentinel) << 1}
	got, err := DecodeMembers(old)
	if err != nil {
		t.Fatal(err)
	}
	want := Members{{ID: "n1"}, {ID: "s1", Kind: KindSentinel}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range [][]byte{
		{1, 2, 'n', '1', 1 << 7},                  // unknown flag
		{1, 2, 'n', '1', memberHasStore, 1, 2, 3}, // short store
		{1, 2, 'n', '1', memberHasAddr, 0},        // empty address
		{1, 2, 'n', '1', memberHasAddr, 5, 'a'},   // short address
	} {
		if _, err := DecodeMembers(bad); err == nil {
			t.Errorf("DecodeMembers(%v) accepted", bad)
		}
	}
}
