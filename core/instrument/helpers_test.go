package instrument

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/crs-ci/crs-ci/core/probe"
)

// Test probes: tiny shared libraries built here with the real toolchains (gcc, aarch64-linux-gnu-gcc,
// musl-gcc). They load like the real probe (DT_NEEDED libc, the baseline symbol versions) but hook nothing;
// the layer, config and push tests use them so they do not depend on the probe's progress. The end-to-end
// test uses the real embedded probe (probe.For).
var (
	testProbesOnce sync.Once
	testProbes     map[string]*probe.Artifact
	testProbesErr  error
)

func testProbesFor(t testing.TB) func(libc, arch string) (*probe.Artifact, error) {
	t.Helper()
	testProbesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crs-test-probes-")
		if err != nil {
			testProbesErr = err
			return
		}
		testProbes = map[string]*probe.Artifact{}
		for _, b := range []struct{ libc, arch, cc string }{
			{probe.Glibc, "amd64", "gcc"},
			{probe.Glibc, "arm64", "aarch64-linux-gnu-gcc"},
			{probe.Musl, "amd64", "musl-gcc"},
		} {
			src := filepath.Join(dir, b.libc+"-"+b.arch+".c")
			out := filepath.Join(dir, probe.FileName(b.libc, b.arch))
			code := fmt.Sprintf("const char crs_test_probe[] = \"crs-ci test probe %s/%s\";\nint crs_test_probe_marker(void) { return 42; }\n", b.libc, b.arch)
			if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
				testProbesErr = err
				return
			}
			cmd := exec.Command(b.cc, "-shared", "-fPIC", "-O2", "-Wl,--no-as-needed", "-Wl,--build-id=none", "-o", out, src)
			if msg, err := cmd.CombinedOutput(); err != nil {
				testProbesErr = fmt.Errorf("building the %s/%s test probe with %s: %v: %s", b.libc, b.arch, b.cc, err, msg)
				return
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				testProbesErr = err
				return
			}
			a, err := probe.Analyze(raw)
			if err != nil {
				testProbesErr = err
				return
			}
			a.Libc, a.Arch, a.File = b.libc, b.arch, probe.FileName(b.libc, b.arch)
			testProbes[b.libc+"/"+b.arch] = a
		}
	})
	if testProbesErr != nil {
		t.Fatal(testProbesErr)
	}
	return func(libc, arch string) (*probe.Artifact, error) {
		if a, ok := testProbes[libc+"/"+arch]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("no test probe for %s/%s", libc, arch)
	}
}
