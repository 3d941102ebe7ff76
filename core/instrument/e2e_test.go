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

	// podman, with its own storage so nothing else on the machine is touched.
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if err := os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs",
		"--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend", "none"}
	podmanRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(podman, append(base, args...)...)
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "DOCKER_CONFIG=") { // the test's empty docker config is not podman's business
				cmd.Env = append(cmd.Env, e)
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { _ = exec.Command(podman, append(base, "system", "reset", "--force")...).Run() })
	podmanRun("pull", "--quiet", "--tls-verify=false", "--authfile", authFile, ref)

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
