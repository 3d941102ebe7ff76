package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestJUnit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		r        *Report
		tests    int
		failures int
		cases    map[string]string // test case name -> "" (passes) or a substring of its failure message
		out      map[string]string // test case name -> substring of system-out
	}{
		{
			name: "check: one case per finding, a passing case for a clean platform",
			r: &Report{Command: "check", Image: "reg/app:1", Verdict: Incompatible, Platforms: []Platform{
				{Platform: "linux/amd64", Verdict: Compatible, Findings: []Finding{}},
				{Platform: "linux/arm64", Verdict: Incompatible, Findings: []Finding{
					{Code: "C010", Severity: Error, Message: "libc.so.6 lacks GLIBC_2.17 <&>", Path: "/lib/libc.so.6"},
					{Code: "C030", Severity: Warning, Message: "entrypoint is a Go binary", Path: "/app"},
				}},
			}},
			tests: 3, failures: 1,
			cases: map[string]string{
				"linux/amd64: compatible":              "",
				"C010: libc.so.6 lacks GLIBC_2.17 <&>": "libc.so.6 lacks GLIBC_2.17 <&>",
				"C030: entrypoint is a Go binary":      "",
			},
			out: map[string]string{"C030: entrypoint is a Go binary": "warning: /app: C030"},
		},
		{
			name: "policy: one case per file, failing with every finding",
			r: &Report{Command: "policy validate", Verdict: Invalid, Policies: []PolicyFile{
				{File: "policies/good.yaml", Verdict: Valid, Findings: []Finding{}},
				{File: "policies/bad.yaml", Verdict: Invalid, Findings: []Finding{
					{Code: "E101", Severity: Error, Message: "unknown key \"acton\"", Line: 9, Column: 5, Hint: "did you mean \"action\"?"},
					{Code: "E210", Severity: Error, Message: "invalid CIDR", File: "policies/bad.yaml", Line: 14, Column: 19},
					{Code: "W001", Severity: Warning, Message: "shadowed rule", Line: 20, Column: 3},
				}},
				{File: "policies/warn.yaml", Verdict: Valid, Findings: []Finding{{Code: "W001", Severity: Warning, Message: "shadowed", Line: 3, Column: 1}}},
			}},
			tests: 3, failures: 1,
			cases: map[string]string{
				"policies/good.yaml: valid":  "",
				"policies/bad.yaml: invalid": "2 error(s); first: unknown key \"acton\"",
				"policies/warn.yaml: valid":  "",
			},
			out: map[string]string{"policies/warn.yaml: valid": "warning policies/warn.yaml:3:1: W001: shadowed"},
		},
		{
			name: "instrument: the layered image is recorded",
			r: &Report{Command: "instrument", Image: "reg/app:1", Verdict: Compatible,
				Platforms: []Platform{{Platform: "linux/amd64", Verdict: Compatible}},
				Layered:   &Layered{Ref: "reg/app:1-layered", Digest: "sha256:bb", Pushed: false}},
			tests: 2, failures: 0,
			cases: map[string]string{"linux/amd64: compatible": "", "layered image reg/app:1-layered": ""},
			out:   map[string]string{"layered image reg/app:1-layered": "digest: sha256:bb\npushed: false"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, "junit", tc.r); err != nil {
				t.Fatal(err)
			}
			var doc junitSuites
			if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("output is not XML: %v\n%s", err, buf.String())
			}
			if doc.Tests != tc.tests || doc.Failures != tc.failures {
				t.Errorf("tests=%d failures=%d, want %d and %d\n%s", doc.Tests, doc.Failures, tc.tests, tc.failures, buf.String())
			}
			got := map[string]junitCase{}
			for _, s := range doc.Suites {
				n := 0
				for _, c := range s.Cases {
					got[c.Name] = c
					if c.Failure != nil {
						n++
					}
				}
				if s.Tests != len(s.Cases) || s.Failures != n {
					t.Errorf("suite %q counts tests=%d failures=%d, cases say %d and %d", s.Name, s.Tests, s.Failures, len(s.Cases), n)
				}
			}
			for name, fail := range tc.cases {
				c, ok := got[name]
				switch {
				case !ok:
					t.Errorf("no test case %q; have %v", name, junitCaseNames(got))
				case fail == "" && c.Failure != nil:
					t.Errorf("case %q fails: %+v", name, c.Failure)
				case fail != "" && (c.Failure == nil || !strings.Contains(c.Failure.Message, fail)):
					t.Errorf("case %q failure %+v, want message containing %q", name, c.Failure, fail)
				}
			}
			for name, out := range tc.out {
				if !strings.Contains(got[name].SystemOut, out) {
					t.Errorf("case %q system-out %q lacks %q", name, got[name].SystemOut, out)
				}
			}
		})
	}
}

func TestJUnitPolicyFailureListsEveryFinding(t *testing.T) {
	r := &Report{Command: "policy validate", Verdict: Invalid, Policies: []PolicyFile{{File: "p.yaml", Verdict: Invalid, Findings: []Finding{
		{Code: "E1", Severity: Error, Message: "first", Line: 2, Column: 3},
		{Code: "E2", Severity: Error, Message: "second", Line: 7, Column: 1},
	}}}}
	var buf bytes.Buffer
	if err := Render(&buf, "junit", r); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Suites[0].Cases[0]
	if c.File != "p.yaml" || c.Line != 2 {
		t.Errorf("case file/line = %q/%d, want p.yaml/2 (the first error)", c.File, c.Line)
	}
	for _, w := range []string{"p.yaml:2:3: E1: first", "p.yaml:7:1: E2: second"} {
		if !strings.Contains(c.Failure.Text, w) {
			t.Errorf("failure text lacks %q:\n%s", w, c.Failure.Text)
		}
	}
}

func junitCaseNames(m map[string]junitCase) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
