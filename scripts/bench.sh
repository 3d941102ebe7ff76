#!/usr/bin/env bash
# bench.sh — `make bench`: every benchmark of crs-ci, one script per subject, results in docs/benchmarks.md.
#
# Runs, in this order (each runnable alone after `make build`):
#   bench-check.sh       crs-ci check vs `crane export | tar -t`; cached re-check vs first check
#   bench-instrument.sh  crs-ci instrument vs check + `crane append`; bytes uploaded vs layer size
#   bench-probe.sh       denied decision ns vs rule count; open/close loop and process starts, probe vs none
#   bench-memory.sh      peak RSS of check and instrument on a ~1 GB image vs a small one; RSS per probed process
#   bench-macro.sh       a macro workload (extract and read a source tree) without / with the probe / under strace -f
# Each script replaces only its own "<!-- NAME:begin ... -->" … "<!-- NAME:end -->" section of the doc;
# this one writes the "header" section (machine, date, commit, what ran) at the top and never touches the others.
# A script that fails or is missing is reported in the header, and bench.sh exits 1 after the others ran.
#
# Environment: CRS_BENCH_ONLY ("check memory" = only those scripts), CRS_BENCH_DOC (default docs/benchmarks.md),
# and each script's own (CRS_BENCH_REPS, CRS_BENCH_CACHE, ...).
set -uo pipefail
# The whole body is one compound command, read before it runs: editing this file during a run cannot derail it.
{

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOC="${CRS_BENCH_DOC:-$ROOT/docs/benchmarks.md}"
export CRS_BENCH_DOC="$DOC"
ALL=(check instrument probe memory macro)
read -r -a ONLY <<<"${CRS_BENCH_ONLY:-${ALL[*]}}"

[ -x "$ROOT/bin/crs-ci" ] || { echo "bench: $ROOT/bin/crs-ci is missing: run make build (make bench does)" >&2; exit 2; }

# Section scripts append to the doc; some expect it to exist.
[ -e "$DOC" ] || printf '# Benchmarks\n\n' >"$DOC"
# How each script is asked to write its section (bench-probe.sh prints it unless given --write).
args_for() {
  case "$1" in
    probe) echo --write ${CRS_BENCH_REPS:-} ;;
  esac
}

STATUS=()
failed=0
started=$(date +%s)
for name in "${ONLY[@]}"; do
  script="$ROOT/scripts/bench-$name.sh"
  if [ ! -x "$script" ]; then
    echo "bench: scripts/bench-$name.sh is missing" >&2
    STATUS+=("| $name | \`scripts/bench-$name.sh\` | **missing**: not run | — |")
    failed=1
    continue
  fi
  echo "bench: running scripts/bench-$name.sh" >&2
  s=$(date +%s)
  # shellcheck disable=SC2046
  if "$script" $(args_for "$name"); then
    STATUS+=("| $name | \`scripts/bench-$name.sh\` | ran | $(( $(date +%s) - s )) s |")
  else
    rc=$?
    echo "bench: scripts/bench-$name.sh failed with exit $rc" >&2
    STATUS+=("| $name | \`scripts/bench-$name.sh\` | **failed** (exit $rc): its section is from an earlier run or absent | $(( $(date +%s) - s )) s |")
    failed=1
  fi
done

CPU="$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
MEM="$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
OS="$(. /etc/os-release && echo "$PRETTY_NAME")"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"
HEADER="$(mktemp)"
trap 'rm -f "$HEADER"' EXIT
{
  echo "<!-- header:begin (written by scripts/bench.sh; do not edit by hand) -->"
  echo "# Benchmarks"
  echo
  echo "Every number on this page is measured by \`make bench\` (scripts/bench.sh and the scripts it runs), each"
  echo "as a ratio of runs made side by side in the same run, several repetitions, the median. Nothing here is"
  echo "edited by hand; where a goal is missed, the section says so and by how much. Each section below carries"
  echo "its own date, command and details; sections not refreshed by the last run keep their own (older) date."
  echo
  echo "- Last \`make bench\`: $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - started )) s, commit $COMMIT$DIRTY, $("$ROOT/bin/crs-ci" version 2>/dev/null | head -1)"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM, $OS, kernel $(uname -r)"
  echo "- Reproduce: \`make bench\` (all), or \`make build && scripts/bench-NAME.sh\` (one section)"
  echo
  echo "| section | script | last run | time |"
  echo "|---|---|---|---|"
  printf '%s\n' "${STATUS[@]}"
  echo "<!-- header:end -->"
} >"$HEADER"
python3 - "$DOC" "$HEADER" <<'PY'
import os, re, sys
doc, header = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read() if os.path.exists(doc) else ""
pat = re.compile(r"<!-- header:begin.*?<!-- header:end -->\n?", re.S)
if pat.search(text):
    text = pat.sub(lambda m: header, text, count=1)
else:
    # A doc started by a section script begins with a default title: the header replaces it.
    text = re.sub(r"\A# Benchmarks\n\n(Written by `make bench`[^\n]*\n)?\n*", "", text)
    text = header + ("\n" + text if text.strip() else "")
open(doc, "w").write(text)
PY
echo "bench: wrote the header of $DOC" >&2
exit "$failed"
exit
}
