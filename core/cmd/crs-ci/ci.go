package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/ci"
	"github.com/crs-ci/crs-ci/core/report"
)

// ciFlags are the flags every command that ends in a verdict takes (check, policy validate,
// instrument), so each CI shim passes the same ones:
//
//	--fail-on error|warning     what fails the build (warning: any warning is a rejection, exit 1)
//	--ci auto|github|azure|jenkins|none
//	--summary=false             no job summary (GitHub step summary, Azure uploadsummary)
func ciFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "fail-on", Value: "error", EnvVars: []string{"CRS_FAIL_ON"},
			Usage: "what fails the build: `error` (rejections only) or warning (any warning too)"},
		&cli.StringFlag{Name: "ci", Value: "auto", EnvVars: []string{"CRS_CI"},
			Usage: "CI platform to speak to: `auto` (detect), github, azure, jenkins or none"},
		&cli.BoolFlag{Name: "summary", Value: true, EnvVars: []string{"CRS_SUMMARY"},
			Usage: "write a job summary on GitHub/Azure (--summary=false to turn off)"},
	}
}

// ciPublisher returns the publisher for the command's --ci and --summary flags.
func ciPublisher(c *cli.Context) (*ci.Publisher, error) {
	plat, err := ci.ParsePlatform(c.String("ci"))
	if err != nil {
		return nil, err
	}
	return ci.New(ci.Options{Platform: plat, NoSummary: !c.Bool("summary"), Out: c.App.Writer}), nil
}

// ciMask hides secret values in the CI log from now on: the secret environment variables crs-ci
// reads, plus values (for example a password read from Vault). Call it before anything that could
// print them; a command's Before hook is the place: `Before: func(c *cli.Context) error { return ciMask(c) }`.
func ciMask(c *cli.Context, values ...string) error {
	pub, err := ciPublisher(c)
	if err != nil {
		return err
	}
	if err := pub.MaskEnv(); err != nil {
		return err
	}
	return pub.Mask(values...)
}

// publishCI ends a command: it applies --fail-on to the command's report and error, speaks the CI
// platform's language (outputs, annotations, summary) and returns the error that decides the exit
// code. rep may be nil when the command failed before it had one; targets are the --report files
// the command wrote. A command ends with `return publishCI(c, rep, targets, err)`.
func publishCI(c *cli.Context, rep *report.Report, targets []report.Target, runErr error) error {
	failOn, err := ci.ParseFailOn(c.String("fail-on"))
	if err != nil {
		return err
	}
	pub, err := ciPublisher(c)
	if err != nil {
		return err
	}
	runErr = ci.Gate(rep, runErr, failOn)
	if perr := pub.Publish(ci.Result{Report: rep, Reports: targets, Err: runErr}); perr != nil {
		if runErr == nil {
			return perr // outputs the pipeline relies on are missing: a tool error (exit 3)
		}
		fmt.Fprintf(c.App.ErrWriter, "crs-ci: %v\n", perr)
	}
	return runErr
}
