package probetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/probe"
)

// TestContainer runs an instrumented bookworm root as a real container (podman with runc, the default
// seccomp profile, its own namespaces) and checks what the user's workload sees: denied reads, a denied
// exec from the shell, a denied connect, allowed work untouched, and the events in the sink file.
func TestContainer(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman is needed (scripts/install-deps.sh installs it)")
	}
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	installHelpers(t, r)
	id := r.setPolicy(t, compile(t, "enforce.yaml"))
	os.MkdirAll("/run/libpod", 0o755) // podman's runtime directory; missing on machines without systemd

	tests := []struct {
		name   string
		cmd    string
		stdout string
		event  want
	}{
		{"cat denied", "cat /srv/secret/key; echo rc=$?", "rc=1",
			want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets", Program: "/usr/bin/cat"}},
		{"exec denied", "id; echo rc=$?", "rc=126",
			want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id", Program: "/usr/bin/dash"}},
		{"connect denied", "/opt/t/helper connect 127.0.0.1 25", "err EPERM",
			want{Op: "connect", Addr: "127.0.0.1:25", Action: "deny", Rule: "no-smtp"}},
		{"allowed work", "echo ok > /tmp/x && cat /tmp/x", "ok", want{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := "/tmp/container-events-" + string(rune('a'+i)) + ".jsonl"
			cmd := exec.Command(podman, "--runtime", "runc", "--cgroup-manager=cgroupfs", "run", "--rm",
				"--ulimit", "nofile=1024:20000", "--ulimit", "nproc=1024:1024", "--network", "none",
				"--env", "CRS_EVENTS=file:"+ev, "--rootfs", r.dir, "/bin/sh", "-c", tt.cmd)
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("podman run timed out")
			}
			if err != nil {
				t.Fatalf("podman run: %v\n%s", err, se.String())
			}
			res := result{stdout: strings.TrimSpace(so.String()), stderr: se.String(),
				events: readEvents(t, filepath.Join(r.dir, ev))}
			if res.stdout != tt.stdout {
				t.Errorf("stdout %q, want %q\n%s", res.stdout, tt.stdout, res)
			}
			if tt.event == (want{}) {
				if len(res.events) != 0 {
					t.Errorf("allowed work logged %+v", res.events)
				}
				return
			}
			checkEvent(t, res, tt.event, id)
		})
	}
}
