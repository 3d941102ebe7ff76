package instrument

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

// CodeAlreadyInstrumented rejects a platform whose image already carries the probe layer.
const CodeAlreadyInstrumented = "instrument.already-instrumented"

// CodePlatformSkipped marks a platform left out of the result by --skip-incompatible-platforms.
const CodePlatformSkipped = "instrument.platform-skipped"

// Options are the inputs of one `crs-ci instrument` run.
type Options struct {
	Image      string // source reference (any transport image.Open reads)
	PolicyFile string // crs-ci/v1 policy YAML
	Mode       string // "" keeps the policy's mode; enforce | audit | off overrides it
	Platform   string // "" = all platforms of an index (the image itself when it is not an index)

	To        string // target reference; "" = the source's REPO:TAG<suffix>
	TagSuffix string // default DefaultTagSuffix
	Output    string // also write the result to oci:DIR[:REF] or oci-archive:FILE[:REF]
	DryRun    bool   // push nothing

	SkipIncompatiblePlatforms bool

	Compat        compat.Options // Compat.Probes (nil: the embedded probes) is also what goes into the layer
	Keychain      authn.Keychain
	RemoteOptions []remote.Option
	Progress      io.Writer
}

// Run checks the image and the policy, and when both pass builds the instrumented image and writes it. The
// report is returned whenever one exists, also with an error. A rejection (incompatible image, invalid
// policy) is an exitcode.Rejected error and nothing is written anywhere.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	src, err := image.ParseReference(o.Image)
	if err != nil {
		return nil, err
	}
	var target, output image.Reference
	if o.Output != "" {
		if output, err = image.ParseReference(o.Output); err != nil {
			return nil, exitcode.Usagef("--output: %v", err)
		}
		if output.Transport != image.OCI && output.Transport != image.OCIArchive {
			return nil, exitcode.Usagef("--output %s: want oci:DIR[:REF] or oci-archive:FILE[:REF]", o.Output)
		}
	}
	target, err = TargetRef(src, o.To, o.TagSuffix)
	if err != nil {
		if !o.DryRun || o.To != "" || o.Output == "" {
			return nil, err
		}
		target = output // a dry run of a local source: the output is the only name the result has
	}
	if o.Output != "" && output.Tag == "" {
		output.Tag = tagOf(target) // an unnamed --output gets the target's tag as its ref name
	}
	if !o.DryRun && target.Transport != image.Docker && target.Transport != image.OCI && target.Transport != image.OCIArchive {
		return nil, exitcode.Usagef("cannot write the result to %s", target)
	}

	// 1. The policy: parsed, validated, compiled (no I/O beyond reading the file).
	pf, compiled, err := compilePolicy(o.PolicyFile, o.Mode)
	if err != nil {
		return nil, err
	}

	// 2. The image: opened and checked (every selected platform).
	platform := o.Platform
	if platform == "" {
		platform = image.PlatformAll
	}
	source, err := image.Open(ctx, o.Image, image.Options{Platform: platform, Keychain: o.Keychain,
		RemoteOptions: o.RemoteOptions, Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	rep, results, err := compat.Check(ctx, source, o.Compat)
	if err != nil {
		return nil, err
	}
	rep.Command = "instrument"
	rep.Policies = []report.PolicyFile{pf}

	// 3. The verdicts: any rejection ends here, before anything is written.
	var keep []PlatformInput
	var rejected []string
	for i, r := range results {
		ok := r.Compatible()
		if sha, done := instrumentedBy(r.Image); ok && done {
			ok = false
			rep.Platforms[i].Verdict = report.Incompatible
			rep.Platforms[i].Findings = append(rep.Platforms[i].Findings, report.Finding{
				Code: CodeAlreadyInstrumented, Severity: report.Error, Path: probe.LibraryPath,
				Message: fmt.Sprintf("%s is already instrumented by crs-ci (policy sha256:%s)", r.Platform.Platform, sha),
				Hint:    "instrument the original image, not its -layered result",
			})
		}
		switch {
		case ok:
			keep = append(keep, PlatformInput{Image: r.Image, Libc: r.Libc, Arch: r.Arch, Preload: r.Preload})
		case o.SkipIncompatiblePlatforms:
			rep.Platforms[i].Findings = append(rep.Platforms[i].Findings, report.Finding{
				Code: CodePlatformSkipped, Severity: report.Warning,
				Message: fmt.Sprintf("%s is incompatible and was left out of the instrumented image (--skip-incompatible-platforms)", r.Platform.Platform),
			})
		default:
			rejected = append(rejected, r.Platform.Platform)
		}
	}
	switch {
	case pf.Verdict == report.Invalid:
		rep.Verdict = report.Invalid
		return rep, exitcode.Rejectedf("policy %s is invalid: nothing was instrumented", o.PolicyFile)
	case len(rejected) > 0:
		rep.Verdict = report.Incompatible
		return rep, exitcode.Rejectedf("%s: incompatible platform(s) %v: nothing was instrumented (--skip-incompatible-platforms leaves them out)", src, rejected)
	case len(keep) == 0:
		rep.Verdict = report.Incompatible
		return rep, exitcode.Rejectedf("%s: no compatible platform: nothing was instrumented", src)
	}
	rep.Verdict = report.Compatible

	// 4. Build and write.
	built, err := Build(BuildInput{
		Source: source, BaseName: baseName(src), Platforms: keep,
		AsIndex: source.Index != nil && platform == image.PlatformAll,
		Policy:  compiled, PolicyName: pf.Name, PolicySHA: pf.SHA256, ProbeFor: o.Compat.Probes,
	})
	if err != nil {
		return rep, err
	}
	rep.Layered = &report.Layered{Ref: target.String(), Digest: built.Digest.String(), Layers: built.Layers}
	wopts := image.WriteOptions{Keychain: o.Keychain, RemoteOptions: o.RemoteOptions, Progress: o.Progress}
	if o.Output != "" {
		if _, err := image.Write(ctx, output, built.Image, built.Index, wopts); err != nil {
			return rep, err
		}
	}
	if !o.DryRun {
		if _, err := image.Write(ctx, target, built.Image, built.Index, wopts); err != nil {
			return rep, err
		}
		rep.Layered.Pushed = true
	}
	return rep, nil
}

// compilePolicy validates and compiles the policy file; findings go in the report entry, I/O errors are errors.
func compilePolicy(file, mode string) (report.PolicyFile, []byte, error) {
	pf := report.PolicyFile{File: file, Verdict: report.Valid, Findings: []report.Finding{}}
	if file == "" {
		return pf, nil, exitcode.Usagef("--policy FILE is required")
	}
	p, fs, err := policy.ParseFile(file)
	if err != nil {
		return pf, nil, exitcode.WithCode(exitcode.Usage, err)
	}
	if fs != nil {
		pf.Findings = fs
	}
	if p != nil {
		pf.Name = p.Name()
	}
	if policy.HasErrors(fs) || p == nil {
		pf.Verdict = report.Invalid
		return pf, nil, nil
	}
	if mode != "" {
		if err := p.SetMode(mode); err != nil {
			return pf, nil, exitcode.Usagef("--mode: %v", err)
		}
	}
	b, err := policy.Compile(p)
	if err != nil {
		return pf, nil, exitcode.Operationalf("compiling policy %s: %w", file, err)
	}
	sum := sha256.Sum256(b)
	pf.SHA256 = hex.EncodeToString(sum[:])
	return pf, b, nil
}

// instrumentedBy reports whether an image's config carries crs-ci's policy label (it was instrumented).
func instrumentedBy(pi image.PlatformImage) (string, bool) {
	cf, err := pi.Image.ConfigFile()
	if err != nil || cf == nil {
		return "", false
	}
	sha, ok := cf.Config.Labels[LabelPolicySHA256]
	return strings.TrimPrefix(sha, "sha256:"), ok
}

// tagOf is the tag a target reference names ("" when none).
func tagOf(r image.Reference) string {
	switch r.Transport {
	case image.Docker:
		if n, err := name.NewTag(r.Name); err == nil {
			return n.TagStr()
		}
	case image.OCI, image.OCIArchive:
		return r.Tag
	}
	return ""
}

// baseName is the source as recorded in org.opencontainers.image.base.name.
func baseName(src image.Reference) string {
	if src.Transport == image.Docker {
		return src.Name
	}
	return src.String()
}
