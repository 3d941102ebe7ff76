package suggest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/probe"
)

// recorded is the committed stream recorded from a real run of testdata/live/workload.sh under the glibc
// probe in a bookworm root (TestRecordLive re-records it; -update rewrites it).
const recorded = "../events/testdata/recorded/bookworm-audit.jsonl"

// knownFields are the fields core/events reads. A field the probe starts writing fails TestRecordLive, so
// the reader is updated on purpose, never by accident.
var knownFields = map[string]bool{"ts": true, "pid": true, "program": true, "op": true, "path": true, "addr": true,
	"syscall": true, "action": true, "rule": true, "mode": true, "policy": true, "error": true, "dropped": true, "truncated": true}

// liveRoot mounts an overlay over the cached bookworm root (the cache is never written) with /proc, the
// glibc amd64 probe, /etc/ld.so.preload, the compiled policy and the workload, and returns its directory and
// the policy's identity.
func liveRoot(t *testing.T, policyYAML []byte) (string, string) {
	t.Helper()
	return liveRootOf(t, "bookworm", "amd64", policyYAML)
}

// liveRootOf is liveRoot over the cached root NAME with the glibc probe for arch (arm64: qemu-aarch64-static
// is copied to /opt/rec/qemu-aarch64-static to run programs with).
func liveRootOf(t *testing.T, name, arch string, policyYAML []byte) (string, string) {
	t.Helper()
	lower := testenv.Rootfs(t, name)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "m")
	for _, d := range []string{"u", "w", "m"} {
		os.MkdirAll(filepath.Join(tmp, d), 0o755)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(tmp, "u"), filepath.Join(tmp, "w"))
	if err := syscall.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting an overlay over %s: %v", lower, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	proc := filepath.Join(dir, "proc")
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatalf("mounting /proc: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })

	p, fs := policy.Parse("policy.yaml", policyYAML)
	if policy.HasErrors(fs) {
		t.Fatalf("policy does not validate: %+v\n%s", fs, policyYAML)
	}
	bin, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	a, err := probe.For(probe.Glibc, arch)
	if err != nil {
		t.Fatal(err)
	}
	if arch == "arm64" {
		q, err := exec.LookPath("qemu-aarch64-static")
		if err != nil {
			t.Fatal("qemu-aarch64-static is needed (scripts/install-deps.sh installs it)")
		}
		b, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "opt/rec/qemu-aarch64-static")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	workload, err := os.ReadFile("testdata/live/workload.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{probe.LibraryPath, a.Bytes, 0o755},
		{probe.PolicyPath, bin, 0o644},
		{"/opt/rec/workload.sh", workload, 0o755},
		{probe.PreloadPath, []byte(probe.LibraryPath + "\n"), 0o644}, // last: from here on every process is probed
	} {
		p := filepath.Join(dir, f.path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir, c.SHA256()
}

// runIn runs a shell command in the root with the event sink at /tmp/events.jsonl and returns its output
// and the events written (nil when none were).
func runIn(t *testing.T, dir, command string) (string, []byte) {
	t.Helper()
	out := runWith(t, dir, "file:/tmp/events.jsonl", command)
	ev, err := os.ReadFile(filepath.Join(dir, "tmp", "events.jsonl"))
	if os.IsNotExist(err) {
		return string(out), nil // nothing was logged (a policy logging only deny and alert, and none happened)
	}
	if err != nil {
		t.Fatalf("reading the events: %v (output: %s)", err, out)
	}
	os.Remove(filepath.Join(dir, "tmp", "events.jsonl"))
	return string(out), ev
}

// runWith runs a shell command in the root with CRS_EVENTS=sink and returns its output.
func runWith(t *testing.T, dir, sink, command string) string {
	t.Helper()
	return runArgv(t, dir, sink, "/bin/sh", "-c", command)
}

// runArgv runs argv in the root with CRS_EVENTS=sink and returns its output.
func runArgv(t *testing.T, dir, sink string, argv ...string) string {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{dir}, argv...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "LANG=C", "CRS_EVENTS=" + sink}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s %q: %v\n%s", dir, argv, err, out)
	}
	return string(out)
}

// shape reduces a stream to a sorted multiset of program/op/subject/action/rule/mode lines.
func shape(t *testing.T, stream []byte) []string {
	t.Helper()
	var out []string
	st, err := events.ReadAll(bytes.NewReader(stream), "stream", func(e *events.Event) error {
		out = append(out, strings.Join([]string{e.Program, e.Op, e.Subject(), e.Action, e.Rule, e.Mode}, " "))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped+st.Malformed+st.Oversized != 0 {
		t.Errorf("the probe wrote lines core/events cannot read: %+v", st)
	}
	sort.Strings(out)
	return out
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestRecordLive records the workload under the real probe in audit mode and checks the stream against the
// committed recording: the same events, only fields core/events knows, RFC 3339 nanosecond timestamps, the
// compiled policy's identity. A probe that changes its format fails here, not silently in users' summaries.
func TestRecordLive(t *testing.T) {
	learn, err := os.ReadFile("testdata/live/learn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, sha := liveRoot(t, learn)
	out, stream := runIn(t, dir, "/opt/rec/workload.sh")
	if !strings.HasSuffix(strings.TrimSpace(out), "done") {
		t.Fatalf("workload output: %s", out)
	}
	tsRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)
	for i, line := range bytes.Split(bytes.TrimSpace(stream), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
		}
		for k := range m {
			if !knownFields[k] {
				t.Errorf("line %d: field %q unknown to core/events: teach the reader, then re-record: %s", i+1, k, line)
			}
		}
		if ts, _ := m["ts"].(string); !tsRE.MatchString(ts) {
			t.Errorf("line %d: ts %q is not RFC 3339 with nanoseconds", i+1, m["ts"])
		}
		if m["policy"] != sha || !hex64.MatchString(sha) {
			t.Errorf("line %d: policy %v, want the compiled policy's sha256 %s", i+1, m["policy"], sha)
		}
	}
	got := shape(t, stream)
	for _, want := range []string{
		"/usr/bin/cat read /etc/shadow deny no-secrets audit",
		"/usr/bin/dash exec /usr/bin/bash alert watch-shells audit",
		"/usr/bin/bash connect 127.0.0.1:9 allow  audit",
		"/usr/bin/perl bind 127.0.0.1:0 allow  audit",
		"/usr/bin/perl syscall 318 allow  audit",
		"/usr/bin/mv rename /tmp/work/greeting.txt allow  audit",
		"/usr/bin/cp write /tmp/work/cache/version allow  audit",
	} {
		if !contains(got, want) {
			t.Errorf("the live stream lacks %q", want)
		}
	}
	if *update {
		if err := os.WriteFile(recorded, stream, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatalf("%v (run with -update to record it)", err)
	}
	if c := shape(t, committed); strings.Join(c, "\n") != strings.Join(got, "\n") {
		t.Errorf("the live stream differs from %s (re-record with -update and review the diff):\nlive:\n%s\ncommitted:\n%s",
			recorded, strings.Join(got, "\n"), strings.Join(c, "\n"))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestLearnThenEnforceLive is the audit → enforce walkthrough on the real probe: learn a policy from the
// recorded audit stream, run the same workload under it in enforce mode — it succeeds and nothing is
// denied — and check that something the workload never did is denied (strict: EACCES from cat).
func TestLearnThenEnforceLive(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			s, err := Suggest(observe(t, recorded), Options{Name: "learned", Strict: strict})
			if err != nil {
				t.Fatal(err)
			}
			dir, _ := liveRoot(t, s.YAML)
			out, stream := runIn(t, dir, "/opt/rec/workload.sh")
			if !strings.HasSuffix(strings.TrimSpace(out), "done") {
				t.Fatalf("workload under the learned policy: %s", out)
			}
			for _, l := range shape(t, stream) {
				if strings.Contains(l, " deny ") {
					t.Errorf("denied under the learned policy: %s\n%s", l, s.YAML)
				}
			}
			if !strict {
				return
			}
			out, stream = runIn(t, dir, "cat /etc/passwd >/dev/null; echo rc=$?")
			if !strings.Contains(out, "Permission denied") || !strings.Contains(out, "rc=1") {
				t.Errorf("reading /etc/passwd under the strict learned policy: %s", out)
			}
			if !contains(shape(t, stream), "/usr/bin/cat read /etc/passwd deny  enforce") {
				t.Errorf("no deny event for /etc/passwd: %s", stream)
			}
		})
	}
}

// TestTailUnixLive: events.ListenUnix receives what the real probe sends to a unix: sink — the socket is
// bound inside the root, where the probe (CRS_EVENTS=unix:/tmp/crs.sock) finds it.
func TestTailUnixLive(t *testing.T) {
	learn, err := os.ReadFile("testdata/live/learn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, sha := liveRoot(t, learn)
	sink, err := events.ListenUnix(filepath.Join(dir, "tmp", "crs.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan events.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- sink.Serve(ctx, func(e *events.Event) error { got <- *e; return nil })
	}()
	runWith(t, dir, "unix:/tmp/crs.sock", "cat /etc/debian_version /etc/shadow >/dev/null 2>&1; true")
	var seen []string
	deadline := time.After(10 * time.Second)
	for !contains(seen, "/usr/bin/cat read /etc/shadow deny no-secrets") {
		select {
		case e := <-got:
			seen = append(seen, strings.Join([]string{e.Program, e.Op, e.Subject(), e.Action, e.Rule}, " "))
			if e.Policy != sha {
				t.Errorf("policy %q, want %s", e.Policy, sha)
			}
		case <-deadline:
			t.Fatalf("events received: %q", seen)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !contains(seen, "/usr/bin/cat read /etc/debian_version allow ") {
		t.Errorf("events received: %q", seen)
	}
}

// recordedArm64 is a stream recorded from perl on Debian bookworm arm64 under the arm64 probe (qemu-user):
// its syscall numbers are aarch64's.
const recordedArm64 = "../events/testdata/recorded/bookworm-arm64-audit.jsonl"

// TestRecordArm64Live records perl on arm64 (under qemu-aarch64-static: one process, no child execs) and
// learns from it with --arch arm64: syscall 278 is getrandom there (318 on x86_64), and the suggestion
// replays with the aarch64 numbering.
func TestRecordArm64Live(t *testing.T) {
	learn, err := os.ReadFile("testdata/live/learn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, sha := liveRootOf(t, "bookworm-arm64", "arm64", learn)
	out := runArgv(t, dir, "file:/tmp/events.jsonl", "/opt/rec/qemu-aarch64-static", "/usr/bin/perl", "-e",
		`open(my $f, "<", "/etc/debian_version") or die; syscall(278, my $b = "\0" x 8, 8, 0) >= 0 or die "getrandom: $!"; print "ok\n"`)
	if strings.TrimSpace(out) != "ok" {
		t.Fatalf("perl under qemu: %s", out)
	}
	stream, err := os.ReadFile(filepath.Join(dir, "tmp", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	got := shape(t, stream)
	for _, want := range []string{"/usr/bin/perl syscall 278 allow  audit", "/usr/bin/perl read /etc/debian_version allow  audit"} {
		if !contains(got, want) {
			t.Errorf("the arm64 stream lacks %q: %q", want, got)
		}
	}
	if !bytes.Contains(stream, []byte(`"policy":"`+sha+`"`)) {
		t.Errorf("policy identity %s not in the stream", sha)
	}
	if *update {
		if err := os.WriteFile(recordedArm64, stream, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(recordedArm64)
	if err != nil {
		t.Fatalf("%v (run with -update to record it)", err)
	}
	if c := shape(t, committed); strings.Join(c, "\n") != strings.Join(got, "\n") {
		t.Errorf("the live arm64 stream differs from %s (re-record with -update):\nlive:\n%s\ncommitted:\n%s",
			recordedArm64, strings.Join(got, "\n"), strings.Join(c, "\n"))
	}

	o := NewObserved("arm64")
	if _, err := events.ReadAll(bytes.NewReader(committed), "arm64", o.Add); err != nil {
		t.Fatal(err)
	}
	s, err := Suggest(o, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(s.YAML, []byte("- getrandom")) {
		t.Errorf("syscall 278 on arm64 is not learned as getrandom:\n%s", s.YAML)
	}
	c := compile(t, "arm64.yaml", s.YAML)
	_, err = events.ReadAll(bytes.NewReader(committed), "arm64", func(e *events.Event) error {
		for _, q := range Requests(e, "arm64") {
			if ok, d := allowedBy(c, q); !ok {
				return fmt.Errorf("%s %s denied (rule %q)", e.Op, e.Subject(), d.RuleName)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replaying the arm64 stream: %v", err)
	}
}
