package hardening

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/probe"
)

// chroot is an overlay over the cached bookworm root filesystem (the cache is never written) with the glibc
// probe from core/probe/artifacts in /etc/ld.so.preload, a policy compiled by core/policy, and the robust
// helper (testdata/robust.c) in /opt/t.
type chroot struct {
	dir   string
	files map[string][]byte // the probe's files as installed
}

func newChroot(t *testing.T) *chroot {
	t.Helper()
	lower := testenv.Rootfs(t, "bookworm")
	tmp := t.TempDir()
	c := &chroot{dir: filepath.Join(tmp, "m"), files: map[string][]byte{}}
	for _, d := range []string{"u", "w", "m"} {
		os.MkdirAll(filepath.Join(tmp, d), 0o755)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(tmp, "u"), filepath.Join(tmp, "w"))
	if err := syscall.Mount("overlay", c.dir, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting an overlay over %s: %v", lower, err)
	}
	t.Cleanup(func() { syscall.Unmount(c.dir, syscall.MNT_DETACH) })
	proc := filepath.Join(c.dir, "proc")
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatalf("mounting /proc: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })

	art, err := probe.For(probe.Glibc, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	p, findings, err := policy.ParseFile(testdata(t, "robust-policy.yaml"))
	if err != nil || policy.HasErrors(findings) {
		t.Fatalf("policy: %v %+v", err, findings)
	}
	compiled, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	c.files[probe.LibraryPath] = art.Bytes
	c.files[probe.PolicyPath] = compiled
	c.files[probe.PreloadPath] = []byte(probe.LibraryPath + "\n")
	for path, b := range c.files {
		mode := os.FileMode(0o644)
		if path == probe.LibraryPath {
			mode = 0o755
		}
		c.write(t, path, b, mode)
	}
	c.write(t, "/srv/secret/key", []byte("top secret\n"), 0o644)
	c.write(t, "/srv/public/a", []byte("public\n"), 0o644)
	bin := filepath.Join(tmp, "robust")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, testdata(t, "robust.c"), "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/robust.c: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(bin)
	c.write(t, "/opt/t/robust", b, 0o755)
	return c
}

func (c *chroot) write(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(c.dir, path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
}

type proc struct {
	argv           []string
	code           int
	stdout, stderr string
}

func (p proc) String() string {
	return fmt.Sprintf("%v: exit %d\nstdout: %s\nstderr: %s", p.argv, p.code, p.stdout, p.stderr)
}

// run runs argv in the chroot with env (PATH and LANG are set) and a timeout: a workload the probe blocks
// fails the test instead of hanging it.
func (c *chroot) run(t *testing.T, timeout time.Duration, env []string, argv ...string) proc {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{c.dir}, argv...)...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("%v did not finish within %s (the probe blocked it?)\nstdout: %s\nstderr: %s", argv, timeout, so.String(), se.String())
	}
	return proc{argv: argv, code: cmd.ProcessState.ExitCode(), stdout: strings.TrimSpace(so.String()), stderr: strings.TrimSpace(se.String())}
}

type event struct {
	PID       int    `json:"pid"`
	Op        string `json:"op"`
	Path      string `json:"path"`
	Action    string `json:"action"`
	Rule      string `json:"rule"`
	Dropped   int    `json:"dropped"`
	Truncated bool   `json:"truncated"`
	Error     string `json:"error"`
}

// events reads a JSON-lines event file; every line must be one complete JSON object ending in a newline.
func events(t *testing.T, path string) []event {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s does not end with a newline: a torn last line", path)
	}
	var evs []event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s line %d is not one JSON object (interleaved or torn): %v\n%.300s", path, n, err, sc.Text())
		}
		evs = append(evs, e)
	}
	return evs
}

// TestProbeRobustness puts workloads that stress or attack the probe into a real bookworm root filesystem
// (chroot) with the real glibc probe and a compiled policy, and asserts that enforcement holds, nothing
// hangs, the event file stays one JSON object per line, and the probe's own files survive.
func TestProbeRobustness(t *testing.T) {
	c := newChroot(t)

	t.Run("threads, forks and signal handlers opening files", func(t *testing.T) {
		res := c.run(t, 90*time.Second, []string{"CRS_EVENTS=file:/tmp/stress.jsonl"}, "/opt/t/robust", "stress", "3", "/srv/secret/key", "/srv/public/a")
		var d, a, s, ch, bad, sigbad, childbad int
		if _, err := fmt.Sscanf(res.stdout, "ok denied=%d allowed=%d signals=%d children=%d bad=%d sigbad=%d childbad=%d", &d, &a, &s, &ch, &bad, &sigbad, &childbad); err != nil || res.code != 0 {
			t.Fatalf("stress did not report ok (%v)\n%s", err, res)
		}
		if d == 0 || a == 0 || s == 0 || ch == 0 {
			t.Errorf("the stress did not exercise every path: %s", res.stdout)
		}
		evs := events(t, filepath.Join(c.dir, "tmp/stress.jsonl"))
		dropped := 0
		for _, e := range evs {
			if e.Action != "deny" || e.Path != "/srv/secret/key" || e.Rule != "no-secrets" {
				t.Fatalf("unexpected event %+v", e)
			}
			dropped += e.Dropped
		}
		t.Logf("%s; %d events, %d dropped", res.stdout, len(evs), dropped)
		if len(evs) == 0 {
			t.Error("no events from the stress run")
		}
	})

	t.Run("many processes appending to one event file", func(t *testing.T) {
		// a path near the probe's limits: five 200-byte components under /srv/secret
		long := "/srv/secret"
		for i := 0; i < 5; i++ {
			long += "/" + strings.Repeat(string(rune('a'+i)), 200)
		}
		const procs, each = 12, 300
		var wg sync.WaitGroup
		results := make([]proc, procs)
		for i := 0; i < procs; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i] = c.run(t, 90*time.Second, []string{"CRS_EVENTS=file:/tmp/shared.jsonl"}, "/opt/t/robust", "spam", fmt.Sprint(each), long)
			}(i)
		}
		wg.Wait()
		for _, r := range results {
			if r.stdout != fmt.Sprintf("ok %d", each) {
				t.Fatalf("a writer's opens were not all denied\n%s", r)
			}
		}
		evs := events(t, filepath.Join(c.dir, "tmp/shared.jsonl"))
		total := 0
		pids := map[int]bool{}
		for _, e := range evs {
			if e.Path != long && !e.Truncated {
				t.Fatalf("event path %.80q… is neither the path nor marked truncated", e.Path)
			}
			total += 1 + e.Dropped
			pids[e.PID] = true
		}
		t.Logf("%d lines from %d processes, %d dropped", len(evs), len(pids), total-len(evs))
		if total != procs*each || len(pids) != procs {
			t.Errorf("%d events (+drops) from %d processes, want %d from %d", total, len(pids), procs*each, procs)
		}
	})

	t.Run("event sink unavailable", func(t *testing.T) {
		ro := filepath.Join(c.dir, "ro")
		os.MkdirAll(ro, 0o755)
		if err := syscall.Mount(ro, ro, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
		if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(c.dir, "tmp/fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, sink := range []string{"file:/ro/events.jsonl", "file:/missing/dir/events.jsonl", "file:/tmp/fifo", "file:/dev/full",
			"unix:/tmp/no-listener.sock", "file:/srv"} {
			t.Run(sink, func(t *testing.T) {
				res := c.run(t, 30*time.Second, []string{"CRS_EVENTS=" + sink}, "/opt/t/robust", "spam", "50", "/srv/secret/key")
				if res.code != 0 || res.stdout != "ok 50" {
					t.Errorf("enforcement changed with the sink unavailable\n%s", res)
				}
				res = c.run(t, 30*time.Second, []string{"CRS_EVENTS=" + sink}, "cat", "/srv/public/a")
				if res.code != 0 || res.stdout != "public" {
					t.Errorf("the workload failed with the sink unavailable\n%s", res)
				}
			})
		}
	})

	t.Run("env -i children", func(t *testing.T) {
		policySink := filepath.Join(c.dir, "var/log/crs-policy-events.jsonl")
		os.Remove(policySink)
		for _, argv := range [][]string{
			{"env", "-i", "/bin/cat", "/srv/secret/key"},
			{"env", "-i", "/bin/sh", "-c", "cat /srv/secret/key"},
			{"sh", "-c", "env -i /usr/bin/head -c 3 /srv/secret/key"},
		} {
			res := c.run(t, 30*time.Second, []string{"CRS_EVENTS=file:/tmp/envi.jsonl"}, argv...)
			if res.code == 0 || strings.Contains(res.stdout, "top") || !strings.Contains(res.stderr, "Permission denied") {
				t.Errorf("a child with an empty environment read the secret\n%s", res)
			}
		}
		// the children lost CRS_EVENTS: their events go to the policy's own sink
		n := 0
		for _, e := range events(t, policySink) {
			if e.Path == "/srv/secret/key" && e.Action == "deny" {
				n++
			}
		}
		if n < 3 {
			t.Errorf("%d deny events in the policy's sink %s, want one per env -i child (3)", n, "/var/log/crs-policy-events.jsonl")
		}
	})

	t.Run("workload attacks the probe's files", func(t *testing.T) {
		res := c.run(t, 30*time.Second, nil, "/opt/t/robust", "tamper")
		lines := strings.Split(res.stdout, "\n")
		if len(lines) < 40 {
			t.Fatalf("tamper ran %d attempts\n%s", len(lines), res)
		}
		for _, l := range lines {
			if strings.HasSuffix(l, " ok") {
				t.Errorf("attempt succeeded: %s", l)
			}
		}
		c.assertIntact(t)
	})

	t.Run("event sink pointed at the probe's files", func(t *testing.T) {
		for path := range c.files {
			res := c.run(t, 30*time.Second, []string{"CRS_EVENTS=file:" + path}, "cat", "/srv/secret/key")
			if res.code == 0 {
				t.Errorf("CRS_EVENTS=file:%s: the secret was read\n%s", path, res)
			}
		}
		c.assertIntact(t)
		res := c.run(t, 30*time.Second, nil, "cat", "/srv/secret/key")
		if res.code == 0 || strings.Contains(res.stdout, "top") {
			t.Errorf("after the attempts the policy is no longer enforced\n%s", res)
		}
	})
}

// assertIntact checks the probe's files are byte for byte what was installed.
func (c *chroot) assertIntact(t *testing.T) {
	t.Helper()
	for path, want := range c.files {
		got, err := os.ReadFile(filepath.Join(c.dir, path))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s changed (%v, %d bytes, was %d)", path, err, len(got), len(want))
		}
	}
}
