package ci_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

var (
	imagesOnce sync.Once
	glibcRef   string // a real Debian bookworm image whose entrypoint is bash
	staticRef  string // busybox-static alone: the probe cannot see it
)

// images writes the two real images once per test binary into an OCI layout.
func images(t *testing.T) (glibc, static string) {
	imagesOnce.Do(func() {
		dir := filepath.Join(shared, "layout")
		amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
		bookworm := testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm"),
			v1.Config{Entrypoint: []string{"/bin/bash"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}, amd64)
		glibcRef = testenv.WriteOCI(t, bookworm, dir, "bookworm")
		busybox, err := os.ReadFile("/bin/busybox")
		if err != nil {
			t.Fatalf("busybox-static (make deps installs it): %v", err)
		}
		static := testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{"/bin/busybox", "sh"}}, amd64,
			testenv.LayerFromFiles(testenv.Dir("/bin"), testenv.Exec("/bin/busybox", busybox)))
		staticRef = testenv.WriteOCI(t, static, dir, "static")
	})
	if glibcRef == "" {
		t.Fatal("building the test images failed in an earlier test")
	}
	return glibcRef, staticRef
}

// TestCompositeImages runs the composite action's check and instrument (dry run) on real images and
// asserts the outputs, annotations and summary the real crs-ci wrote in the recreated runner.
func TestCompositeImages(t *testing.T) {
	builtBinary(t) // the action's own source build, shared with the other cases
	glibc, static := images(t)
	good, _ := filepath.Abs("testdata/good-policy.yaml")
	for _, tc := range []struct {
		name    string
		inputs  map[string]string
		code    int
		outputs map[string]string
		prefix  map[string]string // outputs that must start with
		log     []string
		notLog  []string
		summary []string
	}{
		{
			name:    "check: a bookworm image is compatible",
			inputs:  map[string]string{"command": "check", "image": glibc, "reports": "json=check.json\nsarif=check.sarif\njunit=check.xml"},
			outputs: map[string]string{"result": "passed", "verdict": "compatible", "exit-code": "0", "errors": "0", "layered-ref": ""},
			prefix:  map[string]string{"image-digest": "sha256:", "report-sarif": "/", "report-junit": "/"},
			notLog:  []string{"::error"},
			summary: []string{"compatible"},
		},
		{
			name:    "check: a static busybox image is rejected with an annotation naming the platform",
			inputs:  map[string]string{"command": "check", "image": static},
			code:    1,
			outputs: map[string]string{"result": "rejected", "verdict": "incompatible", "exit-code": "1"},
			log:     []string{"::error title=crs-ci ", "(linux/amd64)::", "crs-ci: rejected (exit 1)"},
			summary: []string{"incompatible"},
		},
		{
			name:    "check: allow-unhookable-entrypoint is passed through",
			inputs:  map[string]string{"command": "check", "image": static, "allow-unhookable-entrypoint": "true"},
			code:    -1, // the verdict may still reject for the missing libc; only the flag's effect on the log matters
			log:     []string{"--allow-unhookable-entrypoint"},
			outputs: map[string]string{},
		},
		{
			name: "instrument: a dry run writes the layered image and pushes nothing",
			inputs: map[string]string{"image": glibc, "policy": good, "dry-run": "true",
				"output": "oci:" + filepath.Join(shared, "layered"), "mode": "audit", "reports": "json=instrument.json"},
			outputs: map[string]string{"result": "passed", "verdict": "compatible", "layered-pushed": "false"},
			prefix:  map[string]string{"layered-digest": "sha256:", "report-json": "/"},
			log:     []string{"--dry-run", "--mode audit"},
			notLog:  []string{"::error"},
			summary: []string{"compatible"},
		},
		{
			name:    "check: an image that is not there is a tool error, with outputs saying so",
			inputs:  map[string]string{"command": "check", "image": "oci:" + filepath.Join(shared, "nothing-here")},
			code:    -2, // 2 or 3
			outputs: map[string]string{"result": "error", "verdict": "error"},
			log:     []string{"::error title=crs-ci tool error (exit", "not a policy verdict"},
			notLog:  []string{"rejected"},
			summary: []string{"tool error (exit"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t, repoRoot(t))
			res := r.run(viaRelease(t, r, tc.inputs))
			switch tc.code {
			case -1:
			case -2:
				if res.code != 2 && res.code != 3 {
					t.Fatalf("exit %d, want 2 or 3; log:\n%s", res.code, res.log)
				}
			default:
				if res.code != tc.code {
					t.Fatalf("exit %d, want %d; log:\n%s", res.code, tc.code, res.log)
				}
			}
			for k, v := range tc.outputs {
				if res.outputs[k] != v {
					t.Errorf("output %s = %q, want %q", k, res.outputs[k], v)
				}
			}
			for k, v := range tc.prefix {
				if !strings.HasPrefix(res.outputs[k], v) {
					t.Errorf("output %s = %q, want a value starting with %q", k, res.outputs[k], v)
				}
			}
			for _, s := range tc.log {
				if !strings.Contains(res.log, s) {
					t.Errorf("log lacks %q", s)
				}
			}
			for _, s := range tc.notLog {
				if strings.Contains(res.log, s) {
					t.Errorf("log has %q", s)
				}
			}
			for _, s := range tc.summary {
				if !strings.Contains(res.summary, s) {
					t.Errorf("summary lacks %q:\n%s", s, res.summary)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s\noutputs: %v", res.log, res.outputs)
			}
		})
	}
}
