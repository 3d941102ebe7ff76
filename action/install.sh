#!/usr/bin/env bash
# Gets the crs-ci binary for the GitHub Action and writes its path to the step output "bin".
#   CRS_CI_VERSION=source   build it with Go from the action's own checkout ($CRS_CI_SOURCE)
#   CRS_CI_VERSION=vX.Y.Z   download release asset crs-ci_vX.Y.Z_<os>_<arch> from $CRS_CI_RELEASE_URL/vX.Y.Z/
#                           and verify its sha256 against the table pinned in action/checksums.txt
#                           (a release not in the table is refused: no unverified binary ever runs).
# The downloaded binary is kept in $RUNNER_TOOL_CACHE/crs-ci/<version>/ (actions/cache saves that folder).
set -euo pipefail

version="${CRS_CI_VERSION:-source}"
src="${CRS_CI_SOURCE:?CRS_CI_SOURCE (the action path) is not set}"
checksums="${CRS_CI_CHECKSUMS:-$src/action/checksums.txt}"
fail() { echo "::error title=crs-ci action (tool error)::$*"; exit 3; }

if [ "$version" = source ]; then
  command -v go >/dev/null || fail "crs-ci-version: source needs Go on the runner (actions/setup-go runs first in this action)"
  dest="${RUNNER_TEMP:?}/crs-ci-source"
  mkdir -p "$dest"
  echo "crs-ci: building from $src"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dest/crs-ci" ./core/cmd/crs-ci) ||
    fail "building crs-ci from $src failed (see the log above)"
  echo "bin=$dest/crs-ci" >> "$GITHUB_OUTPUT"
  exit 0
fi

case "$version" in
  v[0-9]*) ;;
  *) fail "crs-ci-version '$version': want source or a release tag like v0.1.0" ;;
esac
case "${RUNNER_OS:-Linux}" in
  Linux) os=linux ;;
  macOS) os=darwin ;;
  *) fail "crs-ci releases are built for Linux and macOS runners, not ${RUNNER_OS}" ;;
esac
case "${RUNNER_ARCH:-X64}" in
  X64) arch=amd64 ;;
  ARM64) arch=arm64 ;;
  *) fail "crs-ci releases are built for X64 and ARM64 runners, not ${RUNNER_ARCH}" ;;
esac
asset="crs-ci_${version}_${os}_${arch}"
want=$(awk -v a="$asset" '$1 !~ /^#/ && $2 == a { print $1 }' "$checksums")
[ -n "$want" ] || fail "no sha256 pinned for $asset in action/checksums.txt: use a listed release, or crs-ci-version: source"

dir="${RUNNER_TOOL_CACHE:?}/crs-ci/$version"
bin="$dir/crs-ci"
have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ]; }
if have "$bin"; then
  echo "crs-ci: $asset from the cache (sha256 $want)"
else
  mkdir -p "$dir"
  tmp="$dir/.download.$$"
  url="${CRS_CI_RELEASE_URL%/}/$version/$asset"
  echo "crs-ci: downloading $url"
  curl -fsSL --retry 3 -o "$tmp" "$url" || { rm -f "$tmp"; fail "downloading $url failed"; }
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    fail "checksum mismatch for $asset: got sha256 $got, pinned $want; refusing to run it"
  fi
  chmod 0755 "$tmp"
  mv "$tmp" "$bin"
fi
echo "bin=$bin" >> "$GITHUB_OUTPUT"
