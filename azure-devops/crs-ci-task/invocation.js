'use strict';
// Turns the task's inputs into the crs-ci command line and environment. The same option names as
// every other shim; secrets only ever travel in the environment, never on the command line.

/** Splits a multi-line or comma-separated input into its non-blank entries. */
function list(s) {
  return (s || '').split(/[,\n]/).map((x) => x.trim()).filter((x) => x !== '');
}

const COMMANDS = { instrument: ['instrument'], check: ['check'], validate: ['policy', 'validate'] };

/**
 * invocation(input, bool) → { args, env, secrets } or throws an Error (a usage error of the task).
 * input(name) returns a string input ('' when unset), bool(name) a boolean input.
 */
function invocation(input, bool) {
  const command = input('command') || 'instrument';
  if (!COMMANDS[command]) {
    throw new Error(`command: want instrument, check or validate, got '${command}'`);
  }
  const args = COMMANDS[command].slice();
  const env = {};
  const secrets = [];
  const failOn = input('failOn') || 'error';
  args.push('--ci', 'azure', '--fail-on', failOn);
  if (!bool('summary', true)) args.push('--summary=false');
  for (const r of list(input('reports'))) args.push('--report', r);

  const image = input('image');
  if (command !== 'validate') {
    if (!image) throw new Error(`image is required for command ${command}`);
    if (input('platforms')) args.push('--platform', input('platforms'));
    if (bool('allowUnhookableEntrypoint')) args.push('--allow-unhookable-entrypoint');
  }
  if (command === 'instrument') {
    if (!input('policy')) throw new Error('policy is required for command instrument');
    args.push('--policy', input('policy'));
    if (input('tagSuffix')) args.push('--tag-suffix', input('tagSuffix'));
    if (input('to')) args.push('--to', input('to'));
    if (bool('dryRun')) args.push('--dry-run');
    if (input('output')) args.push('--output', input('output'));
    if (input('mode')) args.push('--mode', input('mode'));
    if (bool('skipIncompatiblePlatforms')) args.push('--skip-incompatible-platforms');
    if (input('registryUsername')) args.push('--username', input('registryUsername'));
    if (input('registryPassword')) {
      env.CRS_REGISTRY_PASSWORD = input('registryPassword');
      secrets.push(env.CRS_REGISTRY_PASSWORD);
    }
    if (input('vaultAddress')) {
      args.push('--vault-address', input('vaultAddress'));
      if (input('vaultPath')) args.push('--vault-path', input('vaultPath'));
      if (input('vaultEngine')) args.push('--vault-engine', input('vaultEngine'));
      if (bool('vaultBase64')) args.push('--vault-base64');
      if (input('vaultRoleId')) args.push('--vault-role-id', input('vaultRoleId'));
      for (const [name, variable] of [['vaultToken', 'VAULT_TOKEN'], ['vaultSecretId', 'VAULT_SECRET_ID']]) {
        if (input(name)) {
          env[variable] = input(name);
          secrets.push(env[variable]);
        }
      }
    }
  }
  // Extra flags, split on spaces as the input documents.
  for (const a of (input('args') || '').split(/\s+/)) if (a) args.push(a);
  if (command === 'validate') {
    args.push(...list(input('policy')));
  } else {
    args.push(image);
  }
  return { args, env, secrets };
}

/** What the exit code means, for the task result. */
function outcome(code) {
  if (code === 0) return { failed: false, message: 'crs-ci passed' };
  if (code === 1) return { failed: true, message: 'crs-ci rejected (exit 1): see the issues above' };
  return { failed: true, message: `crs-ci tool error (exit ${code}), not a policy verdict: see the log above` };
}

module.exports = { list, invocation, outcome };
