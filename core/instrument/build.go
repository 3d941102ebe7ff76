package instrument

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
	"github.com/crs-ci/crs-ci/core/version"
)

// Labels (in the image config) and annotations (on OCI manifests and indexes) recording what was done.
const (
	LabelVersion      = "io.crs-ci.version"       // crs-ci release that instrumented the image
	LabelProbeVersion = "io.crs-ci.probe.version" // release the embedded probe was built with
	LabelProbeDigest  = "io.crs-ci.probe.digest"  // sha256 of the probe library in the layer
	LabelProbeLibc    = "io.crs-ci.probe.libc"    // glibc or musl
	LabelPolicyName   = "io.crs-ci.policy.name"   // metadata.name of the policy
	LabelPolicySHA256 = "io.crs-ci.policy.sha256" // sha256 of the compiled policy file (its identity)
	LabelBaseName     = "org.opencontainers.image.base.name"
	LabelBaseDigest   = "org.opencontainers.image.base.digest"
	EnvPreloadName    = "LD_PRELOAD"
	historyCreatedBy  = "crs-ci instrument"
	maxPreloadEntries = 64
)

// PlatformInput is one platform to instrument, with what the compatibility check found.
type PlatformInput struct {
	Image   image.PlatformImage
	Libc    string   // probe.Glibc or probe.Musl
	Arch    string   // OCI architecture of the probe: amd64, arm64
	Preload []string // entries of the image's /etc/ld.so.preload (nil: none)
}

// BuildInput is everything Build needs.
type BuildInput struct {
	Source     *image.Source
	BaseName   string // recorded as org.opencontainers.image.base.name (the source reference)
	Platforms  []PlatformInput
	AsIndex    bool // write an index (the source is an index and every platform was asked for)
	Policy     []byte
	PolicyName string
	PolicySHA  string                                           // hex sha256 of Policy
	ProbeFor   func(libc, arch string) (*probe.Artifact, error) // default probe.For
}

// Built is the instrumented image or index, not yet written anywhere.
type Built struct {
	Image  v1.Image      // set when a single image was built
	Index  v1.ImageIndex // set when an index was built
	Digest v1.Hash
	Layers []report.Layer // the added layer of each platform
}

// Build adds the probe layer to each platform and assembles the result. It reads only manifests and
// configs of the source; layer contents are neither downloaded nor re-compressed.
func Build(in BuildInput) (*Built, error) {
	if len(in.Platforms) == 0 {
		return nil, exitcode.Rejectedf("no platform left to instrument")
	}
	probeFor := in.ProbeFor
	if probeFor == nil {
		probeFor = probe.For
	}
	out := &Built{}
	var adds []mutate.IndexAddendum
	for _, p := range in.Platforms {
		img, layer, err := instrumentImage(p, in, probeFor)
		if err != nil {
			return nil, err
		}
		out.Layers = append(out.Layers, layer)
		if !in.AsIndex {
			out.Image = img
			break
		}
		desc := v1.Descriptor{Annotations: p.Image.Descriptor.Annotations}
		plat := p.Image.Platform
		if p.Image.Descriptor.Platform != nil {
			plat = *p.Image.Descriptor.Platform
		}
		desc.Platform = &plat
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: desc})
	}
	if in.AsIndex {
		idx, err := buildIndex(in, adds)
		if err != nil {
			return nil, err
		}
		out.Index = idx
		out.Digest, err = idx.Digest()
		if err != nil {
			return nil, exitcode.Operationalf("computing the index digest: %w", err)
		}
		return out, nil
	}
	var err error
	if out.Digest, err = out.Image.Digest(); err != nil {
		return nil, exitcode.Operationalf("computing the image digest: %w", err)
	}
	return out, nil
}

func buildIndex(in BuildInput, adds []mutate.IndexAddendum) (v1.ImageIndex, error) {
	mt := types.OCIImageIndex
	var anns map[string]string
	if in.Source.Index != nil {
		var err error
		if mt, err = in.Source.Index.MediaType(); err != nil {
			return nil, exitcode.Operationalf("reading the source index: %w", err)
		}
		im, err := in.Source.Index.IndexManifest()
		if err != nil {
			return nil, exitcode.Operationalf("reading the source index: %w", err)
		}
		anns = map[string]string{}
		for k, v := range im.Annotations {
			anns[k] = v
		}
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mt), adds...)
	if mt == types.OCIImageIndex {
		if anns == nil {
			anns = map[string]string{}
		}
		anns[LabelBaseName] = in.BaseName
		anns[LabelBaseDigest] = in.Source.Digest.String()
	}
	if len(anns) > 0 {
		idx = mutate.Annotations(idx, anns).(v1.ImageIndex)
	}
	return idx, nil
}

// instrumentImage appends the probe layer to one platform's image and records what was done in its config.
func instrumentImage(p PlatformInput, in BuildInput, probeFor func(string, string) (*probe.Artifact, error)) (v1.Image, report.Layer, error) {
	plat := platformString(p.Image.Platform)
	fail := func(err error) (v1.Image, report.Layer, error) {
		return nil, report.Layer{}, exitcode.WithCode(exitcode.Operational, fmt.Errorf("instrumenting %s: %w", plat, err))
	}
	art, err := probeFor(p.Libc, p.Arch)
	if err != nil {
		return fail(err)
	}
	base := p.Image.Image
	mt, err := base.MediaType()
	if err != nil {
		return fail(fmt.Errorf("reading the manifest media type: %w", err))
	}
	layerMT := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		layerMT = types.DockerLayer
	}
	if len(p.Preload) > maxPreloadEntries {
		return fail(fmt.Errorf("/etc/ld.so.preload has %d entries (more than %d)", len(p.Preload), maxPreloadEntries))
	}
	layer, err := Layer(LayerInput{Probe: art.Bytes, Policy: in.Policy, Preload: p.Preload, Musl: p.Libc == probe.Musl}, layerMT)
	if err != nil {
		return fail(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return fail(fmt.Errorf("reading the config: %w", err))
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: layerMT,
		History: v1.History{
			Created:   cf.Created, // the base's time: the same inputs give the same digest
			CreatedBy: fmt.Sprintf("%s: probe %s (%s/%s), policy %q sha256:%s", historyCreatedBy, art.Digest, p.Libc, p.Arch, in.PolicyName, in.PolicySHA),
			Comment:   "crs-ci " + version.Version,
		},
	})
	if err != nil {
		return fail(fmt.Errorf("appending the probe layer: %w", err))
	}
	cfg := *cf.Config.DeepCopy()
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	labels[LabelVersion] = version.Version
	labels[LabelProbeVersion] = version.Version
	labels[LabelProbeDigest] = art.Digest
	labels[LabelProbeLibc] = p.Libc
	labels[LabelPolicyName] = in.PolicyName
	labels[LabelPolicySHA256] = "sha256:" + in.PolicySHA
	labels[LabelBaseName] = in.BaseName
	labels[LabelBaseDigest] = p.Image.Descriptor.Digest.String()
	cfg.Labels = labels
	if p.Libc == probe.Musl {
		cfg.Env = withPreloadEnv(cfg.Env)
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		return fail(fmt.Errorf("writing the config: %w", err))
	}
	if mt == types.OCIManifestSchema1 {
		img = mutate.Annotations(img, map[string]string{
			LabelBaseName:   in.BaseName,
			LabelBaseDigest: p.Image.Descriptor.Digest.String(),
		}).(v1.Image)
	}
	d, err := layer.Digest()
	if err != nil {
		return fail(err)
	}
	size, err := layer.Size()
	if err != nil {
		return fail(err)
	}
	return img, report.Layer{Platform: plat, Digest: d.String(), Size: size}, nil
}

// withPreloadEnv puts the probe first in LD_PRELOAD, keeping any libraries the image already preloads.
func withPreloadEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if k != EnvPreloadName {
			out = append(out, e)
			continue
		}
		found = true
		parts := []string{probe.LibraryPath}
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ' ' || r == '\t' }) {
			if f != probe.LibraryPath {
				parts = append(parts, f)
			}
		}
		out = append(out, EnvPreloadName+"="+strings.Join(parts, ":"))
	}
	if !found {
		out = append(out, EnvPreloadName+"="+probe.LibraryPath)
	}
	return out
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
