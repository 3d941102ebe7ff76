package main

import (
	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// TODO(issue): replaced by the real instrument command.
func instrumentCommand() *cli.Command {
	return &cli.Command{
		Name:         "instrument",
		Usage:        "not built yet",
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			return exitcode.Usagef("instrument: not built yet")
		},
	}
}
