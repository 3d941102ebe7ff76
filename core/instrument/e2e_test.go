package instrument

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
)

// TestEndToEnd closes the loop between check, policy, probe and instrument: a real Debian bookworm image
// with a secret file is instrumented with the real embedded probe and pushed to the real registry; podman
// (with runc, as a user's CI runner would) pulls the -layered image and runs real programs in it. The
// policy (testdata/policy.yaml) must be enforced — the secret cannot be read, a shell cannot be executed,
// other files can — and the probe must write the events to the policy's sink.
func TestEndToEnd(t *testing.T) {
	if _, err := probe.For(probe.Glibc, "amd64"); err != nil {
		t.Fatalf("the real probe is not embedded (make probe): %v", err)
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman not installed (scripts/install-deps.sh installs it): %v", err)
	}
	reg := sharedRegistry(t)
	kc := keychain(t, reg.User, reg.Password, reg.Host)
	const secret = "crs-e2e-top-secret-value"
	src := testenv.AddLayer(bookwormImage(t), testenv.Reg("/etc/crs-secret", []byte(secret+"\n")))
	push(t, reg, "e2e/bookworm:1", src, nil)

	o := baseOptions(t, reg.Host+"/e2e/bookworm:1", kc)
	o.Compat.Probes = nil // the real probes embedded in crs-ci
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("instrument: exit %d: %v", exitcode.Of(err), err)
	}
	ref := reg.Host + "/e2e/bookworm:1-layered"
	if rep.Layered.Ref != ref || !rep.Layered.Pushed {
		t.Fatalf("layered %+v", rep.Layered)
	}

	podmanRun := startPodman(t, podman, reg)
	podmanRun("pull", "--quiet", "--tls-verify=false", "--authfile", "AUTHFILE", ref)

	script := strings.Join([]string{
		`echo "preload=$(cat /etc/ld.so.preload | tr '\n' ' ')"`,
		`cat /etc/crs-secret; echo "secret-rc=$?"`,
		`cat /etc/os-release >/dev/null; echo "allowed-rc=$?"`,
		`/bin/sh -c 'echo shell-ran'; echo "shell-rc=$?"`,
		`echo "---events---"; cat /tmp/crs-events.jsonl`,
	}, "\n")
	out := podmanRun("run", "--rm", "--net", "none", "--ulimit", "nofile=1024:20000", "--ulimit", "nproc=1024:1024",
		ref, "/bin/bash", "-c", script)
	t.Logf("container output:\n%s", out)

	before, events, _ := strings.Cut(out, "---events---")
	for _, want := range []string{"preload=" + probe.LibraryPath, "secret-rc=1", "allowed-rc=0", "shell-rc=126"} {
		if !strings.Contains(before, want) {
			t.Errorf("container output lacks %q", want)
		}
	}
	if strings.Contains(before, secret) {
		t.Error("the secret was read inside the instrumented container: the policy was not enforced")
	}
	if strings.Contains(before, "shell-ran") {
		t.Error("a shell ran inside the instrumented container: the policy was not enforced")
	}
	var sawSecret, sawShell bool
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		s := line
		if ev["policy"] != rep.Policies[0].SHA256 {
			t.Errorf("event names policy %v, the image carries %s", ev["policy"], rep.Policies[0].SHA256)
		}
		if ev["action"] == "deny" && strings.Contains(s, "/etc/crs-secret") && strings.Contains(s, "no-secrets") {
			sawSecret = true
		}
		if ev["action"] == "deny" && strings.Contains(s, "/bin/sh") && strings.Contains(s, "no-shells") {
			sawShell = true
		}
	}
	if !sawSecret || !sawShell {
		t.Errorf("events: deny of /etc/crs-secret seen %v, deny of /bin/sh seen %v; events were:\n%s", sawSecret, sawShell, events)
	}
}

// startPodman returns a function running podman (with runc, its own storage and an auth file for the
// registry: "AUTHFILE" in the arguments is replaced by its path) that fails the test on error.
func startPodman(t *testing.T, podman string, reg *testenv.Registry) func(args ...string) string {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if err := os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs",
		"--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend", "none"}
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "DOCKER_CONFIG=") { // the test's empty docker config is not podman's business
			env = append(env, e)
		}
	}
	t.Cleanup(func() {
		cmd := exec.Command(podman, append(base, "rmi", "--all", "--force")...) // only this test's storage; t.TempDir removes the rest
		cmd.Env = env
		_ = cmd.Run()
	})
	return func(args ...string) string {
		t.Helper()
		for i, a := range args {
			if a == "AUTHFILE" {
				args[i] = authFile
			}
		}
		cmd := exec.Command(podman, append(base, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// TestEndToEndMusl: the same loop for a musl image (Debian's real musl loader and a program built with
// musl-gcc). musl ignores /etc/ld.so.preload, so the probe must come in through the LD_PRELOAD that
// instrument puts in the image config; podman applies it, and the policy is enforced.
func TestEndToEndMusl(t *testing.T) {
	if _, err := probe.For(probe.Musl, "amd64"); err != nil {
		t.Fatalf("the real musl probe is not embedded (make probe): %v", err)
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman not installed (scripts/install-deps.sh installs it): %v", err)
	}
	musl, err := os.ReadFile("/lib/ld-musl-x86_64.so.1")
	if err != nil {
		t.Fatalf("Debian's musl is not installed (scripts/install-deps.sh installs musl-tools): %v", err)
	}
	prog := filepath.Join(t.TempDir(), "readfile")
	if out, err := exec.Command("musl-gcc", "-O2", "-o", prog, filepath.Join("testdata", "readfile.c")).CombinedOutput(); err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	progBytes, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "crs-e2e-musl-secret"
	img := testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{"/app/readfile"}, Env: []string{"PATH=/app"}},
		v1.Platform{OS: "linux", Architecture: "amd64"},
		testenv.LayerFromFiles(testenv.Dir("/lib"), testenv.Reg("/lib/ld-musl-x86_64.so.1", musl).WithMode(0o755),
			testenv.Dir("/app"), testenv.Exec("/app/readfile", progBytes), testenv.Dir("/etc"),
			testenv.Reg("/etc/hello", []byte("hello-from-musl\n")), testenv.Reg("/etc/crs-secret", []byte(secret+"\n")),
			testenv.Dir("/tmp").WithMode(0o1777)))
	reg := sharedRegistry(t)
	push(t, reg, "e2e/musl:1", img, nil)
	kc := keychain(t, reg.User, reg.Password, reg.Host)
	o := baseOptions(t, reg.Host+"/e2e/musl:1", kc)
	o.Compat.Probes = nil
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("instrument: exit %d: %v", exitcode.Of(err), err)
	}
	if rep.Platforms[0].Libc.Family != probe.Musl {
		t.Fatalf("libc %+v", rep.Platforms[0].Libc)
	}

	podmanRun := startPodman(t, podman, reg)
	podmanRun("pull", "--quiet", "--tls-verify=false", "--authfile", "AUTHFILE", rep.Layered.Ref)
	events := t.TempDir()
	out := podmanRun("run", "--rm", "--net", "none", "--ulimit", "nofile=1024:20000", "--ulimit", "nproc=1024:1024",
		"-v", events+":/tmp", rep.Layered.Ref, "/etc/crs-secret", "/etc/hello")
	t.Logf("container output:\n%s", out)
	if strings.Contains(out, secret) || !strings.Contains(out, "/etc/crs-secret: open failed: Permission denied") {
		t.Error("the secret was not denied in the musl container")
	}
	if !strings.Contains(out, "hello-from-musl") {
		t.Error("an allowed file could not be read")
	}
	ev, err := os.ReadFile(filepath.Join(events, "crs-events.jsonl"))
	if err != nil {
		t.Fatalf("no events written: %v", err)
	}
	if !strings.Contains(string(ev), `"path":"/etc/crs-secret"`) || !strings.Contains(string(ev), `"action":"deny"`) ||
		!strings.Contains(string(ev), `"program":"/app/readfile"`) {
		t.Errorf("events lack the deny of /etc/crs-secret by /app/readfile:\n%s", ev)
	}
}
