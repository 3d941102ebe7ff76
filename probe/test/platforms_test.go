package probetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crs-ci/crs-ci/core/probe"
)

// TestArm64 runs the aarch64 probe in Debian bookworm's arm64 root through qemu-aarch64-static: the root's
// own cat and head, and a cross-built helper (open, fopen, the syscall rule by its aarch64 number, connect).
// (qemu-user without binfmt cannot exec a second aarch64 program, so exec cases are covered on amd64.)
func TestArm64(t *testing.T) {
	r := newRoot(t, "bookworm-arm64", probe.Glibc, "arm64")
	r.install(t, helper(t, "helper-arm64"), "/opt/t/helper")
	id := r.setPolicy(t, compile(t, "enforce.yaml"))
	deniedRead := &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets"}
	for _, tc := range []progCase{
		{name: "cat", argv: []string{"/usr/bin/cat", "/srv/secret/key"}, code: 1, stderr: "Permission denied", event: deniedRead},
		{name: "head", argv: []string{"/usr/bin/head", "-n1", "/srv/secret/key"}, code: 1, event: deniedRead},
		{name: "allowed", argv: []string{"/usr/bin/cat", "/srv/public/a"}, code: 0, stdout: "public", noDenied: true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkProg(t, r, tc, id) })
	}
	for _, tc := range []helperCase{
		{name: "open", args: []string{"open", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "fopen", args: []string{"fopen", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "creat", args: []string{"creat", "/srv/ro/x"}, out: "err EACCES", event: &want{Op: "write", Rule: "read-only-dir"}},
		{name: "syscall rule (aarch64 getppid = 173)", args: []string{"syscall", "173"}, out: "err EPERM",
			event: &want{Op: "syscall", Rule: "no-getppid"}},
		{name: "x86_64 getppid number is timer_settime here", args: []string{"syscall", "110"}, out: "err E22"},
		{name: "connect", args: []string{"connect", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Addr: "127.0.0.1:25", Rule: "no-smtp"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkHelper(t, r, tc, id) })
	}
}

// muslLower builds a minimal musl root: Debian's musl loader, busybox (static, so not probed: it only
// provides /bin/sh) and musl-gcc-built helpers.
func muslLower(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, dst)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("/lib/x86_64-linux-musl/libc.so", "/lib/ld-musl-x86_64.so.1")
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(bb, "/bin/busybox")
	for _, l := range []string{"sh", "cat", "true"} {
		os.Symlink("busybox", filepath.Join(dir, "bin", l))
	}
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	return dir
}

// TestMusl runs the musl probe (loaded through LD_PRELOAD, as instrumented musl images do) with musl-built
// programs, including an exec with an empty environment: the probe puts itself back into LD_PRELOAD.
func TestMusl(t *testing.T) {
	r := newRootFrom(t, muslLower(t), "musl", probe.Musl, "amd64")
	r.install(t, helper(t, "helper-musl"), "/opt/t/helper")
	r.install(t, helper(t, "helper-musl"), "/opt/t/nosh")
	id := r.setPolicy(t, compile(t, "enforce.yaml"))
	deniedRead := &want{Op: "read", Path: "/srv/secret/key", Action: "deny", Rule: "no-secrets", Program: "/opt/t/helper"}
	for _, tc := range []helperCase{
		{name: "open", args: []string{"open", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "open64", args: []string{"open64", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "openat", args: []string{"openat", "/srv", "secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "fopen", args: []string{"fopen", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "errno preserved", args: []string{"open", "/srv/public/missing"}, out: "err ENOENT"},
		{name: "unlink", args: []string{"unlink", "/srv/ro/file"}, out: "err EACCES", event: &want{Op: "unlink", Rule: "read-only-dir"}},
		{name: "execve", args: []string{"execve", "/usr/bin/id"}, out: "err EPERM", event: &want{Op: "exec", Path: "/usr/bin/id", Rule: "no-id"}},
		{name: "posix_spawn", args: []string{"spawn", "/usr/bin/id"}, out: "err EPERM", event: &want{Op: "exec", Rule: "no-id"}},
		{name: "system denied", bin: "nosh", args: []string{"system", "id"}, out: "err EPERM",
			event: &want{Op: "exec", Path: "/bin/sh", Rule: "no-shell-for-nosh"}},
		{name: "exec with empty env keeps the probe", args: []string{"execve-noenv", "/opt/t/helper", "open", "/srv/secret/key"},
			out: "err EACCES", event: deniedRead},
		{name: "spawn keeps the probe", args: []string{"spawn", "/opt/t/helper", "open", "/srv/secret/key"},
			out: "err EACCES\nok 0", event: deniedRead},
		{name: "threads and fork", args: []string{"threads", "/srv/secret/key"}, out: "ok denied=4 child=13", event: deniedRead},
		{name: "signal handler", args: []string{"signal", "/srv/secret/key"}, out: "err EACCES", event: deniedRead},
		{name: "connect", args: []string{"connect", "127.0.0.1", "25"}, out: "err EPERM", event: &want{Addr: "127.0.0.1:25", Rule: "no-smtp"}},
		{name: "syscall rule", args: []string{"syscall", "110"}, out: "err EPERM", event: &want{Op: "syscall", Rule: "no-getppid"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkHelper(t, r, tc, id) })
	}
}
