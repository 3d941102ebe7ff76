package ci_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompositeValidate runs the whole composite action (install from source, then run) the way a
// runner does, on a good and a broken policy, and asserts the action's outputs, the job summary and
// the annotations the real crs-ci wrote.
func TestCompositeValidate(t *testing.T) {
	good, _ := filepath.Abs("testdata/good-policy.yaml")
	for _, tc := range []struct {
		name      string
		inputs    map[string]string
		code      int
		outputs   map[string]string
		log       []string // substrings of the job log (annotations among them)
		notLog    []string
		summary   []string // nil: the summary must be empty
		reportFmt []string // report-<fmt> outputs that must name an existing file
	}{
		{
			name:   "good policy passes",
			inputs: map[string]string{"command": "validate", "policy": good, "reports": "json=out/report.json\njunit=out/junit.xml"},
			outputs: map[string]string{"result": "passed", "verdict": "valid", "exit-code": "0", "errors": "0",
				"layered-ref": ""},
			notLog:    []string{"::error"},
			summary:   []string{"valid"},
			reportFmt: []string{"json", "junit"},
		},
		{
			name:    "broken policy is rejected with annotations on its lines",
			inputs:  map[string]string{"command": "validate", "policy": "policies/broken-policy.yaml", "reports": "junit=junit.xml"},
			code:    1,
			outputs: map[string]string{"result": "rejected", "verdict": "invalid", "exit-code": "1", "errors": "1"},
			log: []string{
				"::error col=7,file=policies/broken-policy.yaml,line=9,title=crs-ci unknown-key::unknown key",
				"crs-ci: rejected (exit 1)",
			},
			notLog:    []string{"tool error"},
			summary:   []string{"invalid"},
			reportFmt: []string{"junit"},
		},
		{
			name:    "summary off",
			inputs:  map[string]string{"command": "validate", "policy": good, "summary": "false"},
			outputs: map[string]string{"result": "passed"},
		},
		{
			name:    "fail-on warning turns warnings into a rejection",
			inputs:  map[string]string{"command": "validate", "policy": "policies/warn-policy.yaml", "fail-on": "warning"},
			code:    1,
			outputs: map[string]string{"result": "rejected", "verdict": "valid"},
			log:     []string{"::warning "},
			summary: []string{},
		},
		{
			name:   "a missing policy file is a tool error, not a verdict",
			inputs: map[string]string{"command": "validate", "policy": "policies/missing.yaml"},
			code:   -1, // 2 or 3
			log:    []string{"policies/missing.yaml does not exist", "crs-ci: tool error (exit", "not a policy verdict"},
			notLog: []string{"rejected"},
		},
		{
			name:   "the shim refuses a command it does not know",
			inputs: map[string]string{"command": "deploy"},
			code:   2,
			log:    []string{"::error title=crs-ci action (usage)::command: want instrument, check or validate"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t, repoRoot(t))
			pol := filepath.Join(r.workspace, "policies")
			if err := os.MkdirAll(filepath.Join(r.workspace, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(pol, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"broken-policy.yaml", "warn-policy.yaml"} {
				b, err := os.ReadFile(filepath.Join("testdata", f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(pol, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res := r.run(viaRelease(t, r, tc.inputs))
			if tc.code == -1 {
				if res.code != 2 && res.code != 3 {
					t.Fatalf("exit %d, want 2 or 3; log:\n%s", res.code, res.log)
				}
			} else if res.code != tc.code {
				t.Fatalf("exit %d, want %d; log:\n%s", res.code, tc.code, res.log)
			}
			for k, v := range tc.outputs {
				if res.outputs[k] != v {
					t.Errorf("output %s = %q, want %q; log:\n%s", k, res.outputs[k], v, res.log)
				}
			}
			for _, s := range tc.log {
				if !strings.Contains(res.log, s) {
					t.Errorf("log lacks %q:\n%s", s, res.log)
				}
			}
			for _, s := range tc.notLog {
				if strings.Contains(res.log, s) {
					t.Errorf("log has %q:\n%s", s, res.log)
				}
			}
			if tc.summary == nil && res.summary != "" {
				t.Errorf("summary written although off:\n%s", res.summary)
			}
			for _, s := range tc.summary {
				if !strings.Contains(res.summary, s) {
					t.Errorf("summary lacks %q:\n%s", s, res.summary)
				}
			}
			for _, f := range tc.reportFmt {
				p := res.outputs["report-"+f]
				if !filepath.IsAbs(p) || !strings.HasPrefix(p, r.workspace) {
					t.Errorf("output report-%s = %q, want an absolute path in the workspace", f, p)
				} else if st, err := os.Stat(p); err != nil || st.Size() == 0 {
					t.Errorf("report-%s %s not written: %v", f, p, err)
				}
			}
		})
	}
}
