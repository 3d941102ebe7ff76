// A harness that runs the shared library's steps the way a Jenkins pipeline would, with the pipeline
// steps (sh, withCredentials, usernamePassword, string, junit, recordIssues, sarif, fileExists, error,
// unstable) stubbed and recorded. sh either answers a scripted exit code or really runs the command
// with bash in a workspace (for the runs against the real crs-ci binary).
//
//   groovy Harness.groovy LIBRARY_DIR REPO_ROOT CRS_CI_BIN
// Exits 1 when any case fails.

class StepError extends RuntimeException {
    StepError(String m) { super(m) }
}

class Pipeline {
    List calls = []          // [name, args] in order
    Integer shAnswer = 0     // exit code sh returns when not running for real
    File workspace = null    // when set, sh runs its script with bash there
    Map credentialValues = [:]
    Set existing = [] as Set // files fileExists says are there (when not running for real)
    Map binding
    String lastOutput = ''

    Binding bind() {
        Binding b = new Binding()
        b.setVariable('sh', { Map m ->
            calls << ['sh', m]
            if (workspace == null) return shAnswer
            ProcessBuilder pb = new ProcessBuilder('bash', '-c', m.script).directory(workspace).redirectErrorStream(true)
            pb.environment().put('JENKINS_URL', 'http://jenkins.example:8080/')
            credentialValues.each { k, v -> pb.environment().put(k, v) }
            Process p = pb.start()
            lastOutput = p.inputStream.text
            return p.waitFor()
        })
        b.setVariable('withCredentials', { List creds, Closure body ->
            calls << ['withCredentials', creds]
            creds.each { c ->
                if (c.type == 'usernamePassword') {
                    credentialValues[c.usernameVariable] = 'user-of-' + c.credentialsId
                    credentialValues[c.passwordVariable] = 'secret-of-' + c.credentialsId
                } else {
                    credentialValues[c.variable] = 'secret-of-' + c.credentialsId
                }
            }
            try { body() } finally { credentialValues.clear() }
        })
        b.setVariable('usernamePassword', { Map m -> [type: 'usernamePassword'] + m })
        b.setVariable('string', { Map m -> [type: 'string'] + m })
        b.setVariable('sarif', { Map m -> [tool: 'sarif'] + m })
        b.setVariable('junit', { Map m -> calls << ['junit', m] })
        b.setVariable('recordIssues', { Map m -> calls << ['recordIssues', m] })
        b.setVariable('fileExists', { String f ->
            workspace != null ? new File(workspace, f).exists() || new File(f).exists() : existing.contains(f)
        })
        b.setVariable('error', { String msg -> calls << ['error', msg]; throw new StepError(msg) })
        b.setVariable('unstable', { String msg -> calls << ['unstable', msg] })
        return b
    }

    List names() { calls.collect { it[0] } }
    def first(String name) { calls.find { it[0] == name }?.getAt(1) }
}

def lib = new File(args[0])
def repo = new File(args[1])
def bin = args[2]
int failures = 0
int passes = 0

// load gives the steps of the library bound to a pipeline, as Jenkins' global variables.
def load = { Pipeline p ->
    Binding b = p.bind()
    GroovyShell shell = new GroovyShell(this.class.classLoader, b)
    ['crsCi', 'crsInstrument', 'crsCheck', 'crsPolicyValidate'].each { n ->
        def s = shell.parse(new File(lib, "vars/${n}.groovy"))
        s.binding = b
        b.setVariable(n, s)
    }
    return b
}

def check = { String name, Closure body ->
    long t0 = System.currentTimeMillis()
    try {
        body()
        passes++
        println "ok   ${name} (${System.currentTimeMillis() - t0} ms)"
    } catch (Throwable t) {
        failures++
        println "FAIL ${name}: ${t.message}"
    }
}

def expect = { boolean ok, String msg -> if (!ok) throw new AssertionError(msg) }

// runStep runs a step and returns [result or the error message, the pipeline].
def runStep = { Pipeline p, String step, Map cfg ->
    Binding b = load(p)
    try {
        return [b.getVariable(step).call(cfg), p]
    } catch (StepError e) {
        return [e.message, p]
    }
}

// --- Scripted answers: the calls each outcome makes -------------------------------------------

check('crsInstrument passes: one sh with the shared flags, secrets bound, reports published') {
    def p = new Pipeline(shAnswer: 0, existing: ['crs-ci-junit.xml', 'crs-ci.sarif'] as Set)
    def (res, _) = runStep(p, 'crsInstrument', [image: 'reg.example/app:1', policy: 'policies/web.yaml', platforms: ['linux/amd64', 'linux/arm64'],
        tagSuffix: '-crs', mode: 'audit', failOn: 'warning', registryCredentialsId: 'reg-creds', dryRun: true, output: 'oci:out'])
    expect(res instanceof Map && res.exitCode == 0 && res.result == 'passed', "result ${res}")
    expect(p.names() == ['withCredentials', 'sh', 'junit', 'recordIssues'], "calls ${p.names()}")
    def creds = p.first('withCredentials')
    expect(creds.size() == 1 && creds[0].type == 'usernamePassword' && creds[0].credentialsId == 'reg-creds' &&
        creds[0].passwordVariable == 'CRS_REGISTRY_PASSWORD' && creds[0].usernameVariable == 'CRS_REGISTRY_USERNAME', "creds ${creds}")
    def sh = p.first('sh')
    expect(sh.returnStatus == true, 'sh must use returnStatus')
    String want = "'crs-ci' 'instrument' '--ci' 'jenkins' '--fail-on' 'warning' '--report' 'junit=crs-ci-junit.xml' " +
        "'--report' 'sarif=crs-ci.sarif' '--report' 'json=crs-ci-report.json' '--platform' 'linux/amd64,linux/arm64' " +
        "'--policy' 'policies/web.yaml' '--tag-suffix' '-crs' '--dry-run' '--output' 'oci:out' '--mode' 'audit' " +
        "'--username' \"\$CRS_REGISTRY_USERNAME\" 'reg.example/app:1'"
    expect(sh.script == want, "sh script\n  ${sh.script}\nwant\n  ${want}")
    expect(!sh.script.contains('PASSWORD'), 'the password must not be on the command line')
    expect(p.first('junit').testResults == 'crs-ci-junit.xml', "junit ${p.first('junit')}")
    def ri = p.first('recordIssues')
    expect(ri.tool.tool == 'sarif' && ri.tool.pattern == 'crs-ci.sarif' && ri.enabledForFailure == true, "recordIssues ${ri}")
}

check('crsCheck rejection fails the build as a rejection, after publishing the reports') {
    def p = new Pipeline(shAnswer: 1, existing: ['crs-ci-junit.xml', 'crs-ci.sarif'] as Set)
    def (res, _) = runStep(p, 'crsCheck', [image: 'reg.example/app:1'])
    expect(p.names() == ['sh', 'junit', 'recordIssues', 'error'], "calls ${p.names()}")
    expect(res.contains('rejected by crs-ci (exit 1)') && !res.contains('tool error'), "error ${res}")
    expect(!p.names().contains('withCredentials'), 'no credentials were asked for')
}

check('onReject: unstable marks the build unstable and returns the result') {
    def p = new Pipeline(shAnswer: 1)
    def (res, _) = runStep(p, 'crsCheck', [image: 'reg.example/app:1', onReject: 'unstable', reports: [:]])
    expect(p.names() == ['sh', 'unstable'], "calls ${p.names()}")
    expect(res instanceof Map && res.result == 'rejected' && res.exitCode == 1, "result ${res}")
}

[2, 3].each { code ->
    check("a tool error (exit ${code}) fails the build and says it is not a verdict, even with onReject: unstable") {
        def p = new Pipeline(shAnswer: code)
        def (res, _) = runStep(p, 'crsInstrument', [image: 'reg.example/app:1', policy: 'p.yaml', onReject: 'unstable',
            vaultAddress: 'https://vault:8200', vaultPath: 'secret/ci/reg', vaultCredentialsId: 'vault-token'])
        expect(p.names() == ['withCredentials', 'sh', 'error'], "calls ${p.names()}")
        expect(res.contains("crs-ci tool error (exit ${code}), not a policy verdict"), "error ${res}")
        def creds = p.first('withCredentials')
        expect(creds[0].type == 'string' && creds[0].variable == 'VAULT_TOKEN', "creds ${creds}")
        expect(p.first('sh').script.contains("'--vault-address' 'https://vault:8200' '--vault-path' 'secret/ci/reg'"), p.first('sh').script)
    }
}

check('unknown options and missing required ones stop before running anything') {
    [[step: 'crsInstrument', cfg: [image: 'a', policy: 'p', imgae: 'x'], msg: 'unknown option(s) imgae'],
     [step: 'crsInstrument', cfg: [image: 'a'], msg: 'policy is required'],
     [step: 'crsCheck', cfg: [policy: 'p'], msg: 'unknown option(s) policy'],
     [step: 'crsCheck', cfg: [onReject: 'x', image: 'a'], msg: "onReject must be 'fail' or 'unstable'"]].each { c ->
        def p = new Pipeline()
        def (res, _) = runStep(p, c.step, c.cfg)
        expect(p.names() == ['error'] && res.contains(c.msg), "${c.step} ${c.cfg}: calls ${p.names()} error ${res}")
    }
}

check('quoting: hostile values stay single words') {
    def p = new Pipeline(shAnswer: 0)
    runStep(p, 'crsPolicyValidate', [policy: ["it's \$(rm -rf /).yaml"], reports: [:]])
    expect(p.first('sh').script == "'crs-ci' 'policy' 'validate' '--ci' 'jenkins' '--fail-on' 'error' 'it'\\''s \$(rm -rf /).yaml'", p.first('sh').script)
}

// --- The real crs-ci binary: sh really runs --------------------------------------------------------

def realRun = { String policyFile ->
    File ws = File.createTempDir()
    new File(ws, 'policies').mkdirs()
    if (policyFile) {
        new File(ws, 'policies/' + policyFile).text = new File(repo, 'core/ci/testdata/' + policyFile).text
    }
    def p = new Pipeline(workspace: ws)
    def (res, _) = runStep(p, 'crsPolicyValidate', [policy: 'policies/' + (policyFile ?: 'missing.yaml'), crsCi: bin])
    return [res, p, ws]
}

check('real crs-ci: a valid policy passes and its JUnit and SARIF are published') {
    def (res, p, ws) = realRun('good-policy.yaml')
    expect(res instanceof Map && res.exitCode == 0, "result ${res}; output:\n${p.lastOutput}")
    expect(p.names() == ['sh', 'junit', 'recordIssues'], "calls ${p.names()}")
    expect(new File(ws, 'crs-ci-junit.xml').text.contains('<testsuites'), 'junit report missing')
    expect(new File(ws, 'crs-ci.sarif').text.contains('"version": "2.1.0"'), 'sarif report missing')
    expect(p.lastOutput.contains('crs-ci: result=passed verdict=valid'), "plain Jenkins log line missing:\n${p.lastOutput}")
}

check('real crs-ci: a broken policy is a rejection; the reports carry the findings') {
    def (res, p, ws) = realRun('broken-policy.yaml')
    expect(res instanceof String && res.contains('rejected by crs-ci (exit 1)'), "result ${res}; output:\n${p.lastOutput}")
    expect(p.names() == ['sh', 'junit', 'recordIssues', 'error'], "calls ${p.names()}")
    expect(new File(ws, 'crs-ci-junit.xml').text.contains('unknown-key'), 'junit lacks the finding')
    expect(new File(ws, 'crs-ci.sarif').text.contains('broken-policy.yaml'), 'sarif lacks the file')
    expect(!p.lastOutput.contains('::error') && !p.lastOutput.contains('##vso'), 'Jenkins log must be plain')
}

check('real crs-ci: a missing policy is a tool error') {
    def (res, p, ws) = realRun(null)
    expect(res instanceof String && res ==~ /.*crs-ci tool error \(exit [23]\), not a policy verdict.*/, "result ${res}; output:\n${p.lastOutput}")
    expect(p.names() == ['sh', 'error'], "calls ${p.names()} (no reports to publish)")
}

println "${passes} passed, ${failures} failed"
System.exit(failures == 0 ? 0 : 1)
