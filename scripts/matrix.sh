#!/usr/bin/env bash
# matrix.sh — the truth matrix (`make matrix`; also part of `make test`, which runs every Go test).
#
# Runs core/internal/matrix's TestMatrix: for every image kind (real Ubuntu/Debian root filesystems, arm64
# and s390x through qemu-user, musl, static-only, Go entrypoint, libc whited out, a synthetic libc) it
# compares the verdict of bin/crs-ci check with what the probe really does in the instrumented image, and
# writes docs/matrix.md when every kind agrees. Needs root (chroot, mount, mknod) and bin/crs-ci (make build).
# Root filesystems come from scripts/rootfs.sh (cached; a missing one is built, about a minute each).
#
# Environment: CRS_MATRIX_RUN (a go test -run pattern below TestMatrix, e.g. 'bookworm|musl'; a partial run
# does not rewrite docs/matrix.md), CRS_MATRIX_TIMEOUT (default 30m).
set -euo pipefail
# The whole body is one compound command, read before it runs: editing this file during a run cannot derail it.
{

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
[ -x bin/crs-ci ] || { echo "matrix: bin/crs-ci is missing: run make build (make matrix does)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "matrix: needs root (chroot, mount, mknod), as CI runs" >&2; exit 2; }

RUN='^TestMatrix$'
[ -n "${CRS_MATRIX_RUN:-}" ] && RUN="^TestMatrix\$/^kinds\$/(${CRS_MATRIX_RUN})"
start=$(date +%s)
set +e
go test -count=1 -timeout "${CRS_MATRIX_TIMEOUT:-30m}" -run "$RUN" -v ./core/internal/matrix/ \
  | grep -vE '^=== (PAUSE|CONT)'
rc=${PIPESTATUS[0]}
set -e
echo "matrix: $(( $(date +%s) - start )) s"
if [ "$rc" -eq 0 ] && [ -z "${CRS_MATRIX_RUN:-}" ]; then
  sed -n '/^| image /,/^$/p' docs/matrix.md
fi
exit "$rc"
exit
}
