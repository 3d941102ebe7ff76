package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/report"
	"github.com/crs-ci/crs-ci/core/version"
)

func instrumentCommand() *cli.Command {
	return &cli.Command{
		Name:      "instrument",
		Usage:     "check IMAGE and the policy, add the probe layer and push IMAGE's tag with -layered (exit 0 pushed, 1 rejected)",
		ArgsUsage: "IMAGE",
		Description: "IMAGE is REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:…, docker://…, oci:DIR[:REF], oci-archive:FILE[:REF],\n" +
			"docker-archive:FILE[:REPO:TAG] or docker-daemon:REPO:TAG. REPO:TAG is pushed as REPO:TAG-layered,\n" +
			"REPO@sha256:HEX as REPO:sha256-HEX-layered (see --to, --tag-suffix). Nothing is written when the check or\n" +
			"the policy rejects. Credentials: the docker config by default; --username with --password-stdin or\n" +
			"CRS_REGISTRY_USERNAME/CRS_REGISTRY_PASSWORD; or Vault (--vault-*). See docs/instrument.md and docs/credentials.md.\n" +
			"Exit codes: 0 instrumented, 1 rejected, 2 usage, 3 operational (registry, network, auth, I/O).",
		OnUsageError: usageOnError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, EnvVars: []string{"CRS_POLICY"}, Usage: "crs-ci/v1 policy `FILE` (required)"},
			&cli.StringFlag{Name: "mode", Usage: "override the policy's mode: `enforce`, audit or off"},
			&cli.StringFlag{Name: "platform", Value: image.PlatformAll, Usage: "`OS/ARCH[/VARIANT]` of an index to instrument, or all (an index gives an index)"},
			&cli.BoolFlag{Name: "skip-incompatible-platforms", Usage: "leave incompatible platforms out of the result instead of failing"},
			&cli.StringFlag{Name: "to", Usage: "push to `REF` instead (another repository or registry; a repository without a tag gets the -layered tag)"},
			&cli.StringFlag{Name: "tag-suffix", Value: instrument.DefaultTagSuffix, Usage: "`SUFFIX` appended to the source tag"},
			&cli.BoolFlag{Name: "dry-run", Usage: "do everything except the push"},
			&cli.StringFlag{Name: "output", Usage: "also write the result to `oci:DIR[:REF]` or oci-archive:FILE[:REF]"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output on stdout: `text`, json or markdown"},
			&cli.StringSliceFlag{Name: "report", Usage: "also write a report, `FMT=PATH` (json, markdown, …; repeatable)"},
			&cli.StringFlag{Name: "cache-dir", Usage: "per-layer facts cache `DIR` (default: the user cache dir/crs-ci)"},
			&cli.BoolFlag{Name: "no-cache", Usage: "neither read nor write the per-layer facts cache"},
			&cli.Int64Flag{Name: "max-layer-bytes", Usage: "stop with an error when a layer expands beyond `N` bytes (default 64 GiB)"},
			&cli.BoolFlag{Name: "allow-unhookable-entrypoint", Usage: "a static or Go entrypoint is a warning, not a rejection"},
		}, append(registryFlags(), ciFlags()...)...),
		Action: runInstrument,
	}
}

func runInstrument(c *cli.Context) error {
	args, err := interspersed(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return exitcode.Usagef("instrument takes one IMAGE argument, got %d (see crs-ci instrument --help)", len(args))
	}
	format := c.String("format")
	if format != "text" && format != "json" && format != "markdown" {
		return exitcode.Usagef("--format %q: want text, json or markdown", format)
	}
	targets, err := reportTargets(c.StringSlice("report"))
	if err != nil {
		return err
	}
	if c.String("policy") == "" {
		return exitcode.Usagef("--policy FILE is required")
	}
	if c.Int64("max-layer-bytes") < 0 {
		return exitcode.Usagef("--max-layer-bytes %d: want a positive number of bytes", c.Int64("max-layer-bytes"))
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	src := args[0]

	kc, ropts, err := registryAccess(c, src, c.String("to"))
	if err != nil {
		return err
	}

	cacheDir := factsCacheDir(c)
	progress, layerProgress := progressWriters(c.App.ErrWriter)
	fmt.Fprintf(progress, "crs-ci instrument %s: %s with policy %s\n", version.Version, src, c.String("policy"))
	rep, runErr := instrument.Run(ctx, instrument.Options{
		Image: src, PolicyFile: c.String("policy"), Mode: c.String("mode"), Platform: c.String("platform"),
		To: c.String("to"), TagSuffix: c.String("tag-suffix"), Output: c.String("output"), DryRun: c.Bool("dry-run"),
		SkipIncompatiblePlatforms: c.Bool("skip-incompatible-platforms"),
		Compat: compat.Options{
			AllowUnhookableEntrypoint: c.Bool("allow-unhookable-entrypoint"), CacheDir: cacheDir, NoCache: c.Bool("no-cache"),
			Progress: progress, LayerProgress: layerProgress, MaxLayerBytes: c.Int64("max-layer-bytes"),
		},
		Keychain:      kc,
		RemoteOptions: ropts,
		Progress:      layerProgress,
	})
	if rep == nil {
		return publishCI(c, nil, nil, runErr)
	}
	for _, t := range targets {
		if err := report.WriteFile(t, rep); err != nil {
			return publishCI(c, rep, nil, exitcode.Operationalf("%w", err))
		}
	}
	if err := report.Render(c.App.Writer, format, rep); err != nil {
		return publishCI(c, rep, targets, exitcode.Operationalf("writing the %s report to stdout: %w", format, err))
	}
	return publishCI(c, rep, targets, runErr)
}
