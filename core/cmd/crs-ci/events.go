package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/exitcode"
)

// stdin is where "-" reads from (a variable so the command tests can feed it).
var stdin io.Reader = os.Stdin

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "read the probe's JSON-line events: summarize a run, or tail a live stream",
		Subcommands: []*cli.Command{
			eventsSummarizeCommand(),
			eventsTailCommand(),
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitcode.Usagef("events: unknown subcommand %q (summarize, tail)", c.Args().First())
			}
			_ = cli.ShowSubcommandHelp(c)
			return exitcode.Usagef("events: no subcommand given (summarize, tail)")
		},
	}
}

// openEvents opens an events file, or stdin for "-".
func openEvents(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, exitcode.Operationalf("reading events: %v", err)
	}
	return f, nil
}

func eventsSummarizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "summarize",
		Usage: "totals by action, rule, program, op and path/address prefix; what audit mode would have denied first",
		Description: "Reads the probe's events from files or - (stdin), skipping other log lines, so `kubectl logs POD | crs-ci events summarize -`\n" +
			"works. Malformed lines are counted, never fatal.",
		ArgsUsage: "FILE... | -",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "text, json or markdown (markdown suits a CI job summary)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the summary to `FILE` instead of stdout"},
			&cli.BoolFlag{Name: "append", Usage: "append to --output (e.g. $GITHUB_STEP_SUMMARY) instead of replacing it"},
			&cli.IntFlag{Name: "top", Value: 20, Usage: "rows per table in text and markdown"},
			&cli.BoolFlag{Name: "fail-on-deny", Usage: "exit 1 when any event was denied or would have been denied"},
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return exitcode.Usagef("events summarize: name event files, or - for stdin")
			}
			format := c.String("format")
			if format != "text" && format != "json" && format != "markdown" && format != "md" {
				return exitcode.Usagef("--format %q: want text, json or markdown", format)
			}
			s := events.NewSummary(events.DefaultLimits)
			for _, name := range args {
				r, err := openEvents(name)
				if err != nil {
					return err
				}
				st, err := events.ReadAll(r, name, func(e *events.Event) error { s.Add(e); return nil })
				r.Close()
				s.AddStats(st)
				if err != nil {
					return exitcode.Operationalf("%v", err)
				}
			}
			w := c.App.Writer
			if out := c.String("output"); out != "" {
				flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
				if c.Bool("append") {
					flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
				}
				f, err := os.OpenFile(out, flags, 0o644)
				if err != nil {
					return exitcode.Operationalf("writing the summary: %v", err)
				}
				defer f.Close()
				w = f
			}
			if err := events.Render(w, format, s, events.RenderOptions{Top: c.Int("top")}); err != nil {
				return exitcode.Operationalf("writing the summary: %v", err)
			}
			if c.Bool("fail-on-deny") && s.WouldDeny.Total+s.Denied.Total > 0 {
				return exitcode.Rejectedf("%d events were denied or would have been denied (audit mode)", s.WouldDeny.Total+s.Denied.Total)
			}
			return nil
		},
	}
}

func eventsTailCommand() *cli.Command {
	return &cli.Command{
		Name:  "tail",
		Usage: "follow a live event stream (a growing file, or a unix: datagram sink it binds), pretty-printed and filtered",
		Description: "SOURCE is a file (followed like tail -F: from its end, across truncation and rotation) or unix:PATH\n" +
			"(binds a datagram socket at PATH; run containers with CRS_EVENTS=unix:PATH and the socket mounted),\n" +
			"or - (a pipe, e.g. kubectl logs -f POD | crs-ci events tail -).\n" +
			"Filters of one kind are alternatives, filters of different kinds must all match.",
		ArgsUsage: "FILE | unix:PATH | -",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "action", Usage: "only these actions: allow, deny, alert, would-deny (repeatable)"},
			&cli.StringSliceFlag{Name: "op", Usage: "only these ops: read, write, exec, connect, ... (repeatable)"},
			&cli.StringSliceFlag{Name: "program", Usage: "only these programs: a glob on the path or the base name (repeatable)"},
			&cli.StringSliceFlag{Name: "rule", Usage: "only events decided by these rules; default for a category default (repeatable)"},
			&cli.BoolFlag{Name: "from-start", Usage: "a file: read it from the start, then follow"},
			&cli.BoolFlag{Name: "json", Usage: "print the matching events as JSON lines instead of pretty-printing"},
			&cli.IntFlag{Name: "count", Usage: "stop after `N` matching events"},
			&cli.DurationFlag{Name: "for", Usage: "stop after this long (e.g. 30s); default: until interrupted"},
		},
		OnUsageError: usageOnError,
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return exitcode.Usagef("events tail: name one source, a file or unix:PATH")
			}
			f := events.Filter{Actions: c.StringSlice("action"), Ops: c.StringSlice("op"),
				Programs: c.StringSlice("program"), Rules: c.StringSlice("rule")}
			if err := f.Validate(); err != nil {
				return exitcode.Usagef("%v", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if d := c.Duration("for"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			bw := bufio.NewWriter(c.App.Writer)
			defer bw.Flush()
			n, max := 0, c.Int("count")
			emit := func(e *events.Event) error {
				if !f.Match(e) {
					return nil
				}
				var err error
				if c.Bool("json") {
					err = writeJSONEvent(bw, e)
				} else {
					err = events.Pretty(bw, e)
				}
				if err == nil {
					err = bw.Flush()
				}
				if err != nil {
					return exitcode.Operationalf("writing events: %v", err)
				}
				if n++; max > 0 && n >= max {
					cancel()
				}
				return nil
			}
			src := args[0]
			if src == "-" {
				// a pipe (kubectl logs -f POD | crs-ci events tail -): read until it ends or --count is reached
				_, err := events.ReadAll(stdin, "-", func(e *events.Event) error {
					if err := emit(e); err != nil {
						return err
					}
					if ctx.Err() != nil {
						return errStopTail
					}
					return nil
				})
				if errors.Is(err, errStopTail) {
					return nil
				}
				return wrapOp(err)
			}
			if p, ok := strings.CutPrefix(src, "unix:"); ok {
				if p == "" {
					return exitcode.Usagef("events tail: unix: needs a socket path, e.g. unix:/run/crs/events.sock")
				}
				sink, err := events.ListenUnix(p)
				if err != nil {
					return exitcode.Operationalf("%v", err)
				}
				fmt.Fprintf(c.App.ErrWriter, "crs-ci: listening for events on unix:%s\n", p)
				return wrapOp(sink.Serve(ctx, emit))
			}
			return wrapOp(events.Follow(ctx, src, c.Bool("from-start"), emit))
		},
	}
}

var errStopTail = errors.New("stop")

func wrapOp(err error) error {
	if err == nil {
		return nil
	}
	return exitcode.WithCode(exitcode.Operational, err)
}

// writeJSONEvent writes an event as one JSON line in the probe's own shape.
func writeJSONEvent(w io.Writer, e *events.Event) error {
	type out struct {
		TS        string `json:"ts,omitempty"`
		PID       int    `json:"pid"`
		Program   string `json:"program"`
		Op        string `json:"op"`
		Path      string `json:"path,omitempty"`
		Addr      string `json:"addr,omitempty"`
		Syscall   string `json:"syscall,omitempty"`
		Action    string `json:"action"`
		Rule      string `json:"rule"`
		Mode      string `json:"mode,omitempty"`
		Policy    string `json:"policy"`
		Error     string `json:"error,omitempty"`
		Dropped   int64  `json:"dropped,omitempty"`
		Truncated bool   `json:"truncated,omitempty"`
	}
	o := out{PID: e.PID, Program: e.Program, Op: e.Op, Path: e.Path, Addr: e.Addr, Syscall: e.Syscall,
		Action: e.Action, Rule: e.Rule, Mode: e.Mode, Policy: e.Policy, Error: e.Error, Dropped: e.Dropped, Truncated: e.Truncated}
	if !e.TS.IsZero() {
		o.TS = e.TS.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
