package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/serve"
	"github.com/crs-ci/crs-ci/core/version"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the service that instruments every image pushed to a registry (registry notifications webhook)",
		Description: "Listens for the distribution registry's notifications (notifications.endpoints in its config) and for\n" +
			"Harbor 2.x PUSH_ARTIFACT webhooks, and instruments each pushed tag that the configuration selects,\n" +
			"pushing TAG-layered beside it. Jobs are journaled in stateDir before a notification is acknowledged\n" +
			"and resume after a restart.\n" +
			"Endpoints: POST /notifications and POST /webhook/harbor (shared secret header; paths configurable),\n" +
			"/healthz, /readyz, /metrics, /jobs.\n" +
			"SIGTERM/SIGINT stop gracefully. Exit codes: 0 stopped, 2 bad configuration, 3 operational.\n" +
			"See docs/serve.md.",
		OnUsageError: usageOnError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CRS_SERVE_CONFIG"}, Usage: "serve configuration `FILE` (YAML, kind ServeConfig)"},
			&cli.StringFlag{Name: "listen", Usage: "override the config's listen `HOST:PORT`"},
			&cli.BoolFlag{Name: "check-config", Usage: "validate the configuration and its policy, then exit"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "`LEVEL` of the JSON logs on stderr: debug, info, warn or error"},
		},
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitcode.Usagef("serve takes no arguments, got %q (see crs-ci serve --help)", c.Args().First())
	}
	if c.String("config") == "" {
		return exitcode.Usagef("--config FILE is required (see docs/serve.md)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return exitcode.Usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	cfg, err := serve.LoadConfig(c.String("config"), os.Getenv)
	if err != nil {
		return err
	}
	if l := c.String("listen"); l != "" {
		cfg.Listen = l
	}
	// The policy must be valid before the service takes any job (it is re-read for every job).
	p, findings, err := policy.ParseFile(cfg.Policy)
	if err != nil {
		return exitcode.Usagef("policy %s: %v", cfg.Policy, err)
	}
	if policy.HasErrors(findings) || p == nil {
		for _, f := range findings {
			fmt.Fprintf(c.App.ErrWriter, "%s:%d:%d: %s: %s\n", f.File, f.Line, f.Column, f.Code, f.Message)
		}
		return exitcode.Usagef("policy %s is invalid: the service does not start with it", cfg.Policy)
	}
	if c.Bool("check-config") {
		fmt.Fprintf(c.App.Writer, "%s: valid (policy %s %q, %d repository rule(s), registry %s)\n",
			cfg.File(), cfg.Policy, p.Name(), len(cfg.Repositories), cfg.Registry)
		return nil
	}

	log := slog.New(slog.NewJSONHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})).With("service", "crs-ci-serve")
	log.Info("starting", "version", version.Version, "config", cfg.File(), "policy", cfg.Policy, "policy_name", p.Name())
	runner, err := serve.NewInstrumentRunner(cfg, os.Getenv)
	if err != nil {
		return err
	}
	svc, err := serve.New(cfg, log, runner.Run)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return svc.ListenAndServe(ctx, nil)
}
