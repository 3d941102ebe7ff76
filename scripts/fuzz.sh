#!/usr/bin/env bash
# scripts/fuzz.sh [short|long] — run every fuzz target for a bounded time.
#
#   short (make fuzz-short, called by make test): each Go target FUZZ_GO_TIME (default 10s), each C target
#         FUZZ_C_TIME (default 15s); the whole run stays under ~5 minutes.
#   long  (make fuzz): each target FUZZ_TIME (default 5m).
#
# Go targets: every `func FuzzX(f *testing.F)` under core/ (found by grep, so new ones join by themselves);
# `go test -fuzz` keeps a failing input in that package's testdata/fuzz/FuzzX/, where plain `go test` replays it.
# C targets: probe/fuzz (libFuzzer, ASan+UBSan) from a copy of the committed corpus; a crash or hang is copied
# to probe/fuzz/regressions/TARGET/ (TestReplay in probe/fuzz replays those on every go test).
# New interesting inputs found by the C run are not committed automatically: FUZZ_KEEP_CORPUS=1 merges them
# into probe/fuzz/corpus/.
# Exit status: 0 when every target ran clean, 1 when any found a failure (the failing targets are listed).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-short}"
case "$MODE" in
  short) GO_TIME="${FUZZ_GO_TIME:-10s}"; C_TIME="${FUZZ_C_TIME:-15}" ;;
  long)  GO_TIME="${FUZZ_TIME:-5m}"; C_TIME="${FUZZ_C_SECONDS:-300}" ;;
  *) echo "usage: scripts/fuzz.sh [short|long]" >&2; exit 2 ;;
esac
export CGO_ENABLED=0
failed=()
start=$(date +%s)

# ---- Go native fuzz targets ----
while IFS=: read -r file _ rest; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$rest")
  pkg="./$(dirname "$file")"
  echo "== go $pkg $name ($GO_TIME)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$GO_TIME" -parallel 2 "$pkg" >"/tmp/crs-fuzz-$name.log" 2>&1; then
    tail -n 30 "/tmp/crs-fuzz-$name.log"
    failed+=("go:$pkg:$name")
  else
    tail -n 1 "/tmp/crs-fuzz-$name.log"
  fi
done < <(grep -rHn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' core | sed -E 's/:([0-9]+):/:\1:/' | sort)

# ---- C targets (probe/fuzz) ----
work=$(mktemp -d /tmp/crs-fuzz-c.XXXXXX)
trap 'rm -rf "$work"' EXIT
if probe/fuzz/build.sh "$work/bin"; then
  for t in policy glob; do
    echo "== c probe/fuzz fuzz_$t (${C_TIME}s)"
    cp -r "probe/fuzz/corpus/$t" "$work/corpus-$t"
    mkdir -p "$work/art-$t"
    if ! "$work/bin/fuzz_$t" -max_total_time="$C_TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$work/art-$t/" "$work/corpus-$t" >"$work/log-$t" 2>&1; then
      grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$work/log-$t" | head -n 20
      mkdir -p "probe/fuzz/regressions/$t"
      cp "$work/art-$t/"* "probe/fuzz/regressions/$t/" 2>/dev/null && echo "   kept in probe/fuzz/regressions/$t/: $(ls "$work/art-$t" | tr '\n' ' ')"
      failed+=("c:fuzz_$t")
    else
      grep -E '^stat::number_of_executed_units' "$work/log-$t" | sed 's/^/   /'
      if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
        "$work/bin/fuzz_$t" -merge=1 "probe/fuzz/corpus/$t" "$work/corpus-$t" >/dev/null 2>&1
      fi
    fi
  done
else
  failed+=("c:build")
fi

echo "fuzz ($MODE): $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran clean"
