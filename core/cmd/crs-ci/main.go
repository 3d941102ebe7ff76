// Command crs-ci checks container images for probe compatibility, validates and compiles runtime
// policies, and instruments images with the probe. Each subcommand lives in its own file and only wires
// flags to the engine packages under core/.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/version"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code. It never lets a panic trace reach the user.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "crs-ci: internal error: %v (please report this)\n", r)
			code = exitcode.Operational
		}
	}()
	app := newApp(stdout, stderr)
	err := app.Run(permuteArgs(app, args))
	if err != nil {
		fmt.Fprintf(stderr, "crs-ci: %v\n", err)
	}
	return exitcode.Of(err)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:        "crs-ci",
		Usage:       "container runtime security for CI/CD: check, policy, instrument",
		Version:     version.Version,
		Writer:      stdout,
		ErrWriter:   stderr,
		HideVersion: true,
		Commands: []*cli.Command{
			checkCommand(),
			policyCommand(),
			eventsCommand(),
			instrumentCommand(),
			hookCommand(),
			serveCommand(),
			versionCommand(),
		},
		// Exit codes are decided in run, from the error's kind; never let cli call os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return exitcode.Usagef("%v (see crs-ci --help)", err)
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitcode.Usagef("unknown command %q (see crs-ci --help)", c.Args().First())
			}
			_ = cli.ShowAppHelp(c)
			return exitcode.Usagef("no command given")
		},
	}
}

// usageOnError marks flag-parsing errors of a subcommand as usage errors (exit 2).
func usageOnError(_ *cli.Context, err error, _ bool) error {
	return exitcode.Usagef("%v", err)
}
