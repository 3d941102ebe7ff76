package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/report"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "decide whether the probe can protect an image (exit 0 compatible, 1 incompatible)",
		ArgsUsage: "IMAGE",
		Description: "IMAGE is REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:…, docker://…, oci:DIR[:REF],\n" +
			"oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG] or docker-daemon:REPO:TAG.\n" +
			"Exit codes: 0 compatible, 1 incompatible, 2 usage, 3 operational (registry, I/O, corrupt image).\n" +
			"Finding codes are listed in docs/check.md.",
		OnUsageError: usageOnError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "platform", Usage: "platform of an index to check: `OS/ARCH[/VARIANT]` or all (default: this machine's)"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output on stdout: `text` or json"},
			&cli.StringSliceFlag{Name: "report", Usage: "also write a report, `FMT=PATH` (json, markdown, …; repeatable)"},
			&cli.StringFlag{Name: "cache-dir", Usage: "per-layer facts cache `DIR` (default: the user cache dir/crs-ci)"},
			&cli.BoolFlag{Name: "no-cache", Usage: "neither read nor write the per-layer facts cache"},
			&cli.Int64Flag{Name: "max-layer-bytes", Value: image.DefaultMaxLayerBytes,
				Usage: "stop with an error when a layer expands beyond `N` bytes (a decompression bomb)"},
			&cli.BoolFlag{Name: "allow-unhookable-entrypoint",
				Usage: "a static or Go entrypoint is a warning, not a rejection (for images whose child processes matter more)"},
		}, append(registryFlags(), ciFlags()...)...),
		Action: runCheck,
	}
}

func runCheck(c *cli.Context) error {
	args, err := interspersed(c) // flags may follow IMAGE
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return exitcode.Usagef("check takes one IMAGE argument, got %d (see crs-ci check --help)", len(args))
	}
	format := c.String("format")
	if format != "text" && format != "json" {
		return exitcode.Usagef("--format %q: want text or json", format)
	}
	targets, err := reportTargets(c.StringSlice("report"))
	if err != nil {
		return err
	}
	if c.Int64("max-layer-bytes") <= 0 {
		return exitcode.Usagef("--max-layer-bytes %d: want a positive number of bytes", c.Int64("max-layer-bytes"))
	}
	cacheDir := factsCacheDir(c)
	progress, layerProgress := progressWriters(c.App.ErrWriter)
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	ref := args[0]
	kc, ropts, err := registryAccess(c, ref, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "crs-ci check: opening %s\n", ref)
	src, err := image.Open(ctx, ref, image.Options{Platform: c.String("platform"), Progress: layerProgress,
		Keychain: kc, RemoteOptions: ropts})
	if err != nil {
		return publishCI(c, nil, nil, err)
	}
	rep, _, err := compat.Check(ctx, src, compat.Options{
		AllowUnhookableEntrypoint: c.Bool("allow-unhookable-entrypoint"),
		CacheDir:                  cacheDir,
		NoCache:                   c.Bool("no-cache"),
		Progress:                  progress,
		LayerProgress:             layerProgress,
		MaxLayerBytes:             c.Int64("max-layer-bytes"),
	})
	if err != nil {
		return publishCI(c, nil, nil, err)
	}
	for _, t := range targets {
		if err := report.WriteFile(t, rep); err != nil {
			return publishCI(c, rep, nil, exitcode.Operationalf("%w", err))
		}
	}
	if err := report.Render(c.App.Writer, format, rep); err != nil {
		return publishCI(c, rep, targets, exitcode.Operationalf("writing the %s report to stdout: %w", format, err))
	}
	var verdict error
	if rep.Verdict != report.Compatible {
		verdict = exitcode.Rejectedf("%s is incompatible with the probe (%s)", rep.Image, platformVerdicts(rep))
	}
	return publishCI(c, rep, targets, verdict)
}

// factsCacheDir (check and instrument) is --cache-dir, else the user cache dir/crs-ci; "" with --no-cache.
func factsCacheDir(c *cli.Context) string {
	dir := c.String("cache-dir")
	if dir == "" && !c.Bool("no-cache") {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "crs-ci")
		}
	}
	return dir
}

// platformVerdicts summarises per platform: "linux/amd64: 2 errors, linux/arm64: compatible".
func platformVerdicts(rep *report.Report) string {
	s := ""
	for i, p := range rep.Platforms {
		if i > 0 {
			s += ", "
		}
		errs := 0
		for _, f := range p.Findings {
			if f.Severity == report.Error {
				errs++
			}
		}
		if errs == 0 {
			s += p.Platform + ": compatible"
		} else {
			s += fmt.Sprintf("%s: %d error(s)", p.Platform, errs)
		}
	}
	return s
}

// progressWriters decides what goes to stderr while checking: on a terminal, a line per layer as well as
// per platform; in a CI log (not a terminal), only the quiet per-platform lines.
func progressWriters(stderr io.Writer) (platform, layers io.Writer) {
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return stderr, stderr
		}
	}
	return stderr, nil
}
