#!/usr/bin/env bash
# rootfs.sh NAME... — make sure a real distribution root filesystem is in the cache and print its path.
#
# Root filesystems are built once with debootstrap (minbase) and kept outside the repository in
# $CRS_ROOTFS_CACHE (default: ~/.cache/crs-ci/rootfs). A missing or half-built one is rebuilt.
# Tests call this script; nothing requires the cache to exist beforehand.
#
# Names: xenial bionic focal jammy noble (Ubuntu, amd64), bullseye bookworm trixie sid (Debian, amd64),
#        bookworm-arm64 (Debian arm64 files, first stage only: run its programs with qemu-aarch64-static -L),
#        bookworm-s390x (the same for s390x, an architecture without a probe: qemu-s390x-static).
set -euo pipefail

CACHE="${CRS_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crs-ci/rootfs}"
DEBIAN_MIRROR="${CRS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
UBUNTU_MIRROR="${CRS_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
mkdir -p "$CACHE"

build() {
  local name="$1" dir="$2" suite arch=amd64 mirror="$DEBIAN_MIRROR" extra=() script=""
  case "$name" in
    xenial|bionic|focal|jammy|noble)
      suite="$name"; mirror="$UBUNTU_MIRROR"; extra+=(--no-check-gpg)
      [ -e "/usr/share/debootstrap/scripts/$suite" ] || script=/usr/share/debootstrap/scripts/gutsy ;;
    bullseye|bookworm|trixie|sid) suite="$name" ;;
    bookworm-arm64|bookworm-s390x) suite=bookworm; arch="${name#bookworm-}"; extra+=(--foreign) ;;
    *) echo "rootfs.sh: unknown root filesystem '$name'" >&2; return 2 ;;
  esac
  rm -rf "$dir.tmp"
  echo "rootfs.sh: debootstrap $suite ($arch) into $dir" >&2
  if ! debootstrap --variant=minbase --arch="$arch" "${extra[@]}" "$suite" "$dir.tmp" "$mirror" $script \
      >"$dir.log" 2>&1; then
    echo "rootfs.sh: debootstrap $name failed; last lines of $dir.log:" >&2
    tail -20 "$dir.log" >&2
    return 3
  fi
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  touch "$dir/.crs-complete"
}

for name in "$@"; do
  dir="$CACHE/$name"
  (
    flock 9
    [ -e "$dir/.crs-complete" ] || build "$name" "$dir"
  ) 9>"$CACHE/$name.lock"
  echo "$dir"
done
