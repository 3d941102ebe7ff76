package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/policy"
)

func TestPolicySuggest(t *testing.T) {
	from := "../../suggest/testdata/from/block-rules.yaml"
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		validOut bool // stdout is a valid policy
	}{
		{"new policy", []string{"--events", auditWeb}, 0, []string{"apiVersion: crs-ci/v1", "name: read-etc", "mode: enforce"}, nil, true},
		{"strict, positional events, audit mode", []string{"--strict", "--mode", "audit", "--name", "web", recordedEv}, 0,
			[]string{"program: /usr/bin/cat", "mode: audit", "name: web"}, nil, true},
		{"notes on stderr", []string{"--events", interleaved}, 0, nil, []string{"note: the probe lost 17 events"}, true},
		{"additions as a diff", []string{"--events", auditWeb, "--from-policy", from}, 0,
			[]string{"--- a/" + from, "+++ b/" + from, "+    - name: read-usr"}, []string{`note: rule "no-secrets" denies`}, false},
		{"invalid existing policy", []string{"--events", auditWeb, "--from-policy", "../../suggest/testdata/from/broken.yaml"}, exitcode.Rejected,
			nil, []string{"broken.yaml:10:", "is not a valid policy"}, false},
		{"nothing to add", []string{"--events", auditWeb, "--from-policy", "../../suggest/testdata/from/covers-all.yaml"}, 0,
			nil, []string{"no additions"}, false},
		{"no events", nil, exitcode.Usage, nil, []string{"--events FILE"}, false},
		{"bad mode", []string{"--events", auditWeb, "--mode", "loud"}, exitcode.Usage, nil, []string{`--mode "loud"`}, false},
		{"bad arch", []string{"--events", auditWeb, "--arch", "mips"}, exitcode.Usage, nil, []string{`--arch "mips"`}, false},
		{"missing events file", []string{"--events", "/nonexistent"}, exitcode.Operational, nil, []string{"reading events"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := suggestApp(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, c := range tt.stdout {
				if !strings.Contains(out, c) {
					t.Errorf("stdout lacks %q:\n%s", c, out)
				}
			}
			for _, c := range tt.stderr {
				if !strings.Contains(errs, c) {
					t.Errorf("stderr lacks %q:\n%s", c, errs)
				}
			}
			if tt.validOut {
				if _, fs := policy.Parse("out.yaml", []byte(out)); policy.HasErrors(fs) {
					t.Errorf("stdout is not a valid policy: %+v\n%s", fs, out)
				}
			}
		})
	}
}

func TestPolicySuggestOutput(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("../../suggest/testdata/from/empty-rules.yaml")
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, src, 0o644)
	// --output with --from-policy writes the policy with the additions (here: in place).
	if code, out, errs := suggestApp(t, "--events", auditWeb, "--from-policy", pol, "-o", pol); code != 0 || out != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(pol)
	if _, fs := policy.Parse(pol, b); policy.HasErrors(fs) || !strings.Contains(string(b), "- name: read-usr") {
		t.Fatalf("updated policy (%+v):\n%s", fs, b)
	}
	// a second run finds nothing more to add
	if code, out, errs := suggestApp(t, "--events", auditWeb, "--from-policy", pol); code != 0 || out != "" || !strings.Contains(errs, "no additions") {
		t.Errorf("second run: exit %d\n%s%s", code, out, errs)
	}
	newPol := filepath.Join(dir, "new.yaml")
	if code, _, errs := suggestApp(t, "--events", auditWeb, "-o", newPol); code != 0 || !strings.Contains(errs, "wrote "+newPol) {
		t.Errorf("exit %d: %s", code, errs)
	}
}
