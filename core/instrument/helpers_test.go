package instrument

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
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

// minimalImage is an image holding only the given paths of a real root filesystem (and every directory
// and symlink on the way to them, so merged-/usr layouts stay intact): small real images for fast tests.
func minimalImage(t testing.TB, rootfs string, cfg v1.Config, plat v1.Platform, paths ...string) v1.Image {
	t.Helper()
	seen := map[string]bool{}
	var files []testenv.File
	var add func(p string, depth int)
	add = func(p string, depth int) {
		if depth > 40 {
			t.Fatalf("minimalImage: symlink loop at %s", p)
		}
		p = path.Clean(p)
		if p == "/" {
			return
		}
		// Resolve the parent first (it may be a symlink, e.g. /lib64 -> usr/lib64).
		parent := path.Dir(p)
		add(parent, depth+1)
		real := resolveIn(t, rootfs, parent)
		p = path.Join(real, path.Base(p))
		if seen[p] {
			return
		}
		seen[p] = true
		fi, err := os.Lstat(filepath.Join(rootfs, p))
		if err != nil {
			t.Fatalf("minimalImage: %v", err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(filepath.Join(rootfs, p))
			files = append(files, testenv.Symlink(p, target))
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			add(target, depth+1)
		case fi.IsDir():
			files = append(files, testenv.Dir(p))
		default:
			b, err := os.ReadFile(filepath.Join(rootfs, p))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, testenv.Reg(p, b).WithMode(int64(fi.Mode().Perm())))
		}
	}
	for _, p := range paths {
		add(p, 0)
	}
	return testenv.ImageFromLayers(t, cfg, plat, testenv.LayerFromFiles(files...))
}

// resolveIn resolves symlinks of an absolute path inside rootfs (targets relative to the rootfs).
func resolveIn(t testing.TB, rootfs, p string) string {
	out := "/"
	for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
		if c == "" {
			continue
		}
		next := path.Join(out, c)
		for i := 0; i < 40; i++ {
			fi, err := os.Lstat(filepath.Join(rootfs, next))
			if err != nil || fi.Mode()&os.ModeSymlink == 0 {
				break
			}
			target, _ := os.Readlink(filepath.Join(rootfs, next))
			if strings.HasPrefix(target, "/") {
				next = path.Clean(target)
			} else {
				next = path.Join(path.Dir(next), target)
			}
		}
		out = next
	}
	return out
}
