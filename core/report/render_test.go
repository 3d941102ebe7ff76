package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenReports are the inputs of the text and markdown golden tests: one per shape a command produces.
func goldenReports() map[string]*Report {
	return map[string]*Report{
		"check-compatible": {
			SchemaVersion: SchemaVersion, Command: "check", Image: "oci:/tmp/app:1.0",
			Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111", Verdict: Compatible,
			Platforms: []Platform{{
				Platform: "linux/amd64", Digest: "sha256:2222222222222222222222222222222222222222222222222222222222222222",
				Verdict: Compatible,
				Libc: Libc{Family: "glibc", Version: "2.36", Path: "/lib/x86_64-linux-gnu/libc.so.6",
					Build: "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36"},
				Entrypoint: &Entrypoint{Argv: []string{"/bin/sh", "-c", "echo hi"}, Path: "/usr/bin/dash", Kind: "dynamic-glibc"},
				Findings: []Finding{{Code: "CRS-C042", Severity: Info, Path: "/bin/sh",
					Message: "shell form: the shell is checked, the command it runs is not"}},
			}},
		},
		"check-incompatible-multi": {
			SchemaVersion: SchemaVersion, Command: "check", Image: "docker://127.0.0.1:5000/app:dev",
			Digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333", Verdict: Incompatible,
			Platforms: []Platform{
				{
					Platform: "linux/amd64", Verdict: Incompatible,
					Libc:       Libc{Family: "glibc", Version: "2.31", Path: "/lib/x86_64-linux-gnu/libc.so.6"},
					Entrypoint: &Entrypoint{Argv: []string{"/app/server"}, Path: "/app/server", Kind: "go"},
					Findings: []Finding{
						{Code: "CRS-C021", Severity: Error, Path: "/app/server",
							Message: "the entrypoint is a Go program: it makes system calls itself, the probe cannot see them",
							Hint:    "use --allow-unhookable-entrypoint if the programs it starts matter more"},
						{Code: "CRS-C014", Severity: Error, Path: "/lib/x86_64-linux-gnu/libc.so.6",
							Message: "version `GLIBC_2.99' not found (required by the probe) | pipes and *stars*"},
					},
				},
				{
					Platform: "linux/s390x", Verdict: Incompatible, Libc: Libc{Family: "none"},
					Findings: []Finding{{Code: "CRS-C001", Severity: Error,
						Message: "no probe exists for linux/s390x (probes exist for linux/amd64, linux/arm64)"}},
				},
			},
		},
		"policy-invalid": {
			SchemaVersion: SchemaVersion, Command: "policy validate", Verdict: Invalid,
			Policies: []PolicyFile{
				{File: "policies/web.yaml", Name: "web", Verdict: Valid,
					SHA256: "4444444444444444444444444444444444444444444444444444444444444444", Findings: []Finding{}},
				{File: "policies/bad.yaml", Verdict: Invalid, Findings: []Finding{
					{Code: "CRS-P001", Severity: Error, File: "policies/bad.yaml", Line: 3, Column: 7,
						Message: "unknown field \"actoin\"", Hint: "did you mean \"action\"?"},
					{Code: "CRS-P020", Severity: Warning, File: "policies/bad.yaml", Line: 12, Message: "rule is shadowed"},
				}},
			},
		},
		"instrument-layered": {
			SchemaVersion: SchemaVersion, Command: "instrument", Image: "127.0.0.1:5000/app:1.0", Verdict: Compatible,
			Layered: &Layered{Ref: "127.0.0.1:5000/app:1.0-layered",
				Digest: "sha256:5555555555555555555555555555555555555555555555555555555555555555", Pushed: true,
				Layers: []Layer{{Platform: "linux/amd64",
					Digest: "sha256:6666666666666666666666666666666666666666666666666666666666666666", Size: 41234}}},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, format := range []string{"text", "markdown"} {
		ext := map[string]string{"text": ".txt", "markdown": ".md"}[format]
		for name, r := range goldenReports() {
			t.Run(format+"/"+name, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Render(&buf, format, r); err != nil {
					t.Fatalf("Render: %v", err)
				}
				golden := filepath.Join("testdata", name+ext)
				if *update {
					if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("reading golden file (run go test ./core/report -update to create it): %v", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("%s output differs from %s (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s",
						format, golden, buf.String(), want)
				}
			})
		}
	}
}

// TestRenderContent checks facts the golden files must contain, so an -update cannot bless a regression.
func TestRenderContent(t *testing.T) {
	reports := goldenReports()
	tests := []struct {
		report, format string
		want           []string
		notWant        []string
	}{
		{"check-compatible", "text", []string{"verdict: COMPATIBLE", "glibc 2.36 (/lib/x86_64-linux-gnu/libc.so.6)",
			"libc build: GNU C Library (Debian GLIBC 2.36-9+deb12u4)", "/usr/bin/dash [dynamic-glibc]", "info    CRS-C042 /bin/sh:"}, nil},
		{"check-incompatible-multi", "text", []string{"verdict: INCOMPATIBLE", "linux/s390x: INCOMPATIBLE",
			"error   CRS-C021 /app/server:", "hint: use --allow-unhookable-entrypoint", "libc:       none"}, nil},
		{"check-incompatible-multi", "markdown", []string{"## crs-ci check: ❌ incompatible", "| linux/amd64 | ❌ incompatible | glibc 2.31 | `/app/server` go |",
			`\| pipes and \*stars\*`, "<br>hint: use --allow-unhookable-entrypoint"}, []string{"probe) | pipes"}},
		{"policy-invalid", "text", []string{"policies/bad.yaml:3:7: unknown field", "policies/bad.yaml:12: rule is shadowed",
			`policies/web.yaml: VALID (policy "web")`}, nil},
		{"policy-invalid", "markdown", []string{"| `policies/bad.yaml:3:7` |", "| `policies/web.yaml` | web | ✅ valid |"}, nil},
		{"instrument-layered", "text", []string{"layered image: 127.0.0.1:5000/app:1.0-layered (pushed)", "linux/amd64: layer sha256:6666"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.report+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, tt.format, reports[tt.report]); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(buf.String(), w) {
					t.Errorf("output has %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, os.ErrClosed
	}
	return len(p), nil
}

func TestRenderWriteError(t *testing.T) {
	for _, format := range []string{"text", "markdown"} {
		if err := Render(&failWriter{n: 2}, format, goldenReports()["check-incompatible-multi"]); err == nil {
			t.Errorf("%s: a failing writer gave no error", format)
		}
	}
}
