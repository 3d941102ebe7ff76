package serve

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
)

// The crs-ci binary under test, built once per test binary (CGO off, as `make build` builds it).
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func crsBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "crs-serve-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "crs-ci")
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

// eventLog is a second notification endpoint of the registry, owned by the test: it records every
// manifest event the registry sends, to count pushes independently of crs-ci serve.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	url    string
}

func startEventLog(t *testing.T) *eventLog {
	l := &eventLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		env, err := ParseEnvelope(b)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		l.mu.Lock()
		l.events = append(l.events, env.Events...)
		l.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	l.url = srv.URL + "/events"
	return l
}

// pushes counts manifest push events of repository:tag.
func (l *eventLog) pushes(repo, tag string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Action == "push" && e.Target.Repository == repo && e.Target.Tag == tag {
			n++
		}
	}
	return n
}

// serveProc is `crs-ci serve` running as a subprocess.
type serveProc struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	url  string
	done chan struct{}
}

// startServe starts crs-ci serve and waits until it is ready; the caller kills it.
func startServe(t *testing.T, cfgFile, addr string) *serveProc {
	t.Helper()
	p := &serveProc{log: &bytes.Buffer{}, url: "http://" + addr, done: make(chan struct{})}
	p.cmd = exec.Command(crsBinary(t), "serve", "--config", cfgFile, "--log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("crs-ci serve exited at start:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crs-ci serve not ready on %s:\n%s", addr, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serveProc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// jobs reads /jobs.
func (p *serveProc) jobs(t *testing.T) Stats {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+"/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("/jobs: %v\n%s", err, p.log.String())
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (p *serveProc) done_(t *testing.T, key string) *Record {
	for _, d := range p.jobs(t).Done {
		if d.Key == key {
			return d
		}
	}
	return nil
}

// metric reads one sample of /metrics ("" when absent).
func (p *serveProc) metric(t *testing.T, series string) string {
	t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func compatibleImage(t *testing.T, extra ...testenv.File) v1.Image {
	extra = append([]testenv.File{testenv.Reg("/etc/crs-secret", []byte("top-secret\n")), testenv.Reg("/etc/allowed", []byte("allowed\n"))}, extra...)
	return testenv.MinimalImage(t, testenv.Rootfs(t, "bookworm"), v1.Config{Cmd: []string{"/usr/bin/cat", "/etc/allowed"}}, v1.Platform{OS: "linux", Architecture: "amd64"},
		[]string{"/usr/bin/cat", "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libdl.so.2"}, extra...)
}

func arm64Image(t *testing.T) v1.Image {
	return testenv.MinimalImage(t, testenv.Rootfs(t, "bookworm-arm64"), v1.Config{Cmd: []string{"/usr/bin/true"}}, v1.Platform{OS: "linux", Architecture: "arm64"},
		[]string{"/usr/bin/true", "/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libdl.so.2"})
}

// staticImage runs a static busybox: an entrypoint the probe cannot hook, so the check rejects the image.
func staticImage(t *testing.T) v1.Image {
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static (scripts/install-deps.sh): %v", err)
	}
	return testenv.ImageFromLayers(t, v1.Config{Cmd: []string{"/bin/busybox", "true"}}, v1.Platform{OS: "linux", Architecture: "amd64"},
		testenv.LayerFromFiles(testenv.Dir("/bin"), testenv.Exec("/bin/busybox", b)))
}

type regClient struct {
	reg *testenv.Registry
}

func (c regClient) auth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: c.reg.User, Password: c.reg.Password})
}

func (c regClient) ref(t *testing.T, s string) name.Reference {
	r, err := name.ParseReference(c.reg.Host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (c regClient) push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	if err := remote.Write(c.ref(t, ref), img, c.auth()); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func (c regClient) exists(t *testing.T, ref string) bool {
	_, err := remote.Head(c.ref(t, ref), c.auth())
	return err == nil
}

// writeServeConfig writes a serve configuration for the registry (reached through host) and returns its path.
func writeServeConfig(t *testing.T, dir, addr, host string, reg *testenv.Registry, extra string) string {
	t.Helper()
	policyAbs, _ := filepath.Abs("testdata/policy.yaml")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte(testSecret+"\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "registry-password"), []byte(reg.Password+"\n"), 0o600))
	cfg := fmt.Sprintf(`apiVersion: crs-ci/v1
kind: ServeConfig
listen: %s
stateDir: state
webhook: {secretFile: secret}
registry: %s
policy: %s
repositories:
  - name: app/*
concurrency: 1
queueSize: 2
jobTimeout: 2m
maxAttempts: 5
backoff: 200ms
maxBackoff: 1s
shutdownGrace: 5s
credentials: {username: %s, passwordFile: registry-password}
%s`, addr, host, policyAbs, reg.User, extra)
	p := filepath.Join(dir, "serve.yaml")
	must(os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

// notificationsConfig points the registry at crs-ci serve (with the shared secret, as a deployment would)
// and at the test's own event log.
func notificationsConfig(serveAddr, logURL string) string {
	return fmt.Sprintf(`notifications:
  endpoints:
    - name: crs-ci
      url: http://%s/notifications
      headers:
        Authorization: [Bearer %s]
      timeout: 2s
      threshold: 1
      backoff: 200ms
      ignore:
        mediatypes: [application/octet-stream]
        actions: [pull]
    - name: test-log
      url: %s
      timeout: 2s
      threshold: 1
      backoff: 200ms
      ignore:
        mediatypes: [application/octet-stream]
        actions: [pull]
`, serveAddr, testSecret, logURL)
}

func waitUntil(t *testing.T, what string, timeout time.Duration, p *serveProc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			log := ""
			if p != nil {
				log = p.log.String()
			}
			t.Fatalf("timed out waiting for %s; serve log:\n%s", what, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func journalCount(t *testing.T, stateDir, op, key string) int {
	b, err := os.ReadFile(filepath.Join(stateDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var r Record
		if json.Unmarshal([]byte(line), &r) == nil && r.Op == op && r.Key == key {
			n++
		}
	}
	return n
}

// TestServeRegistry runs the real thing: Debian's docker-registry sends its push notifications to
// `crs-ci serve` (the built binary, as a subprocess) on loopback, with the shared secret header configured
// in the registry's notifications.endpoints. crs-ci serve reaches the registry through a fault-injecting
// proxy, and a second notification endpoint owned by the test counts every manifest push the registry saw.
func TestServeRegistry(t *testing.T) {
	if _, err := probe.For(probe.Glibc, "amd64"); err != nil {
		t.Fatalf("the real probe is not embedded (make probe): %v", err)
	}
	events := startEventLog(t)
	addr := freeAddr(t)
	reg, err := testenv.NewRegistryWithConfig("crs", fmt.Sprintf("pw-%d", time.Now().UnixNano()), notificationsConfig(addr, events.url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	proxy := testenv.StartFaultProxy(t, reg.Host)
	rc := regClient{reg}
	dir := t.TempDir()
	cfgFile := writeServeConfig(t, dir, addr, proxy.Host, reg, "")
	stateDir := filepath.Join(dir, "state")
	srv := startServe(t, cfgFile, addr)
	t.Cleanup(func() { srv.kill() }) // whichever process srv is by then

	t.Run("compatible image gets its -layered tag, which enforces the policy", func(t *testing.T) {
		img := compatibleImage(t)
		digest := rc.push(t, "app/ok:1", img)
		key := "app/ok:1@" + digest
		waitUntil(t, "app/ok:1-layered", 90*time.Second, srv, func() bool { return srv.done_(t, key) != nil })
		d := srv.done_(t, key)
		if d.Result != ResultPushed || d.Verdict != "compatible" {
			t.Fatalf("job %+v", d)
		}
		layered, err := remote.Image(rc.ref(t, "app/ok:1-layered"), rc.auth())
		if err != nil {
			t.Fatalf("pulling the -layered image: %v", err)
		}
		srcLayers, _ := img.Layers()
		outLayers, _ := layered.Layers()
		if len(outLayers) != len(srcLayers)+1 {
			t.Fatalf("%d layers, want the source's %d + 1", len(outLayers), len(srcLayers))
		}
		for i := range srcLayers {
			a, _ := srcLayers[i].Digest()
			b, _ := outLayers[i].Digest()
			if a != b {
				t.Errorf("layer %d: %s, source has %s", i, b, a)
			}
		}
		files := layerFiles(t, outLayers[len(outLayers)-1])
		for _, f := range []string{probe.LibraryPath, probe.PolicyPath, probe.PreloadPath} {
			if _, ok := files[strings.TrimPrefix(f, "/")]; !ok {
				t.Errorf("the added layer lacks %s (has %v)", f, keys(files))
			}
		}
		cf, _ := layered.ConfigFile()
		if cf.Config.Labels[instrument.LabelBaseDigest] != digest || cf.Config.Labels[instrument.LabelPolicyName] != "serve-test" {
			t.Errorf("labels %v", cf.Config.Labels)
		}
		if d.Layered == "" || !strings.HasSuffix(d.Layered, "@"+mustDigest(t, layered)) {
			t.Errorf("done record names %q", d.Layered)
		}
		// The image enforces: unpacked and run in a chroot, the probe (loaded through /etc/ld.so.preload)
		// denies reading the secret and allows the other file.
		root := unpack(t, layered)
		out, err := exec.Command("chroot", root, "/usr/bin/cat", "/etc/allowed").CombinedOutput()
		if err != nil || string(out) != "allowed\n" {
			t.Errorf("cat /etc/allowed in the layered image: %v %q", err, out)
		}
		out, err = exec.Command("chroot", root, "/usr/bin/cat", "/etc/crs-secret").CombinedOutput()
		if err == nil || strings.Contains(string(out), "top-secret") {
			t.Errorf("cat /etc/crs-secret in the layered image was not denied: %v %q", err, out)
		}
		// The -layered push came back as a notification: recognised as crs-ci's own output.
		waitUntil(t, "the own-output notification", 30*time.Second, srv, func() bool {
			return srv.metric(t, `crs_serve_events_total{outcome="ignored:own-output"}`) != ""
		})
	})

	t.Run("same digest pushed twice is one job", func(t *testing.T) {
		img := compatibleImage(t)
		// The same manifest PUT again (remote.Write would skip a manifest the registry has).
		if err := remote.Put(rc.ref(t, "app/ok:1"), img, rc.auth()); err != nil {
			t.Fatal(err)
		}
		digest := mustDigest(t, img)
		key := "app/ok:1@" + digest
		waitUntil(t, "the second notification", 30*time.Second, srv, func() bool {
			return srv.metric(t, `crs_serve_events_total{outcome="duplicate"}`) != ""
		})
		if n := journalCount(t, stateDir, "accept", key); n != 1 {
			t.Errorf("%d accept records for %s, want 1", n, key)
		}
		waitUntil(t, "the registry's second push event", 30*time.Second, srv, func() bool { return events.pushes("app/ok", "1") == 2 })
		if n := events.pushes("app/ok", "1-layered"); n != 1 {
			t.Errorf("app/ok:1-layered was pushed %d times, want once", n)
		}
	})

	t.Run("incompatible image is rejected and nothing is pushed", func(t *testing.T) {
		digest := rc.push(t, "app/static:1", staticImage(t))
		key := "app/static:1@" + digest
		waitUntil(t, "the rejection", 60*time.Second, srv, func() bool { return srv.done_(t, key) != nil })
		d := srv.done_(t, key)
		if d.Result != ResultRejected || d.Verdict != "incompatible" || d.Report == "" {
			t.Fatalf("job %+v", d)
		}
		b, err := os.ReadFile(d.Report)
		if err != nil || !strings.Contains(string(b), `"verdict": "incompatible"`) {
			t.Errorf("report %s: %v\n%s", d.Report, err, b)
		}
		if rc.exists(t, "app/static:1-layered") || events.pushes("app/static", "1-layered") != 0 {
			t.Errorf("a -layered tag was pushed for a rejected image")
		}
		if srv.metric(t, `crs_serve_verdicts_total{verdict="incompatible"}`) != "1" {
			t.Errorf("the incompatible verdict is not counted")
		}
	})

	t.Run("a multi-arch index gets a -layered index", func(t *testing.T) {
		idx := testenv.Index(t, compatibleImage(t, testenv.Reg("/etc/multi", []byte("1"))), arm64Image(t))
		if err := remote.WriteIndex(rc.ref(t, "app/multi:1"), idx, rc.auth()); err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		key := "app/multi:1@" + d.String()
		waitUntil(t, "the index job", 90*time.Second, srv, func() bool { return srv.done_(t, key) != nil })
		if r := srv.done_(t, key); r.Result != ResultPushed {
			t.Fatalf("job %+v", r)
		}
		out, err := remote.Index(rc.ref(t, "app/multi:1-layered"), rc.auth())
		if err != nil {
			t.Fatalf("the -layered index: %v", err)
		}
		im, _ := out.IndexManifest()
		if len(im.Manifests) != 2 || im.Annotations[instrument.LabelBaseDigest] != d.String() {
			t.Fatalf("-layered index: %d manifests, annotations %v", len(im.Manifests), im.Annotations)
		}
		for _, m := range im.Manifests {
			img, err := out.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := img.Layers()
			files := layerFiles(t, ls[len(ls)-1])
			if _, ok := files[strings.TrimPrefix(probe.LibraryPath, "/")]; !ok {
				t.Errorf("%s: the added layer lacks the probe", m.Platform)
			}
		}
		// The children, pushed by digest, were not jobs: their events are ignored as untagged.
		waitUntil(t, "the children's events", 30*time.Second, srv, func() bool {
			return srv.metric(t, `crs_serve_events_total{outcome="ignored:no-tag"}`) != ""
		})
		if n := journalCount(t, stateDir, "accept", key); n != 1 {
			t.Errorf("%d accept records for the index, want 1", n)
		}
	})

	t.Run("repositories outside the configuration are ignored", func(t *testing.T) {
		rc.push(t, "other/x:1", staticImage(t))
		waitUntil(t, "the ignored event", 30*time.Second, srv, func() bool {
			return srv.metric(t, `crs_serve_events_total{outcome="ignored:no-matching-rule"}`) != ""
		})
	})

	t.Run("killed mid-job, restarted: the job completes exactly once", func(t *testing.T) {
		// Slow crs-ci's uploads down so that it is killed while pushing.
		proxy.Clear()
		proxy.Inject(testenv.Fault{Path: "/blobs/uploads/", Delay: 2 * time.Second, Times: 2})
		digest := rc.push(t, "app/kill:1", compatibleImage(t, testenv.Reg("/etc/kill", []byte("1"))))
		key := "app/kill:1@" + digest
		waitUntil(t, "the job's upload", 60*time.Second, srv, func() bool { return proxy.Injected() > 0 })
		srv.kill()
		if events.pushes("app/kill", "1-layered") != 0 {
			t.Fatalf("the target was pushed before the kill: the test did not kill mid-job")
		}
		srv = startServe(t, cfgFile, addr)
		waitUntil(t, "the resumed job", 90*time.Second, srv, func() bool { return srv.done_(t, key) != nil })
		d := srv.done_(t, key)
		if d.Result != ResultPushed && d.Result != ResultPresent {
			t.Fatalf("job %+v", d)
		}
		if !rc.exists(t, "app/kill:1-layered") {
			t.Fatal("app/kill:1-layered is missing")
		}
		time.Sleep(500 * time.Millisecond) // let the registry deliver any late event
		if n := events.pushes("app/kill", "1-layered"); n != 1 {
			t.Errorf("app/kill:1-layered pushed %d times, want exactly once", n)
		}
		if n := journalCount(t, stateDir, "done", key); n != 1 {
			t.Errorf("%d done records, want 1", n)
		}
		if n := journalCount(t, stateDir, "accept", key); n != 1 {
			t.Errorf("%d accept records, want 1", n)
		}
	})

	t.Run("a finished push found again is not pushed twice", func(t *testing.T) {
		// The runner itself, as after a crash between the push and the done record: the target already
		// holds the instrumented image of the digest.
		cfg, err := LoadConfig(cfgFile, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		cfg.StateDir = t.TempDir()
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		r, err := NewInstrumentRunner(cfg, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		digest := mustDigest(t, compatibleImage(t))
		out, err := r.Run(context.Background(), Job{Key: "app/ok:1@" + digest, Repository: "app/ok", Tag: "1", Digest: digest,
			Target: proxy.Host + "/app/ok:1-layered"})
		if err != nil || out.Result != ResultPresent {
			t.Fatalf("outcome %+v, %v; want %s", out, err, ResultPresent)
		}
		// and crs-ci's own output is never instrumented, even under a tag without the suffix
		layered, err := remote.Image(rc.ref(t, "app/ok:1-layered"), rc.auth())
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(rc.ref(t, "app/copy:1"), layered, rc.auth()); err != nil {
			t.Fatal(err)
		}
		ld := mustDigest(t, layered)
		out, err = r.Run(context.Background(), Job{Key: "app/copy:1@" + ld, Repository: "app/copy", Tag: "1", Digest: ld,
			Target: proxy.Host + "/app/copy:1-layered"})
		if err != nil || out.Result != ResultSkipped {
			t.Fatalf("own output: %+v, %v; want %s", out, err, ResultSkipped)
		}
		// a tag that moved on is superseded
		out, err = r.Run(context.Background(), Job{Key: "app/ok:1@" + ld, Repository: "app/ok", Tag: "1", Digest: ld,
			Target: proxy.Host + "/app/ok:1-layered"})
		if err != nil || out.Result != ResultSuperseded {
			t.Fatalf("moved tag: %+v, %v; want %s", out, err, ResultSuperseded)
		}
		time.Sleep(300 * time.Millisecond)
		if n := events.pushes("app/ok", "1-layered"); n != 1 {
			t.Errorf("app/ok:1-layered pushed %d times, want once", n)
		}
		// the service itself skipped app/copy:1 (our own output) when the registry notified it
		waitUntil(t, "the service to skip app/copy:1", 60*time.Second, srv, func() bool {
			d := srv.done_(t, "app/copy:1@"+ld)
			return d != nil && d.Result == ResultSkipped
		})
	})

	t.Run("credentials from Vault", func(t *testing.T) {
		// The runner with credentials.vault (KV v2, base64 values, token from VAULT_TOKEN) against the
		// in-process server that follows Vault's HTTP API (no Vault server can be installed here).
		v := testenv.StartVault(t)
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		v.PutKV2("secret", "ci/registry", map[string]any{"username": b64(reg.User), "password": b64(reg.Password)})
		v.AddToken("vault-token-1")
		cfg, err := LoadConfig(cfgFile, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		cfg.StateDir = t.TempDir()
		cfg.Credentials = CredentialsConfig{Vault: &VaultConfig{Address: v.URL, Path: "secret/ci/registry", Engine: "kv-v2", Base64: true}}
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		img := compatibleImage(t, testenv.Reg("/etc/vault", []byte("1")))
		digest := rc.push(t, "vault/app:1", img) // outside app/*: the service itself ignores it
		job := Job{Key: "vault/app:1@" + digest, Repository: "vault/app", Tag: "1", Digest: digest, Target: proxy.Host + "/vault/app:1-layered"}
		for _, tc := range []struct {
			token string
			want  string
		}{{"wrong-token", ""}, {"vault-token-1", ResultPushed}} {
			env := map[string]string{"VAULT_TOKEN": tc.token}
			r, err := NewInstrumentRunner(cfg, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Run(context.Background(), job)
			if tc.want == "" {
				if err == nil || rc.exists(t, "vault/app:1-layered") {
					t.Fatalf("token %s: %+v, %v; want an error and nothing pushed", tc.token, out, err)
				}
				continue
			}
			if err != nil || out.Result != tc.want || !rc.exists(t, "vault/app:1-layered") {
				t.Fatalf("token %s: %+v, %v; want %s", tc.token, out, err, tc.want)
			}
		}
	})

	t.Run("a flood beyond the queue is deferred with 503 and every push is instrumented once", func(t *testing.T) {
		const n = 8
		// Each job slowed down (every manifest request of crs-ci takes 500ms more), the images pushed at once.
		proxy.Clear()
		proxy.Inject(testenv.Fault{Path: "/manifests/", Delay: 500 * time.Millisecond})
		defer proxy.Clear()
		var tags []string
		for i := 0; i < n; i++ {
			tags = append(tags, fmt.Sprintf("f%d", i))
		}
		var wg sync.WaitGroup
		for _, tag := range tags {
			wg.Add(1)
			go func(tag string) {
				defer wg.Done()
				rc.push(t, "app/flood:"+tag, compatibleImage(t, testenv.Reg("/etc/flood", []byte(tag))))
			}(tag)
		}
		wg.Wait()
		waitUntil(t, "every flood image to be instrumented", 180*time.Second, srv, func() bool {
			for _, tag := range tags {
				if events.pushes("app/flood", tag+"-layered") == 0 {
					return false
				}
			}
			return true
		})
		for _, tag := range tags {
			if got := events.pushes("app/flood", tag+"-layered"); got != 1 {
				t.Errorf("app/flood:%s-layered pushed %d times, want once", tag, got)
			}
		}
		if srv.metric(t, `crs_serve_notifications_total{code="503"}`) == "" {
			t.Errorf("no notification was deferred: the flood did not reach the queue bound of 2")
		}
		if st := srv.jobs(t); st.MaxQueue > 2 {
			t.Errorf("the queue held %d jobs, bound 2", st.MaxQueue)
		}
	})

	t.Run("SIGTERM stops gracefully", func(t *testing.T) {
		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-srv.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("serve did not stop on SIGTERM:\n%s", srv.log.String())
		}
		if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM:\n%s", code, srv.log.String())
		}
		// JSON logs: every line is a JSON object with time, level and msg.
		for _, line := range strings.Split(strings.TrimSpace(srv.log.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil || m["level"] == nil || m["time"] == nil {
				t.Errorf("not a structured log line: %q", line)
			}
		}
		if strings.Contains(srv.log.String(), testSecret) || strings.Contains(srv.log.String(), reg.Password) {
			t.Errorf("a secret appears in the logs")
		}
	})
}

func mustDigest(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// layerFiles lists a layer's entries by path.
func layerFiles(t *testing.T, l v1.Layer) map[string]*tar.Header {
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(path.Clean(h.Name), "/")] = h
	}
}

// unpack writes the image's merged filesystem to a new directory.
func unpack(t *testing.T, img v1.Image) string {
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}
