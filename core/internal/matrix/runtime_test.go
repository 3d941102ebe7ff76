package matrix

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/probe"
)

const (
	eventsFile = "/tmp/crs-matrix-events.jsonl" // the policy's sink (testdata/policy.yaml)
	qemuInRoot = "/opt/crs-matrix-qemu"         // where the host's qemu-user binary is copied in a foreign root
)

// unpack writes the merged filesystem of img (go-containerregistry's mutate.Extract: whiteouts applied,
// later layers win) into dir with GNU tar as root (owners, modes, links kept), then gives it /proc and the
// few device nodes programs expect, as a container runtime would. Everything is undone at cleanup.
func unpack(t *testing.T, img v1.Image, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	cmd := exec.Command("tar", "-x", "-p", "--numeric-owner", "-C", dir, "-f", "-")
	cmd.Stdin = rc
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unpacking the instrumented image into %s: %v\n%s", dir, err, out)
	}
	for _, d := range []string{"proc", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	for _, n := range []struct {
		name         string
		major, minor int
	}{{"null", 1, 3}, {"zero", 1, 5}, {"urandom", 1, 9}} {
		p := filepath.Join(dir, "dev", n.name)
		os.Remove(p)
		if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, n.major<<8|n.minor); err != nil {
			t.Fatalf("mknod %s: %v", p, err)
		}
		os.Chmod(p, 0o666)
	}
	proc := filepath.Join(dir, "proc")
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatalf("mounting /proc in %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })
	return dir
}

// disableProbe removes what the probe layer added to the unpacked root so the same programs run without it.
// The probe's files stay (nothing loads them); /etc/ld.so.preload goes, as none of the matrix images had one.
func disableProbe(t *testing.T, root string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, probe.PreloadPath)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, eventsFile))
}

// withoutPreloadEnv is cfg without the LD_PRELOAD entry instrument adds for musl images.
func withoutPreloadEnv(cfg v1.Config) v1.Config {
	out := cfg
	out.Env = nil
	for _, e := range cfg.Env {
		if !strings.HasPrefix(e, instrument.EnvPreloadName+"=") {
			out.Env = append(out.Env, e)
		}
	}
	return out
}

// step is one "@@ STEP rc=N out=..." line.
type step struct {
	Rc  int
	Out string
}

// event is one line the probe wrote to the policy's sink.
type event struct {
	PID    int    `json:"pid"`
	Op     string `json:"op"`
	Path   string `json:"path"`
	Addr   string `json:"addr"`
	Action string `json:"action"`
	Rule   string `json:"rule"`
	Mode   string `json:"mode"`
	Policy string `json:"policy"`
}

// outcome is what happened when the image's entrypoint ran.
type outcome struct {
	Started  bool // the entrypoint ran and printed its first line
	Loaded   bool // the probe was mapped into the process of the image that read /proc/self/maps
	Enforced bool // every step of the scenario was decided as the policy says, with its event
	Steps    map[string]step
	Events   []event
	Missing  []string // why it does not count as enforced
	Exit     int
	Stdout   string
	Stderr   string
}

func (o outcome) status() string {
	switch {
	case !o.Started:
		return "broken: " + firstLine(o.Stderr, o.Stdout)
	case o.Loaded && o.Enforced:
		return "loaded, enforced"
	case o.Loaded:
		return "loaded, not enforced: " + strings.Join(o.Missing, "; ")
	default:
		return "not loaded"
	}
}

func (o outcome) detail() string {
	var evs []string
	for _, e := range o.Events {
		evs = append(evs, fmt.Sprintf("%+v", e))
	}
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s\nevents:\n%s", o.Exit, o.Stdout, o.Stderr, strings.Join(evs, "\n"))
}

func firstLine(ss ...string) string {
	for _, s := range ss {
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				if len(l) > 160 {
					l = l[:160] + "…"
				}
				return l
			}
		}
	}
	return "no output"
}

// runScenario runs the image's entrypoint and command (its config's Env; a fresh network namespace with only
// a loopback that is down, so nothing outside is reached) in a chroot of root, and judges each step.
func runScenario(t *testing.T, root string, cfg v1.Config, qemu, pol string) outcome {
	t.Helper()
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) == 0 {
		t.Fatal("the image has no entrypoint")
	}
	env := append([]string{}, cfg.Env...)
	if qemu != "" {
		host, err := exec.LookPath(qemu)
		if err != nil {
			t.Fatalf("%s is missing (scripts/install-deps.sh installs qemu-user-static): %v", qemu, err)
		}
		if err := copyFile(host, filepath.Join(root, qemuInRoot)); err != nil {
			t.Fatal(err)
		}
		argv = append([]string{qemuInRoot}, argv...)
		env = append(env, "MATRIX_Q="+qemuInRoot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--net", "--", "chroot", root}, argv...)...)
	cmd.Env = env
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the scenario in %s timed out\n%s\n%s", root, stdout.String(), stderr.String())
	}
	o := outcome{Stdout: stdout.String(), Stderr: stderr.String(), Steps: map[string]step{}}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		o.Exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the scenario: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(o.Stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "@@ ")
		if !ok {
			continue
		}
		o.Started = true
		name, rest, _ := strings.Cut(line, " ")
		rcs, out, _ := strings.Cut(strings.TrimPrefix(rest, "rc="), " out=")
		rc, err := strconv.Atoi(rcs)
		if err != nil {
			continue // begin / end / a marker line
		}
		o.Steps[name] = step{Rc: rc, Out: out}
	}
	o.Events = readEvents(t, filepath.Join(root, eventsFile))
	o.judge(pol)
	return o
}

// judge decides loaded and enforced from the steps and the events.
func (o *outcome) judge(pol string) {
	if !o.Started {
		return
	}
	// Loaded: mapped into the image's own process reading /proc/self/maps (cat started by the entrypoint's
	// shell, or the entrypoint itself for the C and Go scenarios). Events alone do not count: children of an
	// unhookable entrypoint may be probed while the entrypoint is not.
	// Where the maps cannot be read (qemu-user), the probe's own events (with this policy's id) tell.
	o.Loaded = strings.Contains(o.Steps["maps"].Out, "probe=yes")
	if strings.Contains(o.Steps["maps"].Out, "probe=unknown") {
		for _, e := range o.Events {
			if e.Policy == pol {
				o.Loaded = true
			}
		}
	}
	miss := func(format string, args ...any) { o.Missing = append(o.Missing, fmt.Sprintf(format, args...)) }
	want := func(name string, ok func(s step) bool, what string) {
		s, found := o.Steps[name]
		if !found {
			miss("step %s did not run", name)
		} else if !ok(s) {
			miss("%s: %s (rc=%d, %q)", name, what, s.Rc, s.Out)
		}
	}
	eperm := func(s string) bool { return strings.Contains(strings.ToLower(s), "operation not permitted") }
	want("read-denied", func(s step) bool { return s.Rc != 0 && !strings.Contains(s.Out, secret) }, "the secret was read")
	want("exec-denied", func(s step) bool { return s.Rc != 0 && !strings.Contains(s.Out, "uid=") }, "id ran")
	want("connect-denied", func(s step) bool { return s.Rc != 0 && eperm(s.Out) }, "connect was not refused with EPERM")
	want("alert-read", func(s step) bool { return s.Rc == 0 && strings.Contains(s.Out, public) }, "the allowed read failed")
	want("tree", func(s step) bool { return s.Rc != 0 && !strings.Contains(s.Out, secret) }, "the secret was read four levels down")

	count := func(action, rule string) (n int, pids map[int]bool) {
		pids = map[int]bool{}
		for _, e := range o.Events {
			if e.Action == action && e.Rule == rule && e.Policy == pol && e.Mode == "enforce" {
				n++
				pids[e.PID] = true
			}
		}
		return n, pids
	}
	if _, pids := count("deny", "no-secrets"); len(pids) < 2 {
		miss("deny events of no-secrets from %d processes, want the read and the tree's leaf (2)", len(pids))
	}
	for _, r := range [][2]string{{"deny", "no-id"}, {"deny", "no-smtp"}, {"alert", "watch-public"}} {
		if n, _ := count(r[0], r[1]); n == 0 {
			miss("no %s event of rule %s", r[0], r[1])
		}
	}
	o.Enforced = len(o.Missing) == 0
}

func readEvents(t *testing.T, p string) []event {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var evs []event
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("%s: an event line is not JSON: %v: %s", p, err, l)
			continue
		}
		evs = append(evs, e)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].PID < evs[j].PID })
	return evs
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
