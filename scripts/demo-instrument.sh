#!/usr/bin/env bash
# demo-instrument.sh OCI_LAYOUT_REF — the main job end to end, as a pipeline would run it (`make demo` step 2):
#   a real registry with auth on loopback → push the image there → crs-ci check → crs-ci instrument (pushes
#   TAG-layered beside it, the original untouched) → run the layered image in a real container (podman + runc)
#   → a denied operation and the probe's events → crs-ci events summarize; then audit → enforce with evidence:
#   instrument in audit mode, run the workload, summarize, suggest a policy (and the diff against the
#   starting one), instrument with the suggestion in enforce mode, and see the learned workload run while
#   anything it never did is denied.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/crs-ci"
SRC="$1"                       # e.g. oci:/tmp/x/layout:demo — an image with /bin/sh and /bin/cat
POLICY="${POLICY:-$ROOT/policies/baseline.yaml}"
WORK="$(mktemp -d)"
REG_PID=""
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" rmi -af >/dev/null 2>&1 || true
  # podman leaves its storage's overlay mount behind; take it down before removing the directory.
  grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${DEMO_KEEP:-}" ] && trap - EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "2. a real registry with htpasswd auth on loopback (Debian's docker-registry)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG="127.0.0.1:$PORT"
USER=demo; PASS="demo-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$WORK/registry"
htpasswd -Bbn "$USER" "$PASS" > "$WORK/registry/htpasswd"
cat > "$WORK/registry/config.yml" <<CFG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry/storage}}
http: {addr: $REG, secret: demo}
auth: {htpasswd: {realm: demo, path: $WORK/registry/htpasswd}}
CFG
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/" || true)
  [ "$code" = 401 ] && break
  sleep 0.1
done
echo "registry on $REG (user $USER)"
# crs-ci reads registry credentials from the docker config keychain by default (instrument also takes
# --username/--password-stdin, CRS_REGISTRY_USERNAME/CRS_REGISTRY_PASSWORD and Vault).
export DOCKER_CONFIG="$WORK/docker"
mkdir -p "$DOCKER_CONFIG"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf '%s:%s' "$USER" "$PASS" | base64 -w0)" \
  > "$DOCKER_CONFIG/config.json"

show "skopeo copy $SRC docker://$REG/demo/app:1.0"
skopeo copy -q --dest-tls-verify=false --dest-creds "$USER:$PASS" "$SRC" "docker://$REG/demo/app:1.0"

step "3. crs-ci check $REG/demo/app:1.0"
"$BIN" check "$REG/demo/app:1.0" --ci none

step "4. crs-ci instrument $REG/demo/app:1.0 --policy ${POLICY#$ROOT/}"
"$BIN" instrument "$REG/demo/app:1.0" --policy "$POLICY" --ci none --report "json=$WORK/instrument.json"
layered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layered"]["ref"])' "$WORK/instrument.json")
echo "layered image: $layered (the original tag is untouched)"

step "5. run the layered image in a real container (podman + runc) and try to read /etc/shadow"
P=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --tmpdir "$WORK/podman/tmp" --runtime runc --cgroup-manager=cgroupfs
   --events-backend=none)
"${P[@]}" pull -q --tls-verify=false --creds "$USER:$PASS" "$layered" >/dev/null
script='echo "hostname: $(cat /etc/hostname)"; cat /etc/shadow || echo "cat /etc/shadow failed with exit code $?"'
show "podman run $layered /bin/sh -c '$script'"
# The probe writes its events to a file on a volume, so they outlive the container.
mkdir -p "$WORK/events"
rc=0
"${P[@]}" run --rm --network none --ulimit nofile=1024:20000 --ulimit nproc=1024:1024 \
  -e CRS_EVENTS=file:/crs-events/events.jsonl -v "$WORK/events:/crs-events" --entrypoint /bin/sh "$layered" \
  -c "$script" || rc=$?
cp "$WORK/events/events.jsonl" "$WORK/events.jsonl"
[ "$rc" -eq 0 ] || { echo "demo: the container failed (exit $rc)" >&2; exit 1; }
grep -q '"action":"deny"' "$WORK/events.jsonl" || { echo "demo: no deny event was written" >&2; exit 1; }

step "6. the probe's events (JSON lines) and their summary"
cat "$WORK/events.jsonl"
echo
show "crs-ci events summarize events.jsonl"
"$BIN" events summarize "$WORK/events.jsonl"

step "7. audit → enforce: instrument in audit mode with a learning policy (logMode: all)"
cat > "$WORK/learn.yaml" <<'YAML'
apiVersion: crs-ci/v1
kind: RuntimePolicy
metadata: {name: learn}
spec:
  mode: audit
  logMode: all
  defaults: {file: allow, network: allow, exec: allow}
  rules:
    - name: no-secrets
      action: deny
      file: {paths: [/etc/shadow, /etc/gshadow, /root/**]}
YAML
"$BIN" instrument "$REG/demo/app:1.0" --policy "$WORK/learn.yaml" --tag-suffix -audit --ci none --format json \
  > "$WORK/audit.json"
audit_ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layered"]["ref"])' "$WORK/audit.json")
echo "audit image: $audit_ref"

# The workload the service really runs (it reads its config and writes a copy; it never touches secrets).
workload='cat /etc/hostname >/dev/null && cp /etc/hostname /tmp/copy && echo "workload ok"'
run_image() { # IMAGE SCRIPT EVENTS-FILE: run SCRIPT in IMAGE, the probe's events into $WORK/EVENTS-FILE
  "${P[@]}" pull -q --tls-verify=false "$1" >/dev/null
  mkdir -p "$WORK/ev-$3"
  "${P[@]}" run --rm --network none --ulimit nofile=1024:20000 --ulimit nproc=1024:1024 \
    -e CRS_EVENTS=file:/crs-events/events.jsonl -v "$WORK/ev-$3:/crs-events" --entrypoint /bin/sh "$1" -c "$2"
  cp "$WORK/ev-$3/events.jsonl" "$WORK/$3"
}
show "podman run $audit_ref /bin/sh -c '$workload'"
run_image "$audit_ref" "$workload" audit-events.jsonl

step "8. what the workload did (crs-ci events summarize)"
"$BIN" events summarize --top 5 "$WORK/audit-events.jsonl"

step "9. crs-ci policy suggest: the policy the events support, and the diff a reviewer reads"
show "crs-ci policy suggest --events audit-events.jsonl --from-policy learn.yaml"
"$BIN" policy suggest --events "$WORK/audit-events.jsonl" --from-policy "$WORK/learn.yaml" || true
show "crs-ci policy suggest --events audit-events.jsonl --name demo -o suggested.yaml"
"$BIN" policy suggest --events "$WORK/audit-events.jsonl" --name demo -o "$WORK/suggested.yaml"
cat "$WORK/suggested.yaml"
"$BIN" policy validate "$WORK/suggested.yaml" --ci none

step "10. instrument with the suggested policy in enforce mode and run again"
"$BIN" instrument "$REG/demo/app:1.0" --policy "$WORK/suggested.yaml" --tag-suffix -enforced --ci none --format json \
  > "$WORK/enforced.json"
enforced_ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layered"]["ref"])' "$WORK/enforced.json")
attempt='cat /etc/shadow >/dev/null 2>&1 && echo "read /etc/shadow" || echo "reading /etc/shadow was denied"'
show "podman run $enforced_ref /bin/sh -c '$workload; $attempt'"
out=$(run_image "$enforced_ref" "$workload; $attempt" enforced-events.jsonl)
echo "$out"
echo "$out" | grep -q "workload ok" || { echo "demo: the learned workload did not run under the suggested policy" >&2; exit 1; }
echo "$out" | grep -q "was denied" || { echo "demo: the unseen read was not denied" >&2; exit 1; }
"$BIN" events summarize --top 5 "$WORK/enforced-events.jsonl" | sed -n '1,12p'
