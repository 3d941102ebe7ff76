package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/suggest"
)

// suggestCommand is `crs-ci policy suggest`: behavioural learning from the probe's events.
func suggestCommand() *cli.Command {
	return &cli.Command{
		Name:  "suggest",
		Usage: "suggest a policy from recorded events, or the rules an existing policy is missing (as a diff)",
		Description: "Without --from-policy: prints a crs-ci/v1 policy that allows what the events show and denies the rest where\n" +
			"the behaviour was narrow enough. With --from-policy FILE: prints a unified diff adding only the rules FILE\n" +
			"needs for the observed behaviour its defaults deny (explicit deny rules are kept and reported).\n" +
			"Record the events in audit mode with logMode: all, so allowed calls are in the stream too.",
		ArgsUsage: "[EVENTS-FILE ...]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "events", Usage: "an events `FILE` (repeatable; - for stdin); positional arguments count too"},
			&cli.StringFlag{Name: "from-policy", Usage: "propose additions to this policy `FILE`, as a unified diff"},
			&cli.BoolFlag{Name: "strict", Usage: "nothing beyond what was seen: exact paths, addresses and ports, rules per program, every default deny"},
			&cli.StringFlag{Name: "name", Value: "suggested", Usage: "metadata.name of a new policy"},
			&cli.StringFlag{Name: "mode", Value: "enforce", Usage: "spec.mode of a new policy: enforce, audit or off"},
			&cli.StringFlag{Name: "arch", Value: "amd64", Usage: "architecture the events came from (syscall numbering): amd64 or arm64"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the policy (new, or FILE with the additions) to `PATH` instead of printing it or the diff"},
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			files := append(c.StringSlice("events"), args...)
			if len(files) == 0 {
				return exitcode.Usagef("policy suggest: name the events to learn from: --events FILE (or - for stdin)")
			}
			switch c.String("mode") {
			case policy.ModeEnforce, policy.ModeAudit, policy.ModeOff:
			default:
				return exitcode.Usagef("--mode %q: want enforce, audit or off", c.String("mode"))
			}
			arch := c.String("arch")
			if arch != "amd64" && arch != "arm64" {
				return exitcode.Usagef("--arch %q: want amd64 or arm64", arch)
			}
			o := suggest.NewObserved(arch)
			for _, name := range files {
				r, err := openEvents(name)
				if err != nil {
					return err
				}
				st, err := events.ReadAll(r, name, o.Add)
				r.Close()
				o.Input.Add(st)
				if err != nil {
					return exitcode.Operationalf("%v", err)
				}
			}
			opt := suggest.Options{Name: c.String("name"), Mode: c.String("mode"), Strict: c.Bool("strict"),
				Source: fmt.Sprintf("%d file(s), %d lines", len(files), o.Input.Lines)}
			stderr := c.App.ErrWriter
			if from := c.String("from-policy"); from != "" {
				return suggestAdditions(c, from, o, opt)
			}
			s, err := suggest.Suggest(o, opt)
			if err != nil {
				return exitcode.Operationalf("%v", err)
			}
			for _, n := range s.Notes {
				fmt.Fprintf(stderr, "crs-ci: note: %s\n", n)
			}
			if out := c.String("output"); out != "" {
				if err := writeSuggestion(out, s.YAML); err != nil {
					return err
				}
				rules, evs := s.Stats()
				fmt.Fprintf(stderr, "crs-ci: wrote %s: %d rules covering %d events\n", out, rules, evs)
				return nil
			}
			_, err = c.App.Writer.Write(s.YAML)
			return wrapOp(err)
		},
	}
}

func suggestAdditions(c *cli.Context, from string, o *suggest.Observed, opt suggest.Options) error {
	stderr := c.App.ErrWriter
	src, err := os.ReadFile(from)
	if err != nil {
		return exitcode.Operationalf("reading the policy: %v", err)
	}
	a, findings, err := suggest.Additions(from, src, o, opt)
	if errors.Is(err, suggest.ErrInvalidPolicy) {
		var b bytes.Buffer
		policy.WriteFindings(&b, findings, src)
		stderr.Write(b.Bytes())
		return exitcode.Rejectedf("%s is not a valid policy: fix it first (crs-ci policy validate %s)", from, from)
	}
	if err != nil {
		return exitcode.Operationalf("%v", err)
	}
	for _, n := range a.Notes {
		fmt.Fprintf(stderr, "crs-ci: note: %s\n", n)
	}
	if a.Diff == "" {
		fmt.Fprintf(stderr, "crs-ci: %s already allows everything observed: no additions\n", from)
		if out := c.String("output"); out != "" && filepath.Clean(out) != filepath.Clean(from) {
			return writeSuggestion(out, a.New)
		}
		return nil
	}
	if out := c.String("output"); out != "" {
		if err := writeSuggestion(out, a.New); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "crs-ci: wrote %s: %s plus %d rules\n", out, from, len(a.Rules))
		return nil
	}
	_, err = c.App.Writer.Write([]byte(a.Diff))
	return wrapOp(err)
}

// writeSuggestion writes b to path through a temporary file and a rename.
func writeSuggestion(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".crs-suggest-*")
	if err != nil {
		return exitcode.Operationalf("writing %s: %v", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return exitcode.Operationalf("writing %s: %v", path, err)
	}
	if err := tmp.Close(); err != nil {
		return exitcode.Operationalf("writing %s: %v", path, err)
	}
	os.Chmod(tmp.Name(), 0o644)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return exitcode.Operationalf("writing %s: %v", path, err)
	}
	return nil
}
