package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/report"
)

// defaultPolicyDirs are searched, in order, when policy validate or policy test get no path.
var defaultPolicyDirs = []string{".crs", "policies"}

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "validate, compile, test and suggest crs-ci/v1 runtime policies",
		Subcommands: []*cli.Command{
			policyValidateCommand(),
			policyCompileCommand(),
			policyTestCommand(),
			suggestCommand(), // suggest.go: behavioural learning from events (events engineer)
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitcode.Usagef("policy: unknown subcommand %q (validate, compile, test, suggest)", c.Args().First())
			}
			_ = cli.ShowSubcommandHelp(c)
			return exitcode.Usagef("policy: no subcommand given (validate, compile, test, suggest)")
		},
	}
}

func policyValidateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "validate policy files (folders are walked; default .crs/, else policies/)",
		ArgsUsage: "[PATH ...]",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "strict", Usage: "warnings fail the validation too (reported as errors)"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output on stdout: text (compiler style), json, sarif, junit or markdown"},
			&cli.StringSliceFlag{Name: "report", Usage: "also write a report, FORMAT=PATH (repeatable)"},
		}, ciFlags()...),
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			format := c.String("format")
			if format != "text" {
				if _, err := report.ParseTarget(format + "=-"); err != nil {
					return exitcode.Usagef("--format %q: want text or a report format (%s)", format, strings.Join(report.Formats(), ", "))
				}
			}
			targets, err := reportTargets(c.StringSlice("report"))
			if err != nil {
				return err
			}
			files, err := policyFiles(args)
			if err != nil {
				return err
			}
			rep := &report.Report{Command: "policy validate", Verdict: report.Valid}
			var text bytes.Buffer
			for _, f := range files {
				pf, src, err := validateOne(f, c.Bool("strict"))
				if err != nil {
					return err
				}
				if pf.Verdict == report.Invalid {
					rep.Verdict = report.Invalid
				}
				rep.Policies = append(rep.Policies, pf)
				if err := policy.WriteFindings(&text, pf.Findings, src); err != nil {
					return err
				}
			}
			for _, t := range targets {
				if err := report.WriteFile(t, rep); err != nil {
					return exitcode.Operationalf("%w", err)
				}
			}
			out := c.App.Writer
			if format == "text" {
				io.Copy(out, &text)
				nErr, nWarn := countFindings(rep)
				fmt.Fprintf(out, "%d policy file(s): %s, %d error(s), %d warning(s)\n", len(files), rep.Verdict, nErr, nWarn)
			} else if err := report.Render(out, format, rep); err != nil {
				return exitcode.Operationalf("writing %s output: %w", format, err)
			}
			var verdictErr error
			if rep.Verdict == report.Invalid {
				nErr, _ := countFindings(rep)
				verdictErr = exitcode.Rejectedf("policy validation failed: %d error(s)", nErr)
			}
			return publishCI(c, rep, targets, verdictErr)
		},
	}
}

func countFindings(r *report.Report) (errs, warns int) {
	for _, p := range r.Policies {
		for _, f := range p.Findings {
			switch f.Severity {
			case report.Error:
				errs++
			case report.Warning:
				warns++
			}
		}
	}
	return
}

// validateOne parses, validates and (when valid) compiles one file, for its report entry.
func validateOne(file string, strict bool) (report.PolicyFile, []byte, error) {
	src, _ := os.ReadFile(file)
	p, fs, err := policy.ParseFile(file)
	if err != nil {
		return report.PolicyFile{}, nil, err
	}
	if strict {
		for i := range fs {
			if fs[i].Severity == report.Warning {
				fs[i].Severity = report.Error
				fs[i].Message += " (--strict)"
			}
		}
	}
	pf := report.PolicyFile{File: file, Verdict: report.Valid, Findings: fs}
	if pf.Findings == nil {
		pf.Findings = []report.Finding{}
	}
	if p != nil {
		pf.Name = p.Name()
	}
	if policy.HasErrors(fs) {
		pf.Verdict = report.Invalid
		return pf, src, nil
	}
	b, err := policy.Compile(p)
	if err != nil {
		return pf, src, exitcode.Operationalf("%w", err)
	}
	c, err := policy.Load(b)
	if err != nil {
		return pf, src, err
	}
	pf.SHA256 = c.SHA256()
	return pf, src, nil
}

func reportTargets(specs []string) ([]report.Target, error) {
	var out []report.Target
	for _, s := range specs {
		t, err := report.ParseTarget(s)
		if err != nil {
			return nil, exitcode.Usagef("%v", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// policyFiles expands the arguments: files as given, folders walked for *.yaml and *.yml (policy test
// files *.test.yaml and hidden folders are skipped); no argument = .crs/, else policies/.
func policyFiles(args []string) ([]string, error) {
	if len(args) == 0 {
		for _, d := range defaultPolicyDirs {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				args = []string{d}
				break
			}
		}
		if len(args) == 0 {
			return nil, exitcode.Usagef("no policy path given and neither .crs/ nor policies/ exists here")
		}
	}
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, exitcode.Usagef("policy path %s does not exist", a)
			}
			return nil, exitcode.Operationalf("reading policy path %s: %w", a, err)
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != a && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if isPolicyFileName(d.Name()) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, exitcode.Operationalf("walking policy folder %s: %w", a, err)
		}
		if len(found) == 0 {
			return nil, exitcode.Usagef("policy folder %s holds no .yaml or .yml file", a)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

func isPolicyFileName(name string) bool {
	if isTestFileName(name) {
		return false
	}
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func isTestFileName(name string) bool {
	return strings.HasSuffix(name, ".test.yaml") || strings.HasSuffix(name, ".test.yml")
}

func policyCompileCommand() *cli.Command {
	return &cli.Command{
		Name:      "compile",
		Usage:     "compile a policy into the binary form the probe reads",
		ArgsUsage: "FILE -o OUT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the compiled policy (- for stdout)", Required: false},
			&cli.StringFlag{Name: "mode", Usage: "override spec.mode: enforce, audit or off"},
			&cli.BoolFlag{Name: "strict", Usage: "warnings fail the compilation too"},
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return exitcode.Usagef("policy compile: want exactly one policy file, got %d (usage: crs-ci policy compile FILE -o OUT)", len(args))
			}
			out := c.String("output")
			if out == "" {
				return exitcode.Usagef("policy compile: -o OUT is required")
			}
			file := args[0]
			p, fs, err := policy.ParseFile(file)
			if err != nil {
				return err
			}
			src, _ := os.ReadFile(file)
			failing := policy.HasErrors(fs)
			if c.Bool("strict") {
				for _, f := range fs {
					failing = failing || f.Severity == report.Warning
				}
			}
			if err := policy.WriteFindings(c.App.ErrWriter, fs, src); err != nil {
				return exitcode.Operationalf("%w", err)
			}
			if failing {
				return exitcode.Rejectedf("policy %s is invalid: not compiled", file)
			}
			if m := c.String("mode"); m != "" {
				if err := p.SetMode(m); err != nil {
					return exitcode.Usagef("--mode: %v", err)
				}
			}
			b, err := policy.Compile(p)
			if err != nil {
				return exitcode.Operationalf("%w", err)
			}
			cp, err := policy.Load(b)
			if err != nil {
				return err
			}
			if out == "-" {
				if _, err := c.App.Writer.Write(b); err != nil {
					return exitcode.Operationalf("writing compiled policy to stdout: %w", err)
				}
				return nil
			}
			if err := writeFileAtomic(out, b); err != nil {
				return exitcode.Operationalf("writing compiled policy %s: %w", out, err)
			}
			fmt.Fprintf(c.App.ErrWriter, "compiled policy %s (%s, %d rules) to %s: %d bytes, sha256 %s\n",
				p.Name(), cp.Mode, len(cp.Rules), out, len(b), cp.SHA256())
			return nil
		},
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".crs-policy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// interspersed lets flags follow the positional arguments (`compile FILE -o OUT`): urfave/cli v2 stops
// at the first argument, so the rest is parsed here against the command's own flags.
func interspersed(c *cli.Context) ([]string, error) {
	in := c.Args().Slice()
	var args []string
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			args = append(args, in[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		fl := findFlag(c.Command.Flags, name)
		if fl == nil {
			return nil, exitcode.Usagef("%s: flag provided but not defined: %s", c.Command.FullName(), a)
		}
		if _, isBool := fl.(*cli.BoolFlag); isBool && !hasValue {
			value = "true"
		} else if !hasValue {
			if i+1 >= len(in) {
				return nil, exitcode.Usagef("%s: flag needs an argument: %s", c.Command.FullName(), a)
			}
			i++
			value = in[i]
		}
		if err := c.Set(fl.Names()[0], value); err != nil {
			return nil, exitcode.Usagef("%s: invalid value %q for %s: %v", c.Command.FullName(), value, a, err)
		}
	}
	return args, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func policyTestCommand() *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "run the table tests kept beside policies (NAME.test.yaml) against the compiled policies",
		ArgsUsage: "[POLICY ...] [--tests FILE]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tests", Usage: "the test file (default: NAME.test.yaml beside each policy)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also list passing tests"},
			&cli.StringSliceFlag{Name: "report", Usage: "also write a report, FORMAT=PATH (repeatable; a failing test is an error finding at its line)"},
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			type job struct{ policy, tests string }
			var jobs []job
			if t := c.String("tests"); t != "" {
				tf, err := policy.ParseTestFile(t)
				if err != nil {
					return err
				}
				switch {
				case len(args) == 1:
					jobs = append(jobs, job{args[0], t})
				case len(args) == 0 && tf.Policy != "":
					jobs = append(jobs, job{tf.Policy, t})
				case len(args) == 0:
					jobs = append(jobs, job{siblingPolicy(t), t})
				default:
					return exitcode.Usagef("policy test --tests FILE takes at most one policy, got %d", len(args))
				}
			} else {
				files, err := policyFiles(args)
				if err != nil {
					return err
				}
				for _, f := range files {
					if t := siblingTests(f); t != "" {
						jobs = append(jobs, job{f, t})
					} else if len(args) > 0 && !isDirArg(args) {
						return exitcode.Usagef("policy %s has no test file beside it (%s)", f, strings.TrimSuffix(f, filepath.Ext(f))+".test.yaml")
					}
				}
				if len(jobs) == 0 {
					return exitcode.Usagef("no policy test files (NAME.test.yaml beside NAME.yaml) found")
				}
			}
			targets, err := reportTargets(c.StringSlice("report"))
			if err != nil {
				return err
			}
			rep := &report.Report{Command: "policy test", Verdict: report.Valid}
			out := c.App.Writer
			total, failed := 0, 0
			for _, j := range jobs {
				tf, err := policy.ParseTestFile(j.tests)
				if err != nil {
					return err
				}
				p, fs, err := policy.ParseFile(j.policy)
				if err != nil {
					return err
				}
				if policy.HasErrors(fs) {
					src, _ := os.ReadFile(j.policy)
					policy.WriteFindings(c.App.ErrWriter, fs, src)
					return exitcode.Rejectedf("policy %s is invalid: its tests were not run", j.policy)
				}
				b, err := policy.Compile(p)
				if err != nil {
					return exitcode.Operationalf("%w", err)
				}
				cp, err := policy.Load(b)
				if err != nil {
					return err
				}
				entry := report.PolicyFile{File: j.tests, Name: p.Name(), Verdict: report.Valid, SHA256: cp.SHA256(), Findings: []report.Finding{}}
				for _, r := range tf.Run(cp) {
					total++
					if !r.Pass {
						entry.Verdict, rep.Verdict = report.Invalid, report.Invalid
						entry.Findings = append(entry.Findings, report.Finding{
							Code: "policy-test-failed", Severity: report.Error, File: j.tests, Line: r.Case.Line, Column: 1,
							Message: fmt.Sprintf("%s: %s", r.Case.Name, r.Why),
							Hint:    fmt.Sprintf("fix the policy %s or the expectation", j.policy),
						})
					}
					if r.Pass {
						if c.Bool("verbose") {
							fmt.Fprintf(out, "PASS %s:%d: %s\n", j.tests, r.Case.Line, r.Case.Name)
						}
						continue
					}
					failed++
					fmt.Fprintf(out, "FAIL %s:%d: %s: %s\n", j.tests, r.Case.Line, r.Case.Name, r.Why)
				}
				fmt.Fprintf(out, "%s: %d test(s) against %s (sha256 %s)\n", j.tests, len(tf.Cases), j.policy, cp.SHA256()[:12])
				rep.Policies = append(rep.Policies, entry)
			}
			for _, t := range targets {
				if err := report.WriteFile(t, rep); err != nil {
					return exitcode.Operationalf("%w", err)
				}
			}
			fmt.Fprintf(out, "%d test(s), %d failed\n", total, failed)
			if failed > 0 {
				return exitcode.Rejectedf("%d policy test(s) failed", failed)
			}
			return nil
		},
	}
}

func isDirArg(args []string) bool {
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// siblingTests returns NAME.test.yaml (or .yml) beside NAME.yaml, or "".
func siblingTests(policyFile string) string {
	base := strings.TrimSuffix(policyFile, filepath.Ext(policyFile))
	for _, ext := range []string{".test.yaml", ".test.yml"} {
		if _, err := os.Stat(base + ext); err == nil {
			return base + ext
		}
	}
	return ""
}

// siblingPolicy returns NAME.yaml (or .yml) for NAME.test.yaml.
func siblingPolicy(testFile string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(testFile, ".yaml"), ".yml")
	base = strings.TrimSuffix(base, ".test")
	if _, err := os.Stat(base + ".yml"); err == nil {
		return base + ".yml"
	}
	return base + ".yaml"
}
