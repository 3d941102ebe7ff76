'use strict';
// Tests of the Azure DevOps task with the task library's own MockTestRunner (pass, rejection, tool
// error, secrets), of the inputs → command line mapping, of a real run of the handler against the
// real crs-ci binary, and of packaging with tfx.
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { MockTestRunner } = require('../crs-ci-task/node_modules/azure-pipelines-task-lib/mock-test');
const { invocation, list, outcome } = require('../crs-ci-task/invocation');

const root = path.join(__dirname, '..');
const repo = path.join(root, '..');
const task = JSON.parse(fs.readFileSync(path.join(root, 'crs-ci-task', 'task.json'), 'utf8'));

// MockTestRunner runs the task under the Node version its task.json names and downloads that
// build unless it is already in ~/azure-pipelines-task-lib/_download. Offline, point that cache at
// the local node (it runs the task the same way), without touching a real download.
function seedNode() {
  const dl = path.join(os.homedir(), 'azure-pipelines-task-lib', '_download');
  for (const [major, version] of [['20', 'v20.13.1'], ['24', 'v24.10.0']]) {
    const bin = path.join(dl, `node${major}`, `node-${version}-linux-x64`, 'bin');
    const marker = path.join(dl, `node${major}.completed`);
    if (fs.existsSync(marker) && fs.existsSync(path.join(bin, 'node'))) continue;
    fs.mkdirSync(bin, { recursive: true });
    try { fs.unlinkSync(path.join(bin, 'node')); } catch (e) { /* not there */ }
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.writeFileSync(marker, '');
  }
}

async function runMock(inputs, exec) {
  process.env.CRS_SCENARIO = JSON.stringify({ inputs, exec });
  const tr = new MockTestRunner(path.join(__dirname, 'mock-task.js'), path.join(root, 'crs-ci-task', 'task.json'));
  await tr.runAsync(20);
  delete process.env.CRS_SCENARIO;
  return tr;
}

const BIN = '/opt/crs-ci/crs-ci';
const VSO_REJECT = [
  '##vso[task.setvariable variable=result;isOutput=true]rejected',
  '##vso[task.setvariable variable=verdict;isOutput=true]incompatible',
  '##vso[task.logissue type=error;code=C020]crs-ci C020 (linux/amd64): entrypoint is a static binary [/app]',
].join('\n');

describe('task.json', function () {
  it('has a fixed id, both Node handlers and the shared option names', function () {
    assert.strictEqual(task.id, '8e21314e-8bbf-4ea5-bbd3-fe3c62e6c55e', 'the task id must never change');
    assert.deepStrictEqual(Object.keys(task.execution).sort(), ['Node20_1', 'Node24']);
    for (const h of Object.values(task.execution)) assert.strictEqual(h.target, 'index.js');
    const names = task.inputs.map((i) => i.name);
    for (const n of ['command', 'image', 'policy', 'platforms', 'tagSuffix', 'to', 'dryRun', 'failOn', 'mode',
      'reports', 'summary', 'registryUsername', 'registryPassword', 'vaultAddress', 'vaultPath', 'vaultEngine',
      'vaultBase64', 'vaultToken', 'allowUnhookableEntrypoint']) {
      assert.ok(names.includes(n), `input ${n} missing`);
    }
    const groups = new Set(task.groups.map((g) => g.name));
    for (const i of task.inputs) {
      assert.ok(i.helpMarkDown && i.helpMarkDown.length > 10, `input ${i.name} has no help`);
      assert.ok(groups.has(i.groupName), `input ${i.name} is in no declared group`);
    }
    const outs = task.outputVariables.map((o) => o.name);
    for (const o of ['result', 'verdict', 'exitCode', 'layeredRef', 'layeredDigest', 'reportJunit', 'reportSarif']) {
      assert.ok(outs.includes(o), `output variable ${o} missing`);
    }
  });
});

describe('inputs to the crs-ci command line', function () {
  const run = (inputs) => invocation((n) => inputs[n] || '', (n, d = false) => (inputs[n] === undefined ? d : inputs[n] === 'true'));
  it('maps instrument inputs to the shared flags, image last', function () {
    const inv = run({
      command: 'instrument', image: 'reg/app:1', policy: 'policies/web.yaml', platforms: 'all', tagSuffix: '-crs',
      to: 'reg/other:1', dryRun: 'true', output: 'oci:out', failOn: 'warning', mode: 'audit', summary: 'false',
      reports: 'junit=a.xml\nsarif=b.sarif, json=c.json', allowUnhookableEntrypoint: 'true', registryUsername: 'bot',
      registryPassword: 'pw-1', vaultAddress: 'https://vault:8200', vaultPath: 'secret/ci/reg', vaultEngine: 'kv-v1',
      vaultBase64: 'true', vaultToken: 'hvs.tok', args: '--insecure-registry  reg:5000',
    });
    assert.deepStrictEqual(inv.args, ['instrument', '--ci', 'azure', '--fail-on', 'warning', '--summary=false',
      '--report', 'junit=a.xml', '--report', 'sarif=b.sarif', '--report', 'json=c.json', '--platform', 'all',
      '--allow-unhookable-entrypoint', '--policy', 'policies/web.yaml', '--tag-suffix', '-crs', '--to', 'reg/other:1',
      '--dry-run', '--output', 'oci:out', '--mode', 'audit', '--username', 'bot', '--vault-address', 'https://vault:8200',
      '--vault-path', 'secret/ci/reg', '--vault-engine', 'kv-v1', '--vault-base64', '--insecure-registry', 'reg:5000',
      'reg/app:1']);
    assert.deepStrictEqual(inv.env, { CRS_REGISTRY_PASSWORD: 'pw-1', VAULT_TOKEN: 'hvs.tok' });
    assert.deepStrictEqual(inv.secrets.sort(), ['hvs.tok', 'pw-1']);
    assert.ok(!inv.args.join(' ').includes('pw-1') && !inv.args.join(' ').includes('hvs.tok'), 'secrets on the command line');
  });
  it('validate takes policy paths as arguments', function () {
    assert.deepStrictEqual(run({ command: 'validate', policy: 'policies, .crs/extra.yaml' }).args,
      ['policy', 'validate', '--ci', 'azure', '--fail-on', 'error', 'policies', '.crs/extra.yaml']);
  });
  it('refuses what cannot run', function () {
    assert.throws(() => run({ command: 'deploy' }), /want instrument, check or validate/);
    assert.throws(() => run({ command: 'check' }), /image is required/);
    assert.throws(() => run({ command: 'instrument', image: 'a' }), /policy is required/);
  });
  it('tells a rejection from a tool error', function () {
    assert.strictEqual(outcome(0).failed, false);
    assert.match(outcome(1).message, /rejected \(exit 1\)/);
    assert.match(outcome(3).message, /tool error \(exit 3\), not a policy verdict/);
    assert.deepStrictEqual(list(' a,\n\nb ,'), ['a', 'b']);
  });
});

describe('MockTestRunner', function () {
  this.timeout(60000);
  before(seedNode);

  it('passes when crs-ci passes', async function () {
    const cmd = `${BIN} check --ci azure --fail-on error --report junit=j.xml reg/app:1`;
    const tr = await runMock({ command: 'check', image: 'reg/app:1', reports: 'junit=j.xml' },
      { [cmd]: { code: 0, stdout: '##vso[task.setvariable variable=result;isOutput=true]passed' } });
    assert.ok(tr.ran(cmd), `did not run ${cmd}:\n${tr.stdout}`);
    assert.strictEqual(tr.invokedToolCount, 1);
    assert.ok(tr.succeeded, tr.stdout);
    assert.strictEqual(tr.errorIssues.length, 0, tr.stdout);
    assert.ok(tr.stdout.includes('task.complete result=Succeeded;]crs-ci passed'), tr.stdout);
  });

  it('fails on a rejection and says it is a rejection', async function () {
    const cmd = `${BIN} instrument --ci azure --fail-on error --policy policies/web.yaml reg/app:1`;
    const tr = await runMock({ command: 'instrument', image: 'reg/app:1', policy: 'policies/web.yaml', reports: '' },
      { [cmd]: { code: 1, stdout: VSO_REJECT } });
    assert.ok(tr.ran(cmd), tr.stdout);
    assert.ok(tr.failed);
    assert.ok(tr.stdout.includes('task.complete result=Failed;]crs-ci rejected (exit 1)'), tr.stdout);
    assert.ok(!tr.stdout.includes('tool error'), tr.stdout);
    assert.ok(tr.stdout.includes('##vso[task.logissue type=error;code=C020]'), 'crs-ci issues reach the log');
  });

  for (const code of [2, 3]) {
    it(`fails on a tool error (exit ${code}) and says it is not a verdict`, async function () {
      const cmd = `${BIN} check --ci azure --fail-on error reg/missing:1`;
      const tr = await runMock({ command: 'check', image: 'reg/missing:1', reports: '' },
        { [cmd]: { code, stderr: 'crs-ci: pulling reg/missing:1: 404 Not Found' } });
      assert.ok(tr.ran(cmd), tr.stdout);
      assert.ok(tr.failed);
      assert.ok(tr.stdout.includes(`task.complete result=Failed;]crs-ci tool error (exit ${code}), not a policy verdict`), tr.stdout);
    });
  }

  it('fails with a clear message on a usage error of the task itself, running nothing', async function () {
    const tr = await runMock({ command: 'instrument', image: 'reg/app:1', reports: '' }, {});
    assert.strictEqual(tr.invokedToolCount, 0);
    assert.ok(tr.failed);
    assert.ok(tr.stdout.includes('crs-ci task: policy is required for command instrument'), tr.stdout);
  });

  it('never echoes secret inputs: masked first, passed in the environment only', async function () {
    const pw = 'Pa55-w0rd-XYZ';
    const tok = 'hvs.SECRET-TOKEN';
    const sid = 'approle-secret-id-42';
    const cmd = `/custom/crs-ci instrument --ci azure --fail-on error --policy p.yaml --username bot --vault-address https://vault:8200 --vault-role-id role-1 reg/app:1`;
    const tr = await runMock({ command: 'instrument', image: 'reg/app:1', policy: 'p.yaml', reports: '', crsCiPath: '/custom/crs-ci',
      registryUsername: 'bot', registryPassword: pw, vaultAddress: 'https://vault:8200', vaultToken: tok,
      vaultRoleId: 'role-1', vaultSecretId: sid }, { [cmd]: { code: 0, stdout: 'ok' } });
    assert.ok(tr.ran(cmd), tr.stdout);
    assert.ok(tr.succeeded, tr.stdout);
    const lines = tr.stdout.split('\n');
    for (const s of [pw, tok, sid]) {
      const seen = lines.filter((l) => l.includes(s));
      assert.ok(seen.length >= 1, `${s} was not registered as a secret`);
      for (const l of seen) assert.ok(l.startsWith('##vso[task.setsecret]'), `secret echoed: ${l}`);
      const first = lines.findIndex((l) => l.includes(s));
      const cmdLine = lines.findIndex((l) => l.startsWith('[command]'));
      assert.ok(first < cmdLine, 'secrets must be masked before crs-ci runs');
    }
  });
});

describe('packaging', function () {
  this.timeout(120000);
  it('tfx extension create packages the extension with the task', function () {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'crs-vsix-'));
    const res = cp.spawnSync(path.join(root, 'node_modules', '.bin', 'tfx'),
      ['extension', 'create', '--root', root, '--manifest-globs', 'vss-extension.json', '--output-path', out, '--json', '--no-prompt'],
      { encoding: 'utf8' });
    assert.strictEqual(res.status, 0, res.stdout + res.stderr);
    const info = JSON.parse(res.stdout.slice(res.stdout.indexOf('{')));
    assert.strictEqual(info.extensionId, 'crs-ci');
    const listing = cp.execFileSync('unzip', ['-l', info.path], { encoding: 'utf8' });
    for (const f of ['crs-ci-task/task.json', 'crs-ci-task/index.js', 'crs-ci-task/invocation.js',
      'crs-ci-task/node_modules/azure-pipelines-task-lib/task.js', 'extension.vsomanifest']) {
      assert.ok(listing.includes(f), `${f} not in the vsix:\n${listing}`);
    }
    assert.ok(!/\stest\/|_suite\.js/.test(listing), 'the tests must not be packaged');
  });
});

describe('real run against bin/crs-ci', function () {
  this.timeout(120000);
  let bin;
  before(function () {
    bin = process.env.CRS_CI_BIN || path.join(repo, 'bin', 'crs-ci');
    assert.ok(fs.existsSync(bin), `${bin} missing: run make build (or set CRS_CI_BIN)`);
  });

  function realRun(inputs) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crs-azure-'));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, TF_BUILD: 'True', AGENT_TEMPDIRECTORY: tmp,
      BUILD_SOURCESDIRECTORY: repo, INPUT_CRSCIPATH: bin };
    for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
    const res = cp.spawnSync(process.execPath, [path.join(root, 'crs-ci-task', 'index.js')], { cwd: repo, env, encoding: 'utf8' });
    return { out: res.stdout + res.stderr, tmp };
  }

  it('a valid policy: Succeeded, output variables, summary uploaded', function () {
    const { out, tmp } = realRun({ command: 'validate', policy: 'core/ci/testdata/good-policy.yaml', reports: `junit=${path.join(os.tmpdir(), 'crs-j.xml')}` });
    assert.ok(out.includes('##vso[task.setvariable variable=verdict;isOutput=true]valid'), out);
    assert.ok(out.includes('##vso[task.complete result=Succeeded;]crs-ci passed'), out);
    const m = out.match(/##vso\[task\.uploadsummary\](.+)/);
    assert.ok(m && m[1].startsWith(tmp) && fs.readFileSync(m[1], 'utf8').includes('valid'), out);
  });

  it('a broken policy: Failed as a rejection, an issue on the policy line', function () {
    const { out } = realRun({ command: 'validate', policy: 'core/ci/testdata/broken-policy.yaml' });
    assert.ok(/##vso\[task\.logissue type=error;sourcepath=core\/ci\/testdata\/broken-policy\.yaml;linenumber=9;columnnumber=7;code=unknown-key\]/.test(out), out);
    assert.ok(out.includes('##vso[task.complete result=Failed;]crs-ci rejected (exit 1)'), out);
  });

  it('a missing policy: Failed as a tool error', function () {
    const { out } = realRun({ command: 'validate', policy: 'core/ci/testdata/missing.yaml' });
    assert.ok(/task\.complete result=Failed;\]crs-ci tool error \(exit [23]\), not a policy verdict/.test(out), out);
    assert.ok(out.includes('core/ci/testdata/missing.yaml does not exist'), out);
    assert.ok(!out.includes('rejected'), out);
  });
});
