package main

import (
	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// TODO(issue): replaced by the real check command.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:         "check",
		Usage:        "not built yet",
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			return exitcode.Usagef("check: not built yet")
		},
	}
}
