package cluster

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

// TestJudgeProtocols: rule 21 on the answers of a mixed cluster.
func TestJudgeProtocols(t *testing.T) {
	prev := apitypes.Member{ID: "muninn-01", Version: "muninn previous-a8e636480c51", Protocol: "2"}
	cur := func(id string) apitypes.Member {
		return apitypes.Member{ID: id, Version: "muninn dev", Protocol: "2..3"}
	}
	members := []apitypes.Member{prev, cur("muninn-02"), cur("muninn-03")}
	info := func(m apitypes.Member, active uint16, features ...string) apitypes.Info {
		return apitypes.Info{NodeID: m.ID, Version: m.Version, Protocol: m.Protocol, ActiveProtocol: active, Features: features, Members: members}
	}
	view := func(i apitypes.Info) protocolView { return protocolView{node: Node{ID: i.NodeID}, info: i} }
	voters := []string{"muninn-01", "muninn-02", "muninn-03"}
	good := []protocolView{view(info(prev, 2)), view(info(cur("muninn-02"), 2)), view(info(cur("muninn-03"), 2))}
	if p, v := judgeProtocols(good, voters); len(p) != 0 || v {
		t.Errorf("a mixed cluster at 2: %v %v", p, v)
	}

	at3 := slices.Clone(good)
	at3[2] = view(info(cur("muninn-03"), 3, "health_versions"))
	if p, v := judgeProtocols(at3, voters); !v || len(p) != 2 || !strings.Contains(p[0], "must be 2") {
		t.Errorf("protocol 3 with a voter on 2: %v %v; want a violation", p, v)
	}

	shown := slices.Clone(good)
	shown[1].health.ActiveProtocol = 2
	if p, v := judgeProtocols(shown, voters); !v || len(p) != 1 {
		t.Errorf("health versions at 2: %v %v", p, v)
	}

	// A member's version not learned yet: a problem, no violation (the
	// check asks again).
	stale := slices.Clone(good)
	i := info(cur("muninn-02"), 2)
	i.Members = []apitypes.Member{{ID: "muninn-01"}, cur("muninn-02"), cur("muninn-03")}
	stale[1] = view(i)
	if p, v := judgeProtocols(stale, voters); v || len(p) != 1 || !strings.Contains(p[0], "muninn-02 lists muninn-01") {
		t.Errorf("an unknown version: %v %v", p, v)
	}

	// Once muninn-01 no longer votes (a membership nemesis removed it),
	// the rest run at 3 with the feature on; 2 is then a problem.
	two := []protocolView{view(info(cur("muninn-02"), 3, "health_versions")), view(info(cur("muninn-03"), 3, "health_versions"))}
	if p, v := judgeProtocols(two, voters[1:]); len(p) != 0 || v {
		t.Errorf("this build alone at 3: %v %v", p, v)
	}
	two[0] = view(info(cur("muninn-02"), 2))
	if p, v := judgeProtocols(two, voters[1:]); v || len(p) != 2 {
		t.Errorf("this build alone, one at 2: %v %v", p, v)
	}

	down := slices.Clone(good)
	down[0].err = os.ErrDeadlineExceeded
	if p, v := judgeProtocols(down, voters); v || len(p) != 1 {
		t.Errorf("a node not answering: %v %v", p, v)
	}
}

// TestRefusals: the version refusal lines of both releases are found,
// an ordinary refused dial is not.
func TestRefusals(t *testing.T) {
	log := `{"level":"WARN","msg":"mbp connection refused","err":"dial 10.77.0.12:8474 (attempt 1, retrying in 51ms): dial tcp 10.77.0.12:8474: connect: connection refused"}
{"level":"WARN","msg":"mbp connection refused: no common protocol version (a node too old or too new for this cluster)","peer":"muninn-04"}
{"level":"WARN","msg":"mbp connection refused","err":"handshake failed: the peer cannot read this node's hello: it probably runs a build before protocol negotiation"}
`
	if got := refusals(log); len(got) != 2 || !strings.Contains(got[0], "muninn-04") {
		t.Errorf("%q", got)
	}
	for _, r := range []struct {
		s      string
		lo, hi int
		ok     bool
	}{{"2", 2, 2, true}, {"2..3", 2, 3, true}, {"3..2", 0, 0, false}, {"", 0, 0, false}, {"x..3", 0, 0, false}} {
		lo, hi, ok := protoRange(r.s)
		if ok != r.ok || ok && (lo != r.lo || hi != r.hi) {
			t.Errorf("protoRange(%q) = %d %d %v", r.s, lo, hi, ok)
		}
	}
	if w, ok := wantProtocol([]string{"2..3", "2", "2..3"}); !ok || w != 2 {
		t.Errorf("want %d %v", w, ok)
	}
}
