#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

PKGS=(
  # probe toolchains: glibc x86_64 (gcc), glibc aarch64 (cross), musl x86_64
  gcc make musl-tools musl-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  # real root filesystems and running foreign programs in them
  debootstrap qemu-user-static busybox-static binutils
  # a real registry with auth
  docker-registry apache2-utils
  # a real container engine
  podman runc uidmap slirp4netns fuse-overlayfs containernetworking-plugins
  # comparison and helper tools
  skopeo umoci strace curl ca-certificates
  # CI shim tests: the Jenkins shared library (groovy), the vsix listing (unzip)
  groovy unzip
  systemd  # crs-ci serve: systemd-analyze verifies deploy/systemd
  # C fuzzing (probe/fuzz, make fuzz): clang with libFuzzer and the sanitizers
  clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# docker-registry's package starts a service on some systems; we start our own per test.
pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry' 2>/dev/null || true
echo "install-deps: done"
