package main

import (
	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// TODO(issue): replaced by the real policy command.
func policyCommand() *cli.Command {
	return &cli.Command{
		Name:         "policy",
		Usage:        "not built yet",
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			return exitcode.Usagef("policy: not built yet")
		},
	}
}
