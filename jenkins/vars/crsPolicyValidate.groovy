// crsPolicyValidate: validate crs-ci/v1 policy files. Help: crsPolicyValidate.txt.
def call(Map cfg = [:]) {
    crsCi.run('validate', 'crsPolicyValidate', cfg)
}
