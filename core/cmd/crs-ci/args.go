package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs moves the flags of the command being run in front of its positional arguments, so that
// `crs-ci check IMAGE --format json` means `crs-ci check --format json IMAGE` (urfave/cli v2 stops
// reading flags at the first argument, and the flags would silently become arguments). "--" ends the
// flags as usual; "-" is an argument; flags the command does not define stay where they are.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i := 1
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			break
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		i++
		cmds, flags = cmd.Subcommands, cmd.Flags
		if len(cmds) == 0 {
			break
		}
	}
	if len(out) == 1 {
		return args // no command: leave the app's own errors alone
	}
	var fl, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			known, takesValue := flagInfo(flags, a)
			if !known {
				// Left in place: the command reports it (or reads it itself) as it would without us.
				pos = append(pos, a)
				continue
			}
			fl = append(fl, a)
			if !strings.Contains(a, "=") && takesValue && i+1 < len(args) {
				i++
				fl = append(fl, args[i])
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(append(out, fl...), pos...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagInfo reports whether "-name", "--name" or "--name=value" is a flag of the command, and whether it
// reads the next argument as its value.
func flagInfo(flags []cli.Flag, arg string) (known, takesValue bool) {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return true, !isBool
			}
		}
	}
	return false, false
}
