#!/usr/bin/env bash
# bench-check.sh — the `crs-ci check` benchmark (called by `make bench`; runnable alone after `make build`).
#
# Builds (once, cached) a multi-layer image from real root filesystems, serves it from a real local
# registry (Debian's docker-registry on 127.0.0.1), and times, REPS times each, interleaved:
#   export  crane export IMAGE - | tar -t >/dev/null          (go-containerregistry's flatten, the baseline)
#   cold    crs-ci check IMAGE --cache-dir <empty dir>         (every layer pulled, streamed and analysed)
#   cached  crs-ci check IMAGE --cache-dir <warm dir>          (the layers' facts come from the cache)
# Both tools pull the same blobs from the same registry over loopback http. Medians and ratios are written
# to the "check" section of docs/benchmarks.md. Goals: cold ≤ 0.5 × export; cached ≤ 0.1 × cold.
#
# Environment: CRS_BENCH_REPS (default 5), CRS_BENCH_ROOTFS (default "bullseye bookworm trixie sid"),
# CRS_BENCH_CACHE (default ~/.cache/crs-ci/bench), CRS_BENCH_DOC (default docs/benchmarks.md).
set -euo pipefail

# Everything runs inside main, which bash reads whole before running: editing this file while it runs
# cannot change what the running instance does.
main() {

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/crs-ci"
REPS="${CRS_BENCH_REPS:-5}"
read -r -a ROOTFS <<<"${CRS_BENCH_ROOTFS:-bullseye bookworm trixie sid}"
CACHE="${CRS_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crs-ci/bench}"
DOC="${CRS_BENCH_DOC:-$ROOT/docs/benchmarks.md}"
CRANE_VERSION=v0.22.1

log() { echo "bench-check: $*" >&2; }
die() { log "$*"; exit 1; }

[ -x "$BIN" ] || die "$BIN is missing: run make build first"
for tool in umoci skopeo docker-registry curl python3 go tar; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
mkdir -p "$CACHE"

# crane, pinned, installed into the cache (never on the PATH of the machine).
CRANE="$CACHE/bin/crane"
if [ ! -x "$CRANE" ] || ! "$CRANE" version 2>/dev/null | grep -q "${CRANE_VERSION#v}"; then
  log "installing crane $CRANE_VERSION into $CACHE/bin"
  GOBIN="$CACHE/bin" CGO_ENABLED=0 go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
fi

# The image: one layer per root filesystem, in an OCI layout (umoci), cached.
LAYOUT="$CACHE/image-$(IFS=-; echo "${ROOTFS[*]}")"
if [ ! -e "$LAYOUT/.complete" ]; then
  log "building the benchmark image from ${ROOTFS[*]} into $LAYOUT"
  rm -rf "$LAYOUT" "$LAYOUT.tmp"
  umoci init --layout "$LAYOUT.tmp"
  umoci new --image "$LAYOUT.tmp:bench"
  for name in "${ROOTFS[@]}"; do
    dir="$("$ROOT/scripts/rootfs.sh" "$name")"
    tar --numeric-owner --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./debootstrap \
      --exclude=./.crs-complete -C "$dir" -cf "$CACHE/layer.tar" .
    umoci raw add-layer --image "$LAYOUT.tmp:bench" "$CACHE/layer.tar"
    rm -f "$CACHE/layer.tar"
  done
  umoci config --image "$LAYOUT.tmp:bench" --config.cmd /bin/bash
  umoci gc --layout "$LAYOUT.tmp"
  mv "$LAYOUT.tmp" "$LAYOUT"
  touch "$LAYOUT/.complete"
fi

# A real registry on a free loopback port, removed on exit.
WORK="$(mktemp -d)"
REGPID=""
cleanup() {
  if [ -n "$REGPID" ]; then kill "$REGPID" 2>/dev/null || true; wait "$REGPID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGPID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null || { cat "$WORK/registry.log" >&2; die "the registry did not start"; }
IMAGE="127.0.0.1:$PORT/bench:1"
skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:bench" "docker://$IMAGE"

# Sizes of what is measured.
read -r LAYERS COMPRESSED UNCOMPRESSED < <(python3 - "$LAYOUT" <<'EOF'
import json, os, sys, gzip
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
def blob(d): return os.path.join(lay, "blobs", *d.split(":"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
comp = sum(l["size"] for l in m["layers"])
unc = 0
for l in m["layers"]:
    with gzip.open(blob(l["digest"])) as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            unc += len(b)
print(len(m["layers"]), comp, unc)
EOF
)

run_export() { "$CRANE" export "$IMAGE" - 2>>"$WORK/export.err" | tar -t >/dev/null; }
run_check() { # $1 = cache dir
  local rc=0
  "$BIN" check "$IMAGE" --cache-dir "$1" --ci none --format json >"$WORK/report.json" 2>"$WORK/check.err" || rc=$?
  [ "$rc" -le 1 ] || { cat "$WORK/check.err" >&2; die "crs-ci check failed with exit $rc"; }
}
# timed CMD… prints "WALL_MS CPU_MS": elapsed time, and user+system CPU time of CMD and its children.
timed() {
  local TIMEFORMAT='%R %U %S' t
  t=$({ time "$@" 2>>"$WORK/timed.err"; } 2>&1)
  awk '{printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000}' <<<"$t"
}

log "image $IMAGE: $LAYERS layers, $COMPRESSED bytes compressed, $UNCOMPRESSED uncompressed; $REPS repetitions"
run_export # warm the page cache and the registry
WARM="$WORK/warm-cache"
run_check "$WARM" # fills the warm cache
VERDICT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$WORK/report.json")"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
EXPORT=() COLD=() CACHED=() EXPORT_CPU=() COLD_CPU=() CACHED_CPU=()
for i in $(seq "$REPS"); do
  read -r w c < <(timed run_export); EXPORT+=("$w"); EXPORT_CPU+=("$c")
  rm -rf "$WORK/cold"
  read -r w c < <(timed run_check "$WORK/cold"); COLD+=("$w"); COLD_CPU+=("$c")
  read -r w c < <(timed run_check "$WARM"); CACHED+=("$w"); CACHED_CPU+=("$c")
  log "rep $i: export ${EXPORT[-1]} ms (cpu ${EXPORT_CPU[-1]}), check cold ${COLD[-1]} ms (cpu ${COLD_CPU[-1]}), cached ${CACHED[-1]} ms (cpu ${CACHED_CPU[-1]})"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
M_EXPORT=$(median "${EXPORT[@]}")
M_COLD=$(median "${COLD[@]}")
M_CACHED=$(median "${CACHED[@]}")
C_EXPORT=$(median "${EXPORT_CPU[@]}")
C_COLD=$(median "${COLD_CPU[@]}")
C_CACHED=$(median "${CACHED_CPU[@]}")
R_COLD_CPU=$(awk -v a="$C_COLD" -v b="$C_EXPORT" 'BEGIN{printf "%.2f", a/b}')
R_COLD=$(awk -v a="$M_COLD" -v b="$M_EXPORT" 'BEGIN{printf "%.2f", a/b}')
R_CACHED=$(awk -v a="$M_CACHED" -v b="$M_COLD" 'BEGIN{printf "%.3f", a/b}')
goal() { # ratio goal → "met" or "missed by N×"
  awk -v r="$1" -v g="$2" 'BEGIN{ if (r <= g) print "met"; else printf "missed: %.2f× the goal\n", r/g }'
}
G_COLD=$(goal "$R_COLD" 0.5)
G_CACHED=$(goal "$R_CACHED" 0.1)
log "median: export $M_EXPORT ms, cold $M_COLD ms ($R_COLD×, $G_COLD), cached $M_CACHED ms ($R_CACHED× of cold, $G_CACHED)"

CPU="$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
MEM="$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
OS="$(. /etc/os-release && echo "$PRETTY_NAME")"
VERSION="$("$BIN" version)"
mib() { awk -v b="$1" 'BEGIN{printf "%.0f MiB", b/1048576}'; }
SECTION="$WORK/section.md"
cat >"$SECTION" <<EOF
<!-- check:begin (written by scripts/bench-check.sh; do not edit by hand) -->
## check

\`crs-ci check\` against flattening the same image with go-containerregistry's \`crane export\`, both
pulling from the same local registry (Debian's docker-registry on 127.0.0.1, plain http), median of $REPS
interleaved runs each.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs ($CPU), $MEM, $OS, kernel $(uname -r)
- $VERSION; crane $CRANE_VERSION
- Image: ${LAYERS} layers, one per real root filesystem (${ROOTFS[*]}), $(mib "$COMPRESSED") compressed,
  $(mib "$UNCOMPRESSED") uncompressed; verdict \`$VERDICT\`
- Reproduce: \`make build && scripts/bench-check.sh\` (or \`make bench\`)

| run | command | median elapsed | runs (ms) | median CPU (user+sys) |
|---|---|---|---|---|
| export | \`crane export IMAGE - \| tar -t >/dev/null\` | $M_EXPORT ms | ${EXPORT[*]} | $C_EXPORT ms |
| cold check | \`crs-ci check IMAGE --cache-dir EMPTY_DIR\` | $M_COLD ms | ${COLD[*]} | $C_COLD ms |
| cached check | \`crs-ci check IMAGE --cache-dir WARM_DIR\` | $M_CACHED ms | ${CACHED[*]} | $C_CACHED ms |

| goal (elapsed time) | ratio | result |
|---|---|---|
| cold check ≤ 0.5 × export | $R_COLD | $G_COLD |
| cached check ≤ 0.1 × cold check | $R_CACHED | $G_CACHED |

Load average (1, 5, 15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER. On a machine shared with other
work the elapsed times spread widely; the CPU time (cold check / export: $R_COLD_CPU) does not depend on it.

The cold check pulls every layer, decompresses it once (layers in parallel), reads the tar stream and
analyses ELF files, scripts and /etc/ld.so.preload on the way; nothing is written to disk but the facts cache.
\`crane export\` pulls and decompresses the same layers one after the other and writes the flattened tar that
\`tar -t\` reads. The cached check still fetches the manifest and config from the registry but no layer.

Where the cold check's CPU goes (pprof of \`go test ./core/compat -bench BenchmarkCheck\`): about 70% inflating
the layers (klauspost/compress), about 20% the two SHA-256 digests that verify every layer (compressed digest
and diff ID), about 2% the ELF analysis. Its CPU time is below export's, but reaching 0.5× of export's
elapsed time needs both CPUs working for the check at once (layers are scanned in parallel, two at a time
here): with other jobs on the machine, the check gets about one CPU and its elapsed time stays close to its
CPU time.
<!-- check:end -->
EOF
python3 - "$DOC" "$SECTION" <<'EOF'
import os, re, sys
doc, section = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\nWritten by `make bench`; each section by its own script.\n"
pat = re.compile(r"<!-- check:begin.*?<!-- check:end -->\n", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(doc, "w").write(text)
EOF
log "wrote the check section of $DOC"
}

main "$@"
