package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{fixtureRoot, cacheDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// fixtureRoot holds programs and libraries compiled once per test binary from testdata/*.c.
var (
	fixtureOnce sync.Once
	fixtureRoot string
	fixtureErr  error
)

// fixture returns the path of a compiled fixture, building all of them on first use.
func fixture(t testing.TB, name string) string {
	t.Helper()
	fixtureOnce.Do(func() { fixtureRoot, fixtureErr = buildFixtures() })
	if fixtureErr != nil {
		t.Fatalf("building test fixtures: %v", fixtureErr)
	}
	return filepath.Join(fixtureRoot, name)
}

func buildFixtures() (string, error) {
	dir, err := os.MkdirTemp("", "crs-compat-fixtures-")
	if err != nil {
		return "", err
	}
	td, _ := filepath.Abs("testdata")
	builds := [][]string{
		{"gcc", "-shared", "-fPIC", "-O2", "-o", "probe-glibc-amd64.so", td + "/probe.c",
			"-Wl,--no-as-needed", "-l:libdl.so.2", "-Wl,-z,nopack-relative-relocs"},
		{"aarch64-linux-gnu-gcc", "-shared", "-fPIC", "-O2", "-o", "probe-glibc-arm64.so", td + "/probe.c",
			"-Wl,--no-as-needed", "-l:libdl.so.2"},
		{"musl-gcc", "-shared", "-fPIC", "-O2", "-o", "probe-musl-amd64.so", td + "/probe-musl.c"},
		{"gcc", "-shared", "-fPIC", "-nostdlib", "-o", "fakelibc.so.6", td + "/fakelibc.c",
			"-Wl,--version-script=" + td + "/fakelibc.map", "-Wl,-soname,libc.so.6"},
		{"gcc", "-O2", "-o", "hello-glibc", td + "/hello.c"},
		{"gcc", "-O2", "-static", "-o", "hello-static", td + "/hello.c"},
		{"musl-gcc", "-O2", "-o", "hello-musl", td + "/hello.c"},
		{"aarch64-linux-gnu-gcc", "-O2", "-o", "hello-arm64", td + "/hello.c"},
	}
	for _, b := range builds {
		cmd := exec.Command(b[0], b[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", &buildError{cmd: b, out: string(out), err: err}
		}
	}
	gobin := filepath.Join(dir, "hello-go")
	cmd := exec.Command("go", "build", "-o", gobin, "./testdata/hellogo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{cmd: cmd.Args, out: string(out), err: err}
	}
	return dir, nil
}

type buildError struct {
	cmd []string
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + " running " + e.cmd[0] + ": " + e.out }
