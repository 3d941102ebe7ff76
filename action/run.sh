#!/usr/bin/env bash
# Runs crs-ci with the GitHub Action's inputs (INPUT_* as action.yml maps them). It only turns
# inputs into the same flags every shim passes; crs-ci itself writes the step outputs, the summary
# and the annotations (it detects GitHub Actions) and decides the exit code:
#   0 passed, 1 rejected (the step fails: a verdict), 2 usage, 3 operational (the step fails: a tool error).
set -euo pipefail

bin="${CRS_CI_BIN:?CRS_CI_BIN is not set (the install step failed?)}"
truthy() { case "${1,,}" in true|yes|1|on) return 0 ;; esac; return 1; }
usage() { echo "::error title=crs-ci action (usage)::$*"; exit 2; }
# list splits a multi-line or comma-separated input into words (blank entries dropped).
list() { tr ',\n' '\n\n' <<<"$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -v '^$' || true; }

args=()
case "${INPUT_COMMAND:-instrument}" in
  instrument) args=(instrument) ;;
  check) args=(check) ;;
  validate) args=(policy validate) ;;
  *) usage "command: want instrument, check or validate, got '${INPUT_COMMAND}'" ;;
esac
cmd="${INPUT_COMMAND:-instrument}"

args+=(--ci github --fail-on "${INPUT_FAIL_ON:-error}")
truthy "${INPUT_SUMMARY:-true}" || args+=(--summary=false)
while IFS= read -r r; do args+=(--report "$r"); done < <(list "${INPUT_REPORTS:-}")

image="${INPUT_IMAGE:-}"
if [ "$cmd" != validate ]; then
  [ -n "$image" ] || usage "image is required for command $cmd"
  [ -n "${INPUT_PLATFORMS:-}" ] && args+=(--platform "$INPUT_PLATFORMS")
  truthy "${INPUT_ALLOW_UNHOOKABLE_ENTRYPOINT:-false}" && args+=(--allow-unhookable-entrypoint)
fi

if [ "$cmd" = instrument ]; then
  [ -n "${INPUT_POLICY:-}" ] || usage "policy is required for command instrument"
  args+=(--policy "$INPUT_POLICY")
  [ -n "${INPUT_TAG_SUFFIX:-}" ] && args+=(--tag-suffix "$INPUT_TAG_SUFFIX")
  [ -n "${INPUT_TO:-}" ] && args+=(--to "$INPUT_TO")
  truthy "${INPUT_DRY_RUN:-false}" && args+=(--dry-run)
  [ -n "${INPUT_OUTPUT:-}" ] && args+=(--output "$INPUT_OUTPUT")
  [ -n "${INPUT_MODE:-}" ] && args+=(--mode "$INPUT_MODE")
  truthy "${INPUT_SKIP_INCOMPATIBLE_PLATFORMS:-false}" && args+=(--skip-incompatible-platforms)

  # Registry credentials: secrets travel in the environment only, never on the command line.
  [ -n "${INPUT_USERNAME:-}" ] && args+=(--username "$INPUT_USERNAME")
  [ -n "${INPUT_PASSWORD:-}" ] && export CRS_REGISTRY_PASSWORD="$INPUT_PASSWORD"
  if [ -n "${INPUT_VAULT_ADDRESS:-}" ]; then
    args+=(--vault-address "$INPUT_VAULT_ADDRESS")
    [ -n "${INPUT_VAULT_PATH:-}" ] && args+=(--vault-path "$INPUT_VAULT_PATH")
    [ -n "${INPUT_VAULT_ENGINE:-}" ] && args+=(--vault-engine "$INPUT_VAULT_ENGINE")
    truthy "${INPUT_VAULT_BASE64:-false}" && args+=(--vault-base64)
    [ -n "${INPUT_VAULT_TOKEN:-}" ] && export VAULT_TOKEN="$INPUT_VAULT_TOKEN"
    if [ -n "${INPUT_VAULT_JWT_ROLE:-}" ]; then
      args+=(--vault-jwt-role "$INPUT_VAULT_JWT_ROLE")
      if [ -z "${VAULT_JWT:-}" ]; then
        # The run's OIDC token (permissions: id-token: write), masked before anything can print it.
        [ -n "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] ||
          usage "vault-jwt-role needs the job permission id-token: write (ACTIONS_ID_TOKEN_REQUEST_URL is not set)"
        resp=$(curl -fsS -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
          "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=${INPUT_VAULT_JWT_AUDIENCE:-vault}") ||
          { echo "::error title=crs-ci action (tool error)::requesting the GitHub OIDC token failed"; exit 3; }
        VAULT_JWT=$(sed -n 's/.*"value"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$resp")
        [ -n "$VAULT_JWT" ] || { echo "::error title=crs-ci action (tool error)::the OIDC token response has no value"; exit 3; }
        echo "::add-mask::$VAULT_JWT"
        export VAULT_JWT
      fi
    fi
  fi
fi

# Extra flags, split on spaces as the input documents.
if [ -n "${INPUT_ARGS:-}" ]; then
  read -r -a extra <<<"$INPUT_ARGS"
  args+=("${extra[@]}")
fi

if [ "$cmd" = validate ]; then
  while IFS= read -r p; do args+=("$p"); done < <(list "${INPUT_POLICY:-}")
else
  args+=("$image")
fi

echo "crs-ci ${args[*]}"
set +e
"$bin" "${args[@]}"
code=$?
set -e
case $code in
  0) ;;
  1) echo "crs-ci: rejected (exit 1): see the findings above" ;;
  *) echo "crs-ci: tool error (exit $code), not a policy verdict" ;;
esac
exit $code
