package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzHarnessOnce sync.Once
	fuzzHarness     string
	fuzzHarnessErr  error
)

// fuzzDecideHarness compiles only the probe's decide-harness (harness/decide-harness.c with src/decide.c and
// src/sha256.c, as probe/build.sh does) once per process: each fuzzing worker is its own process, so the full
// probe build would eat the fuzzing time.
func fuzzDecideHarness(t *testing.T) string {
	t.Helper()
	fuzzHarnessOnce.Do(func() {
		root, err := filepath.Abs("../../probe")
		if err != nil {
			fuzzHarnessErr = err
			return
		}
		dir, err := os.MkdirTemp("", "crs-fuzz-harness-")
		if err != nil {
			fuzzHarnessErr = err
			return
		}
		out := filepath.Join(dir, "decide-harness")
		cmd := exec.Command("gcc", "-std=gnu11", "-O2", "-o", out, "harness/decide-harness.c", "src/decide.c", "src/sha256.c")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			fuzzHarnessErr = fmt.Errorf("building the decide-harness: %v\n%s", err, b)
			return
		}
		fuzzHarness = out
	})
	if fuzzHarnessErr != nil {
		t.Fatal(fuzzHarnessErr)
	}
	return fuzzHarness
}

// cleanSubject makes s a normalised absolute path the harness protocol can carry, or "".
func cleanSubject(s string) string {
	if strings.ContainsAny(s, "\x00\t\r\n") || s == "" {
		return ""
	}
	return path.Clean("/" + s)
}

// FuzzDifferentialDecide is the differential fuzz of the Go and the C decision code: a policy with file,
// exec and unix-socket rules built from a fuzzed glob and program glob (kept only when it validates) is
// compiled, then the same requests — the fuzzed path, the glob itself, its parent and child, as file, exec and
// network subjects, by the fuzzed program and by another — are decided by Compiled.Decide and by the probe's
// decide.c (through the decide-harness). Any disagreement fails.
func FuzzDifferentialDecide(f *testing.F) {
	for _, s := range [][3]string{
		{"/etc/shadow", "/etc/shadow", "/usr/bin/cat"},
		{"/usr/bin/*sh", "/usr/bin/bash", "/usr/bin/env"},
		{"/root/**", "/root/.ssh/id_rsa", "/usr/sbin/*"},
		{"/a/**/b", "/a/x/y/b", "/**"},
		{"/[a-c]?/[!x]*", "/b1/yz", "/bin/[bd]ash"},
		{"/x\\*y", "/x*y", "/usr/bin/python3*"},
		{"/*a*a*a*b", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "/opt/**/run"},
		{"/**/node_modules/**/*.js", "/srv/app/node_modules/x/y/z.js", "/usr/bin/node"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, glob, subject, program string) {
		glob, subject, program = cleanSubject(glob), cleanSubject(subject), cleanSubject(program)
		if glob == "" || subject == "" || program == "" || len(glob)+len(subject)+len(program) > 1500 {
			return
		}
		yaml := diffFuzzPolicy(glob, program)
		p, fs := Parse("fuzz.yaml", []byte(yaml))
		if HasErrors(fs) {
			return // the validator refused the glob: nothing reaches the probe
		}
		b, err := Compile(p)
		if err != nil {
			t.Fatalf("Compile of a valid policy: %v\n%s", err, yaml)
		}
		c, err := Load(b)
		if err != nil {
			t.Fatalf("Load of a compiled policy: %v", err)
		}
		dir := t.TempDir()
		pol := filepath.Join(dir, "p.bin")
		if err := os.WriteFile(pol, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, s := range []string{subject, glob, path.Dir(subject), subject + "/x", path.Dir(glob)} {
			if cleanSubject(s) != s {
				continue
			}
			for _, prog := range []string{program, "/usr/bin/other"} {
				lines = append(lines,
					"file\tread\t"+s+"\tread\t-\t"+prog,
					"file\twrite\t"+s+"\twrite\t-\t"+prog,
					"exec\texec\t"+s+"\t-\t-\t"+prog,
					"network\tconnect\tunix:"+s+"\toutbound\t-\t"+prog)
			}
		}
		cmd := exec.Command(fuzzDecideHarness(t), pol)
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("decide-harness refused a policy Go loads: %v: %s\n%s", err, errb.String(), yaml)
		}
		got := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(got) != len(lines) {
			t.Fatalf("harness answered %d lines for %d requests: %s", len(got), len(lines), out.String())
		}
		names := [...]string{Allow: "allow", Deny: "deny", Alert: "alert"}
		for i, l := range lines {
			req, err := harnessRequest(l)
			if err != nil {
				t.Fatal(err)
			}
			d := c.Decide(req)
			want := fmt.Sprintf("%s\t%d", names[d.Action%3], d.Rule)
			if got[i] != want {
				t.Errorf("request %q: C says %q, Go says %q\npolicy:\n%s", l, got[i], want, yaml)
			}
		}
	})
}

// diffFuzzPolicy is the policy FuzzDifferentialDecide decides from: file rules (by program and for any
// program), an exec rule and a unix-socket rule on the glob.
func diffFuzzPolicy(glob, program string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`apiVersion: crs-ci/v1
kind: RuntimePolicy
metadata: {name: fuzz}
spec:
  mode: enforce
  defaults: {file: allow, network: allow, exec: allow}
  rules:
    - {name: file-by-program, action: deny, program: %[2]s, file: {paths: [%[1]s], access: [read]}}
    - {name: file-any, action: alert, file: {paths: [%[1]s, %[3]s], access: [write]}}
    - {name: exec, action: deny, exec: {paths: [%[1]s]}}
    - {name: socket, action: deny, network: {direction: outbound, unix: [%[1]s]}}
`, q(glob), q(program), q(path.Dir(glob)+"/**"))
}

// TestDiffFuzzPolicyValid: the fuzz target's policy shape validates, so the fuzzing is not vacuous.
func TestDiffFuzzPolicyValid(t *testing.T) {
	for _, g := range []string{"/etc/shadow", "/usr/bin/*sh", "/a/**/b"} {
		if _, fs := Parse("fuzz.yaml", []byte(diffFuzzPolicy(g, "/usr/bin/*"))); HasErrors(fs) {
			t.Errorf("%s: %s", g, dump(fs))
		}
	}
}
