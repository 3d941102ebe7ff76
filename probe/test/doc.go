// Package probetest tests the built probe (core/probe's embedded artifacts) with real programs in real
// distribution root filesystems: each root is an overlay over a cached debootstrap tree (scripts/rootfs.sh),
// with the probe, a compiled policy (core/policy) and /etc/ld.so.preload put in, and commands run under
// chroot (arm64 through qemu-aarch64-static; a real container through podman with runc). Each test asserts the
// decision, the errno and the event.
package probetest
