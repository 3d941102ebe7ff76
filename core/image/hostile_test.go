package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// rawLayout writes an OCI layout by hand, so tests can break any part of it. Layers are blobs as given
// (gzip or plain tar); diffIDs default to the sha256 of each layer's uncompressed content.
type rawLayout struct {
	dir      string
	layers   [][]byte
	diffIDs  []v1.Hash
	config   []byte // nil = a valid config for the layers
	manifest []byte // nil = a valid manifest

	layerDigests []v1.Hash
	configDigest v1.Hash
	manifestDesc v1.Descriptor
}

func putBlob(t *testing.T, dir string, b []byte) v1.Hash {
	t.Helper()
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
	p := filepath.Join(dir, "blobs", "sha256", h.Hex)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (r *rawLayout) blobPath(h v1.Hash) string { return filepath.Join(r.dir, "blobs", "sha256", h.Hex) }

// diffIDOf is the sha256 of a blob's uncompressed content (gzip or plain), streamed; a broken gzip stream
// hashes what it gives (the tests that break one say the diff ID themselves).
func diffIDOf(b []byte) v1.Hash {
	h := sha256.New()
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		io.Copy(h, zr)
	} else {
		h.Write(b)
	}
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func (r *rawLayout) write(t *testing.T) string {
	t.Helper()
	var descs []v1.Descriptor
	diffIDs := r.diffIDs
	for i, l := range r.layers {
		h := putBlob(t, r.dir, l)
		r.layerDigests = append(r.layerDigests, h)
		descs = append(descs, v1.Descriptor{MediaType: types.OCILayer, Digest: h, Size: int64(len(l))})
		if r.diffIDs == nil {
			diffIDs = append(diffIDs, diffIDOf(l))
		}
		_ = i
	}
	cfg := r.config
	if cfg == nil {
		cf := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
		cfg, _ = json.Marshal(cf)
	}
	r.configDigest = putBlob(t, r.dir, cfg)
	man := r.manifest
	if man == nil {
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: r.configDigest, Size: int64(len(cfg))}, Layers: descs}
		man, _ = json.Marshal(m)
	}
	mh := putBlob(t, r.dir, man)
	r.manifestDesc = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: mh, Size: int64(len(man))}
	idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{r.manifestDesc}})
	if err := os.WriteFile(filepath.Join(r.dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return "oci:" + r.dir
}

// hugeHeaderTar is a tar whose only header claims a file of size bytes, followed by a little data.
func hugeHeaderTar(size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	tw.Write(make([]byte, 4096))
	return buf.Bytes() // no Close: the file is not complete
}

// bombTar is a tar holding one file of n zero bytes: it compresses about a thousand times.
func bombTar(n int64) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: n, Mode: 0o644})
	zero := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zero)) {
		tw.Write(zero[:min(left, int64(len(zero)))])
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestHostileImages(t *testing.T) {
	goodTar := testenv.TarOf(testenv.Reg("/bin/app", []byte("#!/bin/sh\necho hi\n")), testenv.Reg("/etc/os-release", []byte("ID=test\n")))
	tests := []struct {
		name    string
		layout  func(r *rawLayout)               // set up the layers and overrides
		tamper  func(t *testing.T, r *rawLayout) // break files after writing
		opts    image.ScanOptions
		atOpen  bool   // the error comes from Open, not Scan
		message string // the error must contain this
	}{{
		name:    "truncated tar stream",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(goodTar[:520])} }, // inside the first file's data
		message: "truncated tar stream",
	}, {
		name: "tar stream cut at an entry boundary (caught by the diff ID)",
		layout: func(r *rawLayout) {
			r.layers = [][]byte{gz(goodTar[:1024])}
			sum := sha256.Sum256(goodTar)
			r.diffIDs = []v1.Hash{{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}}
		},
		message: "does not match the diff ID",
	}, {
		name:    "truncated gzip stream",
		layout:  func(r *rawLayout) { g := gz(goodTar); r.layers = [][]byte{g[:len(g)/2]} },
		message: "unexpected EOF",
	}, {
		name:   "layer blob does not match its digest",
		layout: func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)} },
		tamper: func(t *testing.T, r *rawLayout) {
			p := r.blobPath(r.layerDigests[0])
			b, _ := os.ReadFile(p)
			b[4] ^= 0xff // the gzip header's mtime: the content still decompresses, only the digest can tell
			os.WriteFile(p, b, 0o644)
		},
		message: "does not match its digest",
	}, {
		name:   "layer blob shorter than its descriptor",
		layout: func(r *rawLayout) { r.layers = [][]byte{goodTar} },
		tamper: func(t *testing.T, r *rawLayout) {
			p := r.blobPath(r.layerDigests[0])
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1024], 0o644)
		},
		message: "truncated",
	}, {
		name: "uncompressed content does not match the diff ID",
		layout: func(r *rawLayout) {
			r.layers = [][]byte{gz(goodTar)}
			r.diffIDs = []v1.Hash{{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}}
		},
		message: "does not match the diff ID",
	}, {
		name:    "missing layer blob",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)} },
		tamper:  func(t *testing.T, r *rawLayout) { os.Remove(r.blobPath(r.layerDigests[0])) },
		message: "is missing",
	}, {
		name:    "missing manifest blob",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)} },
		tamper:  func(t *testing.T, r *rawLayout) { os.Remove(r.blobPath(r.manifestDesc.Digest)) },
		atOpen:  true,
		message: "is missing",
	}, {
		name: "invalid manifest JSON",
		layout: func(r *rawLayout) {
			r.layers = [][]byte{gz(goodTar)}
			r.manifest = []byte(`{"schemaVersion": 2, "layers": [`)
		},
		atOpen:  true,
		message: "is not valid JSON",
	}, {
		name:    "invalid config JSON",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)}; r.config = []byte(`{"architecture": 5}`) },
		atOpen:  true,
		message: "config",
	}, {
		name:   "config does not match its digest",
		layout: func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)} },
		tamper: func(t *testing.T, r *rawLayout) {
			p := r.blobPath(r.configDigest)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("amd64"), []byte("arm64"), 1), 0o644)
		},
		atOpen:  true,
		message: "does not match its digest",
	}, {
		name:   "invalid index.json",
		layout: func(r *rawLayout) { r.layers = [][]byte{gz(goodTar)} },
		tamper: func(t *testing.T, r *rawLayout) {
			os.WriteFile(filepath.Join(r.dir, "index.json"), []byte("[1,2"), 0o644)
		},
		atOpen:  true,
		message: "not a valid OCI index",
	}, {
		name:    "tar header claiming a terabyte",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(hugeHeaderTar(1 << 40))} },
		message: "truncated tar stream",
	}, {
		name:    "tar header claiming more than the layer limit",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz(hugeHeaderTar(1 << 40))} },
		opts:    image.ScanOptions{MaxLayerBytes: 2048},
		message: "expands beyond the limit of 2048",
	}, {
		name:    "gzip bomb",
		layout:  func(r *rawLayout) { r.layers = [][]byte{bombTar(48 << 20)} },
		opts:    image.ScanOptions{MaxLayerBytes: 4 << 20},
		message: "expands beyond the limit",
	}, {
		name:    "not a tar at all",
		layout:  func(r *rawLayout) { r.layers = [][]byte{gz([]byte(strings.Repeat("garbage ", 200)))} },
		message: "reading tar entry",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &rawLayout{dir: t.TempDir()}
			tt.layout(r)
			ref := r.write(t)
			if tt.tamper != nil {
				tt.tamper(t, r)
			}
			src, err := image.Open(context.Background(), ref, image.Options{})
			if err == nil && tt.atOpen {
				_, err = image.Scan(context.Background(), src.Images[0].Image, tt.opts)
				t.Fatalf("Open succeeded; want an error containing %q (Scan said %v)", tt.message, err)
			}
			if err != nil && !tt.atOpen {
				t.Fatalf("Open: %v", err)
			}
			if err == nil {
				_, err = image.Scan(context.Background(), src.Images[0].Image, tt.opts)
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.message)
			}
			if exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q (exit %d); want exit %d and %q", err, exitcode.Of(err), exitcode.Operational, tt.message)
			}
			if !tt.atOpen && !strings.Contains(err.Error(), "layer 1/1") {
				t.Errorf("error %q does not name the layer", err)
			}
		})
	}
}

// TestLayerCompressions: layout layers compressed with gzip, zstd, or not at all all scan.
func TestLayerCompressions(t *testing.T) {
	plain := testenv.TarOf(testenv.Reg("/etc/os-release", []byte("ID=test\n")), testenv.Symlink("/bin/sh", "dash"))
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write(plain)
	zw.Close()
	for name, blob := range map[string][]byte{"gzip": gz(plain), "zstd": zbuf.Bytes(), "uncompressed": plain} {
		sum := sha256.Sum256(plain)
		r := &rawLayout{dir: t.TempDir(), layers: [][]byte{blob}, diffIDs: []v1.Hash{{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}}}
		src, err := image.Open(context.Background(), r.write(t), image.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if e, ok := fs.Lookup("/bin/sh"); !ok || e.Linkname != "dash" {
			t.Errorf("%s: /bin/sh = %+v", name, e)
		}
	}
}

// TestScanMemoryBounded: streaming a layer that expands to 64 MiB (one file of zeros, given to no
// extractor) allocates a small fraction of that: nothing is buffered whole.
func TestScanMemoryBounded(t *testing.T) {
	r := &rawLayout{dir: t.TempDir(), layers: [][]byte{bombTar(64 << 20)}}
	src, err := image.Open(context.Background(), r.write(t), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: contentExtractor{}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := fs.Lookup("/zeros"); !ok || e.Size != 64<<20 {
		t.Fatalf("/zeros = %+v", e)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("scanning a 64 MiB layer allocated %d MiB in total", alloc>>20)
	} else {
		t.Logf("scanning a 64 MiB layer allocated %d KiB in total", alloc>>10)
	}
}
