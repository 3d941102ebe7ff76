// crs-ci shared library: the one place the steps crsInstrument, crsCheck and crsPolicyValidate run
// the crs-ci binary. Platform conventions only (credentials, sh, junit, recordIssues, result); every
// decision is crs-ci's: 0 passed, 1 rejected (a verdict), 2 usage, 3 operational (a tool error).

/** The options each command takes, with the same names as the GitHub Action and the Azure DevOps task. */
static Map options() {
    List common = ['failOn', 'reports', 'crsCi', 'args', 'onReject', 'publish']
    [
        instrument: common + ['image', 'policy', 'platforms', 'tagSuffix', 'to', 'dryRun', 'output', 'mode',
                              'allowUnhookableEntrypoint', 'skipIncompatiblePlatforms', 'registryCredentialsId',
                              'vaultAddress', 'vaultPath', 'vaultEngine', 'vaultBase64', 'vaultCredentialsId',
                              'vaultRoleId', 'vaultSecretIdCredentialsId'],
        check     : common + ['image', 'platforms', 'allowUnhookableEntrypoint'],
        validate  : common + ['policy'],
    ]
}

/** The crs-ci subcommand words of each command. */
static List words(String command) {
    [instrument: ['instrument'], check: ['check'], validate: ['policy', 'validate']][command]
}

/** The report files written when a step names none. */
static Map defaultReports() {
    [junit: 'crs-ci-junit.xml', sarif: 'crs-ci.sarif', json: 'crs-ci-report.json']
}

/** Quotes one word for sh, in single quotes. */
static String q(Object s) {
    "'" + s.toString().replace("'", "'\\''") + "'"
}

/** The crs-ci argv for a step's options (secrets are never in it: they travel in the environment). */
static List argv(String command, Map cfg) {
    List a = [cfg.crsCi ?: 'crs-ci'] + words(command)
    a += ['--ci', 'jenkins', '--fail-on', (cfg.failOn ?: 'error')]
    reports(cfg).each { fmt, path -> a += ['--report', "${fmt}=${path}".toString()] }
    if (command != 'validate') {
        if (cfg.platforms) a += ['--platform', cfg.platforms instanceof List ? cfg.platforms.join(',') : cfg.platforms]
        if (cfg.allowUnhookableEntrypoint) a << '--allow-unhookable-entrypoint'
    }
    if (command == 'instrument') {
        a += ['--policy', cfg.policy]
        if (cfg.tagSuffix) a += ['--tag-suffix', cfg.tagSuffix]
        if (cfg.to) a += ['--to', cfg.to]
        if (cfg.dryRun) a << '--dry-run'
        if (cfg.output) a += ['--output', cfg.output]
        if (cfg.mode) a += ['--mode', cfg.mode]
        if (cfg.skipIncompatiblePlatforms) a << '--skip-incompatible-platforms'
        if (cfg.registryCredentialsId) a += ['--username', '${CRS_REGISTRY_USERNAME}']
        if (cfg.vaultAddress) {
            a += ['--vault-address', cfg.vaultAddress]
            if (cfg.vaultPath) a += ['--vault-path', cfg.vaultPath]
            if (cfg.vaultEngine) a += ['--vault-engine', cfg.vaultEngine]
            if (cfg.vaultBase64) a << '--vault-base64'
            if (cfg.vaultRoleId) a += ['--vault-role-id', cfg.vaultRoleId]
        }
    }
    if (cfg.args) a += (cfg.args instanceof List ? cfg.args : cfg.args.toString().split(/\s+/).findAll { it })
    if (command == 'validate') {
        a += (cfg.policy instanceof List ? cfg.policy : (cfg.policy ? [cfg.policy] : []))
    } else {
        a << cfg.image
    }
    a.collect { it.toString() }
}

/** The report files of a step: its reports map, or the defaults (junit, sarif, json). */
static Map reports(Map cfg) {
    cfg.reports == null ? defaultReports() : cfg.reports
}

/** The sh command line for argv; the username is expanded by the shell from the bound credential. */
static String shellLine(List argv) {
    argv.collect { it == '${CRS_REGISTRY_USERNAME}' ? '"$CRS_REGISTRY_USERNAME"' : q(it) }.join(' ')
}

/**
 * Runs crs-ci for a step and returns [exitCode, result, reports]. Fails the build (error) on a
 * rejection, or marks it unstable with onReject: 'unstable'; a tool error always fails it and says so.
 */
def run(String command, String step, Map cfg) {
    List known = options()[command]
    List unknown = cfg.keySet().findAll { !(it in known) }.collect { it.toString() }
    if (unknown) {
        error("${step}: unknown option(s) ${unknown.join(', ')} (known: ${known.join(', ')})")
    }
    if (command != 'validate' && !cfg.image) error("${step}: image is required")
    if (command == 'instrument' && !cfg.policy) error("${step}: policy is required")
    String onReject = cfg.onReject ?: 'fail'
    if (!(onReject in ['fail', 'unstable'])) error("${step}: onReject must be 'fail' or 'unstable', not '${onReject}'")

    String cmdline = shellLine(argv(command, cfg))
    List creds = []
    if (cfg.registryCredentialsId) {
        creds << usernamePassword(credentialsId: cfg.registryCredentialsId,
                                  usernameVariable: 'CRS_REGISTRY_USERNAME', passwordVariable: 'CRS_REGISTRY_PASSWORD')
    }
    if (cfg.vaultCredentialsId) creds << string(credentialsId: cfg.vaultCredentialsId, variable: 'VAULT_TOKEN')
    if (cfg.vaultSecretIdCredentialsId) creds << string(credentialsId: cfg.vaultSecretIdCredentialsId, variable: 'VAULT_SECRET_ID')

    int code
    Closure go = { code = sh(script: cmdline, returnStatus: true, label: "crs-ci ${command}") }
    if (creds) {
        withCredentials(creds, go)
    } else {
        go()
    }

    Map files = reports(cfg)
    if (cfg.publish != false) {
        if (files.junit && fileExists(files.junit)) junit(testResults: files.junit, allowEmptyResults: true)
        if (files.sarif && fileExists(files.sarif)) {
            recordIssues(tool: sarif(pattern: files.sarif, id: "crs-ci-${command}", name: "crs-ci ${command}"),
                         enabledForFailure: true, skipPublishingChecks: true)
        }
    }

    Map res = [exitCode: code, result: code == 0 ? 'passed' : (code == 1 ? 'rejected' : 'error'), reports: files]
    if (code == 1) {
        String msg = "${step}: rejected by crs-ci (exit 1): see the findings in the log and the reports"
        if (onReject == 'unstable') {
            unstable(msg)
        } else {
            error(msg)
        }
    } else if (code != 0) {
        error("${step}: crs-ci tool error (exit ${code}), not a policy verdict: see the log")
    }
    res
}
