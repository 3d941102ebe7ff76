package policy

import "github.com/crs-ci/crs-ci/core/report"

// Code is one stable finding code of the validator. Codes never change meaning; new ones may be added.
type Code struct {
	Code     string
	Severity string
	Summary  string
}

// Codes lists every finding code the validator reports (docs/policy-reference.md explains each).
var Codes = []Code{
	{"yaml-syntax", report.Error, "the file is not valid YAML (or names an undefined anchor)"},
	{"not-utf8", report.Error, "the file is not UTF-8"},
	{"file-too-large", report.Error, "the file is larger than 1 MiB"},
	{"empty-policy", report.Error, "the file holds no YAML document"},
	{"multiple-documents", report.Error, "the file holds more than one YAML document"},
	{"too-complex", report.Error, "aliases or lists expand to too many values (alias bomb)"},
	{"unsupported-yaml", report.Error, "a YAML feature the format does not use (merge keys)"},
	{"unknown-key", report.Error, "a key the format does not have (with a did-you-mean)"},
	{"duplicate-key", report.Error, "a key or list name given twice"},
	{"wrong-type", report.Error, "a mapping, list or string where another kind is required"},
	{"missing-field", report.Error, "a required key is missing"},
	{"bad-value", report.Error, "a value outside its enumeration (with a did-you-mean)"},
	{"bad-name", report.Error, "a policy, rule or list name with characters names cannot have"},
	{"relative-path", report.Error, "a relative path where an absolute one is required"},
	{"bad-glob", report.Error, "a malformed or non-normalised path glob"},
	{"bad-path", report.Error, "an event sink path that is not a plain normalised path"},
	{"empty-list", report.Error, "a list that must have values is empty"},
	{"undefined-list", report.Error, "an @name reference to a list that is not defined"},
	{"nested-list", report.Error, "a list that references another list"},
	{"duplicate-rule-name", report.Error, "two rules with one name"},
	{"no-category", report.Error, "a rule with none of file, network, exec, syscall"},
	{"multiple-categories", report.Error, "a rule with more than one of file, network, exec, syscall"},
	{"invalid-address", report.Error, "an address that is not an IP or CIDR, or a CIDR with host bits"},
	{"invalid-port", report.Error, "a port or port range that is not a number 0-65535, or reversed"},
	{"unix-with-ip", report.Error, "unix socket paths combined with addresses or ports in one rule"},
	{"unknown-syscall", report.Error, "a system call name unknown on x86_64 and aarch64 (with a did-you-mean)"},
	{"shadowed-rule", report.Warning, "an earlier rule matches every call this rule matches: it never decides"},
	{"redundant-deny", report.Warning, "a deny rule under a deny default with no later rule it protects against"},
	{"allows-everything", report.Warning, "an enforce-mode policy that denies nothing"},
	{"unused-list", report.Warning, "a list that no rule references"},
	{"syscall-not-on-arch", report.Warning, "a system call that does not exist on one architecture"},
	{"syscall-via-wrapper-only", report.Info, "syscall rules see only calls made through libc's syscall()"},
}
