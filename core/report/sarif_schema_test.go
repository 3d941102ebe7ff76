package report

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The OASIS SARIF 2.1.0 JSON schema, as Microsoft ships it in the npm package @microsoft/jest-sarif (the
// only channel for it this project's machines reach). The test fetches it once into the user cache.
const (
	sarifSchemaPackage = "@microsoft/jest-sarif@1.0.0-beta.0"
	sarifSchemaMember  = "package/lib/schemas/sarif-2.1.0-rtm.5.json"
)

func sarifSchemaFile(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "crs-ci", "sarif-schema")
	path := filepath.Join(dir, filepath.Base(sarifSchemaMember))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cmd := exec.Command("npm", "pack", "--silent", "--pack-destination", tmp, sarifSchemaPackage)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fetching the SARIF schema (npm pack %s): %v\n%s", sarifSchemaPackage, err, out)
	}
	tgz, err := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if err != nil || len(tgz) != 1 {
		t.Fatalf("npm pack %s left %v", sarifSchemaPackage, tgz)
	}
	f, err := os.Open(tgz[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no %s", sarifSchemaPackage, sarifSchemaMember)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != sarifSchemaMember {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
		return path
	}
}

// TestSARIFValidatesAgainstSchema renders every kind of report crs-ci produces as SARIF and validates it
// against the official SARIF 2.1.0 schema.
func TestSARIFValidatesAgainstSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(sarifSchemaFile(t))
	if err != nil {
		t.Fatalf("compiling the SARIF schema: %v", err)
	}
	reports := map[string]*Report{
		"policy invalid": {Command: "policy validate", Verdict: Invalid, Policies: []PolicyFile{
			{File: "policies/web.yaml", Verdict: Invalid, Findings: []Finding{
				{Code: "unknown-key", Severity: Error, Message: `unknown key "acess"`, File: "policies/web.yaml", Line: 12, Column: 7, Hint: `did you mean "access"?`},
				{Code: "shadowed-rule", Severity: Warning, Message: "rule b is never used", File: "policies/web.yaml", Line: 20, Column: 7},
			}},
			{File: "policies/ok.yaml", Name: "ok", Verdict: Valid, SHA256: "ab12"},
		}},
		"check incompatible": {Command: "check", Image: "registry.example/app:1", Digest: "sha256:00", Verdict: Incompatible,
			Platforms: []Platform{
				{Platform: "linux/amd64", Verdict: Incompatible, Libc: Libc{Family: "none"}, Findings: []Finding{
					{Code: "CRS-C020", Severity: Error, Message: "entrypoint is static", Path: "/app"},
					{Code: "info-thing", Severity: Info, Message: "fyi"},
				}},
				{Platform: "linux/arm64", Verdict: Compatible, Libc: Libc{Family: "glibc", Version: "2.36"}, Findings: []Finding{}},
			}},
		"instrument layered": {Command: "instrument", Image: "registry.example/app:1", Verdict: Compatible,
			Platforms: []Platform{{Platform: "linux/amd64", Verdict: Compatible, Findings: []Finding{}}},
			Layered:   &Layered{Ref: "registry.example/app:1-layered", Digest: "sha256:11", Pushed: true}},
		"empty": {Command: "check", Verdict: Compatible},
	}
	for name, r := range reports {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, "sarif", r); err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Fatalf("SARIF does not validate against the 2.1.0 schema: %v\n%s", err, buf.String())
			}
		})
	}
	// The schema must be able to refuse: a log with a result level SARIF does not define.
	var bad map[string]any
	var buf bytes.Buffer
	if err := Render(&buf, "sarif", reports["policy invalid"]); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf.Bytes(), &bad); err != nil {
		t.Fatal(err)
	}
	bad["runs"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)["level"] = "fatal"
	if err := sch.Validate(bad); err == nil {
		t.Fatal("the schema accepted a result with level \"fatal\": the validation proves nothing")
	}
}
