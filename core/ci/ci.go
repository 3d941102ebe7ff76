// Package ci makes a finished crs-ci report speak the language of the CI system it runs in: step
// outputs, a job summary, file/line annotations and secret masking on GitHub Actions; logging
// commands on Azure Pipelines; a plain log on Jenkins. It never decides a verdict: the commands do,
// and Gate only applies the user's --fail-on choice to the findings a command reported.
package ci

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/report"
)

// Platform names a CI system.
type Platform string

// The platforms crs-ci speaks to. None prints nothing beyond the command's own output.
const (
	Auto    Platform = "auto"
	GitHub  Platform = "github"
	Azure   Platform = "azure"
	Jenkins Platform = "jenkins"
	None    Platform = "none"
)

// Detect returns the CI platform the process runs on, from the variables each system sets:
// GITHUB_ACTIONS=true, TF_BUILD=True (Azure Pipelines) or JENKINS_URL. Anything else is None.
func Detect(getenv func(string) string) Platform {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		return GitHub
	case strings.EqualFold(getenv("TF_BUILD"), "true"):
		return Azure
	case getenv("JENKINS_URL") != "":
		return Jenkins
	}
	return None
}

// ParsePlatform reads a --ci value: auto, github, azure, jenkins or none ("" means auto).
func ParsePlatform(s string) (Platform, error) {
	switch p := Platform(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return Auto, nil
	case Auto, GitHub, Azure, Jenkins, None:
		return p, nil
	}
	return "", exitcode.Usagef("--ci %q: want auto, github, azure, jenkins or none", s)
}

// FailOn is the lowest finding severity that fails the build.
type FailOn string

// The --fail-on values. Error (the default) fails on what the command itself rejects; Warning also
// fails when any warning was reported.
const (
	FailOnError   FailOn = "error"
	FailOnWarning FailOn = "warning"
)

// ParseFailOn reads a --fail-on value ("" means error).
func ParseFailOn(s string) (FailOn, error) {
	switch f := FailOn(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return FailOnError, nil
	case FailOnError, FailOnWarning:
		return f, nil
	}
	return "", exitcode.Usagef("--fail-on %q: want error or warning", s)
}

// Gate applies --fail-on to a finished command. A command error is returned unchanged (a rejection
// stays 1, a tool error stays 2 or 3). With FailOnWarning, a report that passed but carries warnings
// becomes a rejection (exit 1) that says how many warnings caused it.
func Gate(r *report.Report, runErr error, f FailOn) error {
	if runErr != nil || r == nil || f != FailOnWarning {
		return runErr
	}
	if _, warnings := Counts(r); warnings > 0 {
		return exitcode.Rejectedf("%d warning(s) reported and --fail-on is warning", warnings)
	}
	return nil
}

// Counts returns the number of error and warning findings in r, over every platform and policy file.
func Counts(r *report.Report) (errors, warnings int) {
	for _, f := range findings(r) {
		switch f.Severity {
		case report.Error:
			errors++
		case report.Warning:
			warnings++
		}
	}
	return errors, warnings
}

// scoped is a finding with the report part it came from.
type scoped struct {
	report.Finding
	Platform string // set for image findings
}

func findings(r *report.Report) []scoped {
	if r == nil {
		return nil
	}
	var out []scoped
	for _, p := range r.Platforms {
		for _, f := range p.Findings {
			out = append(out, scoped{Finding: f, Platform: p.Platform})
		}
	}
	for _, p := range r.Policies {
		for _, f := range p.Findings {
			if f.File == "" {
				f.File = p.File
			}
			out = append(out, scoped{Finding: f})
		}
	}
	return out
}

// Options configure a Publisher. The zero value detects the platform from the process environment,
// writes workflow commands to stdout and adds a summary.
type Options struct {
	Platform  Platform            // Auto (or "") detects it
	NoSummary bool                // no job summary (GitHub step summary, Azure uploadsummary)
	Getenv    func(string) string // defaults to os.Getenv
	Out       io.Writer           // where workflow commands go; defaults to os.Stdout
}

// Publisher speaks one CI platform's language for a finished command.
type Publisher struct {
	platform Platform
	opts     Options
	getenv   func(string) string
	out      io.Writer
}

// New returns the Publisher for opts, detecting the platform when asked to.
func New(opts Options) *Publisher {
	p := &Publisher{opts: opts, getenv: opts.Getenv, out: opts.Out}
	if p.getenv == nil {
		p.getenv = os.Getenv
	}
	if p.out == nil {
		p.out = os.Stdout
	}
	p.platform = opts.Platform
	if p.platform == "" || p.platform == Auto {
		p.platform = Detect(p.getenv)
	}
	return p
}

// Platform is the platform this Publisher speaks to.
func (p *Publisher) Platform() Platform { return p.platform }

// SecretEnv lists the environment variables whose values are secrets crs-ci may read; MaskEnv masks
// them before anything else is printed.
var SecretEnv = []string{"CRS_REGISTRY_PASSWORD", "VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_JWT"}

// MaskEnv masks the values of SecretEnv that are set.
func (p *Publisher) MaskEnv() error {
	var vals []string
	for _, k := range SecretEnv {
		if v := p.getenv(k); v != "" {
			vals = append(vals, v)
		}
	}
	return p.Mask(vals...)
}

// Mask tells the CI system to hide each value in its logs from now on (GitHub ::add-mask::, Azure
// task.setsecret). Jenkins masks only what withCredentials bound, so there it does nothing. Each
// line of a multi-line value is masked on its own, as the runners match line by line.
func (p *Publisher) Mask(values ...string) (err error) {
	defer recoverWrite(&err, "masking secrets")
	for _, v := range values {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.TrimSpace(line) == "" {
				continue
			}
			switch p.platform {
			case GitHub:
				p.github().AddMask(line)
			case Azure:
				if _, err := fmt.Fprintf(p.out, "##vso[task.setsecret]%s\n", azureData(line)); err != nil {
					return fmt.Errorf("masking secrets: %w", err)
				}
			}
		}
	}
	return nil
}

// Result is what a command finished with, as Publish reports it.
type Result struct {
	Report  *report.Report  // may be nil when the command failed before it had one
	Reports []report.Target // report files the command wrote
	Err     error           // the command's error after Gate; nil when it passed
}

// ExitCode is the process exit code of the result.
func (r Result) ExitCode() int { return exitcode.Of(r.Err) }

// Outcome is "passed", "rejected" or "error" (a usage or operational failure: the tool's fault, not
// a verdict).
func (r Result) Outcome() string {
	switch r.ExitCode() {
	case exitcode.OK:
		return "passed"
	case exitcode.Rejected:
		return "rejected"
	}
	return "error"
}

// Verdict is the report's verdict, or "error" when the tool failed before deciding one.
func (r Result) Verdict() string {
	if r.Report != nil && r.Report.Verdict != "" && r.Outcome() != "error" {
		return r.Report.Verdict
	}
	if r.Outcome() == "error" {
		return "error"
	}
	return r.Outcome()
}

// Outputs are the named values every platform exposes (GitHub step outputs, Azure output variables,
// the Jenkins log line). Keys are kebab-case; each platform spells them its own way.
func (r Result) Outputs() map[string]string {
	errs, warns := Counts(r.Report)
	o := map[string]string{
		"result":         r.Outcome(),
		"verdict":        r.Verdict(),
		"exit-code":      fmt.Sprint(r.ExitCode()),
		"errors":         fmt.Sprint(errs),
		"warnings":       fmt.Sprint(warns),
		"image-digest":   "",
		"layered-ref":    "",
		"layered-digest": "",
		"layered-pushed": "false",
	}
	if rep := r.Report; rep != nil {
		o["image-digest"] = rep.Digest
		if l := rep.Layered; l != nil {
			o["layered-ref"] = l.Ref
			o["layered-digest"] = l.Digest
			o["layered-pushed"] = fmt.Sprint(l.Pushed)
		}
	}
	for _, t := range r.Reports {
		abs, err := filepath.Abs(t.Path)
		if err != nil {
			abs = t.Path
		}
		o["report-"+t.Format] = abs
	}
	return o
}

// Publish speaks the platform's language for a finished command: outputs, annotations for every
// finding, the summary and, for a tool error, a message that says it is one. It returns an error
// only when it could not write (an unwritable $GITHUB_OUTPUT, say).
func (p *Publisher) Publish(res Result) (err error) {
	defer recoverWrite(&err, "publishing results to "+string(p.platform))
	switch p.platform {
	case GitHub:
		return p.publishGitHub(res)
	case Azure:
		return p.publishAzure(res)
	case Jenkins:
		return p.publishJenkins(res)
	}
	return nil
}

// sortedKeys returns the keys of m in order, so outputs are written deterministically.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// relPath makes file relative to root (the checkout) when it lies inside it, with forward slashes,
// as annotation file fields expect. Files outside root stay as they are.
func relPath(root, file string) string {
	if file == "" || root == "" {
		return filepath.ToSlash(file)
	}
	abs := file
	if !filepath.IsAbs(abs) {
		if a, err := filepath.Abs(file); err == nil {
			abs = a
		}
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return filepath.ToSlash(file)
	}
	return filepath.ToSlash(rel)
}

// title is the short heading of an annotation.
func title(f scoped) string {
	t := "crs-ci"
	if f.Code != "" {
		t += " " + f.Code
	}
	if f.Platform != "" {
		t += " (" + f.Platform + ")"
	}
	return t
}

// message is an annotation's text: the message, the path inside the image and the hint.
func message(f scoped) string {
	m := f.Message
	if f.Path != "" {
		m += " [" + f.Path + "]"
	}
	if f.Hint != "" {
		m += "\nhint: " + f.Hint
	}
	return m
}

// summaryMarkdown is the job summary: the markdown report when that renderer is registered, else a
// short table of its own.
func summaryMarkdown(res Result) (string, error) {
	var b strings.Builder
	if res.Report != nil && hasFormat("markdown") {
		if err := report.Render(&b, "markdown", res.Report); err != nil {
			return "", fmt.Errorf("rendering the markdown summary: %w", err)
		}
		if res.Outcome() == "error" {
			fmt.Fprintf(&b, "\n**crs-ci tool error (exit %d):** %s\n", res.ExitCode(), res.Err)
		} else if res.Err != nil && res.Report.Verdict != "" && res.ExitCode() == exitcode.Rejected &&
			(res.Report.Verdict == report.Compatible || res.Report.Verdict == report.Valid) {
			fmt.Fprintf(&b, "\n**Failed:** %s\n", res.Err)
		}
		return b.String(), nil
	}
	cmd := "crs-ci"
	if res.Report != nil && res.Report.Command != "" {
		cmd += " " + res.Report.Command
	}
	fmt.Fprintf(&b, "### %s: %s\n\n", cmd, res.Verdict())
	o := res.Outputs()
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	if res.Report != nil && res.Report.Image != "" {
		fmt.Fprintf(&b, "| image | `%s` |\n", res.Report.Image)
	}
	fmt.Fprintf(&b, "| result | %s (exit %s) |\n| errors | %s |\n| warnings | %s |\n", o["result"], o["exit-code"], o["errors"], o["warnings"])
	if o["layered-ref"] != "" {
		fmt.Fprintf(&b, "| layered | `%s` `%s` |\n", o["layered-ref"], o["layered-digest"])
	}
	if fs := findings(res.Report); len(fs) > 0 {
		fmt.Fprintf(&b, "\n| severity | code | where | message |\n|---|---|---|---|\n")
		for _, f := range fs {
			where := f.Platform
			if f.File != "" {
				where = fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
			} else if f.Path != "" {
				where += " " + f.Path
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Severity, f.Code, mdCell(where), mdCell(f.Message))
		}
	}
	if res.Err != nil {
		kind := "Failed"
		if res.Outcome() == "error" {
			kind = fmt.Sprintf("crs-ci tool error (exit %d)", res.ExitCode())
		}
		fmt.Fprintf(&b, "\n**%s:** %s\n", kind, mdCell(res.Err.Error()))
	}
	return b.String(), nil
}

func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func hasFormat(name string) bool {
	for _, f := range report.Formats() {
		if f == name {
			return true
		}
	}
	return false
}

// recoverWrite turns the panics go-githubactions raises on write failures into an error.
func recoverWrite(err *error, doing string) {
	if r := recover(); r != nil {
		*err = exitcode.Operationalf("%s: %v", doing, r)
	}
}
