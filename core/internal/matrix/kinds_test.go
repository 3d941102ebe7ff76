package matrix

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
)

// The files every image of the matrix carries for the scenario.
const (
	secret      = "crs-matrix-secret-7f3a"
	public      = "crs-matrix-public-2b9c"
	scriptPath  = "/opt/matrix/scenario.sh"
	helperPath  = "/opt/matrix/scenario"   // testdata/scenario.c, built per kind
	goPath      = "/opt/matrix/goscenario" // testdata/goscenario
	fakeProg    = "/opt/matrix/fakeprog"   // testdata/fakeprog.c, linked against the synthetic libc
	defaultPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// kind is one row of the matrix: an image, the verdict the check must give (the known truth, asserted so
// that a matrix where everything is rejected cannot pass), and how its programs are run.
type kind struct {
	name  string // row name
	desc  string // what the image is, for the doc
	want  string // the verdict crs-ci check must give
	qemu  string // qemu-user binary on the host when the image's architecture is not the machine's
	image func(t *testing.T) v1.Image
	// force: the probe (libc, arch) put in with core/instrument's builder when `crs-ci instrument` refuses.
	force [2]string
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
	s390x = v1.Platform{OS: "linux", Architecture: "s390x"}
)

func kinds() []kind {
	shell := v1.Config{Entrypoint: []string{"/bin/bash", scriptPath}, Env: []string{defaultPATH}}
	distro := func(root string, plat v1.Platform, extra ...testenv.File) func(t *testing.T) v1.Image {
		return func(t *testing.T) v1.Image {
			files := append(scenarioFiles(t, true), extra...)
			return testenv.ImageFromLayers(t, shell, plat, testenv.LayerFromDir(t, testenv.Rootfs(t, root)),
				testenv.LayerFromFiles(files...))
		}
	}
	var ks []kind
	for _, d := range []struct{ root, desc string }{
		{"xenial", "Ubuntu 16.04 xenial"}, {"bionic", "Ubuntu 18.04 bionic"}, {"focal", "Ubuntu 20.04 focal"},
		{"jammy", "Ubuntu 22.04 jammy"}, {"noble", "Ubuntu 24.04 noble"}, {"bullseye", "Debian 11 bullseye"},
		{"bookworm", "Debian 12 bookworm"}, {"trixie", "Debian 13 trixie"}, {"sid", "Debian sid"},
	} {
		ks = append(ks, kind{name: d.root, desc: d.desc + " (debootstrap minbase), bash entrypoint", want: "compatible",
			image: distro(d.root, amd64), force: [2]string{probe.Glibc, "amd64"}})
	}
	ks = append(ks,
		kind{name: "bookworm-arm64", desc: "Debian 12 bookworm arm64, run through qemu-aarch64-static", want: "compatible",
			qemu: "qemu-aarch64-static", image: distro("bookworm-arm64", arm64), force: [2]string{probe.Glibc, "arm64"}},
		kind{name: "musl", desc: "musl 1.2 (Debian's musl loader), a musl-gcc-built entrypoint, busybox-static", want: "compatible",
			image: muslImage, force: [2]string{probe.Musl, "amd64"}},
		kind{name: "static-only", desc: "busybox-static and a statically linked entrypoint, no libc", want: "incompatible",
			image: staticImage, force: [2]string{probe.Glibc, "amd64"}},
		kind{name: "go-entrypoint", desc: "Debian 12 bookworm with a Go (CGO off) entrypoint", want: "incompatible",
			image: goImage, force: [2]string{probe.Glibc, "amd64"}},
		kind{name: "libc-whiteout", desc: "Debian 12 bookworm with an upper layer whiting out libc.so.6", want: "incompatible",
			image: distro("bookworm", amd64, testenv.Whiteout("/usr/lib/x86_64-linux-gnu/libc.so.6")), force: [2]string{probe.Glibc, "amd64"}},
		kind{name: "s390x", desc: "Debian 12 bookworm s390x (no probe for the architecture), run through qemu-s390x-static; the amd64 probe forced in",
			want: "incompatible", qemu: "qemu-s390x-static", image: distro("bookworm-s390x", s390x), force: [2]string{probe.Glibc, "amd64"}},
		kind{name: "synthetic-libc", desc: "a libc.so.6/libdl.so.2 defining only GLIBC_2.17 (not the probe's GLIBC_2.2.5), glibc's loader, a program linked against them",
			want: "incompatible", image: syntheticImage, force: [2]string{probe.Glibc, "amd64"}},
	)
	return ks
}

// scenarioFiles are the scenario's files: the secret, the watched public file, /tmp, and scenario.sh.
func scenarioFiles(t *testing.T, script bool) []testenv.File {
	files := []testenv.File{
		testenv.Dir("/srv"), testenv.Dir("/srv/secret"), testenv.Dir("/srv/public"), testenv.Dir("/opt"), testenv.Dir("/opt/matrix"),
		testenv.Reg("/srv/secret/key", []byte(secret+"\n")),
		testenv.Reg("/srv/public/watched", []byte(public+"\n")),
		testenv.Dir("/tmp").WithMode(0o1777),
	}
	if script {
		files = append(files, testenv.Exec(scriptPath, readFile(t, filepath.Join("testdata", "scenario.sh"))))
	}
	return files
}

func muslImage(t *testing.T) v1.Image {
	const libc = "/usr/lib/x86_64-linux-musl/libc.so"
	files := append(scenarioFiles(t, false),
		testenv.Dir("/lib"), testenv.Dir("/usr"), testenv.Dir("/usr/lib"), testenv.Dir("/usr/lib/x86_64-linux-musl"),
		testenv.Dir("/bin"), testenv.Dir("/usr/bin"), testenv.Dir("/etc"), testenv.Dir("/proc"), testenv.Dir("/dev"),
		testenv.Exec(libc, readFile(t, libc)),
		testenv.Symlink("/lib/ld-musl-x86_64.so.1", libc),
		testenv.Exec("/bin/busybox", readFile(t, "/bin/busybox")),
		testenv.Symlink("/bin/sh", "busybox"),
		testenv.Symlink("/usr/bin/id", "/bin/busybox"),
		testenv.Exec(helperPath, readFile(t, built(t, "scenario-musl"))),
	)
	return testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{helperPath}, Env: []string{defaultPATH}}, amd64,
		testenv.LayerFromFiles(files...))
}

func staticImage(t *testing.T) v1.Image {
	files := append(scenarioFiles(t, false),
		testenv.Dir("/bin"), testenv.Dir("/usr"), testenv.Dir("/usr/bin"), testenv.Dir("/etc"), testenv.Dir("/proc"), testenv.Dir("/dev"),
		testenv.Exec("/bin/busybox", readFile(t, "/bin/busybox")),
		testenv.Symlink("/bin/sh", "busybox"),
		testenv.Symlink("/usr/bin/id", "/bin/busybox"),
		testenv.Exec(helperPath, readFile(t, built(t, "scenario-static"))),
	)
	return testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{helperPath}, Env: []string{defaultPATH}}, amd64,
		testenv.LayerFromFiles(files...))
}

func goImage(t *testing.T) v1.Image {
	files := append(scenarioFiles(t, false), testenv.Exec(goPath, readFile(t, built(t, "goscenario"))))
	return testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{goPath}, Env: []string{defaultPATH}}, amd64,
		testenv.LayerFromDir(t, testenv.Rootfs(t, "bookworm")), testenv.LayerFromFiles(files...))
}

func syntheticImage(t *testing.T) v1.Image {
	loader := filepath.Join(testenv.Rootfs(t, "bookworm"), "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	files := append(scenarioFiles(t, false),
		testenv.Dir("/lib64"), testenv.Dir("/usr"), testenv.Dir("/usr/lib"), testenv.Dir("/usr/lib/x86_64-linux-gnu"),
		testenv.Dir("/etc"), testenv.Dir("/proc"), testenv.Dir("/dev"),
		testenv.Exec("/lib64/ld-linux-x86-64.so.2", readFile(t, loader)),
		testenv.Exec("/usr/lib/x86_64-linux-gnu/libc.so.6", readFile(t, built(t, "libc.so.6"))),
		testenv.Exec("/usr/lib/x86_64-linux-gnu/libdl.so.2", readFile(t, built(t, "libdl.so.2"))),
		testenv.Exec(fakeProg, readFile(t, built(t, "fakeprog"))),
	)
	return testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{fakeProg}, Env: []string{defaultPATH}}, amd64,
		testenv.LayerFromFiles(files...))
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return b
}

// Programs built once per test binary from testdata with the real toolchains.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func built(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() { buildDir, buildErr = buildPrograms() })
	if buildErr != nil {
		t.Fatalf("building the scenario programs: %v", buildErr)
	}
	return filepath.Join(buildDir, name)
}

func buildPrograms() (string, error) {
	dir, err := os.MkdirTemp("", "crs-matrix-programs-")
	if err != nil {
		return "", err
	}
	td, err := filepath.Abs("testdata")
	if err != nil {
		return "", err
	}
	builds := [][]string{
		{"musl-gcc", "-O2", "-o", "scenario-musl", td + "/scenario.c"},
		{"gcc", "-O2", "-static", "-o", "scenario-static", td + "/scenario.c"},
		{"gcc", "-shared", "-fPIC", "-nostdlib", "-O2", "-o", "libc.so.6", td + "/fakelibc.c",
			"-Wl,--version-script=" + td + "/fakelibc.map", "-Wl,-soname,libc.so.6"},
		{"gcc", "-shared", "-fPIC", "-nostdlib", "-O2", "-o", "libdl.so.2", td + "/fakelibc.c",
			"-Wl,--version-script=" + td + "/fakelibc.map", "-Wl,-soname,libdl.so.2"},
		{"gcc", "-nostdlib", "-O2", "-fPIE", "-pie", "-o", "fakeprog", td + "/fakeprog.c", "./libc.so.6",
			"-Wl,--dynamic-linker=/lib64/ld-linux-x86-64.so.2"},
	}
	for _, b := range builds {
		cmd := exec.Command(b[0], b[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", &buildError{argv: b, out: string(out), err: err}
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "goscenario"), "./testdata/goscenario")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{argv: cmd.Args, out: string(out), err: err}
	}
	return dir, nil
}

type buildError struct {
	argv []string
	out  string
	err  error
}

func (e *buildError) Error() string { return e.argv[0] + ": " + e.err.Error() + "\n" + e.out }
