#!/usr/bin/env bash
# Runs every CI shim test: the GitHub Action (action-validator on action.yml and the example
# workflows; the composite's steps in a recreated runner), the Azure DevOps task (MockTestRunner,
# a real run, tfx packaging), the Jenkins shared library (groovyc, the stubbed-pipeline harness with
# real runs), the pre-push hook and core/ci.
#
# npm packages install into the gitignored node_modules folders from the npm cache
# ${CRS_NPM_CACHE:-~/.cache/crs-ci/npm}; the cache is never required (a fresh machine fetches them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache="${CRS_NPM_CACHE:-$HOME/.cache/crs-ci/npm}"
bin="${CRS_CI_BIN:-$root/bin/crs-ci}"
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"

step() { printf '\n== %s\n' "$*"; }

for tool in node npm groovy groovyc unzip curl git; do
  command -v "$tool" >/dev/null || { echo "test-shims: $tool is missing (make deps installs it)" >&2; exit 2; }
done
[ -x "$bin" ] || make build

# npm ci when node_modules is missing or older than the lock file.
npm_install() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --cache "$cache" --prefer-offline --no-audit --no-fund --loglevel=error)
  fi
}
step "npm packages (cache $cache)"
npm_install action/test
npm_install azure-devops/crs-ci-task
npm_install azure-devops

step "GitHub Action: action-validator 0.6.0"
for f in action.yml docs/ci/examples/github/*.yml; do
  action/test/node_modules/.bin/action-validator "$f" || { echo "action-validator: $f is invalid" >&2; exit 1; }
  echo "valid: $f"
done

step "Go: core/ci, junit, hook install, the composite action run against the real crs-ci"
go test -count=1 ./core/ci
go test -count=1 -run 'JUnit' ./core/report
go test -count=1 -run 'Hook|PreCommit|PublishCI' ./core/cmd/crs-ci

step "Azure DevOps: MockTestRunner, real run, tfx extension create"
(cd azure-devops && CRS_CI_BIN="$bin" node_modules/.bin/mocha test/_suite.js --timeout 60000)

step "Jenkins: groovyc, then the stubbed-pipeline harness"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
groovyc -d "$out" jenkins/vars/*.groovy
groovy jenkins/test/Harness.groovy "$root/jenkins" "$root" "$bin"

step "shim tests passed"
