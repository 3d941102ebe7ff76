#!/usr/bin/env bash
# probe/fuzz/build.sh OUTDIR — build the libFuzzer targets of the probe's decision engine with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (any UB report aborts): OUTDIR/fuzz_policy (the compiled-policy
# loader, key index and matcher) and OUTDIR/fuzz_glob (the glob matcher against plain backtracking).
# The sources are the probe's own probe/src/decide.c and sha256.c, unchanged.
set -euo pipefail
OUT="${1:?usage: probe/fuzz/build.sh OUTDIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")"
CC="${CLANG:-clang}"
command -v "$CC" >/dev/null || { echo "probe/fuzz: $CC not found (scripts/install-deps.sh installs clang and libclang-rt-14-dev)" >&2; exit 3; }
for t in policy glob; do
  "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -Wall -Wextra -Werror -Wno-unused-parameter -o "$OUT/fuzz_$t" "targets/fuzz_$t.c" ../src/decide.c ../src/sha256.c
done
