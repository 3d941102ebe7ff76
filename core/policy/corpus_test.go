package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/report"
)

// expectation is one `# expect: CODE` (on the line it ends) or `# expect: CODE line N` comment.
type expectation struct {
	code string
	line int
}

var expectRE = regexp.MustCompile(`#\s*expect(-warning)?:\s*([a-z0-9-]+)(?:\s+line\s+(\d+))?`)

func expectations(t *testing.T, data []byte) (errs, warns []expectation) {
	t.Helper()
	for i, l := range strings.Split(string(data), "\n") {
		for _, m := range expectRE.FindAllStringSubmatch(l, -1) {
			e := expectation{code: m[2], line: i + 1}
			if m[3] != "" {
				e.line, _ = strconv.Atoi(m[3])
			}
			if m[1] != "" {
				warns = append(warns, e)
			} else {
				errs = append(errs, e)
			}
		}
	}
	return errs, warns
}

func corpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s (%v)", dir, err)
	}
	return files
}

func has(fs []report.Finding, sev string, e expectation) bool {
	for _, f := range fs {
		if f.Severity == sev && f.Code == e.code && f.Line == e.line {
			return true
		}
	}
	return false
}

// TestBrokenCorpus: every file under testdata/broken is invalid, with each expected code at its line.
func TestBrokenCorpus(t *testing.T) {
	files := corpus(t, "testdata/broken")
	if len(files) < 30 {
		t.Fatalf("the broken corpus has %d files, want at least 30", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, fs, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(file)
			errs, _ := expectations(t, data)
			if len(errs) == 0 {
				t.Fatalf("%s has no `# expect: CODE` comment", file)
			}
			if !HasErrors(fs) {
				t.Fatalf("no error found; findings: %+v", fs)
			}
			for _, e := range errs {
				if !has(fs, report.Error, e) {
					t.Errorf("want error %s at line %d; got:\n%s", e.code, e.line, dump(fs))
				}
			}
			for _, f := range fs {
				if f.File != file || f.Line < 1 || f.Column < 1 || f.Message == "" {
					t.Errorf("finding without a full position or message: %+v", f)
				}
			}
		})
	}
}

// TestGoodCorpus: every file under testdata/good and every example in policies/ is valid, has no
// warning unless announced with `# expect-warning: CODE`, compiles and loads.
func TestGoodCorpus(t *testing.T) {
	files := append(corpus(t, "testdata/good"), examplePolicies(t)...)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, fs, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if HasErrors(fs) {
				t.Fatalf("unexpected errors:\n%s", dump(fs))
			}
			data, _ := os.ReadFile(file)
			_, warns := expectations(t, data)
			for _, e := range warns {
				if !has(fs, report.Warning, e) {
					t.Errorf("want warning %s at line %d; got:\n%s", e.code, e.line, dump(fs))
				}
			}
			for _, f := range fs {
				if f.Severity == report.Warning {
					found := false
					for _, e := range warns {
						found = found || (e.code == f.Code && e.line == f.Line)
					}
					if !found {
						t.Errorf("unexpected warning: %s:%d: %s: %s", f.File, f.Line, f.Code, f.Message)
					}
				}
			}
			b, err := Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Load(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func examplePolicies(t *testing.T) []string {
	files, _ := filepath.Glob("../../policies/*.yaml")
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".test.yaml") {
			out = append(out, f)
		}
	}
	return out
}

func dump(fs []report.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.File + ":" + strconv.Itoa(f.Line) + ":" + strconv.Itoa(f.Column) + ": " + f.Severity + ": " + f.Code + ": " + f.Message + "\n")
	}
	return b.String()
}

func globFiles(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// TestCodesDocumented: every code found in the corpora is in Codes, and every code in Codes is explained
// in docs/policy-reference.md and reported by at least one corpus file or test.
func TestCodesDocumented(t *testing.T) {
	known := map[string]string{}
	for _, c := range Codes {
		known[c.Code] = c.Severity
	}
	seen := map[string]bool{"file-too-large": true, "empty-policy": true} // TestOversizedAndEmpty
	for _, dir := range []string{"testdata/broken", "testdata/good"} {
		for _, f := range corpus(t, dir) {
			_, fs, _ := ParseFile(f)
			for _, fd := range fs {
				if sev, ok := known[fd.Code]; !ok || sev != fd.Severity {
					t.Errorf("%s: code %q (%s) is not in Codes with that severity", f, fd.Code, fd.Severity)
				}
				seen[fd.Code] = true
			}
		}
	}
	doc, err := os.ReadFile("../../docs/policy-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Codes {
		if !strings.Contains(string(doc), "`"+c.Code+"`") {
			t.Errorf("docs/policy-reference.md does not explain `%s`", c.Code)
		}
		if !seen[c.Code] {
			t.Errorf("no corpus file reports %s", c.Code)
		}
	}
}

// TestOversizedAndEmpty: files over the size cap are refused before parsing; empty files have no policy.
func TestOversizedAndEmpty(t *testing.T) {
	big := append([]byte("apiVersion: crs-ci/v1\n# "), bytes.Repeat([]byte("x"), MaxFileSize)...)
	if p, fs := Parse("big.yaml", big); p != nil || len(fs) != 1 || fs[0].Code != "file-too-large" {
		t.Fatalf("oversized: %+v", fs)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(f, append(big, big...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, fs, err := ParseFile(f); err != nil || len(fs) != 1 || fs[0].Code != "file-too-large" {
		t.Fatalf("oversized file: %v %+v", err, fs)
	}
	for _, empty := range []string{"", "# only a comment\n", "---\n"} {
		if _, fs := Parse("e.yaml", []byte(empty)); len(fs) != 1 || fs[0].Code != "empty-policy" {
			t.Errorf("%q: %+v", empty, fs)
		}
	}
}
