package api

import (
	"reflect"
	"testing"

	"github.com/muninndb/muninn/shell/apitypes"
)

// FuzzFastDecode holds the reflection-free decoding of write bodies to
// encoding/json: whatever it decodes, encoding/json decodes the same.
//
//	go test ./shell/api -run '^$' -fuzz '^FuzzFastDecode$' -fuzztime 1m
func FuzzFastDecode(f *testing.F) {
	for _, s := range []string{
		`{"concept":"paris","content":"Paris is the capital of France","tags":["geo","eu"],"confidence":0.9}`,
		`{"vault":"notes","id":"01M930CKCH3FZBE51DP5DKWWCD","content":"x","tags":[],"confidence":1}`,
		` { "Content" : "x" , "TAGS":[ "a" ,"b" ] , "cOnFiDeNcE": -0.5e-3 } `,
		`{"content":"caf\u00e9"}`, `{"content":"a\nb"}`, `{"content":null}`, `{"tags":null}`, `{"tags":[null]}`,
		`{"content":"x","colour":"red"}`, `{"content":"x"} {}`, `{"content":"x"}]`, `{"content":1}`, `{"confidence":"1"}`,
		`{"confidence":1e400}`, `{"confidence":01}`, `{"confidence":.5}`, `{"confidence":1.}`, `{"confidence":-}`, `{"tags":["a",]}`,
		`{}`, `[]`, `{"content":"x",}`, `{"ſ":1}`, `{"content":"é"}`,
		`{"vault":"v","engrams":[{"content":"a"},{"content":"b","tags":["t"],"id":"01M930CKCH3FZBE51DP5DKWWCD"}]}`,
		`{"engrams":[]}`, `{"engrams":null}`, `{"engrams":[1]}`, `{"Engrams":[{"Content":"a"}] ,"VAULT":"x"}`, `{"engrams":[{"content":"a"}]} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkBody(b) != nil {
			return
		}
		var fw, sw apitypes.WriteRequest
		if fastWriteRequest(b, &fw) {
			if err := decodeStd(b, &sw); err != nil || !reflect.DeepEqual(fw, sw) {
				t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", b, fw, sw, err)
			}
		}
		var fb, sb apitypes.BatchWriteRequest
		if fastBatchRequest(b, &fb) {
			if err := decodeStd(b, &sb); err != nil || !reflect.DeepEqual(fb, sb) {
				t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", b, fb, sb, err)
			}
		}
	})
}

// TestFastDecodeTakesPlainBodies: the bodies clients send are decoded
// without encoding/json.
func TestFastDecodeTakesPlainBodies(t *testing.T) {
	var w apitypes.WriteRequest
	if !fastWriteRequest([]byte(`{"concept":"paris","content":"Paris","tags":["geo"],"confidence":0.9,"id":"01M930CKCH3FZBE51DP5DKWWCD","vault":"v"}`), &w) ||
		w.Content != "Paris" || *w.Confidence != 0.9 || len(w.Tags) != 1 || w.Vault != "v" {
		t.Fatalf("%+v", w)
	}
	var b apitypes.BatchWriteRequest
	if !fastBatchRequest([]byte(`{"vault":"v","engrams":[{"content":"a"},{"content":"b"}]}`), &b) || len(b.Engrams) != 2 || b.Engrams[1].Content != "b" {
		t.Fatalf("%+v", b)
	}
}
