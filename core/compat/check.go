package compat

import (
	"context"
	"fmt"
	"io"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

// Options say how to check an image.
type Options struct {
	// AllowUnhookableEntrypoint turns a static or Go entrypoint from an error into a warning, for images
	// whose child processes matter more than the entrypoint itself.
	AllowUnhookableEntrypoint bool
	// CacheDir holds the per-layer facts cache; "" = no cache.
	CacheDir string
	// NoCache ignores CacheDir.
	NoCache bool
	// Progress receives one line per platform as it is checked; nil = silent.
	Progress io.Writer
	// LayerProgress receives a line per layer read, and one per 64 MiB read within a layer (for
	// terminals); nil = silent.
	LayerProgress io.Writer
	// Probes returns the probe build for a libc family and OCI architecture; nil = probe.For (the probes
	// embedded in crs-ci). The verdict is decided from the needs of what it returns.
	Probes func(libc, arch string) (*probe.Artifact, error)
	// Parallel is the number of layers scanned at once; 0 = the image package's default.
	Parallel int
	// MaxLayerBytes bounds the uncompressed size of each layer (a decompression bomb stops with an
	// operational error); 0 = the image package's default.
	MaxLayerBytes int64
}

// Result is the verdict for one platform and what instrumenting it needs.
type Result struct {
	Platform report.Platform // verdict, libc, entrypoint, findings for this platform
	Image    image.PlatformImage
	Libc     string   // probe.Glibc, probe.Musl or "" — which probe build to inject
	Arch     string   // OCI arch of the probe: "amd64" / "arm64"
	Preload  []string // entries already in the image's /etc/ld.so.preload (to keep them), nil if absent
}

// Compatible reports whether the platform passed.
func (r Result) Compatible() bool { return r.Platform.Verdict == report.Compatible }

// Check analyses every selected platform of src and returns the report (command "check") and per-platform
// results. An error means the image could not be read (exit code kind attached); a verdict is never an error.
func Check(ctx context.Context, src *image.Source, opts Options) (*report.Report, []Result, error) {
	rep := &report.Report{
		SchemaVersion: report.SchemaVersion,
		Command:       "check",
		Image:         src.Ref.String(),
		Digest:        src.Digest.String(),
		Verdict:       report.Compatible,
	}
	if len(src.Images) == 0 {
		return nil, nil, exitcode.Operationalf("checking %s: no image selected", rep.Image)
	}
	var results []Result
	for _, pi := range src.Images {
		start := time.Now()
		res, err := CheckImage(ctx, pi, opts)
		if err != nil {
			return nil, nil, err
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%s: %s (%d findings, %.1fs)\n", res.Platform.Platform, res.Platform.Verdict,
				len(res.Platform.Findings), time.Since(start).Seconds())
		}
		if !res.Compatible() {
			rep.Verdict = report.Incompatible
		}
		rep.Platforms = append(rep.Platforms, res.Platform)
		results = append(results, res)
	}
	return rep, results, nil
}

// CheckImage checks one platform image.
func CheckImage(ctx context.Context, pi image.PlatformImage, opts Options) (Result, error) {
	cfg, err := pi.Image.ConfigFile()
	if err != nil {
		return Result{}, exitcode.WithCode(exitcode.Operational,
			fmt.Errorf("reading the config of image %s: %w", pi.Descriptor.Digest, err))
	}
	plat := pi.Platform
	if plat.OS == "" && plat.Architecture == "" {
		plat = v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	}
	a := &analysis{
		opts:   opts,
		cfg:    cfg,
		plat:   plat,
		result: Result{Image: pi, Arch: plat.Architecture},
	}
	a.result.Platform = report.Platform{
		Platform: platformString(plat),
		Verdict:  report.Compatible,
		Libc:     report.Libc{Family: "none"},
		Findings: []report.Finding{},
	}
	if pi.Descriptor.Digest.Hex != "" {
		a.result.Platform.Digest = pi.Descriptor.Digest.String()
	}
	if opts.Probes == nil {
		a.opts.Probes = probe.For
	}
	arch, ok := archs[plat.Architecture]
	if plat.OS != "linux" || !ok {
		msg := fmt.Sprintf("no probe exists for %s (probes exist for linux/amd64 and linux/arm64); the image was not analysed further",
			a.result.Platform.Platform)
		if plat.OS == "" || plat.Architecture == "" { // a config without os/architecture (core/internal/hardening)
			msg = fmt.Sprintf("the image config names no os or architecture (os %q, architecture %q), so no probe can be chosen; the image was not analysed further",
				plat.OS, plat.Architecture)
		}
		a.add(CodeUnsupportedPlatform, report.Error, "", msg, "")
		a.result.Arch = ""
		return a.finish(), nil
	}
	a.arch = arch
	scan := image.ScanOptions{Extractor: Extractor{}, Parallel: opts.Parallel, Progress: opts.LayerProgress,
		MaxLayerBytes: opts.MaxLayerBytes}
	if opts.LayerProgress != nil {
		scan.ProgressEvery = 64 << 20
	}
	if !opts.NoCache {
		scan.CacheDir = opts.CacheDir
	}
	fs, err := image.Scan(ctx, pi.Image, scan)
	if err != nil {
		return Result{}, exitcode.WithCode(exitcode.Operational,
			fmt.Errorf("reading the layers of %s (%s): %w", a.result.Platform.Platform, pi.Descriptor.Digest, err))
	}
	a.fs = fs
	a.run()
	return a.finish(), nil
}

// archInfo is what the loader search depends on for one supported architecture.
type archInfo struct {
	machine  string // for messages
	triplet  string // Debian multiarch directory
	glibcLD  string // the glibc loader's canonical path
	muslLD   string // the musl loader's path
	minGlibc version
}

var archs = map[string]archInfo{
	"amd64": {machine: "x86-64", triplet: "x86_64-linux-gnu", glibcLD: "/lib64/ld-linux-x86-64.so.2",
		muslLD: "/lib/ld-musl-x86_64.so.1", minGlibc: version{2, 17}},
	"arm64": {machine: "aarch64", triplet: "aarch64-linux-gnu", glibcLD: "/lib/ld-linux-aarch64.so.1",
		muslLD: "/lib/ld-musl-aarch64.so.1", minGlibc: version{2, 17}},
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// finish sets the verdict from the findings.
func (a *analysis) finish() Result {
	for _, f := range a.result.Platform.Findings {
		if f.Severity == report.Error {
			a.result.Platform.Verdict = report.Incompatible
		}
	}
	return a.result
}

func (a *analysis) add(code, severity, p, msg, hint string) {
	a.result.Platform.Findings = append(a.result.Platform.Findings,
		report.Finding{Code: code, Severity: severity, Message: msg, Path: p, Hint: hint})
}

func isAbs(p string) bool { return path.IsAbs(p) }
