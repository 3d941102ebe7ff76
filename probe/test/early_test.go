package probetest

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crs-ci/crs-ci/core/probe"
)

// TestCallsBeforeConstructor: another preloaded library whose constructor runs before the probe's opens a
// denied file; the probe initialises at that first hooked call and denies it.
func TestCallsBeforeConstructor(t *testing.T) {
	so := filepath.Join(t.TempDir(), "early.so")
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", so,
		filepath.Join(repoRoot, "probe", "test", "testdata", "early.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	r.install(t, so, "/opt/t/early.so")
	id := r.setPolicy(t, compile(t, "enforce.yaml"))
	// the probe first, then early.so: the later one is initialised first
	r.write(t, probe.PreloadPath, []byte(probe.LibraryPath+"\n/opt/t/early.so\n"), 0o644)
	res := r.run(t, "/bin/true")
	if res.stdout != "early EACCES" {
		t.Fatalf("got %q, want the constructor's open denied\n%s", res.stdout, res)
	}
	checkEvent(t, res, want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets", Program: "/usr/bin/true"}, id)
}
