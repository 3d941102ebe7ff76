package instrument

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
)

func synthetic(t *testing.T, arch string, docker bool) v1.Image {
	cfg := v1.Config{Entrypoint: []string{"/usr/bin/app"}, Cmd: []string{"--serve"}, User: "1000:1000",
		Env: []string{"PATH=/usr/bin:/bin"}, Labels: map[string]string{"maintainer": "team"}, WorkingDir: "/srv"}
	img := testenv.ImageFromLayers(t, cfg, v1.Platform{OS: "linux", Architecture: arch},
		testenv.LayerFromFiles(testenv.Dir("/usr"), testenv.Exec("/usr/bin/app", []byte("app-"+arch))),
		testenv.LayerFromFiles(testenv.Reg("/etc/app.conf", []byte("x"))))
	if docker {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	}
	return img
}

func platformImage(t *testing.T, img v1.Image, anns map[string]string) image.PlatformImage {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	mt, _ := img.MediaType()
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture}
	return image.PlatformImage{Platform: p, Image: img,
		Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Platform: &p, Annotations: anns}}
}

// TestBuild checks the instrumented image without a registry: base layers untouched, one layer added with
// its history entry, labels recorded, the rest of the config untouched, musl's LD_PRELOAD, docker media
// types kept, the same digest from the same inputs, and an index keeping platform order and annotations.
func TestBuild(t *testing.T) {
	probes := testProbesFor(t)
	pol := []byte("CRSCIPOL-test-policy")
	tests := []struct {
		name   string
		libc   string
		docker bool
	}{
		{"glibc OCI", probe.Glibc, false},
		{"glibc docker schema2", probe.Glibc, true},
		{"musl OCI", probe.Musl, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := synthetic(t, "amd64", tt.docker)
			pi := platformImage(t, base, nil)
			src := &image.Source{Ref: image.Reference{Transport: image.Docker, Name: "127.0.0.1:5000/app:1"}, Images: []image.PlatformImage{pi}, Digest: pi.Descriptor.Digest}
			in := BuildInput{Source: src, BaseName: "127.0.0.1:5000/app:1", Platforms: []PlatformInput{{Image: pi, Libc: tt.libc, Arch: "amd64", Preload: []string{"/usr/lib/libold.so"}}},
				Policy: pol, PolicyName: "web-api", PolicySHA: "ab12", ProbeFor: probes}
			b1, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if b1.Digest != b2.Digest {
				t.Errorf("not reproducible: %s vs %s", b1.Digest, b2.Digest)
			}
			img := b1.Image
			baseLayers, _ := base.Layers()
			layers, _ := img.Layers()
			if len(layers) != len(baseLayers)+1 {
				t.Fatalf("%d layers, want %d", len(layers), len(baseLayers)+1)
			}
			for i := range baseLayers {
				d1, _ := baseLayers[i].Digest()
				d2, _ := layers[i].Digest()
				if d1 != d2 {
					t.Errorf("layer %d changed: %s → %s", i, d1, d2)
				}
			}
			added := layers[len(layers)-1]
			mt, _ := added.MediaType()
			wantMT := types.OCILayer
			if tt.docker {
				wantMT = types.DockerLayer
			}
			if mt != wantMT {
				t.Errorf("added layer media type %s, want %s", mt, wantMT)
			}
			if d, _ := added.Digest(); b1.Layers[0].Digest != d.String() {
				t.Errorf("report layer digest %s, layer %s", b1.Layers[0].Digest, d)
			}
			rc, _ := added.Uncompressed()
			entries := readTar(t, rc)
			art, _ := probes(tt.libc, "amd64")
			var sawProbe, sawPreload bool
			for _, e := range entries {
				switch "/" + e.hdr.Name {
				case probe.LibraryPath:
					sawProbe = bytes.Equal(e.data, art.Bytes)
				case probe.PreloadPath:
					sawPreload = true
					if string(e.data) != "/usr/lib/crs-ci/probe.so\n/usr/lib/libold.so\n" {
						t.Errorf("preload %q", e.data)
					}
				}
			}
			if !sawProbe {
				t.Error("the layer does not hold the platform's probe")
			}
			if sawPreload == (tt.libc == probe.Musl) {
				t.Errorf("ld.so.preload present=%v for %s", sawPreload, tt.libc)
			}

			bcf, _ := base.ConfigFile()
			cf, _ := img.ConfigFile()
			if strings.Join(cf.Config.Entrypoint, " ") != "/usr/bin/app" || strings.Join(cf.Config.Cmd, " ") != "--serve" ||
				cf.Config.User != "1000:1000" || cf.Config.WorkingDir != "/srv" {
				t.Errorf("config changed: %+v", cf.Config)
			}
			wantLabels := map[string]string{
				"maintainer": "team", LabelPolicyName: "web-api", LabelPolicySHA256: "sha256:ab12",
				LabelProbeDigest: art.Digest, LabelProbeLibc: tt.libc, LabelBaseName: "127.0.0.1:5000/app:1",
				LabelBaseDigest: pi.Descriptor.Digest.String(),
			}
			for k, v := range wantLabels {
				if cf.Config.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
				}
			}
			if cf.Config.Labels[LabelVersion] == "" || cf.Config.Labels[LabelProbeVersion] == "" {
				t.Error("version labels missing")
			}
			env := strings.Join(cf.Config.Env, " ")
			if hasLD := strings.Contains(env, "LD_PRELOAD=/usr/lib/crs-ci/probe.so"); hasLD != (tt.libc == probe.Musl) {
				t.Errorf("env %q (libc %s)", env, tt.libc)
			}
			if len(cf.History) != len(bcf.History)+1 || !strings.HasPrefix(cf.History[len(cf.History)-1].CreatedBy, historyCreatedBy) {
				t.Errorf("history: %+v", cf.History)
			}
			if len(cf.RootFS.DiffIDs) != len(baseLayers)+1 {
				t.Errorf("diff ids: %d", len(cf.RootFS.DiffIDs))
			}
			m, _ := img.Manifest()
			if !tt.docker && m.Annotations[LabelBaseDigest] != pi.Descriptor.Digest.String() {
				t.Errorf("manifest annotations %v", m.Annotations)
			}
			if tt.docker && len(m.Annotations) != 0 {
				t.Errorf("docker manifest got annotations %v", m.Annotations)
			}
		})
	}

	t.Run("index keeps order and annotations", func(t *testing.T) {
		arm := platformImage(t, synthetic(t, "arm64", false), map[string]string{"org.example.flavour": "arm"})
		amd := platformImage(t, synthetic(t, "amd64", false), map[string]string{"org.example.flavour": "amd"})
		srcIdx := mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: arm.Image, Descriptor: arm.Descriptor},
			mutate.IndexAddendum{Add: amd.Image, Descriptor: amd.Descriptor})
		srcIdx = mutate.Annotations(srcIdx, map[string]string{"org.opencontainers.image.source": "https://example.com/app"}).(v1.ImageIndex)
		sd, _ := srcIdx.Digest()
		src := &image.Source{Ref: image.Reference{Transport: image.Docker, Name: "127.0.0.1:5000/app:1"}, Index: srcIdx, Digest: sd,
			Images: []image.PlatformImage{arm, amd}}
		b, err := Build(BuildInput{Source: src, BaseName: "127.0.0.1:5000/app:1", AsIndex: true, Policy: pol, PolicyName: "p", PolicySHA: "00",
			ProbeFor: probes, Platforms: []PlatformInput{{Image: arm, Libc: probe.Glibc, Arch: "arm64"}, {Image: amd, Libc: probe.Glibc, Arch: "amd64"}}})
		if err != nil {
			t.Fatal(err)
		}
		im, err := b.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "arm64" || im.Manifests[1].Platform.Architecture != "amd64" {
			t.Fatalf("manifests %+v", im.Manifests)
		}
		for i, want := range []string{"arm", "amd"} {
			if im.Manifests[i].Annotations["org.example.flavour"] != want {
				t.Errorf("manifest %d annotations %v", i, im.Manifests[i].Annotations)
			}
			img, err := b.Index.Image(im.Manifests[i].Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, _ := img.ConfigFile()
			art, _ := probes(probe.Glibc, cf.Architecture)
			if cf.Config.Labels[LabelProbeDigest] != art.Digest {
				t.Errorf("%s: probe digest label %s, want its own probe %s", cf.Architecture, cf.Config.Labels[LabelProbeDigest], art.Digest)
			}
		}
		if im.Annotations["org.opencontainers.image.source"] != "https://example.com/app" || im.Annotations[LabelBaseDigest] != sd.String() {
			t.Errorf("index annotations %v", im.Annotations)
		}
		if len(b.Layers) != 2 || b.Layers[0].Platform != "linux/arm64" {
			t.Errorf("layers %+v", b.Layers)
		}
	})
}
