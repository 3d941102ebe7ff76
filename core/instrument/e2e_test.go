package instrument

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs",
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

// TestEndToEndIndexARM64: a two-platform index (real bookworm amd64 and arm64 files) is instrumented with
// the real probes and pushed; the arm64 image of the pushed index is pulled, unpacked into a directory and its
// real cat run under qemu-aarch64 with the image as root (-L): the arm64 probe from the layer loads (named by
// LD_PRELOAD: qemu-user's guest loader skips /etc/ld.so.preload, whose content is checked separately), denies
// the secret and writes the event.
func TestEndToEndIndexARM64(t *testing.T) {
	if _, err := probe.For(probe.Glibc, "arm64"); err != nil {
		t.Fatalf("the real arm64 probe is not embedded (make probe): %v", err)
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Fatalf("qemu-user-static not installed (scripts/install-deps.sh installs it): %v", err)
	}
	const secret = "crs-e2e-arm64-secret"
	extra := testenv.LayerFromFiles(testenv.Reg("/etc/crs-secret", []byte(secret+"\n")),
		testenv.Reg("/etc/hello", []byte("hello-from-arm64\n")), testenv.Dir("/tmp").WithMode(0o1777))
	arm, err := mutate.AppendLayers(testenv.MinimalImage(t, testenv.Rootfs(t, "bookworm-arm64"), v1.Config{Cmd: []string{"/usr/bin/cat"}},
		v1.Platform{OS: "linux", Architecture: "arm64"},
		[]string{"/usr/bin/cat", "/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libdl.so.2"}), extra)
	if err != nil {
		t.Fatal(err)
	}
	amd, err := mutate.AppendLayers(minimalAMD64(t), extra)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	reg := sharedRegistry(t)
	push(t, reg, "e2e/multi:1", nil, idx)
	o := baseOptions(t, reg.Host+"/e2e/multi:1", keychain(t, reg.User, reg.Password, reg.Host))
	o.Compat.Probes = nil
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("instrument: exit %d: %v", exitcode.Of(err), err)
	}

	// Pull the arm64 image of the pushed index and unpack it.
	lref, _ := name.ParseReference(rep.Layered.Ref, name.Insecure)
	out, err := remote.Index(lref, basicAuth(reg))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := out.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("layered index %+v", im.Manifests)
	}
	img, err := out.Image(im.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	unpack(t, img, root)
	preload, err := os.ReadFile(filepath.Join(root, "etc", "ld.so.preload"))
	if err != nil || string(preload) != probe.LibraryPath+"\n" {
		t.Fatalf("/etc/ld.so.preload of the arm64 image: %q (%v)", preload, err)
	}
	// Under qemu-user the guest's ld.so does not consult /etc/ld.so.preload (seen with qemu 7.2: LD_DEBUG shows
	// no attempt), so the probe the layer installed is named with LD_PRELOAD, the same file the preload names.
	events := filepath.Join(root, "tmp", "events.jsonl")
	cmd := exec.Command(qemu, "-L", root, filepath.Join(root, "usr/bin/cat"), "/etc/hello", "/etc/crs-secret")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LD_PRELOAD=" + probe.LibraryPath, "CRS_EVENTS=file:" + events}
	got, _ := cmd.CombinedOutput() // cat exits 1: one file was denied
	t.Logf("qemu-aarch64 cat:\n%s", got)
	if !strings.Contains(string(got), "hello-from-arm64") {
		t.Error("the allowed file was not read: the arm64 program did not run")
	}
	if strings.Contains(string(got), secret) || !strings.Contains(string(got), "/etc/crs-secret: Permission denied") {
		t.Error("the secret was not denied under the arm64 probe")
	}
	ev, err := os.ReadFile(events)
	if err != nil {
		t.Fatalf("no events: %v", err)
	}
	if !strings.Contains(string(ev), `"path":"/etc/crs-secret"`) || !strings.Contains(string(ev), `"action":"deny"`) {
		t.Errorf("events lack the deny:\n%s", ev)
	}
}

// unpack writes the flattened filesystem of img under dir (regular files, directories, symlinks, hard links;
// owners kept, device nodes skipped), refusing entries that would land outside dir.
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("unpacking: %v", err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) && p != dir {
			t.Fatalf("unpacking: %s escapes the root", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
			_ = os.Chmod(p, os.FileMode(h.Mode).Perm()|modeBits(h.Mode))
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode).Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case tar.TypeSymlink:
			_ = os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			_ = os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		_ = os.Lchown(p, h.Uid, h.Gid)
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}
