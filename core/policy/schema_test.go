package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/report"
)

const schemaPath = "../../policies/crs-ci-policy.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaPath, err)
	}
	return sch
}

// yamlToInstance converts a YAML document to the JSON value an editor's YAML language server checks.
// ok is false when the file is not YAML that decodes to a value (syntax, encoding, duplicate keys...).
func yamlToInstance(data []byte) (any, bool) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil || v == nil {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	return inst, err == nil
}

// structural are the codes a JSON Schema can express; a policy with any of them must be refused by the
// schema too. The other codes (values inside strings such as CIDR host bits or reversed ranges,
// references between parts such as lists and duplicate rule names, and YAML-level problems) are the
// validator's alone: the schema may miss them, and docs/policy-reference.md says so.
var structural = map[string]bool{
	"unknown-key": true, "wrong-type": true, "bad-value": true, "missing-field": true, "no-category": true,
	"multiple-categories": true, "relative-path": true, "nested-list": true, "unknown-syscall": true,
	"bad-name": true, "unix-with-ip": true,
}

// yamlLevel reports whether a code is about the YAML text rather than the policy in it.
func yamlLevel(codes []string) bool {
	for _, c := range codes {
		switch c {
		case "yaml-syntax", "not-utf8", "duplicate-key", "unsupported-yaml", "multiple-documents", "too-complex", "file-too-large", "empty-policy":
			return true
		}
	}
	return false
}

// TestSchemaAgreesWithValidator: the schema accepts every good policy and example, and refuses every
// broken policy whose errors a schema can express.
func TestSchemaAgreesWithValidator(t *testing.T) {
	sch := compileSchema(t)
	good := append(corpus(t, "testdata/good"), examplePolicies(t)...)
	for _, f := range good {
		data, _ := os.ReadFile(f)
		inst, ok := yamlToInstance(data)
		if !ok {
			t.Errorf("%s: good policy does not decode as YAML", f)
			continue
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: the schema refuses a valid policy: %v", f, err)
		}
	}
	refusedBySchemaOnlyLoosely, checked := 0, 0
	for _, f := range corpus(t, "testdata/broken") {
		data, _ := os.ReadFile(f)
		_, fs := Parse(f, data)
		needs := false
		var codes []string
		for _, fd := range fs {
			if fd.Severity == report.Error {
				codes = append(codes, fd.Code)
				needs = needs || structural[fd.Code]
			}
		}
		inst, ok := yamlToInstance(data)
		if !ok || yamlLevel(codes) {
			continue // a YAML-level problem: editors show YAML errors themselves
		}
		checked++
		err := sch.Validate(inst)
		if needs && err == nil {
			sort.Strings(codes)
			t.Errorf("%s: the validator reports %v but the schema accepts it", filepath.Base(f), codes)
		}
		if !needs && err != nil {
			refusedBySchemaOnlyLoosely++
		}
	}
	if checked < 30 {
		t.Errorf("only %d broken policies were checked against the schema, want at least 30", checked)
	}
	t.Logf("%d broken policies checked; the schema also refused %d broken policies with validator-only errors", checked, refusedBySchemaOnlyLoosely)
}

// TestSchemaSyscallNames: the schema completes exactly the system calls the validator knows.
func TestSchemaSyscallNames(t *testing.T) {
	var s struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					AnyOf []struct {
						Items struct {
							AnyOf []struct {
								Enum []string `json:"enum"`
							} `json:"anyOf"`
						} `json:"items"`
						AnyOf []struct {
							Enum []string `json:"enum"`
						} `json:"anyOf"`
					} `json:"anyOf"`
				} `json:"properties"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	names := s.Defs["rule"].Properties["syscall"].Properties["names"].AnyOf[0].AnyOf[1].Enum
	want := syscallNames()
	if len(names) != len(want) {
		t.Fatalf("schema lists %d system calls, the validator knows %d", len(names), len(want))
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("schema syscall %d is %q, validator has %q", i, names[i], want[i])
		}
	}
}

// TestTestSchema: the PolicyTest schema accepts every example test file and refuses the shapes
// ParseTestFile refuses.
func TestTestSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../../policies/crs-ci-policy-test.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../policies/*.test.yaml")
	if len(files) < 4 {
		t.Fatalf("want the example test files, got %v", files)
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		inst, ok := yamlToInstance(data)
		if !ok {
			t.Fatalf("%s is not YAML", f)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if _, err := ParseTestFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	head := "apiVersion: crs-ci/v1\nkind: PolicyTest\ntests:\n"
	for _, bad := range []string{
		"  - {op: opne, path: /a, expect: allow}\n",
		"  - {op: read, expect: allow}\n",
		"  - {op: connect, address: example.com:80, expect: allow}\n",
		"  - {op: read, path: /a, expect: block}\n",
		"  - {op: read, path: /a, expect: allow, rules: x}\n",
		"  - {op: syscall, syscall: ptrce, expect: allow}\n",
	} {
		inst, _ := yamlToInstance([]byte(head + bad))
		if sch.Validate(inst) == nil {
			t.Errorf("the test schema accepts %q", bad)
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "x.test.yaml")
		os.WriteFile(p, []byte(head+bad), 0o644)
		if _, err := ParseTestFile(p); err == nil {
			t.Errorf("ParseTestFile accepts %q", bad)
		}
	}
}
