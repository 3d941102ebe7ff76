package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplePolicyTests runs the test file of every example in policies/: each example has one, and
// every case passes.
func TestExamplePolicyTests(t *testing.T) {
	examples := examplePolicies(t)
	if len(examples) < 4 {
		t.Fatalf("want at least 4 examples in policies/, got %v", examples)
	}
	for _, pf := range examples {
		t.Run(filepath.Base(pf), func(t *testing.T) {
			tfName := strings.TrimSuffix(pf, ".yaml") + ".test.yaml"
			tf, err := ParseTestFile(tfName)
			if err != nil {
				t.Fatalf("example %s has no usable test file: %v", pf, err)
			}
			c := mustCompile(t, pf)
			for _, r := range tf.Run(c) {
				if !r.Pass {
					t.Errorf("%s:%d: %s: %s", tfName, r.Case.Line, r.Case.Name, r.Why)
				}
			}
		})
	}
}

// TestPolicyTestFailures: a wrong expectation, a wrong rule and an unknown rule fail; bad test files are
// refused with their line.
func TestPolicyTestFailures(t *testing.T) {
	c := mustCompile(t, "../../policies/baseline.yaml")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("apiVersion: crs-ci/v1\nkind: PolicyTest\ntests:\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	failing := []struct {
		name, body, why string
	}{
		{"wrong action", "  - {op: read, path: /etc/shadow, expect: allow}\n", "want allow, got deny"},
		{"wrong rule", "  - {op: read, path: /etc/shadow, expect: deny, rule: protect-probe}\n", `by rule "no-secrets"`},
		{"unknown rule", "  - {op: read, path: /etc/shadow, expect: deny, rule: no-secret}\n", `did you mean "no-secrets"`},
		{"default expected", "  - {op: read, path: /etc/shadow, expect: deny, rule: default}\n", "got deny by rule"},
	}
	for i, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			tf, err := ParseTestFile(write("f"+string(rune('a'+i))+".test.yaml", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			res := tf.Run(c)
			if len(res) != 1 || res[0].Pass || !strings.Contains(res[0].Why, tt.why) {
				t.Fatalf("want one failure mentioning %q, got %+v", tt.why, res)
			}
		})
	}
	bad := []struct {
		name, body, msg string
	}{
		{"unknown op", "  - {op: opne, path: /a, expect: allow}\n", `op "opne"`},
		{"relative path", "  - {op: read, path: etc/a, expect: allow}\n", "absolute path"},
		{"bad address", "  - {op: connect, address: example.com:80, expect: allow}\n", "IP:PORT"},
		{"bad expect", "  - {op: read, path: /a, expect: block}\n", `expect "block"`},
		{"unknown key", "  - {op: read, path: /a, expect: allow, rules: x}\n", `did you mean "rule"`},
		{"unknown syscall", "  - {op: syscall, syscall: ptrce, expect: allow}\n", `"ptrace"`},
		{"duplicate name", "  - {name: a, op: read, path: /a, expect: allow}\n  - {name: a, op: read, path: /b, expect: allow}\n", "twice"},
	}
	for i, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTestFile(write("b"+string(rune('a'+i))+".test.yaml", tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), ".test.yaml:") {
				t.Fatalf("want an error naming the file and %q, got %v", tt.msg, err)
			}
		})
	}
}
