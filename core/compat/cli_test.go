package compat

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/report"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// crsCI builds bin/crs-ci once per test binary (into a temporary directory, as `make build` does it:
// static, CGO off) and returns its path.
func crsCI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crs-compat-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "crs-ci")
		cmd := exec.Command("go", "build", "-o", cliPath, "./core/cmd/crs-ci")
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if cliErr != nil {
		t.Fatalf("building crs-ci: %v", cliErr)
	}
	return cliPath
}

type cliRun struct {
	code           int
	stdout, stderr string
	maxRSSKiB      int64
}

func runCLI(t testing.TB, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(crsCI(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running crs-ci: %v", err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSKiB = ru.Maxrss
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("crs-ci printed a panic trace:\n%s", r.stderr)
	}
	return r
}

// TestCheckCLI runs `crs-ci check oci:DIR:REF --format json` on every real-image case (all in one OCI
// layout, so the root filesystem blobs are written once) and asserts the exit code, verdict, libc family
// and version, entrypoint and finding codes — decided by the probes embedded in the binary.
func TestCheckCLI(t *testing.T) {
	layout := t.TempDir()
	cache := t.TempDir()
	for i, tc := range realCases() {
		t.Run(tc.name, func(t *testing.T) {
			ref := testenv.WriteOCI(t, tc.image(t), layout, fmt.Sprintf("case%02d", i))
			args := []string{"check", ref, "--format", "json", "--cache-dir", cache, "--ci", "none"}
			if tc.opts.AllowUnhookableEntrypoint {
				args = append(args, "--allow-unhookable-entrypoint")
			}
			r := runCLI(t, args...)
			want := 0
			if tc.want.verdict != report.Compatible {
				want = 1
			}
			if r.code != want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
			}
			var rep report.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("stdout is not a JSON report: %v\n%s", err, r.stdout)
			}
			if rep.SchemaVersion != 1 || rep.Command != "check" || rep.Image != ref || !strings.HasPrefix(rep.Digest, "sha256:") ||
				rep.Verdict != tc.want.verdict || len(rep.Platforms) != 1 {
				t.Fatalf("report header %+v", rep)
			}
			res := Result{Platform: rep.Platforms[0], Libc: tc.want.probeLibc, Preload: tc.want.preload}
			tc.want.verify(t, res)
			if want == 1 && !strings.Contains(r.stderr, "is incompatible with the probe") {
				t.Errorf("stderr does not say why the exit code is 1:\n%s", r.stderr)
			}
		})
	}
}

// TestCheckCLIOutputs: text on stdout, json and markdown report files from one run, the quiet progress
// lines on a non-terminal stderr, and the cached re-check giving the same report.
func TestCheckCLIOutputs(t *testing.T) {
	dir := t.TempDir()
	ref := testenv.WriteOCI(t, rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"/app/server"}},
		[]testenv.File{testenv.Dir("/app"), testenv.Exec("/app/server", readFixture(t, "hello-go"))}), filepath.Join(dir, "layout"), "")
	cache := filepath.Join(dir, "cache")
	jsonPath, mdPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	r := runCLI(t, "check", ref, "--cache-dir", cache, "--ci", "none", "--report", "json="+jsonPath, "--report", "markdown="+mdPath)
	if r.code != 1 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"verdict: INCOMPATIBLE", "linux/amd64: INCOMPATIBLE", "libc:       glibc 2.36 (/usr/lib/x86_64-linux-gnu/libc.so.6)",
		"libc build: GNU C Library (Debian GLIBC 2.36", "entrypoint: /app/server [go]", "error   CRS-C021 /app/server: /app/server is a Go program"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "linux/amd64: incompatible (") || strings.Contains(r.stderr, "layer 1") {
		t.Errorf("stderr should hold the quiet per-platform line only:\n%s", r.stderr)
	}
	var rep report.Report
	b, err := os.ReadFile(jsonPath)
	if err != nil || json.Unmarshal(b, &rep) != nil || rep.Verdict != report.Incompatible || rep.Platforms[0].Libc.Version != "2.36" {
		t.Errorf("json report %s: %v %s", jsonPath, err, b)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil || !strings.Contains(string(md), "## crs-ci check: ❌ incompatible") || !strings.Contains(string(md), "| ❌ error | CRS-C021 | `/app/server` |") {
		t.Errorf("markdown report %s: %v\n%s", mdPath, err, md)
	}
	// The cache now holds the layers' facts: the same verdict comes back, byte for byte.
	again := runCLI(t, "check", ref, "--cache-dir", cache, "--ci", "none", "--format", "json")
	nocache := runCLI(t, "check", ref, "--no-cache", "--ci", "none", "--format", "json")
	if again.stdout != string(b) || nocache.stdout != string(b) {
		t.Errorf("cached or uncached re-check differs from the first report:\nfirst:\n%s\ncached:\n%s\nuncached:\n%s", b, again.stdout, nocache.stdout)
	}
	if entries, _ := filepath.Glob(filepath.Join(cache, "layers", "*", "*")); len(entries) < 2 {
		t.Errorf("cache %s holds %d layer files, want one per layer", cache, len(entries))
	}
}

// TestCheckCLIUsage: wrong invocations are usage errors (exit 2), never a verdict.
func TestCheckCLIUsage(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"check"}, "takes one IMAGE argument"},
		{[]string{"check", "a", "b"}, "takes one IMAGE argument"},
		{[]string{"check", "oci:/nonexistent", "--format", "yaml"}, "--format"},
		{[]string{"check", "oci:/nonexistent", "--report", "pdf=x.pdf"}, "unknown format"},
		{[]string{"check", "oci:/nonexistent", "--report", "json"}, "FORMAT=PATH"},
		{[]string{"check", "--bogus", "x"}, "bogus"},
		{[]string{"check", "oci:/x", "--bogus"}, "flag provided but not defined: --bogus"},
		{[]string{"check", "oci:"}, "needs a directory path"},
		{[]string{"check", "bad ref with spaces"}, "not a registry reference"},
		{[]string{"check", "oci:/x", "--max-layer-bytes", "-5"}, "--max-layer-bytes"},
	}
	for _, tt := range tests {
		r := runCLI(t, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%v: exit %d, want 2 with %q\n%s", tt.args, r.code, tt.msg, r.stderr)
		}
	}
}

// TestCheckCLIMultiArch: --platform all checks every platform of an index; one platform can be chosen;
// a platform the index lacks is a usage error naming what it has.
func TestCheckCLIMultiArch(t *testing.T) {
	bash := v1.Config{Cmd: []string{"/bin/bash"}}
	idx := testenv.Index(t, rootImage(t, "bookworm", amd64, bash), rootImage(t, "bookworm-arm64", arm64, bash),
		testenv.ImageFromLayers(t, bash, v1.Platform{OS: "linux", Architecture: "s390x"}, testenv.LayerFromFiles(testenv.Dir("/bin"))))
	ref := testenv.WriteOCI(t, idx, t.TempDir(), "multi")
	cache := t.TempDir()
	tests := []struct {
		platform  string
		code      int
		platforms []string // platform:verdict
		msg       string
	}{
		{"all", 1, []string{"linux/amd64:compatible", "linux/arm64:compatible", "linux/s390x:incompatible"}, ""},
		{"linux/arm64", 0, []string{"linux/arm64:compatible"}, ""},
		{"linux/amd64", 0, []string{"linux/amd64:compatible"}, ""},
		{"linux/ppc64le", 2, nil, "linux/s390x"},
	}
	for _, tt := range tests {
		r := runCLI(t, "check", ref, "--platform", tt.platform, "--format", "json", "--cache-dir", cache, "--ci", "none")
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Fatalf("--platform %s: exit %d, want %d with %q\n%s\n%s", tt.platform, r.code, tt.code, tt.msg, r.stdout, r.stderr)
		}
		if tt.platforms == nil {
			continue
		}
		var rep report.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("--platform %s: %v\n%s", tt.platform, err, r.stdout)
		}
		var got []string
		for _, p := range rep.Platforms {
			got = append(got, p.Platform+":"+p.Verdict)
			if p.Verdict == report.Compatible && (p.Libc.Family != "glibc" || p.Libc.Version != "2.36") {
				t.Errorf("--platform %s: %s libc %+v", tt.platform, p.Platform, p.Libc)
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.platforms, " ") {
			t.Errorf("--platform %s: platforms %v, want %v", tt.platform, got, tt.platforms)
		}
	}
}

// TestCheckCLIHostile: corrupt and hostile images end with exit 3 and a message naming the problem, in
// bounded memory.
func TestCheckCLIHostile(t *testing.T) {
	good := func(t *testing.T) v1.Image {
		return muslImage(t, v1.Config{Entrypoint: []string{"/app/hello"}})
	}
	topLayerBlob := func(t *testing.T, dir string, img v1.Image) string {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		d, err := ls[len(ls)-1].Digest()
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
	}
	tests := []struct {
		name   string
		build  func(t *testing.T, dir string) string // returns the reference
		args   []string
		code   int
		msg    []string
		maxRSS int64 // KiB; 0 = not checked
	}{
		{name: "truncated layer", build: func(t *testing.T, dir string) string {
			img := good(t)
			ref := testenv.WriteOCI(t, img, dir, "")
			p := topLayerBlob(t, dir, img)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return ref
		}, code: 3, msg: []string{"reading the layers of linux/amd64", "truncated"}},
		{name: "layer digest mismatch", build: func(t *testing.T, dir string) string {
			img := good(t)
			ref := testenv.WriteOCI(t, img, dir, "")
			p := topLayerBlob(t, dir, img)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x55
			os.WriteFile(p, b, 0o644)
			return ref
		}, code: 3, msg: []string{"reading the layers of linux/amd64"}},
		{name: "path traversal", build: func(t *testing.T, dir string) string {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "../../etc/evil", Typeflag: tar.TypeReg, Size: 2, Mode: 0o755})
			tw.Write([]byte("hi"))
			tw.Close()
			l, err := tarball.LayerFromOpener(func() (r io.ReadCloser, err error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil },
				tarball.WithMediaType(types.OCIUncompressedLayer))
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutateAppend(good(t), l)
			if err != nil {
				t.Fatal(err)
			}
			return testenv.WriteOCI(t, img, dir, "")
		}, code: 3, msg: []string{"../../etc/evil"}},
		{name: "gzip bomb stopped by the layer limit", build: bombImage, args: []string{"--max-layer-bytes", "268435456"},
			code: 3, msg: []string{"reading the layers of linux/amd64", "268435456"}},
		{name: "gzip bomb read in bounded memory", build: bombImage, code: 0, maxRSS: 200 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := tt.build(t, dir)
			r := runCLI(t, append([]string{"check", ref, "--no-cache", "--ci", "none"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, m := range tt.msg {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr lacks %q:\n%s", m, r.stderr)
				}
			}
			if tt.maxRSS > 0 && r.maxRSSKiB > tt.maxRSS {
				t.Errorf("peak memory %d KiB, want at most %d KiB", r.maxRSSKiB, tt.maxRSS)
			}
		})
	}
}

// bombImage is the musl image with one more layer holding a 1 GiB executable file of zeros (1 MiB
// compressed) and a 100 MiB ELF program (analysed from its headers and a streamed search): neither may be held in memory.
func bombImage(t *testing.T, dir string) string {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	zero := make([]byte, 1<<20)
	tw.WriteHeader(&tar.Header{Name: "usr/bin/zeros", Typeflag: tar.TypeReg, Size: 1 << 30, Mode: 0o755})
	for i := 0; i < 1<<10; i++ {
		tw.Write(zero)
	}
	tw.WriteHeader(&tar.Header{Name: "usr/bin/bigelf", Typeflag: tar.TypeReg, Size: 100 << 20, Mode: 0o755})
	hello := readFixture(t, "hello-glibc")
	tw.Write(hello)
	left := int64(100<<20) - int64(len(hello))
	for left > 0 {
		n := min(left, int64(len(zero)))
		tw.Write(zero[:n])
		left -= n
	}
	tw.Close()
	zw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutateAppend(muslImage(t, v1.Config{Entrypoint: []string{"/app/hello"}}), l)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.WriteOCI(t, img, dir, "")
}

func mutateAppend(img v1.Image, l v1.Layer) (v1.Image, error) { return mutate.AppendLayers(img, l) }
