package hardening

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error

	regOnce   sync.Once
	regShared *testenv.Registry
	regErr    error

	tmpRoot string
)

// Distinctive fake credentials: any of them in any output is a leak.
const (
	secretPassword   = "crs-SECRET-7f3a91c4-registry-password"
	secretVaultToken = "crs-SECRET-7f3a91c4-vault-token"
	secretVaultUser  = "crs-SECRET-7f3a91c4-vault-user"
	secretSecretID   = "crs-SECRET-7f3a91c4-approle-secret-id"
	secretWrong      = "crs-SECRET-7f3a91c4-wrong-password"
)

func TestMain(m *testing.M) {
	if rssFile := os.Getenv(spawnEnv); rssFile != "" {
		os.Exit(spawn(rssFile, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "crs-hardening-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	tmpRoot = dir
	code := m.Run()
	if regShared != nil {
		regShared.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// spawnEnv makes the test binary a spawner: it runs its arguments as a command and writes the command's peak
// RSS (KiB) to the named file. Linux folds the high-water RSS of the process that calls exec into the new
// program's ru_maxrss, and Go starts children with vfork semantics: measured straight from the test process
// (hundreds of MiB after building gzip bombs), crs-ci would be charged for the test's memory. The spawner is
// a fresh small process, so what it measures is crs-ci's own peak (plus at most the spawner's few MiB).
const spawnEnv = "CRS_HARDENING_SPAWN_RSS_FILE"

func spawn(rssFile string, argv []string) int {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, spawnEnv+"=") {
			env = append(env, e)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "spawner: %v\n", err)
		return 125
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		os.WriteFile(rssFile, []byte(fmt.Sprint(ru.Maxrss)), 0o644)
	}
	return cmd.ProcessState.ExitCode()
}

// crsCI builds the crs-ci command once per test binary (static, CGO off, as `make build` does).
func crsCI(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(tmpRoot, "crs-ci")
		cmd := exec.Command("go", "build", "-o", binPath, "./core/cmd/crs-ci")
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building crs-ci: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// registry is one real docker-registry (htpasswd auth) per test binary; its user is a Vault-style secret so
// that a Vault-read username is a secret too.
func registry(t testing.TB) *testenv.Registry {
	t.Helper()
	regOnce.Do(func() { regShared, regErr = testenv.NewRegistry(secretVaultUser, secretPassword) })
	if regErr != nil {
		t.Fatal(regErr)
	}
	return regShared
}

func regAuth(r *testenv.Registry) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password})
}

// push writes img to host/repo (directly to the registry) and returns its digest.
func push(t testing.TB, r *testenv.Registry, repo string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, regAuth(r)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tagDigest is the digest host/repo:tag points at in the registry, or "" when the tag does not exist.
func tagDigest(t testing.TB, r *testenv.Registry, repo string) string {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref, regAuth(r))
	if err != nil {
		return ""
	}
	return d.Digest.String()
}

var (
	imgOnce sync.Once
	imgBook v1.Image
)

// bookworm is the real Debian bookworm root filesystem as a one-layer amd64 image (layer cached on disk).
func bookworm(t testing.TB) v1.Image {
	t.Helper()
	imgOnce.Do(func() {
		imgBook = testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm"),
			v1.Config{Cmd: []string{"/bin/bash"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
			v1.Platform{OS: "linux", Architecture: "amd64"})
	})
	return imgBook
}

// run is one finished crs-ci process.
type run struct {
	args           []string
	code           int
	stdout, stderr string
	maxRSSKiB      int64 // crs-ci's peak resident set size, measured by the spawner
}

func (r run) String() string {
	return fmt.Sprintf("crs-ci %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runOpts says how to start crs-ci: extra environment (on top of a minimal one: PATH, HOME, an empty
// DOCKER_CONFIG) and stdin.
type runOpts struct {
	env     []string
	stdin   string
	timeout time.Duration
}

// crs runs the real binary and returns its outputs, exit code and peak RSS. A panic trace fails the test.
func crs(t testing.TB, o runOpts, args ...string) run {
	t.Helper()
	home := t.TempDir()
	rssFile := filepath.Join(home, "maxrss")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{crsCI(t)}, args...)...) // through the spawner (spawnEnv)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), spawnEnv + "=" + rssFile}, o.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = strings.NewReader(o.stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting crs-ci: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := o.timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	select {
	case err = <-done:
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("crs-ci %s: no answer within %s\nstderr:\n%s", strings.Join(args, " "), timeout, errb.String())
	}
	r := run{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running crs-ci: %v", err)
	}
	if b, err := os.ReadFile(rssFile); err == nil {
		fmt.Sscan(string(b), &r.maxRSSKiB)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "internal error") {
		t.Errorf("crs-ci printed a panic or internal error:\n%s", r)
	}
	return r
}

func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSpawnerMeasuresTheChild: the RSS the spawner reports is the command's own: dd with a 200 MiB buffer
// shows at least 190 MiB, `true` a few MiB, however much memory this test process holds meanwhile.
func TestSpawnerMeasuresTheChild(t *testing.T) {
	ballast := make([]byte, 300<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	measure := func(argv ...string) int64 {
		f := filepath.Join(t.TempDir(), "maxrss")
		cmd := exec.Command(self, argv...)
		cmd.Env = append(os.Environ(), spawnEnv+"="+f)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		var kib int64
		b, _ := os.ReadFile(f)
		fmt.Sscan(string(b), &kib)
		return kib
	}
	if big := measure("dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1", "status=none"); big < 190<<10 {
		t.Errorf("dd with a 200 MiB buffer measured %d KiB", big)
	}
	if small := measure("true"); small == 0 || small > 64<<10 {
		t.Errorf("true measured %d KiB (the test process holds %d MiB)", small, len(ballast)>>20)
	}
}
