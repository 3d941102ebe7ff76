package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// hookMarker identifies a hook file crs-ci wrote, so a re-install may replace it.
const hookMarker = "# crs-ci pre-push hook"

func hookCommand() *cli.Command {
	return &cli.Command{
		Name:  "hook",
		Usage: "git hooks that run the pipeline's checks before a push",
		Subcommands: []*cli.Command{{
			Name:      "install",
			Usage:     "write a git pre-push hook that runs the same dry run the pipeline runs",
			ArgsUsage: "[IMAGE]",
			Description: "Without IMAGE the hook validates the policy files (crs-ci policy validate).\n" +
				"With IMAGE (oci:DIR, oci-archive:FILE, docker-archive:FILE or docker-daemon:REPO:TAG, as the\n" +
				"pipeline builds it) it runs `crs-ci instrument --dry-run` with the same policy and flags, so\n" +
				"nothing is pushed. Skip it once with `git push --no-verify`.",
			OnUsageError: usageOnError,
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "policy", Usage: "policy `FILE` or folder (repeatable; validate mode default: the default policy folders)"},
				&cli.StringFlag{Name: "platform", Usage: "platform(s) to check, as in the pipeline (`OS/ARCH` or all)"},
				&cli.StringFlag{Name: "fail-on", Usage: "error or warning, as in the pipeline"},
				&cli.StringFlag{Name: "mode", Usage: "policy mode override, as in the pipeline (enforce, audit, off)"},
				&cli.BoolFlag{Name: "allow-unhookable-entrypoint", Usage: "as in the pipeline"},
				&cli.StringFlag{Name: "binary", Usage: "crs-ci `PATH` the hook runs (default: this binary; CRS_CI_BIN overrides at push time)"},
				&cli.StringFlag{Name: "repo", Value: ".", Usage: "the git work tree to install into"},
				&cli.BoolFlag{Name: "force", Usage: "replace an existing pre-push hook that crs-ci did not write"},
			},
			Action: hookInstall,
		}},
	}
}

func hookInstall(c *cli.Context) error {
	if c.NArg() > 1 {
		return exitcode.Usagef("hook install: at most one IMAGE, got %d arguments", c.NArg())
	}
	argv, err := hookArgs(c)
	if err != nil {
		return err
	}
	bin := c.String("binary")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return exitcode.Operationalf("hook install: finding the crs-ci binary: %v (pass --binary)", err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return exitcode.Operationalf("hook install: %v", err)
	}
	hooks, err := gitHooksDir(c.String("repo"))
	if err != nil {
		return err
	}
	path := filepath.Join(hooks, "pre-push")
	if old, err := os.ReadFile(path); err == nil && !bytes.Contains(old, []byte(hookMarker)) && !c.Bool("force") {
		return exitcode.Usagef("hook install: %s exists and was not written by crs-ci; pass --force to replace it", path)
	}
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return exitcode.Operationalf("hook install: creating %s: %v", hooks, err)
	}
	if err := os.WriteFile(path, []byte(hookScript(bin, argv)), 0o755); err != nil {
		return exitcode.Operationalf("hook install: writing %s: %v", path, err)
	}
	if err := os.Chmod(path, 0o755); err != nil { // WriteFile keeps the mode of an existing file
		return exitcode.Operationalf("hook install: making %s executable: %v", path, err)
	}
	fmt.Fprintf(c.App.Writer, "crs-ci: installed %s\n  runs: crs-ci %s\n", path, strings.Join(argv, " "))
	return nil
}

// hookArgs is the command line the hook runs: the pipeline's command with --dry-run (image) or the
// policy validation (no image), never speaking to a CI system.
func hookArgs(c *cli.Context) ([]string, error) {
	var argv []string
	image := c.Args().First()
	if image == "" {
		argv = []string{"policy", "validate", "--ci", "none"}
		if v := c.String("fail-on"); v != "" {
			argv = append(argv, "--fail-on", v)
		}
		return append(argv, c.StringSlice("policy")...), nil
	}
	if len(c.StringSlice("policy")) != 1 {
		return nil, exitcode.Usagef("hook install %s: give the pipeline's policy with exactly one --policy FILE", image)
	}
	argv = []string{"instrument", "--dry-run", "--ci", "none", "--policy", c.StringSlice("policy")[0]}
	for _, f := range []string{"platform", "fail-on", "mode"} {
		if v := c.String(f); v != "" {
			argv = append(argv, "--"+f, v)
		}
	}
	if c.Bool("allow-unhookable-entrypoint") {
		argv = append(argv, "--allow-unhookable-entrypoint")
	}
	return append(argv, image), nil
}

// gitHooksDir asks git where hooks live (core.hooksPath, worktrees and submodules included).
func gitHooksDir(repo string) (string, error) {
	cmd := exec.Command("git", "rev-parse", "--path-format=absolute", "--git-path", "hooks")
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", exitcode.Usagef("hook install: %s is not a git work tree: %s", repo, strings.TrimSpace(stderr.String()+" "+err.Error()))
	}
	return strings.TrimSpace(string(out)), nil
}

// hookScript is the pre-push hook: a POSIX shell script that runs crs-ci from the top of the work
// tree and blocks the push on any non-zero exit (1 rejected, 2 usage, 3 tool error).
func hookScript(bin string, argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return "#!/bin/sh\n" +
		hookMarker + " (written by `crs-ci hook install`; run it again to change the flags).\n" +
		"# It runs what the pipeline runs, without pushing anything. Skip once: git push --no-verify\n" +
		"set -u\n" +
		"cd \"$(git rev-parse --show-toplevel)\" || exit 2\n" +
		"[ -n \"${CRS_CI_BIN:-}\" ] || CRS_CI_BIN=" + shellQuote(bin) + "\n" +
		"echo " + shellQuote("crs-ci pre-push: crs-ci "+strings.Join(q, " ")) + " >&2\n" +
		"\"$CRS_CI_BIN\" " + strings.Join(q, " ") + "\n" +
		"code=$?\n" +
		"case $code in\n" +
		"0) ;;\n" +
		"1) echo \"crs-ci pre-push: rejected (exit 1); push blocked\" >&2 ;;\n" +
		"*) echo \"crs-ci pre-push: tool or usage error (exit $code), not a verdict; push blocked\" >&2 ;;\n" +
		"esac\n" +
		"exit $code\n"
}

// shellQuote quotes s for a POSIX shell, in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
