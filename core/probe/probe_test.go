package probe

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func readExports(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../probe/src/exports.txt")
	if err != nil {
		t.Fatal(err)
	}
	return ParseExports(string(b))
}

// TestEmbeddedArtifactsPassGate: every committed artifact exists, has the right machine, and passes the
// build gate (baseline symbol versions only, allowed DT_NEEDED, exports = hook list).
func TestEmbeddedArtifactsPassGate(t *testing.T) {
	exports := readExports(t)
	for _, c := range []struct{ libc, arch, baseline string }{
		{Glibc, "amd64", "GLIBC_2.2.5"}, {Glibc, "arm64", "GLIBC_2.17"}, {Musl, "amd64", ""},
	} {
		t.Run(c.libc+"-"+c.arch, func(t *testing.T) {
			a, err := For(c.libc, c.arch)
			if err != nil {
				t.Fatal(err)
			}
			if p := Gate(c.libc, c.arch, a.Bytes, exports); len(p) > 0 {
				t.Fatalf("gate: %v", p)
			}
			if c.libc == Glibc {
				if len(a.Needs) != 1 || a.Needs[0].Soname != "libc.so.6" {
					t.Errorf("needs %+v, want libc.so.6 only", a.Needs)
				}
				for _, n := range a.Needs {
					if len(n.Versions) != 1 || n.Versions[0] != c.baseline {
						t.Errorf("%s versions %v, want [%s]", n.Soname, n.Versions, c.baseline)
					}
				}
			}
		})
	}
	if _, err := For(Musl, "arm64"); err == nil || !strings.Contains(err.Error(), "glibc/amd64") {
		t.Errorf("For(musl, arm64) = %v, want an error listing what exists", err)
	}
}

// TestGateRejects: the gate catches what would break old loaders, built from real (non-probe) libraries.
func TestGateRejects(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "x.c")
	os.WriteFile(src, []byte(`#include <string.h>
#include <dlfcn.h>
__attribute__((visibility("default"))) void *open(const char *p, char *d, unsigned long n) { memcpy(d, p, n); return dlsym(RTLD_NEXT, "open"); }
__attribute__((visibility("default"))) int extra_export(void) { return 1; }
`), 0o644)
	so := filepath.Join(dir, "crs-probe-glibc-amd64.so")
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O0", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(so)
	problems := strings.Join(Gate(Glibc, "amd64", b, []string{"open"}), "\n")
	for _, want := range []string{"GLIBC_2.34", "exports extra_export", "GLIBC_2.14"} {
		if !strings.Contains(problems, want) {
			t.Errorf("gate problems do not mention %s:\n%s", want, problems)
		}
	}
	if p := Gate(Glibc, "arm64", b, []string{"open", "extra_export"}); !strings.Contains(strings.Join(p, "\n"), "machine") {
		t.Errorf("an x86_64 file passed as arm64: %v", p)
	}
}

// TestArtifactsUpToDate rebuilds the probes into a temporary directory and compares them with the committed
// bytes: a stale commit (sources changed, `make probe` not run) or a non-reproducible build fails here.
func TestArtifactsUpToDate(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("../../probe/build.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("probe/build.sh: %v\n%s", err, out)
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("%d embedded artifacts, want 3", len(all))
	}
	for _, a := range all {
		b, err := os.ReadFile(filepath.Join(dir, a.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, a.Bytes) {
			t.Errorf("%s: committed artifact differs from a fresh build of probe/src: run `make probe` and commit", a.File)
		}
	}
}
