#!/usr/bin/env bash
# demo.sh — crs-ci end to end on images built here (`make demo`; needs `make deps` and `make build`).
#
# 1. check: build a small real glibc image (a C program, a shell and cat, and the glibc they were linked
#    with, packed as an OCI layout, no Docker engine), check it (compatible, exit 0); then the same image
#    with a statically linked entrypoint (incompatible, exit 1, with the reason).
# 2-6. scripts/demo-instrument.sh: push it to a real local registry, instrument it with
#    policies/baseline.yaml, run the -layered image in a real container and show the denied read and the events.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/crs-ci"
[ -x "$BIN" ] || { echo "demo: $BIN is missing: run make build" >&2; exit 1; }
for tool in gcc umoci tar ldd; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing: run make deps" >&2; exit 1; }
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. check: a small real glibc image"
mkdir -p "$WORK/rootfs/app" "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
chmod 1777 "$WORK/rootfs/tmp"
for b in /bin/dash /bin/cat /bin/cp; do cp -L "$b" "$WORK/rootfs$b"; done
ln -s dash "$WORK/rootfs/bin/sh"
# A secret the baseline policy protects.
echo 'root:$y$j9T$demo-only-not-a-real-hash:19000:0:99999:7:::' > "$WORK/rootfs/etc/shadow"
chmod 0640 "$WORK/rootfs/etc/shadow"
cat >"$WORK/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello from a dynamically linked program"); return 0; }
EOF
gcc -O2 -o "$WORK/rootfs/app/hello" "$WORK/hello.c"
gcc -O2 -static -o "$WORK/rootfs/app/hello-static" "$WORK/hello.c"
# The glibc the program was linked with, at the same paths (the loader, libc.so.6; libdl.so.2 for the probe).
libs=$(ldd "$WORK/rootfs/app/hello" "$WORK"/rootfs/bin/{dash,cat,cp} |
  awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u)
libdir=$(dirname "$(ldd "$WORK/rootfs/app/hello" | awk '/libc.so.6/ {print $3}')")
for f in $libs "$libdir/libdl.so.2"; do
  mkdir -p "$WORK/rootfs$(dirname "$f")"
  cp -L "$f" "$WORK/rootfs$f"
done
tar --numeric-owner --owner=0 --group=0 -C "$WORK/rootfs" -cf "$WORK/layer.tar" .
umoci init --layout "$WORK/layout" >/dev/null
umoci new --image "$WORK/layout:demo"
umoci raw add-layer --image "$WORK/layout:demo" "$WORK/layer.tar"
umoci config --image "$WORK/layout:demo" --config.entrypoint /app/hello
umoci config --image "$WORK/layout:demo" --tag static --config.entrypoint /app/hello-static
echo "built oci:$WORK/layout:demo ($(du -sh "$WORK/rootfs" | cut -f1) unpacked): /app/hello, sh, cat, cp + $(echo $libs | wc -w) libraries"

echo "\$ crs-ci check oci:\$WORK/layout:demo"
rc=0
"$BIN" check "oci:$WORK/layout:demo" --no-cache --ci none || rc=$?
echo "exit code: $rc"
[ "$rc" -eq 0 ] || { echo "demo: expected the glibc image to be compatible (exit 0)" >&2; exit 1; }

echo
echo "\$ crs-ci check oci:\$WORK/layout:static   # the same image, entrypoint statically linked"
rc=0
"$BIN" check "oci:$WORK/layout:static" --no-cache --ci none || rc=$?
echo "exit code: $rc"
[ "$rc" -eq 1 ] || { echo "demo: expected the static entrypoint to be rejected (exit 1)" >&2; exit 1; }

"$ROOT/scripts/demo-instrument.sh" "oci:$WORK/layout:demo"

step "demo finished: compatible image accepted (0), static entrypoint rejected (1), the -layered image pushed, the denied read seen in a real container, and a policy learned in audit mode enforced"
