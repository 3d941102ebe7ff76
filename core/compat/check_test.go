package compat

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// fixtureProbes serves the probes compiled from testdata/probe*.c the way the real ones are built, so the
// tests exercise the verdict on real needs read with probe.Analyze. There is no musl probe for arm64, as
// in the real build.
func fixtureProbes(t testing.TB) func(libc, arch string) (*probe.Artifact, error) {
	t.Helper()
	arts := map[string]*probe.Artifact{}
	for _, k := range []string{"glibc-amd64", "glibc-arm64", "musl-amd64"} {
		b, err := os.ReadFile(fixture(t, "probe-"+k+".so"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := probe.Analyze(b)
		if err != nil {
			t.Fatal(err)
		}
		a.Libc, a.Arch, _ = strings.Cut(k, "-")
		a.File = probe.FileName(a.Libc, a.Arch)
		arts[k] = a
	}
	return func(libc, arch string) (*probe.Artifact, error) {
		if a, ok := arts[libc+"-"+arch]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("no probe built for %s on %s", libc, arch)
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readHost(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rootImage is an image of a real root filesystem (one layer, cached by testenv) plus upper layers.
func rootImage(t testing.TB, rootfs string, plat v1.Platform, cfg v1.Config, upper ...[]testenv.File) v1.Image {
	t.Helper()
	img := testenv.ImageFromLayers(t, cfg, plat, testenv.LayerFromDir(t, testenv.Rootfs(t, rootfs)))
	for _, files := range upper {
		img = testenv.AddLayer(img, files...)
	}
	return img
}

// muslImage is a small real musl image: Debian's musl loader, a musl-gcc-built program, busybox-static.
func muslImage(t testing.TB, cfg v1.Config) v1.Image {
	t.Helper()
	return testenv.ImageFromLayers(t, cfg, amd64, testenv.LayerFromFiles(
		testenv.Dir("/lib"), testenv.Dir("/usr/lib/x86_64-linux-musl"), testenv.Dir("/bin"), testenv.Dir("/app"),
		testenv.Exec("/usr/lib/x86_64-linux-musl/libc.so", readHost(t, "/usr/lib/x86_64-linux-musl/libc.so")),
		testenv.Symlink("/lib/ld-musl-x86_64.so.1", "/usr/lib/x86_64-linux-musl/libc.so"),
		testenv.Exec("/bin/busybox", readHost(t, "/bin/busybox")),
		testenv.Symlink("/bin/sh", "busybox"),
		testenv.Exec("/app/hello", readFixture(t, "hello-musl")),
	))
}

// staticImage is busybox-static alone.
func staticImage(t testing.TB) v1.Image {
	t.Helper()
	return testenv.ImageFromLayers(t, v1.Config{Cmd: []string{"/bin/sh"}}, amd64, testenv.LayerFromFiles(
		testenv.Dir("/bin"),
		testenv.Exec("/bin/busybox", readHost(t, "/bin/busybox")),
		testenv.Symlink("/bin/sh", "busybox"),
		testenv.Symlink("/bin/ls", "/bin/busybox"),
	))
}

var (
	cacheOnce sync.Once
	cacheDir  string
)

func testCacheDir(t testing.TB) string {
	cacheOnce.Do(func() {
		var err error
		if cacheDir, err = os.MkdirTemp("", "crs-compat-cache-"); err != nil {
			t.Fatal(err)
		}
	})
	return cacheDir
}

func checkOne(t testing.TB, img v1.Image, opts Options) Result {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pi := image.PlatformImage{
		Platform:   v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		Descriptor: v1.Descriptor{Digest: d},
		Image:      img,
	}
	if opts.Probes == nil {
		opts.Probes = fixtureProbes(t)
	}
	if opts.CacheDir == "" && !opts.NoCache {
		// One facts cache per test binary: each real root filesystem layer is scanned once, then read back.
		opts.CacheDir = testCacheDir(t)
	}
	res, err := CheckImage(context.Background(), pi, opts)
	if err != nil {
		t.Fatalf("CheckImage: %v", err)
	}
	return res
}

// expect is what a check must find for one image.
type expect struct {
	verdict   string
	family    string
	version   string
	build     string // substring of the libc build string
	libcPath  string
	kind      string   // entrypoint kind
	epPath    string   // resolved entrypoint
	codes     []string // finding codes, in any order, each with its severity: "CRS-C020:warning"
	msg       []string // substrings some finding's message must contain
	probeLibc string
	preload   []string
}

func (e expect) verify(t *testing.T, r Result) {
	t.Helper()
	p := r.Platform
	if p.Verdict != e.verdict {
		t.Errorf("verdict %s, want %s; findings: %s", p.Verdict, e.verdict, findingsString(p.Findings))
	}
	if p.Libc.Family != e.family || p.Libc.Version != e.version {
		t.Errorf("libc %s %s, want %s %s", p.Libc.Family, p.Libc.Version, e.family, e.version)
	}
	if !strings.Contains(p.Libc.Build, e.build) || (e.build == "" && p.Libc.Build != "" && e.family != "musl") {
		t.Errorf("libc build %q, want it to contain %q", p.Libc.Build, e.build)
	}
	if e.libcPath != "" && p.Libc.Path != e.libcPath {
		t.Errorf("libc path %q, want %q", p.Libc.Path, e.libcPath)
	}
	if e.kind != "" && (p.Entrypoint == nil || p.Entrypoint.Kind != e.kind) {
		t.Errorf("entrypoint %+v, want kind %s", p.Entrypoint, e.kind)
	}
	if e.epPath != "" && (p.Entrypoint == nil || p.Entrypoint.Path != e.epPath) {
		t.Errorf("entrypoint %+v, want path %s", p.Entrypoint, e.epPath)
	}
	var got []string
	for _, f := range p.Findings {
		got = append(got, f.Code+":"+f.Severity)
	}
	want := slices.Clone(e.codes)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v:\n%s", got, want, findingsString(p.Findings))
	}
	for _, m := range e.msg {
		if !strings.Contains(findingsString(p.Findings), m) {
			t.Errorf("no finding says %q:\n%s", m, findingsString(p.Findings))
		}
	}
	if r.Libc != e.probeLibc {
		t.Errorf("probe libc %q, want %q", r.Libc, e.probeLibc)
	}
	if !slices.Equal(r.Preload, e.preload) {
		t.Errorf("preload %q, want %q", r.Preload, e.preload)
	}
}

func findingsString(fs []report.Finding) string {
	var sb strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&sb, "  %s %s %s: %s\n", f.Severity, f.Code, f.Path, f.Message)
	}
	return sb.String()
}

const (
	libcAmd64 = "/usr/lib/x86_64-linux-gnu/libc.so.6" // merged /usr (bookworm and later)
)

// realCases are the real-image cases: each builds an image, checks it in-process, and (in TestCheckCLI)
// with bin/crs-ci on an OCI layout.
type realCase struct {
	name  string
	image func(t testing.TB) v1.Image
	opts  Options
	want  expect
}

var (
	realCasesOnce sync.Once
	realCasesList []realCase
)

func realCases() []realCase {
	realCasesOnce.Do(func() { realCasesList = buildRealCases() })
	return realCasesList
}

func buildRealCases() []realCase {
	bash := v1.Config{Cmd: []string{"/bin/bash"}}
	return []realCase{
		{"xenial", func(t testing.TB) v1.Image { return rootImage(t, "xenial", amd64, bash) }, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.23", build: "Ubuntu GLIBC 2.23",
				libcPath: "/lib/x86_64-linux-gnu/libc-2.23.so", kind: KindDynamicGlibc, epPath: "/bin/bash", probeLibc: "glibc"}},
		{"bullseye", func(t testing.TB) v1.Image {
			return rootImage(t, "bullseye", amd64, v1.Config{Cmd: []string{"bash"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
		}, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.31", build: "Debian GLIBC 2.31",
				libcPath: "/usr/lib/x86_64-linux-gnu/libc-2.31.so", kind: KindDynamicGlibc, epPath: "/usr/bin/bash", probeLibc: "glibc"}},
		{"bookworm shell form", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Cmd: []string{"/bin/sh", "-c", "echo hello"}})
		}, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/dash", codes: []string{"CRS-C042:info"}, probeLibc: "glibc"}},
		{"trixie", func(t testing.TB) v1.Image { return rootImage(t, "trixie", amd64, bash) }, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.41", build: "Debian GLIBC 2.41", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/bash", probeLibc: "glibc"}},
		{"bookworm arm64", func(t testing.TB) v1.Image { return rootImage(t, "bookworm-arm64", arm64, bash) }, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36",
				libcPath: "/usr/lib/aarch64-linux-gnu/libc.so.6", kind: KindDynamicGlibc, epPath: "/usr/bin/bash", probeLibc: "glibc"}},
		{"musl", func(t testing.TB) v1.Image { return muslImage(t, v1.Config{Entrypoint: []string{"/app/hello"}}) }, Options{},
			expect{verdict: "compatible", family: "musl", version: "1.2.3", libcPath: "/usr/lib/x86_64-linux-musl/libc.so",
				kind: KindDynamicMusl, epPath: "/app/hello", probeLibc: "musl"}},
		{"static only", staticImage, Options{},
			expect{verdict: "incompatible", family: "none", kind: KindStatic, epPath: "/bin/busybox",
				codes: []string{"CRS-C020:error", "CRS-C010:error"}, msg: []string{"/bin/busybox is statically linked"}}},
		{"static only allowed", staticImage, Options{AllowUnhookableEntrypoint: true},
			expect{verdict: "incompatible", family: "none", kind: KindStatic, epPath: "/bin/busybox",
				codes: []string{"CRS-C020:warning", "CRS-C010:error"}}},
		{"go entrypoint", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"/app/server"}},
				[]testenv.File{testenv.Dir("/app"), testenv.Exec("/app/server", readFixture(t, "hello-go"))})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindGo, epPath: "/app/server", codes: []string{"CRS-C021:error", "CRS-C043:info"},
				msg: []string{"/app/server is a Go program"}, probeLibc: "glibc"}},
		{"go entrypoint allowed", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"/app/server"}},
				[]testenv.File{testenv.Dir("/app"), testenv.Exec("/app/server", readFixture(t, "hello-go"))})
		}, Options{AllowUnhookableEntrypoint: true},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindGo, epPath: "/app/server", codes: []string{"CRS-C021:warning", "CRS-C043:info"}, probeLibc: "glibc"}},
		{"libc whited out", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, bash, []testenv.File{testenv.Whiteout(libcAmd64)})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", kind: KindDynamicGlibc, epPath: "/usr/bin/bash",
				codes: []string{"CRS-C012:error", "CRS-C013:error"}, msg: []string{"libc.so.6 (needed by the image) is not in the library search path"},
				probeLibc: "glibc"}},
		{"symlinked entrypoint", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"app"}, Env: []string{"PATH=/opt/bin:/usr/bin"}},
				[]testenv.File{testenv.Dir("/opt"), testenv.Dir("/opt/bin"), testenv.Symlink("/opt/bin/app", "../../srv/current"),
					testenv.Dir("/srv"), testenv.Symlink("/srv/current", "/bin/ls")})
		}, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/ls", probeLibc: "glibc"}},
		{"script entrypoint", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"/app/start.sh"}, Cmd: []string{"--serve"}},
				[]testenv.File{testenv.Dir("/app"), testenv.Exec("/app/start.sh", []byte("#!/usr/bin/env bash\nexec sleep 1\n"))})
		}, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/bash", codes: []string{"CRS-C041:info", "CRS-C041:info"},
				msg: []string{"/app/start.sh is a script run by /usr/bin/env", "/usr/bin/env runs bash"}, probeLibc: "glibc"}},
		{"synthetic libc lacking the probe's versions", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, bash, []testenv.File{testenv.Reg(libcAmd64, readFixture(t, "fakelibc.so.6"))})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", version: "2.17", libcPath: libcAmd64, kind: KindDynamicGlibc,
				epPath: "/usr/bin/bash", codes: []string{"CRS-C014:error"},
				msg: []string{"version `GLIBC_2.2.5' not found in /usr/lib/x86_64-linux-gnu/libc.so.6"}, probeLibc: "glibc"}},
		{"foreign entrypoint", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"/app/hello"}},
				[]testenv.File{testenv.Dir("/app"), testenv.Exec("/app/hello", readFixture(t, "hello-arm64"))})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindForeignArch, epPath: "/app/hello", codes: []string{"CRS-C024:error", "CRS-C043:info"},
				msg: []string{"/app/hello is built for EM_AARCH64"}, probeLibc: "glibc"}},
		{"malformed libc", func(t testing.TB) v1.Image {
			bad := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 100)...)
			return rootImage(t, "bookworm", amd64, bash, []testenv.File{testenv.Reg(libcAmd64, bad)})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", kind: KindDynamicGlibc, epPath: "/usr/bin/bash",
				codes: []string{"CRS-C016:error", "CRS-C016:error"}, msg: []string{libcAmd64 + " (libc.so.6, needed by the image) is not a valid ELF library"}, probeLibc: "glibc"}},
		{"loader symlink loop", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, bash, []testenv.File{
				testenv.Symlink("/usr/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/bash", codes: []string{"CRS-C017:error"},
				msg: []string{"resolving the dynamic loader /lib64/ld-linux-x86-64.so.2", "too many levels of symbolic links"}, probeLibc: "glibc"}},
		{"ld.so.preload kept", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, bash, []testenv.File{
				testenv.Reg("/etc/ld.so.preload", []byte("/usr/lib/x86_64-linux-gnu/libz.so.1\n/opt/missing.so /usr/lib/crs-ci/probe.so\n"))})
		}, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindDynamicGlibc, epPath: "/usr/bin/bash", codes: []string{"CRS-C050:info", "CRS-C051:warning"},
				msg: []string{"/opt/missing.so, which is not in the image"}, probeLibc: "glibc",
				preload: []string{"/usr/lib/x86_64-linux-gnu/libz.so.1", "/opt/missing.so"}}},
		{"no entrypoint", func(t testing.TB) v1.Image { return rootImage(t, "bookworm", amd64, v1.Config{}) }, Options{},
			expect{verdict: "compatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindMissing, codes: []string{"CRS-C030:warning", "CRS-C043:info"}, probeLibc: "glibc"}},
		{"entrypoint not found", func(t testing.TB) v1.Image {
			return rootImage(t, "bookworm", amd64, v1.Config{Entrypoint: []string{"nginx"}})
		}, Options{},
			expect{verdict: "incompatible", family: "glibc", version: "2.36", build: "Debian GLIBC 2.36", libcPath: libcAmd64,
				kind: KindNotFound, codes: []string{"CRS-C022:error", "CRS-C043:info"}, msg: []string{`"nginx" is not an executable file`}, probeLibc: "glibc"}},
		{"unsupported architecture", func(t testing.TB) v1.Image {
			return testenv.ImageFromLayers(t, bash, v1.Platform{OS: "linux", Architecture: "s390x"},
				testenv.LayerFromFiles(testenv.Dir("/bin")))
		}, Options{},
			expect{verdict: "incompatible", family: "none", codes: []string{"CRS-C001:error"}, msg: []string{"no probe exists for linux/s390x"}}},
	}
}

// TestCheckImages checks every real-image case in-process and asserts the verdict and the reasons.
func TestCheckImages(t *testing.T) {
	for _, tc := range realCases() {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.verify(t, checkOne(t, tc.image(t), tc.opts))
		})
	}
}

// TestCheckMultiArchIndex checks an index of bookworm amd64 and arm64 (both platforms selected) and a musl
// arm64 platform for which no probe is built.
func TestCheckMultiArchIndex(t *testing.T) {
	bash := v1.Config{Cmd: []string{"/bin/bash"}}
	idx := testenv.Index(t, rootImage(t, "bookworm", amd64, bash), rootImage(t, "bookworm-arm64", arm64, bash))
	dir := t.TempDir()
	ref := testenv.WriteOCI(t, idx, dir, "multi")
	src, err := image.Open(context.Background(), ref, image.Options{Platform: "all"})
	if err != nil {
		t.Fatal(err)
	}
	rep, results, err := Check(context.Background(), src, Options{Probes: fixtureProbes(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != report.Compatible || rep.Command != "check" || len(rep.Platforms) != 2 || len(results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		p := rep.Platforms[i]
		if p.Platform != want || p.Verdict != report.Compatible || p.Libc.Version != "2.36" || results[i].Arch != strings.TrimPrefix(want, "linux/") {
			t.Errorf("platform %d: %+v (arch %s)", i, p, results[i].Arch)
		}
		if d := results[i].Image.Descriptor.Digest.String(); p.Digest != d || d == "" {
			t.Errorf("platform %d digest %q, descriptor %q", i, p.Digest, d)
		}
	}
	if rep.Digest != src.Digest.String() || !strings.HasPrefix(rep.Image, "oci:") {
		t.Errorf("report image %q digest %q", rep.Image, rep.Digest)
	}
}

// TestCheckNoProbeBuild: a supported architecture with a libc family for which no probe was built.
func TestCheckNoProbeBuild(t *testing.T) {
	probes := fixtureProbes(t)
	only := func(libc, arch string) (*probe.Artifact, error) {
		if libc == probe.Musl {
			return nil, fmt.Errorf("no probe built for musl on %s", arch)
		}
		return probes(libc, arch)
	}
	r := checkOne(t, muslImage(t, v1.Config{Entrypoint: []string{"/app/hello"}}), Options{Probes: only})
	expect{verdict: "incompatible", family: "musl", version: "1.2.3", libcPath: "/usr/lib/x86_64-linux-musl/libc.so",
		kind: KindDynamicMusl, epPath: "/app/hello", codes: []string{"CRS-C002:error"}, msg: []string{"no probe built for musl"}}.verify(t, r)
}
