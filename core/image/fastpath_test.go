package image

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// TestFastPath: layers opened from an OCI layout, an OCI archive, a (compressed) docker archive and a
// registry are decompressed by Scan itself; an in-memory layer of another kind goes through Uncompressed(). If a
// go-containerregistry upgrade renames the layer type, this fails instead of Scan silently slowing down.
func TestFastPath(t *testing.T) {
	img := testenv.AddLayer(testenv.ImageFromLayers(t, v1.Config{}, v1.Platform{OS: "linux", Architecture: "amd64"},
		testenv.LayerFromFiles(testenv.Reg("/a", []byte("a")))), testenv.Reg("/b", []byte("b")))
	dir := t.TempDir()
	refs := []string{
		testenv.WriteOCI(t, img, filepath.Join(dir, "layout"), ""),
		testenv.WriteOCIArchive(t, img, filepath.Join(dir, "img.oci.tar"), ""),
		testenv.WriteDockerArchive(t, img, filepath.Join(dir, "img.docker.tar"), "example.com/app:1"),
	}
	for _, ref := range refs {
		src, err := Open(context.Background(), ref, Options{})
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := src.Images[0].Image.Layers()
		for i, l := range layers {
			if !nativelyCompressed(l) {
				t.Errorf("%s layer %d (%T) is not read on the fast path", ref, i, l)
			}
		}
		if _, err := Scan(context.Background(), src.Images[0].Image, ScanOptions{}); err != nil {
			t.Errorf("Scan(%s): %v", ref, err)
		}
	}
	// A registry (go-containerregistry's in-process one on loopback): its layers come wrapped.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, _ := name.NewTag(host+"/fast/path:1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	src, err := Open(context.Background(), tag.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	remoteLayers, _ := src.Images[0].Image.Layers()
	for i, l := range remoteLayers {
		if !nativelyCompressed(l) {
			t.Errorf("registry layer %d (%T) is not read on the fast path", i, l)
		}
	}
	layers, _ := img.Layers()
	if nativelyCompressed(layers[0]) {
		t.Errorf("an in-memory %T layer is taken for a stored compressed blob", layers[0])
	}
}
