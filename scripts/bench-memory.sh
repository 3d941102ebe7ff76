#!/usr/bin/env bash
# bench-memory.sh — memory benchmarks (called by `make bench`; runnable alone after `make build`; needs root).
#
# 1. Peak RSS (getrusage ru_maxrss) of `crs-ci check` and `crs-ci instrument --dry-run --output oci:DIR` on
#    three images built from real root filesystems, read from OCI layouts on local disk with --no-cache:
#      small    one layer: bookworm (~200 MB)
#      large    one layer: bookworm at / and four more root filesystems under /srv/rootfs (~1 GB)
#      layered  the same ~1 GB as five layers, one root filesystem each (layers are read in parallel)
#    The goal: memory bounded and independent of the image's size (large ≤ 1.25 × small).
# 2. Memory added to each probed process: /proc/self/smaps_rollup of a real program (bookworm's cat) in a
#    chroot of a real root filesystem, with /etc/ld.so.preload naming the probe (policies/baseline.yaml
#    compiled) and without, REPS runs each, medians.
# Writes the "memory" section of docs/benchmarks.md.
#
# Environment: CRS_BENCH_REPS (default 3), CRS_BENCH_CACHE (default ~/.cache/crs-ci/bench),
# CRS_BENCH_BASE (the small image's root filesystem, default bookworm), CRS_BENCH_EXTRA (the others in the
# large images, default "xenial bullseye trixie sid"), CRS_BENCH_DOC (default docs/benchmarks.md).
set -euo pipefail
# The whole body is one compound command, read before it runs: editing this file during a run cannot derail it.
{

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/crs-ci"
REPS="${CRS_BENCH_REPS:-3}"
CACHE="${CRS_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crs-ci/bench}"
DOC="${CRS_BENCH_DOC:-$ROOT/docs/benchmarks.md}"
read -r -a EXTRA <<<"${CRS_BENCH_EXTRA:-xenial bullseye trixie sid}"
BASE="${CRS_BENCH_BASE:-bookworm}"
POLICY="$ROOT/policies/baseline.yaml"

log() { echo "bench-memory: $*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$BIN" ] || die "$BIN is missing: run make build first"
[ "$(id -u)" -eq 0 ] || die "needs root (overlay mount, chroot)"
for tool in umoci python3 tar chroot mount; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
mkdir -p "$CACHE"

WORK="$(mktemp -d)"
MOUNTS=()
cleanup() {
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# layout KIND NAME... — an OCI layout (umoci) of root filesystems, cached; prints its directory.
# KIND "layers": one layer per root filesystem at /; KIND "one": one layer, the first at /, the others
# under /srv/rootfs/NAME.
layout() {
  local kind="$1" dir name rootdir first=1
  shift
  dir="$CACHE/memimage-$kind-$(IFS=-; echo "$*")"
  if [ ! -e "$dir/.complete" ]; then
    log "building the image ($kind) $* into $dir"
    rm -rf "$dir" "$dir.tmp" "$WORK/layer.tar"
    umoci init --layout "$dir.tmp" >&2
    umoci new --image "$dir.tmp:bench" >&2
    for name in "$@"; do
      rootdir="$("$ROOT/scripts/rootfs.sh" "$name")"
      local opts=(--numeric-owner --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./debootstrap
        --exclude=./.crs-complete -C "$rootdir")
      if [ "$kind" = layers ] || [ "$first" = 1 ]; then
        tar "${opts[@]}" -cf "$WORK/layer.tar" .
      else
        tar "${opts[@]}" --transform "s,^\\.,./srv/rootfs/$name,S" -rf "$WORK/layer.tar" .
      fi
      first=0
      if [ "$kind" = layers ]; then
        umoci raw add-layer --image "$dir.tmp:bench" "$WORK/layer.tar" >&2
        rm -f "$WORK/layer.tar"
      fi
    done
    if [ "$kind" = one ]; then
      umoci raw add-layer --image "$dir.tmp:bench" "$WORK/layer.tar" >&2
      rm -f "$WORK/layer.tar"
    fi
    umoci config --image "$dir.tmp:bench" --config.cmd /bin/bash >&2
    umoci gc --layout "$dir.tmp" >&2
    mv "$dir.tmp" "$dir"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# sizes DIR — "LAYERS COMPRESSED UNCOMPRESSED" of the layout's image
sizes() {
  python3 - "$1" <<'PY'
import json, os, sys, gzip
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
def blob(d): return os.path.join(lay, "blobs", *d.split(":"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
unc = 0
for l in m["layers"]:
    with gzip.open(blob(l["digest"])) as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            unc += len(b)
print(len(m["layers"]), sum(l["size"] for l in m["layers"]), unc)
PY
}

# peak CMD... — runs CMD, prints "PEAK_KIB WALL_MS EXIT" (peak RSS of the child from getrusage)
peak() {
  python3 - "$WORK/cmd.err" "$@" <<'PY'
import resource, subprocess, sys, time
err = open(sys.argv[1], "w")
t = time.monotonic()
rc = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
ms = int((time.monotonic() - t) * 1000)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, ms, rc)
PY
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f MiB", k/1024}'; }

declare -A DIR LAYERS COMP UNC
DIR[small]="$(layout one "$BASE")"
DIR[large]="$(layout one "$BASE" "${EXTRA[@]}")"
DIR[layered]="$(layout layers "${EXTRA[@]:0:2}" "$BASE" "${EXTRA[@]:2}")"
for img in small large layered; do
  read -r l c u < <(sizes "${DIR[$img]}")
  LAYERS[$img]=$l COMP[$img]=$c UNC[$img]=$u
  log "$img image: $l layer(s), $u bytes uncompressed"
done

declare -A PEAKS WALLS
measure() { # KEY CMD...
  local key="$1" out kib ms rc
  shift
  out="$(peak "$@")"
  read -r kib ms rc <<<"$out"
  if [ "$rc" -ne 0 ]; then cat "$WORK/cmd.err" >&2; die "$* exited $rc"; fi
  PEAKS[$key]+="$kib "
  WALLS[$key]+="$ms "
}
for i in $(seq "$REPS"); do
  for img in small large layered; do
    measure "check-$img" "$BIN" check "oci:${DIR[$img]}:bench" --no-cache --ci none --format json
    rm -rf "$WORK/out"
    measure "instrument-$img" "$BIN" instrument "oci:${DIR[$img]}:bench" --policy "$POLICY" --dry-run \
      --output "oci:$WORK/out" --no-cache --ci none --format json
    rm -rf "$WORK/out"
  done
  log "rep $i of $REPS done"
done
declare -A PEAK WALL
for c in check instrument; do
  for img in small large layered; do
    # shellcheck disable=SC2086
    PEAK[$c-$img]=$(median ${PEAKS[$c-$img]})
    # shellcheck disable=SC2086
    WALL[$c-$img]=$(median ${WALLS[$c-$img]})
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
goal() { awk -v r="$1" -v g="$2" 'BEGIN{ if (r <= g) print "met"; else printf "missed: %.2f× the goal\n", r/g }'; }
R_SIZE=$(ratio "${UNC[large]}" "${UNC[small]}")

# 2. memory added per probed process
BOOKWORM="$("$ROOT/scripts/rootfs.sh" bookworm)"
mkdir -p "$WORK/u" "$WORK/w" "$WORK/m"
mount -t overlay overlay -o "lowerdir=$BOOKWORM,upperdir=$WORK/u,workdir=$WORK/w" "$WORK/m"
MOUNTS+=("$WORK/m")
mount -t proc proc "$WORK/m/proc"
MOUNTS+=("$WORK/m/proc")
mkdir -p "$WORK/m/usr/lib/crs-ci" "$WORK/m/etc/crs-ci"
install -m 0755 "$ROOT/core/probe/artifacts/crs-probe-glibc-amd64.so" "$WORK/m/usr/lib/crs-ci/probe.so"
"$BIN" policy compile "$POLICY" -o "$WORK/m/etc/crs-ci/policy.bin" >&2
rollup() { # prints "RSS PSS PRIVATE" in KiB of cat reading its own smaps_rollup
  chroot "$WORK/m" /bin/cat /proc/self/smaps_rollup | awk '
    /^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty):/ {v+=$2} END {print r, p, v}'
}
RSS0=() PSS0=() PRIV0=() RSS1=() PSS1=() PRIV1=()
for i in $(seq $((REPS * 2))); do
  rm -f "$WORK/m/etc/ld.so.preload"
  read -r r p v < <(rollup); RSS0+=("$r"); PSS0+=("$p"); PRIV0+=("$v")
  echo /usr/lib/crs-ci/probe.so >"$WORK/m/etc/ld.so.preload"
  read -r r p v < <(rollup); RSS1+=("$r"); PSS1+=("$p"); PRIV1+=("$v")
done
grep -q crs-ci <(chroot "$WORK/m" /bin/cat /proc/self/maps) || die "the probe did not load in the bookworm chroot"
# The probe's own mappings (its library and the mmapped policy) in a probed cat: exact, no noise.
OWN=()
for i in $(seq $((REPS * 2))); do
  OWN+=("$(chroot "$WORK/m" /bin/cat /proc/self/smaps | awk '
    /^[0-9a-f]+-[0-9a-f]+ / {own = ($6 ~ /^\/(usr\/lib|etc)\/crs-ci\//)}
    own && /^Rss:/ {r += $2} own && /^Private_(Clean|Dirty):/ {v += $2} END {print r "/" v}')")
done
rm -f "$WORK/m/etc/ld.so.preload"
M_OWN=$(printf '%s\n' "${OWN[@]}" | sort | uniq -c | sort -rn | awk 'NR==1{print $2}')
OWN_RSS=${M_OWN%/*} OWN_PRIV=${M_OWN#*/}
M_RSS0=$(median "${RSS0[@]}") M_RSS1=$(median "${RSS1[@]}")
M_PSS0=$(median "${PSS0[@]}") M_PSS1=$(median "${PSS1[@]}")
M_PRIV0=$(median "${PRIV0[@]}") M_PRIV1=$(median "${PRIV1[@]}")
log "cat: RSS $M_RSS0 → $M_RSS1 KiB, PSS $M_PSS0 → $M_PSS1 KiB, private $M_PRIV0 → $M_PRIV1 KiB"

CPU="$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
MEM="$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
OS="$(. /etc/os-release && echo "$PRETTY_NAME")"
bmib() { awk -v b="$1" 'BEGIN{printf "%.0f MiB", b/1048576}'; }
SECTION="$WORK/section.md"
cat >"$SECTION" <<EOF
<!-- memory:begin (written by scripts/bench-memory.sh; do not edit by hand) -->
## memory

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs ($CPU), $MEM, $OS, kernel $(uname -r)
- $("$BIN" version | head -1); median of $REPS runs each, interleaved
- Reproduce: \`make build && scripts/bench-memory.sh\` (or \`make bench\`)

### Peak RSS of check and instrument: bounded, independent of the image's size

| image | layers | compressed | uncompressed |
|---|---|---|---|
| small: $BASE | ${LAYERS[small]} | $(bmib "${COMP[small]}") | $(bmib "${UNC[small]}") |
| large: $BASE at /, ${EXTRA[*]} under /srv/rootfs | ${LAYERS[large]} | $(bmib "${COMP[large]}") | $(bmib "${UNC[large]}") |
| layered: the same root filesystems, one layer each | ${LAYERS[layered]} | $(bmib "${COMP[layered]}") | $(bmib "${UNC[layered]}") |

The large image is ${R_SIZE}× the small one. All are OCI layouts on local disk, read with \`--no-cache\`;
instrument is a dry run writing the result to another OCI layout (\`--output oci:DIR\`). Peak RSS is the
child's ru_maxrss; wall times are medians too.

| command | small | large | large / small | goal ≤ 1.25 | layered (5 layers in parallel) | wall small / large / layered |
|---|---|---|---|---|---|---|
$(for c in check instrument; do
  r=$(ratio "${PEAK[$c-large]}" "${PEAK[$c-small]}")
  echo "| \`crs-ci $c\` | $(mib "${PEAK[$c-small]}") | $(mib "${PEAK[$c-large]}") | $r | $(goal "$r" 1.25) | $(mib "${PEAK[$c-layered]}") | ${WALL[$c-small]} / ${WALL[$c-large]} / ${WALL[$c-layered]} ms |"
done)

Runs (peak KiB): $(for k in check-small check-large check-layered instrument-small instrument-large instrument-layered; do printf '%s: %s; ' "$k" "${PEAKS[$k]% }"; done)

### Memory added to each probed process

Debian bookworm's \`/bin/cat /proc/self/smaps_rollup\` in a chroot of the real root filesystem, without and
with \`/etc/ld.so.preload\` naming the glibc amd64 probe (policy: policies/baseline.yaml compiled), $((REPS * 2)) runs
each, medians. Private = Private_Clean + Private_Dirty (memory no other process shares).

| measure | without the probe | with the probe | added |
|---|---|---|---|
| RSS | $M_RSS0 KiB | $M_RSS1 KiB | $((M_RSS1 - M_RSS0)) KiB |
| PSS | $M_PSS0 KiB | $M_PSS1 KiB | $((M_PSS1 - M_PSS0)) KiB |
| private | $M_PRIV0 KiB | $M_PRIV1 KiB | $((M_PRIV1 - M_PRIV0)) KiB |

The totals above move by a few pages from run to run (stack, heap, which pages the loader touches). The
probe's own mappings in a probed process (its library and the mmapped policy, from /proc/self/smaps, the
most frequent of $((REPS * 2)) runs): **$OWN_RSS KiB resident, $OWN_PRIV KiB of it private** (runs: ${OWN[*]}, RSS/private KiB).
<!-- memory:end -->
EOF
python3 - "$DOC" "$SECTION" <<'PY'
import os, re, sys
doc, section = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\nWritten by `make bench`; each section by its own script.\n"
pat = re.compile(r"<!-- memory:begin.*?<!-- memory:end -->\n", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(doc, "w").write(text)
PY
log "wrote the memory section of $DOC"
exit
}
