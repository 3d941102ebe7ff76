package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/report"
)

// fakeVerdictApp is a command that ends the way check/policy/instrument end: publishCI with its report.
func fakeVerdictApp(stdout, stderr *bytes.Buffer, rep *report.Report, runErr error) *cli.App {
	app := newApp(stdout, stderr)
	app.Commands = append(app.Commands, &cli.Command{
		Name: "fake", Flags: ciFlags(), OnUsageError: usageOnError,
		Before: func(c *cli.Context) error { return ciMask(c) },
		Action: func(c *cli.Context) error { return publishCI(c, rep, nil, runErr) },
	})
	return app
}

func TestPublishCI(t *testing.T) {
	warn := &report.Report{Command: "policy validate", Verdict: report.Valid, Policies: []report.PolicyFile{{File: "p.yaml", Verdict: report.Valid,
		Findings: []report.Finding{{Code: "W1", Severity: report.Warning, Message: "shadowed", Line: 3, Column: 1}}}}}
	for _, tc := range []struct {
		name   string
		args   []string
		err    error
		code   int
		stdout []string
		absent []string
	}{
		{"warning passes by default", nil, nil, 0, []string{"::warning col=1,file=p.yaml,line=3,title=crs-ci W1::shadowed", "::add-mask::hunter2"}, nil},
		{"--fail-on warning rejects", []string{"--fail-on", "warning"}, nil, 1, []string{"::warning"}, nil},
		{"--ci none is silent", []string{"--ci", "none"}, nil, 0, nil, []string{"::"}},
		{"--ci azure overrides detection", []string{"--ci", "azure", "--summary=false"}, nil, 0,
			[]string{"##vso[task.setsecret]hunter2", "##vso[task.logissue type=warning;sourcepath=p.yaml;linenumber=3;columnnumber=1;code=W1]crs-ci W1: shadowed"},
			[]string{"uploadsummary"}},
		{"a tool error keeps its code", nil, exitcode.Operationalf("registry down"), 3, []string{"::error title=crs-ci tool error (exit 3)::registry down"}, nil},
		{"bad --fail-on is usage", []string{"--fail-on", "never"}, nil, 2, nil, nil},
		{"bad --ci is usage", []string{"--ci", "gitlab"}, nil, 2, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("GITHUB_ACTIONS", "true")
			t.Setenv("GITHUB_OUTPUT", filepath.Join(dir, "out"))
			t.Setenv("GITHUB_STEP_SUMMARY", filepath.Join(dir, "summary"))
			t.Setenv("AGENT_TEMPDIRECTORY", dir)
			t.Setenv("CRS_REGISTRY_PASSWORD", "hunter2")
			var stdout, stderr bytes.Buffer
			err := fakeVerdictApp(&stdout, &stderr, warn, tc.err).Run(append([]string{"crs-ci", "fake"}, tc.args...))
			if got := exitcode.Of(err); got != tc.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tc.code)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, stdout.String())
				}
			}
			if tc.code == 1 {
				out, _ := os.ReadFile(filepath.Join(dir, "out"))
				if !strings.Contains(string(out), "result<<") || !strings.Contains(string(out), "\nrejected\n") {
					t.Errorf("GITHUB_OUTPUT must say rejected:\n%s", out)
				}
			}
		})
	}
}
