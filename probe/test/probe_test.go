package probetest

import (
	"debug/elf"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/probe"
)

// progCase runs a program of the root filesystem and checks its exit code, output and one event.
type progCase struct {
	name     string
	argv     []string
	code     int    // expected exit code; -1: any non-zero; -2: not checked
	stderr   string // substring of stderr, if set
	stdout   string // exact stdout, if set
	event    *want
	noDenied bool // no deny events at all
}

func checkProg(t *testing.T, r *root, tc progCase, policyID string) {
	t.Helper()
	res := r.run(t, tc.argv...)
	switch {
	case tc.code == -1 && res.code == 0:
		t.Errorf("exit 0, want failure\n%s", res)
	case tc.code >= 0 && res.code != tc.code:
		t.Errorf("exit %d, want %d\n%s", res.code, tc.code, res)
	}
	if tc.stderr != "" && !strings.Contains(res.stderr, tc.stderr) {
		t.Errorf("stderr %q does not contain %q", res.stderr, tc.stderr)
	}
	if tc.stdout != "" && res.stdout != tc.stdout {
		t.Errorf("stdout %q, want %q", res.stdout, tc.stdout)
	}
	if tc.event != nil {
		checkEvent(t, res, *tc.event, policyID)
	}
	if tc.noDenied {
		for _, e := range res.events {
			if e.Action == "deny" {
				t.Errorf("unexpected deny event %+v", e)
			}
		}
	}
}

// rootProgramCases are run with the distribution's own programs, so they work in every glibc root.
func rootProgramCases() []progCase {
	return []progCase{
		{name: "cat denied", argv: []string{"cat", "/srv/secret/key"}, code: 1, stderr: "Permission denied",
			event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets", Mode: "enforce"}},
		{name: "head denied", argv: []string{"head", "-n1", "/srv/secret/key"}, code: 1, stderr: "Permission denied",
			event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets"}},
		{name: "dot-dot normalised", argv: []string{"cat", "/srv/public/../secret/./key"}, code: 1,
			event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny"}},
		{name: "relative to cwd", argv: []string{"sh", "-c", "cd /srv/public && cat ../secret/key"}, code: 1,
			event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny"}},
		{name: "cp into read-only dir", argv: []string{"cp", "/srv/public/a", "/srv/ro/b"}, code: 1,
			event: &want{Op: "write", Path: "/srv/ro/b", Action: "deny", Rule: "read-only-dir"}},
		{name: "shell redirection", argv: []string{"sh", "-c", "echo x > /srv/ro/c"}, code: 2, stderr: "Permission denied",
			event: &want{Op: "write", Path: "/srv/ro/c", Action: "deny", Rule: "read-only-dir"}},
		{name: "sh -c id", argv: []string{"sh", "-c", "id"}, code: -1, stderr: "id: ",
			event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}},
		{name: "env id", argv: []string{"env", "id"}, code: 126,
			event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}},
		{name: "find -exec", argv: []string{"find", "/srv/public", "-maxdepth", "0", "-exec", "id", ";"}, code: -2, stderr: "find: ",
			event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}},
		{name: "perl system", argv: []string{"perl", "-e", `system("id"); exit($? == -1 ? 7 : 0)`}, code: 7,
			event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}},
		{name: "fopen read (grep -f)", argv: []string{"grep", "-f", "/srv/secret/key", "/srv/public/a"}, code: 2,
			stderr: "Permission denied", event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets"}},
		{name: "fopen write (sed w)", argv: []string{"sed", "-n", "w /srv/ro/out", "/srv/public/a"}, code: 4,
			event: &want{Op: "write", Path: "/srv/ro/out", Action: "deny", Rule: "read-only-dir"}},
		{name: "system() denied (awk)", argv: []string{"awk", "BEGIN { system(\"id\") }"}, code: -2,
			event: &want{Op: "exec", Path: "/bin/sh", Action: "deny", Rule: "no-shell-for-awk", Program: "/usr/bin/mawk"}},
		{name: "mknod (__xmknod before glibc 2.33)", argv: []string{"mknod", "/srv/ro/c", "c", "1", "3"}, code: 1,
			event: &want{Op: "mkdir", Path: "/srv/ro/c", Action: "deny", Rule: "read-only-dir"}},
		{name: "mkfifo", argv: []string{"mkfifo", "/srv/ro/f"}, code: 1,
			event: &want{Op: "mkdir", Path: "/srv/ro/f", Action: "deny", Rule: "read-only-dir"}},
		{name: "allowed work", argv: []string{"sh", "-c", "echo hi > /tmp/ok && cat /tmp/ok /srv/ro/file"}, code: 0,
			stdout: "hi\nread me", noDenied: true},
		{name: "alert logged, allowed", argv: []string{"cat", "/srv/public/watched"}, code: 0, stdout: "watched",
			event: &want{Op: "read", Path: "/srv/public/watched", Action: "alert", Rule: "watch-public"}},
		{name: "ld.so.preload protected", argv: []string{"sh", "-c", "echo > /etc/ld.so.preload"}, code: 2,
			event: &want{Op: "write", Path: "/etc/ld.so.preload", Action: "deny", Rule: "crs-ci:protected-file"}},
		{name: "policy protected", argv: []string{"rm", "-f", "/etc/crs-ci/policy.bin"}, code: 1,
			event: &want{Op: "unlink", Path: "/etc/crs-ci/policy.bin", Action: "deny", Rule: "crs-ci:protected-file"}},
		{name: "probe protected", argv: []string{"mv", "/usr/lib/crs-ci/probe.so", "/tmp/p.so"}, code: 1,
			event: &want{Op: "rename", Path: "/usr/lib/crs-ci/probe.so", Action: "deny", Rule: "crs-ci:protected-file"}},
	}
}

// TestRootPrograms runs the distributions' own cat, head, cp, sh, env, find and perl under the probe in
// glibc 2.23 (xenial), 2.31 (bullseye), 2.36 (bookworm) and 2.41 (trixie).
func TestRootPrograms(t *testing.T) {
	for _, name := range []string{"xenial", "bullseye", "bookworm", "trixie"} {
		t.Run(name, func(t *testing.T) {
			r := newRoot(t, name, probe.Glibc, "amd64")
			id := r.setPolicy(t, compile(t, "enforce.yaml"))
			for _, tc := range rootProgramCases() {
				t.Run(tc.name, func(t *testing.T) { checkProg(t, r, tc, id) })
			}
			// the files the protected cases tried to change are intact
			if b, err := os.ReadFile(filepath.Join(r.dir, probe.PreloadPath)); err != nil || string(b) != probe.LibraryPath+"\n" {
				t.Errorf("/etc/ld.so.preload changed: %q %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(r.dir, probe.LibraryPath)); err != nil {
				t.Errorf("probe moved: %v", err)
			}
		})
	}
}

// helperCase runs probe-helper (probe/test/testdata/helper.c) and checks its one-line answer and an event.
type helperCase struct {
	name  string
	bin   string // helper file name in /opt/t (default "helper")
	args  []string
	out   string // exact stdout
	event *want
}

func helperCases() []helperCase {
	deniedRead := &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets"}
	roWrite := func(op, path string) *want {
		return &want{Op: op, Path: path, Action: "deny", Rule: "read-only-dir"}
	}
	execID := &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id", Program: "/opt/t/helper"}
	return []helperCase{
		{name: "open", args: []string{"open", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "open errno preserved", args: []string{"open", "/srv/public/missing"}, out: "err ENOENT"},
		{name: "open64", args: []string{"open64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "openat dirfd", args: []string{"openat", "/srv", "secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "openat dirfd number reused", args: []string{"openat-reused", "/srv/public", "/srv/secret", "key"}, out: "err EACCES", event: deniedRead},
		{name: "openat dirfd replaced by dup2", args: []string{"openat-dup2", "/srv/public", "/srv/secret", "key"}, out: "err EACCES", event: deniedRead},
		{name: "creat", args: []string{"creat", "/srv/ro/new"}, out: "err EACCES", event: roWrite("write", "/srv/ro/new")},
		{name: "fopen", args: []string{"fopen", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "fopen64", args: []string{"fopen64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "fopen append", args: []string{"fopen", "/srv/ro/file", "a"}, out: "err EACCES", event: roWrite("write", "/srv/ro/file")},
		{name: "fopen read allowed", args: []string{"fopen", "/srv/ro/file", "r"}, out: "ok"},
		{name: "freopen", args: []string{"freopen", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "fortified __open_2", bin: "helper-fortify", args: []string{"open", "/srv/secret/key", "0"}, out: "err EACCES", event: deniedRead},
		{name: "fortified __openat_2", bin: "helper-fortify", args: []string{"openat", "/srv", "secret/key", "0"}, out: "err EACCES", event: deniedRead},
		{name: "syscall(SYS_openat)", args: []string{"syscall-openat", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "syscall(SYS_openat2)", args: []string{"syscall-openat2", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "syscall(SYS_openat2) allowed", args: []string{"syscall-openat2", "/srv/public/a"}, out: "ok"},
		{name: "syscall rule", args: []string{"syscall", "110"}, out: "err EPERM", event: &want{Op: "syscall", Action: "deny", Rule: "no-getppid"}},
		{name: "unlink", args: []string{"unlink", "/srv/ro/file"}, out: "err EACCES", event: roWrite("unlink", "/srv/ro/file")},
		{name: "rename", args: []string{"rename", "/srv/public/a", "/srv/ro/x"}, out: "err EACCES", event: roWrite("rename", "/srv/ro/x")},
		{name: "mkdir", args: []string{"mkdir", "/srv/ro/d"}, out: "err EACCES", event: roWrite("mkdir", "/srv/ro/d")},
		{name: "chmod", args: []string{"chmod", "/srv/ro/file"}, out: "err EACCES", event: roWrite("chmod", "/srv/ro/file")},
		{name: "symlink", args: []string{"symlink", "/x", "/srv/ro/l"}, out: "err EACCES", event: roWrite("link", "/srv/ro/l")},
		{name: "link", args: []string{"link", "/srv/public/a", "/srv/ro/h"}, out: "err EACCES", event: roWrite("link", "/srv/ro/h")},
		{name: "truncate", args: []string{"truncate", "/srv/ro/file"}, out: "err EACCES", event: roWrite("chmod", "/srv/ro/file")},
		{name: "system: the shell's exec denied", args: []string{"system", "id"}, out: "ok 126",
			event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}},
		{name: "system denied", bin: "nosh", args: []string{"system", "id"}, out: "err EPERM",
			event: &want{Op: "exec", Path: "/bin/sh", Action: "deny", Rule: "no-shell-for-nosh", Program: "/opt/t/nosh"}},
		{name: "popen denied", bin: "nosh", args: []string{"popen", "id"}, out: "err EPERM",
			event: &want{Op: "exec", Path: "/bin/sh", Action: "deny", Rule: "no-shell-for-nosh"}},
		{name: "posix_spawn", args: []string{"spawn", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "posix_spawnp", args: []string{"spawnp", "id"}, out: "err EPERM", event: execID},
		{name: "posix_spawn allowed", args: []string{"spawn", "/bin/true"}, out: "ok 0"},
		{name: "execve", args: []string{"execve", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "execv", args: []string{"execv", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "execvp", args: []string{"execvp", "id"}, out: "err EPERM", event: execID},
		{name: "execl", args: []string{"execl", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "execlp", args: []string{"execlp", "id"}, out: "err EPERM", event: execID},
		{name: "execle", args: []string{"execle", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "exec with empty env stays probed", args: []string{"execve-noenv", "/bin/cat", "/srv/secret/key"}, out: "",
			event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Program: "/usr/bin/cat"}},
		{name: "threads and fork", args: []string{"threads", "/srv/secret/key"}, out: "ok denied=4 child=13", event: deniedRead},
		{name: "signal handler", args: []string{"signal", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "vfork child", args: []string{"vfork-exec", "/usr/bin/id"}, out: "ok child=13", event: execID},
		{name: "connect v4", args: []string{"connect", "127.0.0.1", "25"}, out: "err EPERM",
			event: &want{Op: "connect", Addr: "127.0.0.1:25", Action: "deny", Rule: "no-smtp"}},
		{name: "connect v6", args: []string{"connect", "::1", "25"}, out: "err EPERM",
			event: &want{Op: "connect", Addr: "[::1]:25", Action: "deny", Rule: "no-smtp"}},
		{name: "connect v4-mapped", args: []string{"connect", "::ffff:127.0.0.1", "25"}, out: "err EPERM",
			event: &want{Op: "connect", Addr: "127.0.0.1:25", Action: "deny", Rule: "no-smtp"}},
		{name: "connect allowed reaches kernel", args: []string{"connect", "127.0.0.1", "1"}, out: "err ECONNREFUSED"},
		{name: "udp connect", args: []string{"connect-udp", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Op: "connect", Rule: "no-smtp"}},
		{name: "sendto", args: []string{"sendto", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Op: "connect", Addr: "127.0.0.1:25", Rule: "no-smtp"}},
		{name: "unix socket", args: []string{"connect-unix", "/run/forbidden.sock"}, out: "err EPERM",
			event: &want{Op: "connect", Addr: "unix:/run/forbidden.sock", Action: "deny", Rule: "no-forbidden-socket"}},
		{name: "bind denied", args: []string{"bind", "127.0.0.1", "8081"}, out: "err EPERM",
			event: &want{Op: "bind", Addr: "127.0.0.1:8081", Action: "deny", Rule: "no-bind-8081"}},
		{name: "bind allowed", args: []string{"bind", "127.0.0.1", "0"}, out: "ok 0"},
	}
}

// moreEntryPoints covers the remaining hooked names (glibc's internal aliases, the *64 and *at variants).
func moreEntryPoints() []helperCase {
	deniedRead := &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets"}
	ro := func(op, path string) *want { return &want{Op: op, Path: path, Action: "deny", Rule: "read-only-dir"} }
	execID := &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Rule: "no-id"}
	return []helperCase{
		{name: "__open", args: []string{"__open", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "__open64", args: []string{"__open64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "__open64_2", args: []string{"__open64_2", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "__openat64_2", args: []string{"__openat64_2", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "openat64", args: []string{"openat64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "creat64", args: []string{"creat64", "/srv/ro/n64"}, out: "err EACCES", event: ro("write", "/srv/ro/n64")},
		{name: "freopen64", args: []string{"freopen64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "unlinkat", args: []string{"unlinkat", "/srv/ro/file"}, out: "err EACCES", event: ro("unlink", "/srv/ro/file")},
		{name: "rmdir", args: []string{"rmdir", "/srv/ro/sub"}, out: "err EACCES", event: ro("unlink", "/srv/ro/sub")},
		{name: "renameat", args: []string{"renameat", "/srv/ro/file", "/srv/public/x"}, out: "err EACCES", event: ro("rename", "/srv/ro/file")},
		{name: "renameat2", args: []string{"renameat2", "/srv/public/a", "/srv/ro/y"}, out: "err EACCES", event: ro("rename", "/srv/ro/y")},
		{name: "linkat", args: []string{"linkat", "/srv/public/a", "/srv/ro/h2"}, out: "err EACCES", event: ro("link", "/srv/ro/h2")},
		{name: "symlinkat", args: []string{"symlinkat", "/x", "/srv/ro/l2"}, out: "err EACCES", event: ro("link", "/srv/ro/l2")},
		{name: "mkdirat", args: []string{"mkdirat", "/srv/ro/d2"}, out: "err EACCES", event: ro("mkdir", "/srv/ro/d2")},
		{name: "mknod", args: []string{"mknod", "/srv/ro/fifo"}, out: "err EACCES", event: ro("mkdir", "/srv/ro/fifo")},
		{name: "mkfifoat", args: []string{"mkfifoat", "/srv/ro/fifo3"}, out: "err EACCES", event: ro("mkdir", "/srv/ro/fifo3")},
		{name: "mknodat", args: []string{"mknodat", "/srv/ro/fifo2"}, out: "err EACCES", event: ro("mkdir", "/srv/ro/fifo2")},
		{name: "fchmodat", args: []string{"fchmodat", "/srv/ro/file"}, out: "err EACCES", event: ro("chmod", "/srv/ro/file")},
		{name: "chown", args: []string{"chown", "/srv/ro/file"}, out: "err EACCES", event: ro("chmod", "/srv/ro/file")},
		{name: "lchown", args: []string{"lchown", "/srv/ro/file"}, out: "err EACCES", event: ro("chmod", "/srv/ro/file")},
		{name: "fchownat", args: []string{"fchownat", "/srv/ro/file"}, out: "err EACCES", event: ro("chmod", "/srv/ro/file")},
		{name: "truncate64", args: []string{"truncate64", "/srv/ro/file"}, out: "err EACCES", event: ro("chmod", "/srv/ro/file")},
		{name: "execvpe", args: []string{"execvpe", "id"}, out: "err EPERM", event: execID},
		{name: "fexecve", args: []string{"fexecve", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "execveat", args: []string{"execveat", "/usr/bin/id"}, out: "err EPERM", event: execID},
		{name: "__connect", args: []string{"__connect", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Op: "connect", Addr: "127.0.0.1:25", Rule: "no-smtp"}},
		{name: "sendmsg", args: []string{"sendmsg", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Op: "connect", Addr: "127.0.0.1:25", Rule: "no-smtp"}},
		{name: "listen", args: []string{"listen", "127.0.0.1", "8081"}, out: "err EPERM", event: &want{Op: "bind", Addr: "127.0.0.1:8081", Rule: "no-bind-8081"}},
		{name: "accept", args: []string{"accept", "0.0.0.0", "8082"}, out: "err EPERM", event: &want{Op: "bind", Addr: "127.0.0.1:8082", Rule: "no-loopback-clients-8082"}},
		{name: "accept4", args: []string{"accept4", "0.0.0.0", "8082"}, out: "err EPERM", event: &want{Op: "bind", Addr: "127.0.0.1:8082", Rule: "no-loopback-clients-8082"}},
		{name: "accept allowed", args: []string{"accept", "0.0.0.0", "8083"}, out: "ok 0"},
		// failure behaviour: paths the probe cannot place are denied (fail closed)
		{name: "path longer than the buffer", args: []string{"deep", "/tmp"}, out: "err ENAMETOOLONG depth=20",
			event: &want{Op: "mkdir", Action: "deny", Rule: "crs-ci:unchecked-path"}},
		{name: "unknown directory descriptor", args: []string{"openat-socket", "x"}, out: "err EACCES",
			event: &want{Op: "read", Path: "x", Action: "deny", Rule: "crs-ci:unchecked-path"}},
		{name: "closed directory descriptor left to the kernel", args: []string{"openat-badfd", "x"}, out: "err EBADF"},
	}
}

func checkHelper(t *testing.T, r *root, tc helperCase, policyID string) {
	t.Helper()
	bin := tc.bin
	if bin == "" {
		bin = "helper"
	}
	res := r.run(t, append([]string{"/opt/t/" + bin}, tc.args...)...)
	if res.stdout != tc.out {
		t.Errorf("got %q, want %q\n%s", res.stdout, tc.out, res)
	}
	if tc.event != nil {
		checkEvent(t, res, *tc.event, policyID)
	}
}

func installHelpers(t *testing.T, r *root) { installHelperBuild(t, r, "") }

// installHelperBuild installs one build of the helper as /opt/t/helper, /opt/t/nosh and /opt/t/helper-fortify:
// build "" is the host build, "-baseline" the one bound to the oldest glibc symbol versions.
func installHelperBuild(t *testing.T, r *root, build string) {
	r.install(t, helper(t, "helper"+build), "/opt/t/helper")
	r.install(t, helper(t, "helper"+build), "/opt/t/nosh")
	r.install(t, helper(t, "helper"+build+"-fortify"), "/opt/t/helper-fortify")
}

// newerEntryPoints are the hooked entry points some supported glibc lacks, with the version that added them.
// TestEntryPoints skips their rows by name on a root whose libc.so.6 does not define them, and only there.
var newerEntryPoints = map[string]string{"renameat2": "GLIBC_2.28", "execveat": "GLIBC_2.34"}

// libcDefines reports whether the root's libc.so.6 exports name, at any version.
func libcDefines(t *testing.T, r *root, name string) bool {
	t.Helper()
	path, err := filepath.EvalSymlinks(filepath.Join(r.dir, "lib", "x86_64-linux-gnu", "libc.so.6"))
	if err != nil {
		t.Fatalf("finding %s's libc.so.6: %v", r.name, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatalf("reading the dynamic symbols of %s: %v", path, err)
	}
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF {
			return true
		}
	}
	return false
}

// TestEntryPoints calls every hooked family from a C program in glibc 2.23 (xenial), 2.31 (bullseye),
// 2.36 (bookworm) and 2.41 (trixie). The old roots run the baseline build of the helper (it needs nothing
// newer than GLIBC_2.17, checked when it is built); the new ones run the host build, which also proves the
// current symbol versions (mknod@GLIBC_2.33, pthread_create@GLIBC_2.34, a direct execveat call), and the
// baseline build too (subtests bookworm-baseline, trixie-baseline).
func TestEntryPoints(t *testing.T) {
	for _, tc := range []struct {
		root, build string
		absent      []string // rows skipped: entry points this glibc does not have (checked in its libc.so.6)
		adjust      func(c *helperCase)
	}{
		{"xenial", "-baseline", []string{"execveat", "renameat2"}, func(c *helperCase) {
			switch c.name {
			case "system: the shell's exec denied":
				c.out = "ok 2" // dash 0.5.8 exits 2 (not 126) when an exec fails with EPERM
			case "exec with empty env stays probed":
				ev := *c.event
				ev.Program = "/bin/cat" // no merged /usr: /bin/cat is the file itself
				c.event = &ev
			}
		}},
		{"bullseye", "-baseline", []string{"execveat"}, nil},
		{"bookworm", "", nil, nil},
		{"trixie", "", nil, nil},
		// the same baseline binary in the new roots: what an old program in a new image calls (the
		// compatibility symbols __xmknod, __libc_start_main@GLIBC_2.2.5, pthread_create from libpthread.so.0)
		{"bookworm", "-baseline", nil, nil},
		{"trixie", "-baseline", nil, nil},
	} {
		t.Run(tc.root+tc.build, func(t *testing.T) {
			r := newRoot(t, tc.root, probe.Glibc, "amd64")
			installHelperBuild(t, r, tc.build)
			id := r.setPolicy(t, compile(t, "enforce.yaml"))
			for name := range newerEntryPoints {
				if got, want := libcDefines(t, r, name), !slices.Contains(tc.absent, name); got != want {
					t.Errorf("%s's libc.so.6 defines %s: %v, want %v", tc.root, name, got, want)
				}
			}
			for _, c := range append(helperCases(), moreEntryPoints()...) {
				t.Run(c.name, func(t *testing.T) {
					if slices.Contains(tc.absent, c.name) {
						t.Skipf("%s is not in %s's glibc (added in %s)", c.name, tc.root, newerEntryPoints[c.name])
					}
					if tc.adjust != nil {
						tc.adjust(&c)
					}
					checkHelper(t, r, c, id)
				})
			}
		})
	}
}

// TestBaselineHelperNeeds: the baseline builds need nothing newer than GLIBC_2.17 (the build fails
// otherwise), while the host build does need newer versions; so the check can fail, and the build differs.
func TestBaselineHelperNeeds(t *testing.T) {
	for _, tc := range []struct {
		bin       string
		wantClean bool
		mustName  string // a need the problems must mention
	}{
		{"helper-baseline", true, ""},
		{"helper-baseline-fortify", true, ""},
		{"helper", false, "GLIBC_2.34"},
		{"helper-fortify", false, "GLIBC_2.34"},
	} {
		t.Run(tc.bin, func(t *testing.T) {
			problems := baselineProblems(helper(t, tc.bin))
			if tc.wantClean && len(problems) > 0 {
				t.Errorf("needs more than %s: %v", baselineMax, problems)
			}
			if !tc.wantClean && !strings.Contains(strings.Join(problems, "; "), tc.mustName) {
				t.Errorf("problems %v do not mention %s", problems, tc.mustName)
			}
		})
	}
	// the baseline builds exercise the old entry points on old roots: __xmknod/__xmknodat (before 2.33),
	// the fortified __open_2 family, pthread_create from libpthread.so.0 (before 2.34)
	for _, tc := range []struct{ bin, sym, version, library string }{
		{"helper-baseline", "__xmknod", "GLIBC_2.2.5", "libc.so.6"},
		{"helper-baseline", "__xmknodat", "GLIBC_2.4", "libc.so.6"},
		{"helper-baseline", "pthread_create", "GLIBC_2.2.5", "libpthread.so.0"},
		{"helper-baseline", "__libc_start_main", "GLIBC_2.2.5", "libc.so.6"},
		{"helper-baseline-fortify", "__open_2", "GLIBC_2.7", "libc.so.6"},
		{"helper-baseline-fortify", "__openat_2", "GLIBC_2.7", "libc.so.6"},
	} {
		f, err := elf.Open(helper(t, tc.bin))
		if err != nil {
			t.Fatal(err)
		}
		imports, err := f.ImportedSymbols()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.bin, err)
		}
		want := elf.ImportedSymbol{Name: tc.sym, Version: tc.version, Library: tc.library}
		if !slices.Contains(imports, want) {
			t.Errorf("%s does not import %+v", tc.bin, want)
		}
	}
	for _, tc := range []struct {
		v, max string
		want   bool
	}{
		{"GLIBC_2.2.5", "GLIBC_2.17", true},
		{"GLIBC_2.17", "GLIBC_2.17", true},
		{"GLIBC_2.3.4", "GLIBC_2.17", true},
		{"GLIBC_2.18", "GLIBC_2.17", false},
		{"GLIBC_2.34", "GLIBC_2.17", false},
		{"GLIBC_PRIVATE", "GLIBC_2.17", false},
		{"GLIBC_ABI_DT_RELR", "GLIBC_2.17", false},
	} {
		if got := glibcVersionAtMost(tc.v, tc.max); got != tc.want {
			t.Errorf("glibcVersionAtMost(%s, %s) = %v, want %v", tc.v, tc.max, got, tc.want)
		}
	}
}

// TestAuditMode: a denied call proceeds and the event says deny/audit; the probe's own files stay protected.
func TestAuditMode(t *testing.T) {
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	installHelpers(t, r)
	id := r.setPolicy(t, compile(t, "audit.yaml"))
	checkProg(t, r, progCase{argv: []string{"cat", "/srv/secret/key"}, code: 0, stdout: "top secret",
		event: &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets", Mode: "audit"}}, id)
	checkHelper(t, r, helperCase{args: []string{"execve", "/usr/bin/id", "-u"}, out: "0",
		event: &want{Op: "exec", Path: "/usr/bin/id", Action: "deny", Mode: "audit"}}, id)
	checkProg(t, r, progCase{argv: []string{"sh", "-c", "echo > /etc/ld.so.preload"}, code: 2,
		event: &want{Op: "write", Path: "/etc/ld.so.preload", Action: "deny", Rule: "crs-ci:protected-file"}}, id)
}

// TestPolicyFailures: a missing, corrupt or newer-format policy leaves the workload running unenforced
// (fail open) with an error event in every process, and the probe's own files still protected.
func TestPolicyFailures(t *testing.T) {
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	good := compile(t, "enforce.yaml")
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	newer := append([]byte(nil), good...)
	newer[8] = 2
	tests := []struct {
		name   string
		policy []byte // nil: no policy file
		error  string
	}{
		{"missing", nil, "missing"},
		{"corrupt", corrupt, "sha256 mismatch"},
		{"newer format", newer, "format version newer"},
		{"truncated", good[:len(good)-8], "total size"},
		{"not a policy", []byte("apiVersion: crs-ci/v1\nkind: RuntimePolicy\n" + strings.Repeat("#", 200)), "bad magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(r.dir, probe.PolicyPath))
			if tt.policy != nil {
				r.write(t, probe.PolicyPath, tt.policy, 0o644)
			}
			res := r.run(t, "cat", "/srv/secret/key")
			if res.code != 0 || res.stdout != "top secret" {
				t.Errorf("want the workload to run unenforced\n%s", res)
			}
			found := false
			for _, e := range res.events {
				found = found || (e.Op == "probe" && e.Action == "error" && strings.Contains(e.Error, tt.error))
			}
			if !found {
				t.Errorf("no probe error event containing %q\n%s", tt.error, res)
			}
			checkProg(t, r, progCase{argv: []string{"sh", "-c", "echo > /etc/ld.so.preload"}, code: 2,
				event: &want{Path: "/etc/ld.so.preload", Action: "deny", Rule: "crs-ci:protected-file"}}, "")
		})
	}
}

// TestSinks: a unix datagram sink, the policy's sink when CRS_EVENTS is unset, and a failing sink that
// neither blocks nor fails the workload, its drops reported in the next event.
func TestSinks(t *testing.T) {
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	installHelpers(t, r)
	id := r.setPolicy(t, compile(t, "enforce.yaml"))

	t.Run("unix datagram", func(t *testing.T) {
		sock := filepath.Join(r.dir, "tmp", "events.sock")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		res := r.runEnv(t, []string{"CRS_EVENTS=unix:/tmp/events.sock"}, "/opt/t/helper", "open", "/srv/secret/key")
		if res.stdout != "err EACCES" {
			t.Fatalf("got %q\n%s", res.stdout, res)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 65536)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no datagram: %v", err)
		}
		line := string(buf[:n])
		if !strings.HasSuffix(line, "}\n") || !strings.Contains(line, `"rule":"no-secrets"`) || !strings.Contains(line, `"policy":"`+id+`"`) {
			t.Errorf("datagram %q", line)
		}
	})
	t.Run("policy sink (stderr) when CRS_EVENTS unset", func(t *testing.T) {
		res := r.runEnv(t, []string{"CRS_EVENTS="}, "cat", "/srv/secret/key")
		if res.code != 1 || !strings.Contains(res.stderr, `"rule":"no-secrets"`) {
			t.Errorf("want the event on stderr\n%s", res)
		}
	})
	t.Run("long path: the line is cut, stays valid JSON", func(t *testing.T) {
		long := "/srv/secret/" + strings.Repeat(strings.Repeat("\x01", 200)+"/", 15) + "end"
		res := r.run(t, "/opt/t/helper", "open", long)
		if res.stdout != "err EACCES" {
			t.Fatalf("got %q", res.stdout)
		}
		if len(res.events) != 1 || !res.events[0].Truncated || res.events[0].Rule != "no-secrets" || res.events[0].Policy != id ||
			!strings.HasPrefix(res.events[0].Path, "/srv/secret/\x01") {
			t.Errorf("want one truncated event with rule and policy intact, got %+v", res.events)
		}
	})
	t.Run("the policy's file sink when CRS_EVENTS is unset", func(t *testing.T) {
		pid := r.setPolicy(t, compile(t, "policy-sink.yaml"))
		defer r.setPolicy(t, compile(t, "enforce.yaml"))
		res := r.runEnv(t, []string{"CRS_EVENTS="}, "cat", "/srv/secret/key")
		evs := readEvents(t, filepath.Join(r.dir, "tmp/policy-events.jsonl"))
		if res.code != 1 || len(evs) != 1 || evs[0].Rule != "no-secrets" || evs[0].Policy != pid || strings.Contains(res.stderr, `"rule"`) {
			t.Errorf("want the event in the policy's file only, got %+v\n%s", evs, res)
		}
	})
	t.Run("failing sink", func(t *testing.T) {
		res := r.runEnv(t, []string{"CRS_EVENTS=file:/tmp/later/events.jsonl"}, "/opt/t/helper", "twice", "/srv/secret/key", "/tmp/later")
		if res.stdout != "ok EACCES EACCES" {
			t.Fatalf("got %q\n%s", res.stdout, res)
		}
		evs := readEvents(t, filepath.Join(r.dir, "tmp/later/events.jsonl"))
		if len(evs) != 1 || evs[0].Dropped != 1 || evs[0].Rule != "no-secrets" {
			t.Errorf("want one event reporting one drop, got %+v", evs)
		}
	})
}

// TestModeOff: a policy in mode off makes the probe do nothing at all — no decisions, no events, and no
// own-file protection.
func TestModeOff(t *testing.T) {
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	r.setPolicy(t, compile(t, "off.yaml"))
	for _, argv := range [][]string{
		{"cat", "/srv/secret/key"},
		{"sh", "-c", "id -u"},
		{"touch", "/etc/crs-ci/extra"},
	} {
		res := r.run(t, argv...)
		if res.code != 0 || len(res.events) != 0 {
			t.Errorf("%v: want it to run untouched and unlogged\n%s", argv, res)
		}
	}
}

// TestLogMask: an ignored op is still decided but never logged; logMode all logs allowed calls too.
func TestLogMask(t *testing.T) {
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	r.setPolicy(t, compile(t, "ignore-read.yaml"))
	res := r.run(t, "cat", "/srv/secret/key")
	if res.code != 1 || len(res.events) != 0 {
		t.Errorf("ignored read: want denied and unlogged\n%s", res)
	}
	checkProg(t, r, progCase{argv: []string{"cp", "/srv/public/a", "/srv/ro/b"}, code: 1,
		event: &want{Op: "write", Path: "/srv/ro/b", Action: "deny", Rule: "read-only-dir"}}, "")

	id := r.setPolicy(t, compile(t, "log-all.yaml"))
	checkProg(t, r, progCase{argv: []string{"cat", "/srv/public/a"}, code: 0, stdout: "public",
		event: &want{Op: "read", Path: "/srv/public/a", Action: "allow", Rule: "", Mode: "enforce"}}, id)
}
