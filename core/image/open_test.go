package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// tinyImage is a one-layer image for platform p whose /etc/platform says p.
func tinyImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	return testenv.ImageFromLayers(t, v1.Config{Entrypoint: []string{"/bin/app"}}, p,
		testenv.LayerFromFiles(testenv.Reg("/etc/platform", []byte(p.String()))))
}

// multiArch is an index of linux/amd64, linux/arm64, linux/arm/v7, plus a buildkit attestation manifest
// (platform unknown/unknown), which is never selected.
func multiArch(t *testing.T) (v1.ImageIndex, map[string]v1.Hash) {
	t.Helper()
	arm := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	imgs := []v1.Image{tinyImage(t, amd64), tinyImage(t, arm64), tinyImage(t, arm)}
	idx := testenv.Index(t, imgs...)
	att := tinyImage(t, v1.Platform{OS: "unknown", Architecture: "unknown"})
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		MediaType:   types.OCIManifestSchema1,
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
	}})
	digests := map[string]v1.Hash{}
	for _, img := range imgs {
		cf, _ := img.ConfigFile()
		d, _ := img.Digest()
		digests[cf.Platform().String()] = d
	}
	return idx, digests
}

func TestOpenIndexPlatforms(t *testing.T) {
	idx, digests := multiArch(t)
	dir := t.TempDir()
	ref := testenv.WriteOCI(t, idx, dir, "multi")
	idxDigest, _ := idx.Digest()
	tests := []struct {
		platform string
		want     []string // selected platforms, in order
		err      string   // a usage error containing this
	}{
		{"", []string{runtime.GOOS + "/" + runtime.GOARCH}, ""},
		{"linux/amd64", []string{"linux/amd64"}, ""},
		{"linux/arm64", []string{"linux/arm64"}, ""},
		{"linux/arm64/v8", []string{"linux/arm64"}, ""},
		{"linux/arm/v7", []string{"linux/arm/v7"}, ""},
		{"linux/arm", []string{"linux/arm/v7"}, ""},
		{"all", []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, ""},
		{"linux/s390x", nil, "has no linux/s390x image; it has: linux/amd64, linux/arm64, linux/arm/v7"},
		{"linux/arm/v6", nil, "has no linux/arm/v6 image"},
		{"windows/amd64", nil, "has no windows/amd64 image"},
		{"linux", nil, "want OS/ARCH"},
	}
	for _, tt := range tests {
		src, err := image.Open(context.Background(), ref, image.Options{Platform: tt.platform})
		if tt.err != "" {
			if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("platform %q: %v; want a usage error containing %q", tt.platform, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("platform %q: %v", tt.platform, err)
			continue
		}
		if src.Index == nil || src.Digest != idxDigest {
			t.Errorf("platform %q: index %v digest %s, want the index %s", tt.platform, src.Index != nil, src.Digest, idxDigest)
		}
		var got []string
		for _, pi := range src.Images {
			got = append(got, pi.Platform.String())
			d, _ := pi.Image.Digest()
			if d != digests[pi.Platform.String()] || pi.Descriptor.Digest != d {
				t.Errorf("platform %q: %s has digest %s (descriptor %s), want %s", tt.platform, pi.Platform, d, pi.Descriptor.Digest, digests[pi.Platform.String()])
			}
			fs, err := image.Scan(context.Background(), pi.Image, image.ScanOptions{Extractor: allExtractor{}})
			if err != nil {
				t.Fatalf("Scan %s: %v", pi.Platform, err)
			}
			if e, ok := fs.Lookup("/etc/platform"); !ok || string(e.Facts) != pi.Platform.String() {
				t.Errorf("platform %q: the %s image's /etc/platform is %+v", tt.platform, pi.Platform, e)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("platform %q selected %v, want %v", tt.platform, got, tt.want)
		}
	}
}

// TestOpenNestedIndex: an index whose entry is another index (as `docker buildx` pushes to a layout) is
// flattened; the top-level digest is the outer index.
func TestOpenNestedIndex(t *testing.T) {
	inner, digests := multiArch(t)
	outer := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: inner, Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex}})
	ref := testenv.WriteOCI(t, outer, t.TempDir(), "")
	src, err := image.Open(context.Background(), ref, image.Options{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	od, _ := outer.Digest()
	if src.Digest != od || len(src.Images) != 1 || src.Images[0].Descriptor.Digest != digests["linux/arm64"] {
		t.Errorf("nested index: digest %s images %+v", src.Digest, src.Images)
	}
}

type allExtractor struct{}

func (allExtractor) ID() string { return "all" }
func (allExtractor) Want(string, *tar.Header) bool {
	return true
}
func (allExtractor) Extract(_ string, _ *tar.Header, r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

func TestOpenSingleImagePlatform(t *testing.T) {
	ref := testenv.WriteOCI(t, tinyImage(t, arm64), t.TempDir(), "")
	for _, p := range []string{"", "all", "linux/arm64"} {
		src, err := image.Open(context.Background(), ref, image.Options{Platform: p})
		if err != nil || len(src.Images) != 1 || src.Images[0].Platform.String() != "linux/arm64" || src.Index != nil {
			t.Errorf("platform %q: %+v %v", p, src, err)
			continue
		}
		if d := src.Images[0].Descriptor; d.Digest != src.Digest || d.Platform == nil || d.Platform.Architecture != "arm64" {
			t.Errorf("platform %q: descriptor %+v", p, d)
		}
	}
	_, err := image.Open(context.Background(), ref, image.Options{Platform: "linux/amd64"})
	if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "single linux/arm64 image, not linux/amd64") {
		t.Errorf("asking a linux/arm64 image for linux/amd64: %v", err)
	}
}

func TestOpenOCIRefNames(t *testing.T) {
	a, b := tinyImage(t, amd64), tinyImage(t, arm64)
	da, _ := a.Digest()
	db, _ := b.Digest()
	two := t.TempDir()
	testenv.WriteOCI(t, a, two, "app-a")
	testenv.WriteOCI(t, b, two, "app-b")
	one := t.TempDir()
	testenv.WriteOCI(t, b, one, "")
	tests := []struct {
		ref  string
		want v1.Hash
		err  string
	}{
		{"oci:" + two + ":app-a", da, ""},
		{"oci:" + two + ":app-b", db, ""},
		{"oci:" + one, db, ""},
		{"oci:" + two, v1.Hash{}, "holds 2 manifests: name one as oci:" + two + ":REF (ref names: app-a, app-b)"},
		{"oci:" + two + ":app-c", v1.Hash{}, `no manifest named "app-c" (ref names: app-a, app-b)`},
		{"oci:" + one + ":x", v1.Hash{}, "(ref names: (unnamed " + db.String() + "))"},
	}
	for _, tt := range tests {
		src, err := image.Open(context.Background(), tt.ref, image.Options{Platform: "all"})
		if tt.err != "" {
			if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Open(%s): %v; want a usage error containing %q", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil || src.Digest != tt.want {
			t.Errorf("Open(%s) = %+v, %v; want digest %s", tt.ref, src, err, tt.want)
		}
	}
}

// TestOpenArchives: the same image as an OCI layout, an OCI archive and a docker archive gives the same
// files; the docker archive is identified by its image ID.
func TestOpenArchives(t *testing.T) {
	img := testenv.AddLayer(tinyImage(t, amd64), testenv.Symlink("/bin/app", "/usr/bin/app"), testenv.Exec("/usr/bin/app", []byte("app")))
	dir := t.TempDir()
	digest, _ := img.Digest()
	configID, _ := img.ConfigName()
	refs := []struct {
		ref  string
		want v1.Hash
	}{
		{testenv.WriteOCI(t, img, filepath.Join(dir, "layout"), "app"), digest},
		{testenv.WriteOCIArchive(t, img, filepath.Join(dir, "app.oci.tar"), "app"), digest},
		{testenv.WriteOCIArchive(t, img, filepath.Join(dir, "unnamed.oci.tar"), ""), digest},
		{testenv.WriteDockerArchive(t, img, filepath.Join(dir, "app.docker.tar"), "registry.example.com/app:1.0"), configID},
		{"docker-archive:" + filepath.Join(dir, "app.docker.tar") + ":registry.example.com/app:1.0", configID},
	}
	var first []string
	for _, r := range refs {
		var progress bytes.Buffer
		src, err := image.Open(context.Background(), r.ref, image.Options{Progress: &progress})
		if err != nil {
			t.Errorf("Open(%s): %v", r.ref, err)
			continue
		}
		if src.Digest != r.want || len(src.Images) != 1 || src.Images[0].Platform.String() != "linux/amd64" {
			t.Errorf("Open(%s): digest %s (want %s), %d images", r.ref, src.Digest, r.want, len(src.Images))
		}
		if !strings.Contains(progress.String(), "platforms: linux/amd64") {
			t.Errorf("Open(%s) progress: %q", r.ref, progress.String())
		}
		progress.Reset()
		fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Progress: &progress})
		if err != nil {
			t.Errorf("Scan(%s): %v", r.ref, err)
			continue
		}
		if n := strings.Count(progress.String(), "\n"); n != 2 || !strings.Contains(progress.String(), "layer 2/2") {
			t.Errorf("Scan(%s) progress: %q, want a line per layer", r.ref, progress.String())
		}
		var paths []string
		fs.Walk(func(e *image.Entry) error { paths = append(paths, e.Path+":"+string(e.Type)); return nil })
		if first == nil {
			first = paths
		} else if strings.Join(paths, " ") != strings.Join(first, " ") {
			t.Errorf("Scan(%s) = %v, want %v", r.ref, paths, first)
		}
		if p, _, err := fs.Resolve("/bin/app"); err != nil || p != "/usr/bin/app" {
			t.Errorf("Scan(%s): /bin/app resolves to %q, %v", r.ref, p, err)
		}
	}
	// Errors: a gzip-compressed OCI archive, a file that is not an archive, a docker archive of two images.
	gzFile := filepath.Join(dir, "app.oci.tar.gz")
	raw, _ := os.ReadFile(filepath.Join(dir, "app.oci.tar"))
	os.WriteFile(gzFile, gz(raw), 0o644)
	two := filepath.Join(dir, "two.docker.tar")
	ta, _ := name.NewTag("example.com/a:1")
	tb, _ := name.NewTag("example.com/b:1")
	if err := tarball.MultiRefWriteToFile(two, map[name.Reference]v1.Image{ta: img, tb: tinyImage(t, arm64)}); err != nil {
		t.Fatal(err)
	}
	notTar := filepath.Join(dir, "not.tar")
	os.WriteFile(notTar, []byte(strings.Repeat("x", 2000)), 0o644)
	for _, tt := range []struct{ ref, msg string }{
		{"oci-archive:" + gzFile, "gzip-compressed"},
		{"oci-archive:" + notTar, "reading OCI archive"},
		{"oci-archive:" + filepath.Join(dir, "app.docker.tar"), "has no index.json"},
		{"oci-archive:" + filepath.Join(dir, "app.oci.tar") + ":other", `no manifest named "other" (ref names: app)`},
		{"docker-archive:" + notTar, "reading docker archive"},
		{"docker-archive:" + filepath.Join(dir, "app.docker.tar") + ":registry.example.com/other:2", "has no image tagged registry.example.com/other:2 (tags: registry.example.com/app:1.0)"},
		{"docker-archive:" + two, "holds 2 images: name one as docker-archive:" + two + ":REPO:TAG (tags: example.com/a:1, example.com/b:1)"},
	} {
		_, err := image.Open(context.Background(), tt.ref, image.Options{})
		if err == nil || exitcode.Of(err) == exitcode.OK || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Open(%s): %v; want an error containing %q", tt.ref, err, tt.msg)
		}
	}
	// The image named in a two-image archive opens.
	src, err := image.Open(context.Background(), "docker-archive:"+two+":example.com/b:1", image.Options{Platform: "all"})
	if err != nil || src.Images[0].Platform.String() != "linux/arm64" {
		t.Errorf("docker-archive:%s:example.com/b:1 = %+v, %v", two, src, err)
	}
}

// TestOpenLayoutIndexJSONByHand: a layout written by another tool (skopeo style: ref.name annotation,
// Docker media types) opens too.
func TestOpenLayoutIndexJSONByHand(t *testing.T) {
	img := tinyImage(t, amd64)
	dir := t.TempDir()
	testenv.WriteOCI(t, img, dir, "")
	var im v1.IndexManifest
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &im)
	im.Manifests[0].Annotations = map[string]string{"org.opencontainers.image.ref.name": "1.0"}
	b, _ = json.Marshal(im)
	os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)
	src, err := image.Open(context.Background(), "oci:"+dir+":1.0", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestOCIArchiveHardLinks: an OCI archive storing one blob under two names (a hard link) opens.
func TestOCIArchiveHardLinks(t *testing.T) {
	img := tinyImage(t, amd64)
	dir := t.TempDir()
	testenv.WriteOCI(t, img, dir, "app")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	// Rewrite the archive with the layer blob as a hard link to a copy stored under another name.
	archive := filepath.Join(t.TempDir(), "linked.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	blob, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", ld.Hex))
	tw.WriteHeader(&tar.Header{Name: "extra/blob-copy", Typeflag: tar.TypeReg, Size: int64(len(blob)), Mode: 0o644})
	tw.Write(blob)
	filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() || rel == filepath.Join("blobs", "sha256", ld.Hex) {
			return nil
		}
		b, _ := os.ReadFile(p)
		tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Size: int64(len(b)), Mode: 0o644})
		tw.Write(b)
		return nil
	})
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + ld.Hex, Typeflag: tar.TypeLink, Linkname: "extra/blob-copy"})
	tw.Close()
	f.Close()
	src, err := image.Open(context.Background(), "oci-archive:"+archive+":app", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{}); err != nil {
		t.Errorf("Scan: %v", err)
	}
}

// TestOpenLayoutWithoutMediaTypes: index.json entries without a media type (some tools write them so) are
// recognised by their content, for an image and for an index.
func TestOpenLayoutWithoutMediaTypes(t *testing.T) {
	idx, _ := multiArch(t)
	for name, x := range map[string]any{"image": tinyImage(t, amd64), "index": idx} {
		dir := t.TempDir()
		testenv.WriteOCI(t, x, dir, "")
		var im v1.IndexManifest
		b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		json.Unmarshal(b, &im)
		im.Manifests[0].MediaType = ""
		b, _ = json.Marshal(im)
		os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)
		src, err := image.Open(context.Background(), "oci:"+dir, image.Options{Platform: "linux/amd64"})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if (src.Index != nil) != (name == "index") || len(src.Images) != 1 {
			t.Errorf("%s: index %v, %d images", name, src.Index != nil, len(src.Images))
		}
	}
}
