package ci

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/report"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Platform
	}{
		{"github", map[string]string{"GITHUB_ACTIONS": "true", "CI": "true"}, GitHub},
		{"azure", map[string]string{"TF_BUILD": "True"}, Azure},
		{"azure lower case", map[string]string{"TF_BUILD": "true"}, Azure},
		{"jenkins", map[string]string{"JENKINS_URL": "https://ci.example.com/"}, Jenkins},
		{"github wins over a jenkins agent variable", map[string]string{"GITHUB_ACTIONS": "true", "JENKINS_URL": "x"}, GitHub},
		{"github false", map[string]string{"GITHUB_ACTIONS": "false"}, None},
		{"nothing", nil, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Detect(env(tc.env)); got != tc.want {
				t.Fatalf("Detect = %q, want %q", got, tc.want)
			}
			if got := New(Options{Getenv: env(tc.env)}).Platform(); got != tc.want {
				t.Fatalf("New(auto).Platform = %q, want %q", got, tc.want)
			}
		})
	}
	if got := New(Options{Platform: None, Getenv: env(map[string]string{"GITHUB_ACTIONS": "true"})}).Platform(); got != None {
		t.Fatalf("an explicit --ci none must win over detection, got %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Platform
		wantErr bool
	}{{"", Auto, false}, {"GitHub", GitHub, false}, {"azure", Azure, false}, {"jenkins", Jenkins, false}, {"none", None, false}, {"gitlab", "", true}} {
		got, err := ParsePlatform(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParsePlatform(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && exitcode.Of(err) != exitcode.Usage {
			t.Errorf("ParsePlatform(%q) error exit code %d, want 2", tc.in, exitcode.Of(err))
		}
	}
	for _, tc := range []struct {
		in      string
		want    FailOn
		wantErr bool
	}{{"", FailOnError, false}, {"error", FailOnError, false}, {"Warning", FailOnWarning, false}, {"info", "", true}} {
		got, err := ParseFailOn(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseFailOn(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// Fixture reports.
func validWithWarning() *report.Report {
	return &report.Report{Command: "policy validate", Verdict: report.Valid, Policies: []report.PolicyFile{{
		File: "policies/web.yaml", Verdict: report.Valid,
		Findings: []report.Finding{{Code: "W001", Severity: report.Warning, Message: "rule \"b\" is shadowed by rule \"a\"", File: "policies/web.yaml", Line: 12, Column: 7}},
	}}}
}

func invalidPolicy(dir string) *report.Report {
	return &report.Report{Command: "policy validate", Verdict: report.Invalid, Policies: []report.PolicyFile{{
		File: filepath.Join(dir, "policies", "bad.yaml"), Verdict: report.Invalid,
		Findings: []report.Finding{
			{Code: "E101", Severity: report.Error, Message: "unknown key \"acton\"", Hint: "did you mean \"action\"?", Line: 9, Column: 5},
			{Code: "E210", Severity: report.Error, Message: "invalid CIDR \"10.0.0.0/33\"; prefix, too long", Line: 14, Column: 19},
		},
	}}}
}

func incompatibleImage() *report.Report {
	return &report.Report{Command: "check", Image: "registry.example/app:1", Digest: "sha256:aaaa", Verdict: report.Incompatible,
		Platforms: []report.Platform{{Platform: "linux/amd64", Verdict: report.Incompatible,
			Findings: []report.Finding{{Code: "C020", Severity: report.Error, Message: "entrypoint is a static binary", Path: "/app/server"}}}}}
}

func layered() *report.Report {
	return &report.Report{Command: "instrument", Image: "registry.example/app:1", Digest: "sha256:aaaa", Verdict: report.Compatible,
		Platforms: []report.Platform{{Platform: "linux/amd64", Verdict: report.Compatible, Findings: []report.Finding{}}},
		Layered:   &report.Layered{Ref: "registry.example/app:1-layered", Digest: "sha256:bbbb", Pushed: true}}
}

func TestGate(t *testing.T) {
	rejected := exitcode.Rejectedf("image rejected")
	for _, tc := range []struct {
		name   string
		r      *report.Report
		err    error
		failOn FailOn
		want   int
	}{
		{"warnings pass under error", validWithWarning(), nil, FailOnError, 0},
		{"warnings fail under warning", validWithWarning(), nil, FailOnWarning, 1},
		{"clean report passes under warning", layered(), nil, FailOnWarning, 0},
		{"a rejection stays a rejection", incompatibleImage(), rejected, FailOnError, 1},
		{"a tool error is never turned into a verdict", nil, exitcode.Operationalf("registry down"), FailOnWarning, 3},
		{"usage stays usage", nil, exitcode.Usagef("bad flag"), FailOnWarning, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitcode.Of(Gate(tc.r, tc.err, tc.failOn)); got != tc.want {
				t.Fatalf("exit code %d, want %d", got, tc.want)
			}
		})
	}
}

// readGitHubOutputs parses the $GITHUB_OUTPUT file format (name<<DELIM / value / DELIM).
func readGitHubOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s: output %s has no closing delimiter %s", path, name, delim)
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

type ghRun struct {
	out, summary, outputs string
	dir                   string
}

func newGitHub(t *testing.T) (ghRun, func(string) string) {
	dir := t.TempDir()
	r := ghRun{dir: dir, summary: filepath.Join(dir, "summary.md"), outputs: filepath.Join(dir, "output")}
	for _, f := range []string{r.summary, r.outputs} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r, env(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": r.outputs,
		"GITHUB_STEP_SUMMARY": r.summary, "GITHUB_WORKSPACE": dir})
}

func TestGitHub(t *testing.T) {
	for _, tc := range []struct {
		name        string
		report      func(dir string) *report.Report
		err         error
		noSummary   bool
		reports     []report.Target
		outputs     map[string]string
		annotations []string // lines that must appear on stdout
		absent      []string // substrings that must not
		summary     []string // substrings of the step summary; nil = summary must be empty
	}{
		{
			name:    "invalid policy: annotations on the file, relative to the workspace",
			report:  invalidPolicy,
			err:     exitcode.Rejectedf("1 policy file invalid"),
			reports: []report.Target{{Format: "junit", Path: "crs.xml"}, {Format: "json", Path: "/abs/crs.json"}},
			outputs: map[string]string{"result": "rejected", "verdict": "invalid", "exit-code": "1", "errors": "2", "warnings": "0",
				"report-json": "/abs/crs.json", "layered-ref": ""},
			annotations: []string{
				`::error col=5,file=policies/bad.yaml,line=9,title=crs-ci E101::unknown key "acton"%0Ahint: did you mean "action"?`,
				`::error col=19,file=policies/bad.yaml,line=14,title=crs-ci E210::invalid CIDR "10.0.0.0/33"; prefix, too long`,
			},
			absent:  []string{"tool error"},
			summary: []string{"invalid", "E101", "bad.yaml"},
		},
		{
			name:        "valid policy with a warning",
			report:      func(string) *report.Report { return validWithWarning() },
			outputs:     map[string]string{"result": "passed", "verdict": "valid", "exit-code": "0", "warnings": "1"},
			annotations: []string{`::warning col=7,file=policies/web.yaml,line=12,title=crs-ci W001::rule "b" is shadowed by rule "a"`},
			summary:     []string{"valid"},
		},
		{
			name:        "incompatible image: annotation names the platform and path",
			report:      func(string) *report.Report { return incompatibleImage() },
			err:         exitcode.Rejectedf("image incompatible"),
			outputs:     map[string]string{"result": "rejected", "verdict": "incompatible", "image-digest": "sha256:aaaa"},
			annotations: []string{`::error title=crs-ci C020 (linux/amd64)::entrypoint is a static binary [/app/server]`},
			summary:     []string{"incompatible", "registry.example/app:1"},
		},
		{
			name:      "layered image outputs, summary off",
			report:    func(string) *report.Report { return layered() },
			noSummary: true,
			outputs: map[string]string{"result": "passed", "verdict": "compatible", "layered-ref": "registry.example/app:1-layered",
				"layered-digest": "sha256:bbbb", "layered-pushed": "true"},
			absent: []string{"::error", "::warning"},
		},
		{
			name:        "tool error is said to be one",
			report:      func(string) *report.Report { return nil },
			err:         exitcode.Operationalf("pulling registry.example/app:1: 503 Service Unavailable"),
			outputs:     map[string]string{"result": "error", "verdict": "error", "exit-code": "3", "errors": "0"},
			annotations: []string{`::error title=crs-ci tool error (exit 3)::pulling registry.example/app:1: 503 Service Unavailable`},
			summary:     []string{"tool error (exit 3)", "503"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh, getenv := newGitHub(t)
			var out bytes.Buffer
			p := New(Options{Getenv: getenv, Out: &out, NoSummary: tc.noSummary})
			if err := p.Publish(Result{Report: tc.report(gh.dir), Reports: tc.reports, Err: tc.err}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			got := readGitHubOutputs(t, gh.outputs)
			for k, v := range tc.outputs {
				if got[k] != v {
					t.Errorf("output %s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			for _, k := range []string{"result", "verdict", "exit-code", "errors", "warnings", "layered-ref", "layered-digest", "image-digest"} {
				if _, ok := got[k]; !ok {
					t.Errorf("output %s not written", k)
				}
			}
			if tc.reports != nil {
				wantJunit, _ := filepath.Abs("crs.xml")
				if got["report-junit"] != wantJunit {
					t.Errorf("report-junit = %q, want the absolute path %q", got["report-junit"], wantJunit)
				}
			}
			lines := strings.Split(out.String(), "\n")
			for _, a := range tc.annotations {
				if !contains(lines, a) {
					t.Errorf("annotation missing:\n  %s\nstdout:\n%s", a, out.String())
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("stdout has %q:\n%s", a, out.String())
				}
			}
			sum, _ := os.ReadFile(gh.summary)
			if tc.summary == nil && len(sum) != 0 {
				t.Errorf("summary written although off or not expected:\n%s", sum)
			}
			for _, s := range tc.summary {
				if !strings.Contains(string(sum), s) {
					t.Errorf("summary lacks %q:\n%s", s, sum)
				}
			}
		})
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestMask(t *testing.T) {
	for _, tc := range []struct {
		platform Platform
		env      map[string]string
		want     []string
	}{
		{GitHub, map[string]string{"CRS_REGISTRY_PASSWORD": "s3cr3t;]", "VAULT_TOKEN": "hvs.abc\nline2"},
			[]string{"::add-mask::s3cr3t;]", "::add-mask::hvs.abc", "::add-mask::line2"}},
		{Azure, map[string]string{"CRS_REGISTRY_PASSWORD": "p%w\nx", "VAULT_SECRET_ID": "role-secret"},
			[]string{"##vso[task.setsecret]p%AZP25w", "##vso[task.setsecret]x", "##vso[task.setsecret]role-secret"}},
		{Jenkins, map[string]string{"CRS_REGISTRY_PASSWORD": "s3cr3t"}, nil},
		{None, map[string]string{"CRS_REGISTRY_PASSWORD": "s3cr3t"}, nil},
	} {
		t.Run(string(tc.platform), func(t *testing.T) {
			var out bytes.Buffer
			p := New(Options{Platform: tc.platform, Getenv: env(tc.env), Out: &out})
			if err := p.MaskEnv(); err != nil {
				t.Fatal(err)
			}
			if err := p.Mask("", "  "); err != nil { // blank values are never masked (they would hide every space)
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(tc.want) == 0 {
				if out.Len() != 0 {
					t.Fatalf("%s must print no mask commands, got %q", tc.platform, out.String())
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for _, w := range tc.want {
				if !contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
		})
	}
}

func TestAzure(t *testing.T) {
	src := t.TempDir()
	tmp := t.TempDir()
	getenv := env(map[string]string{"TF_BUILD": "True", "BUILD_SOURCESDIRECTORY": src, "AGENT_TEMPDIRECTORY": tmp})
	for _, tc := range []struct {
		name      string
		r         *report.Report
		err       error
		noSummary bool
		want      []string
		absent    []string
		summary   string
	}{
		{
			name: "invalid policy",
			r:    invalidPolicy(src),
			err:  exitcode.Rejectedf("invalid"),
			want: []string{
				"##vso[task.setvariable variable=verdict;isOutput=true]invalid",
				"##vso[task.setvariable variable=exitCode;isOutput=true]1",
				"##vso[task.setvariable variable=result;isOutput=true]rejected",
				`##vso[task.logissue type=error;sourcepath=policies/bad.yaml;linenumber=9;columnnumber=5;code=E101]crs-ci E101: unknown key "acton"%0Ahint: did you mean "action"?`,
				`##vso[task.logissue type=error;sourcepath=policies/bad.yaml;linenumber=14;columnnumber=19;code=E210]crs-ci E210: invalid CIDR "10.0.0.0/33"; prefix, too long`,
			},
			absent:  []string{"tool-error"},
			summary: "E210",
		},
		{
			name: "layered",
			r:    layered(),
			want: []string{
				"##vso[task.setvariable variable=layeredRef;isOutput=true]registry.example/app:1-layered",
				"##vso[task.setvariable variable=layeredDigest;isOutput=true]sha256:bbbb",
			},
			absent:  []string{"task.logissue"},
			summary: "compatible",
		},
		{
			name:      "tool error, summary off",
			err:       exitcode.Usagef("--policy: no such file web.yaml"),
			noSummary: true,
			want: []string{
				"##vso[task.setvariable variable=verdict;isOutput=true]error",
				"##vso[task.logissue type=error;code=tool-error]crs-ci tool error (exit 2): --policy: no such file web.yaml",
			},
			absent: []string{"uploadsummary"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := New(Options{Getenv: getenv, Out: &out, NoSummary: tc.noSummary})
			if p.Platform() != Azure {
				t.Fatalf("platform %q", p.Platform())
			}
			if err := p.Publish(Result{Report: tc.r, Err: tc.err}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out.String(), "\n")
			for _, w := range tc.want {
				if !contains(lines, w) {
					t.Errorf("missing line\n  %s\nin\n%s", w, out.String())
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("unexpected %q in\n%s", a, out.String())
				}
			}
			if tc.summary != "" {
				m := regexp.MustCompile(`(?m)^##vso\[task\.uploadsummary\](.+)$`).FindStringSubmatch(out.String())
				if m == nil {
					t.Fatalf("no uploadsummary in\n%s", out.String())
				}
				if !filepath.IsAbs(m[1]) || filepath.Dir(m[1]) != tmp {
					t.Errorf("summary path %q: want an absolute path in AGENT_TEMPDIRECTORY", m[1])
				}
				b, err := os.ReadFile(m[1])
				if err != nil || !strings.Contains(string(b), tc.summary) {
					t.Errorf("summary %s (err %v) lacks %q:\n%s", m[1], err, tc.summary, b)
				}
			}
		})
	}
}

func TestAzureEscaping(t *testing.T) {
	got := azureCommand("task.logissue", "50% done\r\nnext", "type", "error", "sourcepath", "a;b]c%.yaml", "linenumber", "")
	want := "##vso[task.logissue type=error;sourcepath=a%3Bb%5Dc%AZP25.yaml]50%AZP25 done%0D%0Anext\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if azureVarName("layered-digest") != "layeredDigest" || azureVarName("report-sarif") != "reportSarif" || azureVarName("verdict") != "verdict" {
		t.Fatal("azureVarName")
	}
}

func TestJenkins(t *testing.T) {
	var out bytes.Buffer
	p := New(Options{Getenv: env(map[string]string{"JENKINS_URL": "http://jenkins:8080/"}), Out: &out})
	err := p.Publish(Result{Report: incompatibleImage(), Reports: []report.Target{{Format: "junit", Path: "/w/crs.xml"}}, Err: exitcode.Rejectedf("x")})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"crs-ci: result=rejected verdict=incompatible exit-code=1 errors=1 warnings=0",
		"crs-ci: report junit: /w/crs.xml",
	} {
		if !contains(strings.Split(out.String(), "\n"), w) {
			t.Errorf("missing %q in\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "::") || strings.Contains(out.String(), "##vso") {
		t.Errorf("Jenkins log must be plain:\n%s", out.String())
	}
	out.Reset()
	_ = p.Publish(Result{Err: errors.New("unclassified failure")})
	if !strings.Contains(out.String(), "tool error (exit 3), not a policy verdict") {
		t.Errorf("tool error line missing:\n%s", out.String())
	}
}

func TestGitHubWithoutOutputsFile(t *testing.T) {
	var out bytes.Buffer
	err := New(Options{Getenv: env(map[string]string{"GITHUB_ACTIONS": "true"}), Out: &out}).
		Publish(Result{Report: incompatibleImage(), Err: exitcode.Rejectedf("x")})
	if err != nil {
		t.Fatalf("a missing GITHUB_OUTPUT must not turn a verdict into a tool error: %v", err)
	}
	for _, w := range []string{"::warning::crs-ci: GITHUB_OUTPUT is not set", "::error title=crs-ci C020 (linux/amd64)::"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, out.String())
		}
	}
}

func TestWriteFailuresAreErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"GITHUB_OUTPUT is a directory", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": dir}},
		{"Azure temp dir missing", map[string]string{"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": filepath.Join(dir, "nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := New(Options{Getenv: env(tc.env), Out: &out}).Publish(Result{Report: layered()})
			if err == nil {
				t.Fatal("Publish succeeded; want an error")
			}
			if exitcode.Of(err) != exitcode.Operational {
				t.Errorf("exit code %d, want 3: %v", exitcode.Of(err), err)
			}
		})
	}
}
