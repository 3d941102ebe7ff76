package probetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/probe"
)

// Event is one line the probe wrote.
type Event struct {
	TS        string `json:"ts"`
	PID       int    `json:"pid"`
	Program   string `json:"program"`
	Op        string `json:"op"`
	Path      string `json:"path"`
	Addr      string `json:"addr"`
	Syscall   *int   `json:"syscall"`
	Action    string `json:"action"`
	Rule      string `json:"rule"`
	Mode      string `json:"mode"`
	Policy    string `json:"policy"`
	Error     string `json:"error"`
	Dropped   int    `json:"dropped"`
	Truncated bool   `json:"truncated"`
}

var (
	repoRoot string
	helpers  string // directory of built helper programs
	buildErr error
	once     sync.Once
	seq      atomic.Int64
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "crs-probe-helpers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	helpers = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helper builds (once per test binary) and returns the path of a helper program:
// "helper" (host gcc), "helper-fortify" (-D_FORTIFY_SOURCE=2 -O2), "helper-musl" (musl-gcc),
// "helper-arm64" (aarch64-linux-gnu-gcc), and "helper-baseline" / "helper-baseline-fortify": the same two
// glibc builds bound to the oldest symbol versions (testdata/baseline.h), which run on glibc 2.17 and later.
func helper(t *testing.T, name string) string {
	t.Helper()
	once.Do(func() { buildErr = buildHelpers() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(helpers, name)
}

// linkStubs are link-time-only stand-ins for the libraries that hold the baseline helper's imports on old
// glibc (before 2.34 pthread_create lived in libpthread.so.0 and dlsym in libdl.so.2). Linking against them
// records the right library for each symbol version; at run time the root's real libraries are loaded.
var linkStubs = map[string][]string{
	"libpthread.so.0": {"pthread_create", "pthread_join"},
	"libdl.so.2":      {"dlsym"},
}

// baselineMax is the newest glibc symbol version the baseline helpers may need (so they run on 2.17+).
const baselineMax = "GLIBC_2.17"

func buildHelpers() error {
	td := filepath.Join(repoRoot, "probe", "test", "testdata")
	src := filepath.Join(td, "helper.c")
	stubDir := filepath.Join(helpers, "stubs")
	if err := os.MkdirAll(stubDir, 0o755); err != nil {
		return err
	}
	var stubs []string
	for _, soname := range []string{"libdl.so.2", "libpthread.so.0"} {
		var c, m strings.Builder
		m.WriteString("GLIBC_2.2.5 { global:")
		for _, f := range linkStubs[soname] {
			fmt.Fprintf(&c, "int %s(void) { return 0; }\n", f)
			fmt.Fprintf(&m, " %s;", f)
		}
		m.WriteString(" local: *; };\n")
		base := filepath.Join(stubDir, soname)
		if err := os.WriteFile(base+".c", []byte(c.String()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(base+".map", []byte(m.String()), 0o644); err != nil {
			return err
		}
		if out, err := exec.Command("gcc", "-shared", "-nostdlib", "-Wl,-soname,"+soname,
			"-Wl,--version-script="+base+".map", "-o", base, base+".c").CombinedOutput(); err != nil {
			return fmt.Errorf("building link stub %s: %v\n%s", soname, err, out)
		}
		stubs = append(stubs, base)
	}
	baseline := append([]string{"-DCRS_BASELINE", "-include", filepath.Join(td, "baseline.h"), "-nostartfiles",
		"-Wl,-z,nopack-relative-relocs", "-Wl,--no-as-needed"}, stubs...)
	builds := [][]string{
		{"gcc", "-O2", "-o", filepath.Join(helpers, "helper"), src, "-lpthread"},
		{"gcc", "-O2", "-D_FORTIFY_SOURCE=2", "-o", filepath.Join(helpers, "helper-fortify"), src, "-lpthread"},
		append([]string{"gcc", "-O2", "-o", filepath.Join(helpers, "helper-baseline"), src}, baseline...),
		append([]string{"gcc", "-O2", "-D_FORTIFY_SOURCE=2", "-o", filepath.Join(helpers, "helper-baseline-fortify"), src}, baseline...),
		{"musl-gcc", "-O2", "-o", filepath.Join(helpers, "helper-musl"), src},
		{"aarch64-linux-gnu-gcc", "-O2", "-o", filepath.Join(helpers, "helper-arm64"), src, "-lpthread"},
	}
	for _, b := range builds {
		if out, err := exec.Command(b[0], b[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("building test helper with %s: %v\n%s", strings.Join(b, " "), err, out)
		}
	}
	for _, name := range []string{"helper-baseline", "helper-baseline-fortify"} {
		if problems := baselineProblems(filepath.Join(helpers, name)); len(problems) > 0 {
			return fmt.Errorf("%s needs more than glibc %s: %s", name, baselineMax, strings.Join(problems, "; "))
		}
	}
	return nil
}

// baselineProblems reads an executable's needs (DT_NEEDED, .gnu.version_r) and lists every symbol version
// newer than baselineMax, any non-GLIBC_2.x version, and any library other than libc, libpthread and libdl.
func baselineProblems(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	a, err := probe.Analyze(b)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var problems []string
	for _, n := range a.Needs {
		if n.Soname != "libc.so.6" && linkStubs[n.Soname] == nil {
			problems = append(problems, "DT_NEEDED "+n.Soname)
		}
		for _, v := range n.Versions {
			if !glibcVersionAtMost(v, baselineMax) {
				problems = append(problems, fmt.Sprintf("%s from %s", v, n.Soname))
			}
		}
	}
	return problems
}

// glibcVersionAtMost reports whether the version node v (GLIBC_2.N[.M]) is not newer than max.
func glibcVersionAtMost(v, max string) bool {
	parse := func(s string) []int {
		rest, ok := strings.CutPrefix(s, "GLIBC_")
		if !ok {
			return nil
		}
		var out []int
		for _, p := range strings.Split(rest, ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	a, b := parse(v), parse(max)
	if a == nil || b == nil {
		return false
	}
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x < y
		}
	}
	return true
}

// root is an instrumented copy (overlay) of a cached distribution root filesystem.
type root struct {
	name   string
	dir    string // merged overlay, the chroot
	qemu   bool   // run programs through /opt/t/qemu-aarch64-static
	prefix []string
	env    []string
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// cachedRoot returns the debootstrap tree NAME, building it if needed (scripts/rootfs.sh).
func cachedRoot(t *testing.T, name string) string {
	t.Helper()
	out := run(t, filepath.Join(repoRoot, "scripts", "rootfs.sh"), name)
	lines := strings.Split(out, "\n")
	return lines[len(lines)-1]
}

// newRoot mounts an overlay over the cached root NAME (the cache is never written), mounts /proc in it,
// installs the probe artifact for libc/arch and /etc/ld.so.preload, and copies the helpers to /opt/t.
func newRoot(t *testing.T, name, libc, arch string) *root {
	t.Helper()
	return newRootFrom(t, cachedRoot(t, name), name, libc, arch)
}

// newRootFrom is newRoot over any lower directory.
func newRootFrom(t *testing.T, lower, name, libc, arch string) *root {
	t.Helper()
	tmp := t.TempDir()
	r := &root{name: name, dir: filepath.Join(tmp, "m")}
	for _, d := range []string{"u", "w", "m"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(tmp, "u"), filepath.Join(tmp, "w"))
	if err := syscall.Mount("overlay", r.dir, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting overlay over %s: %v", lower, err)
	}
	t.Cleanup(func() { syscall.Unmount(r.dir, syscall.MNT_DETACH) })
	proc := filepath.Join(r.dir, "proc")
	os.MkdirAll(proc, 0o755)
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatalf("mounting /proc in %s: %v", r.dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })
	a, err := probe.For(libc, arch)
	if err != nil {
		t.Fatal(err)
	}
	r.write(t, probe.LibraryPath, a.Bytes, 0o755)
	if libc == probe.Glibc {
		r.write(t, probe.PreloadPath, []byte(probe.LibraryPath+"\n"), 0o644)
	} else {
		r.env = append(r.env, "LD_PRELOAD="+probe.LibraryPath)
	}
	if arch == "arm64" {
		q, err := exec.LookPath("qemu-aarch64-static")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		r.write(t, "/opt/t/qemu-aarch64-static", b, 0o755)
		r.prefix = []string{"/opt/t/qemu-aarch64-static"}
	}
	for _, d := range []string{"/srv/secret", "/srv/ro", "/srv/public", "/tmp"} {
		os.MkdirAll(filepath.Join(r.dir, d), 0o777)
	}
	os.Chmod(filepath.Join(r.dir, "tmp"), 0o1777)
	r.write(t, "/srv/secret/key", []byte("top secret\n"), 0o644)
	r.write(t, "/srv/ro/file", []byte("read me\n"), 0o644)
	r.write(t, "/srv/public/a", []byte("public\n"), 0o644)
	r.write(t, "/srv/public/watched", []byte("watched\n"), 0o644)
	return r
}

func (r *root) write(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(r.dir, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
}

// install copies a host file into the root.
func (r *root) install(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	r.write(t, dst, b, 0o755)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// compile compiles a policy YAML from testdata with core/policy.
func compile(t *testing.T, file string) []byte {
	t.Helper()
	p, fs, err := policy.ParseFile(filepath.Join(repoRoot, "probe", "test", "testdata", file))
	if err != nil || policy.HasErrors(fs) {
		t.Fatalf("policy %s: %v %+v", file, err, fs)
	}
	b, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setPolicy installs a compiled policy and returns its identity (sha256 of the whole file).
func (r *root) setPolicy(t *testing.T, b []byte) string {
	t.Helper()
	r.write(t, probe.PolicyPath, b, 0o644)
	c, err := policy.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return c.SHA256()
}

type result struct {
	stdout, stderr string
	code           int
	events         []Event
}

func (res result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s\nevents: %+v", res.code, res.stdout, res.stderr, res.events)
}

// run runs argv in the root (cwd "/" unless the command changes it) with the events going to a file of its
// own, and returns the output, exit code and events.
func (r *root) run(t *testing.T, argv ...string) result {
	t.Helper()
	return r.runEnv(t, nil, argv...)
}

func (r *root) runEnv(t *testing.T, env []string, argv ...string) result {
	t.Helper()
	evPath := fmt.Sprintf("/tmp/events-%d.jsonl", seq.Add(1))
	args := append([]string{r.dir}, r.prefix...)
	args = append(args, argv...)
	cmd := exec.Command("chroot", args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C",
		"CRS_EVENTS=file:" + evPath}, r.env...)
	cmd.Env = append(cmd.Env, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v in %s: timed out", argv, r.name)
	}
	res := result{stdout: strings.TrimSpace(so.String()), stderr: strings.TrimSpace(se.String()), code: cmd.ProcessState.ExitCode()}
	res.events = readEvents(t, filepath.Join(r.dir, evPath))
	// events of processes whose environment lost CRS_EVENTS go to the policy's sink, stderr here
	for _, l := range strings.Split(res.stderr, "\n") {
		var e Event
		if strings.HasPrefix(l, `{"ts":`) && json.Unmarshal([]byte(l), &e) == nil {
			res.events = append(res.events, e)
		}
	}
	return res
}

func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: event line is not JSON: %v\n%s", path, err, sc.Text())
		}
		evs = append(evs, e)
	}
	return evs
}

// want is an expected event: empty fields are not compared.
type want struct {
	Op, Path, Addr, Action, Rule, Mode, Program string
}

func (w want) match(e Event) bool {
	return (w.Op == "" || w.Op == e.Op) && (w.Path == "" || w.Path == e.Path) && (w.Addr == "" || w.Addr == e.Addr) &&
		(w.Action == "" || w.Action == e.Action) && (w.Rule == "" || w.Rule == e.Rule) &&
		(w.Mode == "" || w.Mode == e.Mode) && (w.Program == "" || w.Program == e.Program)
}

// checkEvent asserts an event matching w exists and that it carries a valid timestamp, pid and policy id.
func checkEvent(t *testing.T, res result, w want, policyID string) {
	t.Helper()
	for _, e := range res.events {
		if !w.match(e) {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, e.TS); err != nil || !strings.Contains(e.TS, ".") {
			t.Errorf("event ts %q is not RFC 3339 with nanoseconds: %v", e.TS, err)
		}
		if e.PID <= 0 {
			t.Errorf("event pid %d", e.PID)
		}
		if policyID != "" && e.Policy != policyID {
			t.Errorf("event policy %q, want %q", e.Policy, policyID)
		}
		return
	}
	t.Errorf("no event matching %+v\n%s", w, res)
}
