package suggest

import (
	"bytes"
	"os"
	"testing"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/policy"
)

// FuzzSuggest: from any event stream, the suggestion (plain and strict) validates, and replaying the
// stream through its compiled form allows every event it learned from.
func FuzzSuggest(f *testing.F) {
	for _, name := range []string{"../events/testdata/audit-web.jsonl", recorded} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Add([]byte(`{"pid":1,"program":"/p","op":"read","path":"/a//b/./c/../d/","action":"allow"}`+"\n"), true)
	f.Add([]byte(`{"pid":1,"program":"/p*[","op":"exec","path":"relative","action":"allow"}`+"\n"+
		`{"pid":1,"program":"/p","op":"connect","addr":"unix:@abstract","action":"deny","rule":"x"}`+"\n"), false)
	f.Add([]byte(`{"pid":1,"program":"","op":"write","path":"/a\nb","action":"allow"}`+"\n"+
		`{"pid":1,"program":"/p","op":"bind","addr":"[::ffff:10.0.0.1]:80","action":"allow"}`+"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, strict bool) {
		o := NewObserved("amd64")
		var evs []events.Event
		if _, err := events.ReadAll(bytes.NewReader(data), "fuzz", func(e *events.Event) error {
			evs = append(evs, *e)
			return o.Add(e)
		}); err != nil {
			t.Fatal(err)
		}
		s, err := Suggest(o, Options{Strict: strict})
		if err != nil {
			t.Fatal(err)
		}
		p, fs := policy.Parse("fuzz.yaml", s.YAML)
		if policy.HasErrors(fs) {
			t.Fatalf("invalid suggestion: %+v\n%s", fs, s.YAML)
		}
		bin, err := policy.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := policy.Load(bin)
		if err != nil {
			t.Fatal(err)
		}
		for k := range o.m {
			if s.skipped[k] {
				continue
			}
			if ok, d := allowedBy(c, o.request(k)); !ok {
				t.Fatalf("%v denied (rule %q) by:\n%s", k, d.RuleName, s.YAML)
			}
		}
	})
}
