package image_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// podmanArgs gives podman its own storage, run and temporary directories under dir, so the test shares
// nothing with other users of podman on the machine (and needs no /run/libpod).
func podmanArgs(dir string, args ...string) []string {
	return append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs"}, args...)
}

// startPodmanService serves the Docker API from podman (storage in dir) on a socket of the test's own and
// returns DOCKER_HOST for it.
func startPodmanService(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	cmd := exec.Command("podman", podmanArgs(dir, "system", "service", "--time=0", "unix://"+sock)...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting podman system service (scripts/install-deps.sh installs podman): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "unix://" + sock
		}
	}
	t.Fatalf("podman system service did not listen on %s: %s", sock, log.String())
	return ""
}

// TestDockerDaemon: an image loaded into a real engine (podman serving the Docker API) is read through
// docker-daemon:REPO:TAG with DOCKER_HOST, and identified by its image ID.
func TestDockerDaemon(t *testing.T) {
	podDir := t.TempDir()
	host := startPodmanService(t, podDir)
	t.Setenv("DOCKER_HOST", host)
	img := testenv.AddLayer(tinyImage(t, amd64), testenv.Exec("/usr/bin/app", []byte("app")), testenv.Symlink("/bin/app", "/usr/bin/app"))
	tag := fmt.Sprintf("localhost/crs-image-test:%d", time.Now().UnixNano())
	archive := filepath.Join(t.TempDir(), "img.tar")
	testenv.WriteDockerArchive(t, img, archive, tag)
	if out, err := exec.Command("podman", podmanArgs(podDir, "load", "-i", archive)...).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}

	src, err := image.Open(context.Background(), "docker-daemon:"+tag, image.Options{})
	if err != nil {
		t.Fatalf("Open(docker-daemon:%s): %v", tag, err)
	}
	id, _ := img.ConfigName()
	if src.Digest != id || len(src.Images) != 1 || src.Images[0].Platform.String() != "linux/amd64" {
		t.Errorf("docker-daemon: digest %s (want image ID %s), images %+v", src.Digest, id, src.Images)
	}
	fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: allExtractor{}})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if p, e, err := fs.Resolve("/bin/app"); err != nil || p != "/usr/bin/app" || string(e.Facts) != "app" {
		t.Errorf("/bin/app resolves to %q %+v %v", p, e, err)
	}

	_, err = image.Open(context.Background(), "docker-daemon:localhost/crs-image-test:absent", image.Options{})
	if err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), "crs-image-test:absent") {
		t.Errorf("an image the daemon lacks: %v", err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	_, err = image.Open(context.Background(), "docker-daemon:"+tag, image.Options{})
	if err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), "DOCKER_HOST=unix://") {
		t.Errorf("no daemon: %v", err)
	}
}
