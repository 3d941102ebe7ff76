package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/version"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the crs-ci version",
		Action: func(c *cli.Context) error {
			commit := version.Commit
			if commit == "" {
				commit = "unknown"
			}
			fmt.Fprintf(c.App.Writer, "crs-ci %s (commit %s, %s, %s/%s)\n",
				version.Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
