'use strict';
// The Azure Pipelines task: reads the inputs, runs crs-ci and sets the task result. crs-ci itself
// prints the logging commands (issues on policy lines, output variables, the uploaded summary): it
// detects Azure Pipelines (TF_BUILD) and is run with --ci azure. No engine logic lives here.
const fs = require('fs');
const path = require('path');
const tl = require('azure-pipelines-task-lib/task');
const { invocation, outcome } = require('./invocation');

/** The crs-ci binary: the crsCiPath input, else one bundled with the task, else crs-ci on PATH. */
function binary() {
  const given = tl.getInput('crsCiPath', false);
  if (given) {
    tl.checkPath(given, 'crsCiPath');
    return given;
  }
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const bundled = path.join(__dirname, 'bin', `crs-ci-linux-${arch}`);
  if (process.platform === 'linux' && fs.existsSync(bundled)) return bundled;
  return tl.which('crs-ci', true);
}

// Inputs that carry secrets. The task library logs every input it reads as a debug line; for these
// that line is dropped, and the value is registered as a secret before anything else is printed.
const SECRET_INPUTS = new Set(['registryPassword', 'vaultToken', 'vaultSecretId']);

function quietInput(name) {
  const write = process.stdout.write;
  const drop = `##vso[task.debug]${name}=`;
  process.stdout.write = function (chunk, ...rest) {
    const s = String(chunk);
    if (s.includes(drop)) {
      const kept = s.split('\n').filter((l) => !l.includes(drop)).join('\n');
      return kept.trim() === '' ? true : write.call(process.stdout, kept, ...rest);
    }
    return write.call(process.stdout, chunk, ...rest);
  };
  try {
    const v = tl.getInput(name, false) || '';
    if (v) tl.setSecret(v);
    return v;
  } finally {
    process.stdout.write = write;
  }
}

async function run() {
  try {
    const secrets = {};
    for (const name of SECRET_INPUTS) secrets[name] = quietInput(name);
    const input = (name) => (SECRET_INPUTS.has(name) ? secrets[name] : tl.getInput(name, false) || '');
    const bool = (name, dflt = false) => (input(name) === '' ? dflt : tl.getBoolInput(name, false));
    const inv = invocation(input, bool);
    const tool = tl.tool(binary());
    tool.arg(inv.args);
    const env = Object.assign({}, process.env, inv.env);
    const code = await tool.exec({ env, ignoreReturnCode: true, failOnStdErr: false });
    const o = outcome(code);
    tl.setResult(o.failed ? tl.TaskResult.Failed : tl.TaskResult.Succeeded, o.message);
  } catch (err) {
    tl.setResult(tl.TaskResult.Failed, `crs-ci task: ${err.message}`);
  }
}

run();
