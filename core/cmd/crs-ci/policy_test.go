package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/policy"
)

func crs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"crs-ci"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var expectLineRE = regexp.MustCompile(`#\s*expect:\s*([a-z0-9-]+)(?:\s+line\s+(\d+))?`)

// TestPolicyValidateCorpora: through the command, each broken policy exits 1 and names the expected code
// at file:line; each good policy and example exits 0.
func TestPolicyValidateCorpora(t *testing.T) {
	broken, _ := filepath.Glob("../../policy/testdata/broken/*.yaml")
	if len(broken) < 30 {
		t.Fatalf("want at least 30 broken policies, got %d", len(broken))
	}
	for _, f := range broken {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, _ := crs(t, "policy", "validate", "--ci", "none", f)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			data, _ := os.ReadFile(f)
			for i, l := range strings.Split(string(data), "\n") {
				for _, m := range expectLineRE.FindAllStringSubmatch(l, -1) {
					line := fmt.Sprint(i + 1)
					if m[2] != "" {
						line = m[2]
					}
					want := fmt.Sprintf("%s:%s:", f, line)
					if !regexp.MustCompile(regexp.QuoteMeta(want) + `\d+: error: ` + regexp.QuoteMeta(m[1]) + ":").MatchString(out) {
						t.Errorf("output lacks %s<col>: error: %s:\n%s", want, m[1], out)
					}
				}
			}
		})
	}
	good, _ := filepath.Glob("../../policy/testdata/good/*.yaml")
	good = append(good, "../../../policies")
	for _, f := range good {
		t.Run("good/"+filepath.Base(f), func(t *testing.T) {
			if code, out, errs := crs(t, "policy", "validate", "--ci", "none", f); code != 0 {
				t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
			}
		})
	}
}

func TestPolicyValidateStrictAndFormats(t *testing.T) {
	shadowed := "../../policy/testdata/good/shadowed.yaml"
	if code, out, _ := crs(t, "policy", "validate", "--ci", "none", shadowed); code != 0 || !strings.Contains(out, "warning: shadowed-rule") {
		t.Fatalf("without --strict: exit %d, want 0 with warnings\n%s", code, out)
	}
	if code, out, _ := crs(t, "policy", "validate", "--ci", "none", "--strict", shadowed); code != 1 || !strings.Contains(out, "error: shadowed-rule") {
		t.Fatalf("--strict: exit %d, want 1 with the warning as an error\n%s", code, out)
	}
	// flags after the paths work too
	if code, _, _ := crs(t, "policy", "validate", shadowed, "--strict", "--ci", "none"); code != 1 {
		t.Fatalf("--strict after the path: exit %d, want 1", code)
	}

	dir := t.TempDir()
	broken := "../../policy/testdata/broken/multi-error.yaml"
	jsonPath := filepath.Join(dir, "r.json")
	code, out, _ := crs(t, "policy", "validate", "--ci", "none", "--format", "json", "--report", "sarif="+filepath.Join(dir, "r.sarif"), "--report", "json="+jsonPath, broken, shadowed)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep struct {
		Command  string
		Verdict  string
		Policies []struct {
			File     string
			Verdict  string
			SHA256   string
			Findings []struct {
				Code, Severity string
				Line, Column   int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--format json output is not JSON: %v\n%s", err, out)
	}
	if rep.Verdict != "invalid" || len(rep.Policies) != 2 || rep.Policies[0].Verdict != "invalid" || rep.Policies[1].Verdict != "valid" {
		t.Fatalf("unexpected report: %+v", rep)
	}
	if len(rep.Policies[0].Findings) != 5 || rep.Policies[0].Findings[0].Line != 6 {
		t.Errorf("want the 5 errors of multi-error.yaml, first at line 6: %+v", rep.Policies[0].Findings)
	}
	if len(rep.Policies[1].SHA256) != 64 {
		t.Errorf("a valid policy reports its compiled sha256, got %q", rep.Policies[1].SHA256)
	}
	if b, err := os.ReadFile(jsonPath); err != nil || !bytes.Equal(b, []byte(out)) {
		t.Errorf("--report json=PATH differs from --format json output (%v)", err)
	}
	var sarif struct {
		Version string
		Runs    []struct {
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine, StartColumn int }
					}
				}
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.sarif"))
	if err != nil || json.Unmarshal(b, &sarif) != nil || sarif.Version != "2.1.0" {
		t.Fatalf("sarif report unreadable: %v\n%s", err, b)
	}
	r0 := sarif.Runs[0].Results[0]
	if r0.RuleID != "bad-value" || r0.Locations[0].PhysicalLocation.Region.StartLine != 6 || r0.Locations[0].PhysicalLocation.ArtifactLocation.URI != broken {
		t.Errorf("first SARIF result: %+v", r0)
	}
}

func TestPolicyValidateFolders(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if code, _, errs := crs(t, "policy", "validate", "--ci", "none"); code != 2 || !strings.Contains(errs, ".crs/") {
		t.Fatalf("no folder: exit %d, want 2\n%s", code, errs)
	}
	good, _ := os.ReadFile(filepath.Join(wd, "../../../policies/baseline.yaml"))
	bad := []byte("apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: x}\nspec: {mode: on}\n")
	must(t, os.MkdirAll("policies/team/.hidden", 0o755))
	must(t, os.WriteFile("policies/a.yaml", good, 0o644))
	must(t, os.WriteFile("policies/team/b.yml", bad, 0o644))
	must(t, os.WriteFile("policies/team/.hidden/c.yaml", bad, 0o644))
	must(t, os.WriteFile("policies/a.test.yaml", []byte("not: a policy"), 0o644))
	must(t, os.WriteFile("policies/README.md", []byte("# not yaml"), 0o644))
	code, out, _ := crs(t, "policy", "validate", "--ci", "none")
	if code != 1 || !strings.Contains(out, "policies/team/b.yml:4:") || strings.Contains(out, ".hidden") || strings.Contains(out, "a.test.yaml") || !strings.Contains(out, "2 policy file(s)") {
		t.Fatalf("policies/ walk: exit %d\n%s", code, out)
	}
	// .crs/ wins over policies/
	must(t, os.MkdirAll(".crs", 0o755))
	must(t, os.WriteFile(".crs/p.yaml", good, 0o644))
	if code, out, _ := crs(t, "policy", "validate", "--ci", "none"); code != 0 || !strings.Contains(out, "1 policy file(s)") {
		t.Fatalf(".crs/ default: exit %d\n%s", code, out)
	}
	if code, _, errs := crs(t, "policy", "validate", "--ci", "none", "missing.yaml"); code != 2 || !strings.Contains(errs, "missing.yaml") {
		t.Fatalf("missing path: exit %d, want 2: %s", code, errs)
	}
	if code, _, _ := crs(t, "policy", "validate", "--ci", "none", "--format", "yaml", ".crs"); code != 2 {
		t.Fatalf("unknown format: exit %d, want 2", code)
	}
	must(t, os.WriteFile("unreadable.yaml", good, 0o000))
	if os.Getuid() != 0 {
		if code, _, _ := crs(t, "policy", "validate", "--ci", "none", "unreadable.yaml"); code != 3 {
			t.Fatalf("unreadable file: exit %d, want 3", code)
		}
	}
}

// wd is the package folder (tests that chdir still find the repository through it).
var wd, _ = os.Getwd()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPolicyCompile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "policy.bin")
	src := "../../../policies/web-server.yaml"
	code, _, errs := crs(t, "policy", "compile", src, "-o", out, "--mode", "audit")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	b, err := os.ReadFile(out)
	must(t, err)
	c, err := policy.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "web-server" || c.Mode != policy.ModeAudit || !strings.Contains(errs, c.SHA256()) {
		t.Fatalf("compiled %q mode %s; stderr %s", c.Name, c.Mode, errs)
	}
	// same policy, same bytes; -o before the file works too
	out2 := filepath.Join(dir, "again.bin")
	if code, _, errs := crs(t, "policy", "compile", "--mode=audit", "-o", out2, src); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b2, _ := os.ReadFile(out2)
	if !bytes.Equal(b, b2) {
		t.Fatal("compiling twice gave different bytes")
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"invalid policy", []string{"../../policy/testdata/broken/bad-action.yaml", "-o", filepath.Join(dir, "x.bin")}, 1, "bad-value"},
		{"no output", []string{src}, 2, "-o OUT"},
		{"two files", []string{src, src, "-o", out}, 2, "exactly one"},
		{"missing file", []string{filepath.Join(dir, "nope.yaml"), "-o", out}, 3, "nope.yaml"},
		{"bad mode", []string{src, "-o", out, "--mode", "loud"}, 2, "mode"},
		{"unwritable output", []string{src, "-o", filepath.Join(dir, "no/such/dir/p.bin")}, 3, "p.bin"},
		{"unknown flag", []string{src, "-o", out, "--fast"}, 2, "fast"},
		{"strict with warnings", []string{"../../policy/testdata/good/shadowed.yaml", "-o", out, "--strict"}, 1, "shadowed-rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, errs := crs(t, append([]string{"policy", "compile"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout+errs, tt.msg) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.msg, stdout, errs)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.bin")); err == nil {
		t.Error("an invalid policy left an output file")
	}
}

func TestPolicyTestCommand(t *testing.T) {
	if code, out, errs := crs(t, "policy", "test", "../../../policies"); code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("examples: exit %d\n%s%s", code, out, errs)
	}
	dir := t.TempDir()
	failing := filepath.Join(dir, "f.test.yaml")
	// the test file names its policy relative to itself
	rel, _ := filepath.Rel(dir, filepath.Join(wd, "../../../policies/baseline.yaml"))
	must(t, os.WriteFile(failing, []byte("apiVersion: crs-ci/v1\nkind: PolicyTest\npolicy: "+rel+"\ntests:\n  - {name: shadow, op: read, path: /etc/shadow, expect: allow}\n"), 0o644))
	junit := filepath.Join(dir, "tests.xml")
	code, out, _ := crs(t, "policy", "test", "--tests", failing, "--report", "junit="+junit)
	if code != 1 || !strings.Contains(out, "FAIL "+failing+":5: shadow: want allow, got deny by rule \"no-secrets\"") {
		t.Fatalf("failing test: exit %d\n%s", code, out)
	}
	if x, err := os.ReadFile(junit); err != nil || !strings.Contains(string(x), `failures="1"`) || !strings.Contains(string(x), "policy-test-failed") {
		t.Fatalf("junit report of the failing test: %v\n%s", err, x)
	}
	if code, _, errs := crs(t, "policy", "test", "../../../policies/baseline.yaml", "--tests", filepath.Join(dir, "none.test.yaml")); code != 3 {
		t.Fatalf("missing test file: exit %d, want 3: %s", code, errs)
	}
	if code, _, errs := crs(t, "policy", "test", "../../policy/testdata/good/minimal.yaml"); code != 2 || !strings.Contains(errs, "no test file") {
		t.Fatalf("policy without tests: exit %d, want 2: %s", code, errs)
	}
}
