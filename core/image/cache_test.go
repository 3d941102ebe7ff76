package image_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// dump renders every entry with its metadata and facts, to compare two scans.
func dump(t *testing.T, fsys *image.FS) string {
	t.Helper()
	var b strings.Builder
	fsys.Walk(func(e *image.Entry) error {
		fmt.Fprintf(&b, "%s %c %o %d %q %d:%d L%d %q %v\n", e.Path, e.Type, e.Mode, e.Size, e.Linkname, e.UID, e.GID, e.Layer, e.Facts, e.TooLarge)
		return nil
	})
	return b.String()
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestScanCache: the second scan of the same layers reads nothing from the image (it still works with the
// layer blobs deleted), gives the same filesystem, and a damaged cache file is ignored and rewritten.
func TestScanCache(t *testing.T) {
	img := testenv.AddLayer(
		imageOf(t, []testenv.File{
			testenv.Reg("/facts/a", []byte("alpha")), testenv.Hardlink("/facts/a-link", "/facts/a"),
			testenv.Reg("/facts/empty", nil), testenv.Reg("/facts/big", []byte("0123456789")),
			testenv.Symlink("/bin", "usr/bin"), testenv.Exec("/usr/bin/tool", []byte("tool")).WithOwner(5, 6),
		}),
		testenv.Whiteout("/facts/big"), testenv.Opaque("/usr"), testenv.Reg("/usr/new", []byte("n")),
	)
	layoutDir := t.TempDir()
	ref := testenv.WriteOCI(t, img, layoutDir, "")
	src, err := image.Open(context.Background(), ref, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	scan := func(id string) (*image.FS, string, error) {
		var progress bytes.Buffer
		fsys, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{
			Extractor: contentExtractor{id: id}, CacheDir: cacheDir, MaxFileSize: 8, Progress: &progress,
		})
		return fsys, progress.String(), err
	}
	cold, progress, err := scan("1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(progress, "cached") {
		t.Errorf("first scan used a cache: %q", progress)
	}
	want := dump(t, cold)
	if !strings.Contains(want, `/facts/a-link 1 644 5 "/facts/a" 0:0 L0 "alpha"`) || strings.Contains(want, "/facts/big") {
		t.Fatalf("unexpected first scan:\n%s", want)
	}
	files := cacheFiles(t, cacheDir)
	if len(files) != 2 {
		t.Fatalf("cache holds %v, want one file per layer", files)
	}

	// Delete the layer blobs: only the cache can answer now.
	layers, _ := img.Layers()
	var blobs [][]byte
	for _, l := range layers {
		d, _ := l.Digest()
		p := filepath.Join(layoutDir, "blobs", "sha256", d.Hex)
		b, _ := os.ReadFile(p)
		blobs = append(blobs, b)
		os.Remove(p)
	}
	warm, progress, err := scan("1")
	if err != nil {
		t.Fatalf("warm scan with the layer blobs gone: %v", err)
	}
	if strings.Count(progress, "(cached)") != 2 {
		t.Errorf("warm scan progress: %q", progress)
	}
	if got := dump(t, warm); got != want {
		t.Errorf("warm scan differs:\n%s\nwant:\n%s", got, want)
	}
	if _, _, err := scan("2"); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("another Extractor.ID must not use the cache: %v", err)
	}
	if _, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: contentExtractor{id: "1"}, CacheDir: cacheDir}); err == nil {
		t.Error("another MaxFileSize must not use the cache")
	}

	// Damage every cache file in a different way, put the blobs back: the scan reads the layers again
	// and rewrites the cache.
	for i, l := range layers {
		d, _ := l.Digest()
		os.WriteFile(filepath.Join(layoutDir, "blobs", "sha256", d.Hex), blobs[i], 0o644)
	}
	b0, _ := os.ReadFile(files[0])
	b0[len(b0)/2] ^= 1
	os.WriteFile(files[0], b0, 0o644)
	os.WriteFile(files[1], []byte("CRSLAYR1 nonsense"), 0o644)
	again, progress, err := scan("1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(progress, "cached") || dump(t, again) != want {
		t.Errorf("scan with damaged cache files: progress %q, same result %v", progress, dump(t, again) == want)
	}
	if _, progress, _ := scan("1"); strings.Count(progress, "(cached)") != 2 {
		t.Errorf("the damaged cache files were not rewritten: %q", progress)
	}

	// A cache directory that cannot be written costs speed, not the scan.
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	if _, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{CacheDir: notDir}); err != nil {
		t.Errorf("unwritable cache dir: %v", err)
	}
}

// TestScanCancel: a cancelled context stops the scan with the context's error.
func TestScanCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	img := imageOf(t, []testenv.File{testenv.Reg("/a", []byte("a"))})
	if _, err := image.Scan(ctx, img, image.ScanOptions{}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled scan: %v", err)
	}
}

// TestScanCacheNotBorrowed: an image whose config claims the diff ID of a cached layer while its blob
// holds other content does not get the cached facts: the key covers the layer digest, the content is
// read and the lie is found.
func TestScanCacheNotBorrowed(t *testing.T) {
	benign := testenv.TarOf(testenv.Reg("/facts/app", []byte("benign")))
	evil := testenv.TarOf(testenv.Reg("/facts/app", []byte("evil!!")))
	cache := t.TempDir()
	good := &rawLayout{dir: t.TempDir(), layers: [][]byte{gz(benign)}}
	src, err := image.Open(context.Background(), good.write(t), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: contentExtractor{}, CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	goodDiffID, _ := mustLayers(t, src.Images[0].Image)[0].DiffID()
	bad := &rawLayout{dir: t.TempDir(), layers: [][]byte{gz(evil)}, diffIDs: []v1.Hash{goodDiffID}}
	src, err = image.Open(context.Background(), bad.write(t), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: contentExtractor{}, CacheDir: cache})
	if err == nil {
		e, _ := fsys.Lookup("/facts/app")
		t.Fatalf("scan of a layer lying about its diff ID succeeded, /facts/app facts %q", e.Facts)
	}
	if !strings.Contains(err.Error(), "does not match the diff ID") {
		t.Errorf("error %v", err)
	}
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}
