package instrument

import (
	"context"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/probe"
)

// TestInstrumentLocal instruments images held in OCI layouts (no registry): the default target of oci:DIR:REF
// is oci:DIR:REF-layered in the same layout, --mode overrides the policy's mode in the compiled policy,
// --platform picks one platform of an index and gives a single image, and oci-archive output works.
func TestInstrumentLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	amd, arm := minimalAMD64(t), minimalARM64(t)
	if err := p.AppendImage(amd, layout.WithAnnotations(map[string]string{image.RefNameAnnotation: "app"})); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{image.RefNameAnnotation: "multi"})); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	policyBin := func(t *testing.T, img v1.Image) []byte {
		layers, _ := img.Layers()
		rc, err := layers[len(layers)-1].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		for _, e := range readTar(t, rc) {
			if "/"+e.hdr.Name == probe.PolicyPath {
				return e.data
			}
		}
		t.Fatal("no policy.bin in the layer")
		return nil
	}

	t.Run("oci source, default target, --mode audit", func(t *testing.T) {
		o := baseOptions(t, "oci:"+dir+":app", nil)
		o.Mode = "audit"
		rep, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Layered.Ref != "oci:"+dir+":app-layered" || !rep.Layered.Pushed {
			t.Fatalf("layered %+v", rep.Layered)
		}
		p, _ := layout.FromPath(dir)
		imgs, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, _ := imgs.IndexManifest()
		var found *v1.Descriptor
		for i, d := range im.Manifests {
			if match.Annotation(image.RefNameAnnotation, "app-layered")(d) {
				found = &im.Manifests[i]
			}
		}
		if found == nil || found.Digest.String() != rep.Layered.Digest {
			t.Fatalf("layout has no app-layered with digest %s: %+v", rep.Layered.Digest, im.Manifests)
		}
		img, _ := imgs.Image(found.Digest)
		if b := policyBin(t, img); len(b) < 65 || b[64] != 1 {
			t.Errorf("compiled mode byte = %v, want 1 (audit)", b[64:65])
		}
	})

	t.Run("--platform picks one platform of an index", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "arm.tar")
		o := baseOptions(t, "oci:"+dir+":multi", nil)
		o.Platform, o.DryRun, o.Output = "linux/arm64", true, "oci-archive:"+out
		rep, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		src, err := image.Open(ctx, "oci-archive:"+out+":multi-layered", image.Options{Platform: "linux/arm64"})
		if err != nil {
			t.Fatal(err)
		}
		if src.Index != nil || src.Digest.String() != rep.Layered.Digest || len(src.Images) != 1 {
			t.Fatalf("want a single image %s, got index=%v digest %s", rep.Layered.Digest, src.Index != nil, src.Digest)
		}
		cf, _ := src.Images[0].Image.ConfigFile()
		art, _ := testProbesFor(t)(probe.Glibc, "arm64")
		if cf.Architecture != "arm64" || cf.Config.Labels[LabelProbeDigest] != art.Digest {
			t.Errorf("arch %s, probe label %s", cf.Architecture, cf.Config.Labels[LabelProbeDigest])
		}
		if b := policyBin(t, src.Images[0].Image); b[64] != 2 {
			t.Errorf("compiled mode byte = %d, want 2 (the policy's enforce)", b[64])
		}
	})

	t.Run("bad --mode", func(t *testing.T) {
		o := baseOptions(t, "oci:"+dir+":app", nil)
		o.Mode, o.TagSuffix = "loud", "-bad"
		if _, err := Run(ctx, o); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("exit %d (%v), want 2", exitcode.Of(err), err)
		}
	})
}
