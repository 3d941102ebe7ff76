package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
var arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}

// bookworm is the real Debian bookworm image, built once per test binary.
var (
	bookwormOnce sync.Once
	bookwormImg  v1.Image
)

func bookworm(t *testing.T) v1.Image {
	t.Helper()
	bookwormOnce.Do(func() {
		dir := testenv.Rootfs(t, "bookworm")
		bookwormImg = testenv.ImageFromDir(t, dir, v1.Config{Entrypoint: []string{"/bin/bash"}}, amd64)
	})
	if bookwormImg == nil {
		t.Fatal("bookworm image was not built")
	}
	return bookwormImg
}

// libcExtractor keeps the first bytes of libc.so.6 and every ELF file's magic.
type libcExtractor struct{}

func (libcExtractor) ID() string { return "test-elf-magic-1" }
func (libcExtractor) Want(p string, hdr *tar.Header) bool {
	return strings.HasPrefix(p, "/usr/lib/x86_64-linux-gnu/libc.so") || strings.HasPrefix(p, "/usr/bin/")
}
func (libcExtractor) Extract(p string, hdr *tar.Header, r io.Reader) ([]byte, error) {
	b := make([]byte, 4)
	n, err := io.ReadFull(r, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return b[:n], nil
}

// TestRealImageOCILayout: a real bookworm image plus an upper layer that deletes and hides files, written
// as an OCI layout, opened by reference and scanned.
func TestRealImageOCILayout(t *testing.T) {
	base := bookworm(t)
	img := testenv.AddLayer(base,
		testenv.Whiteout("/usr/bin/env"),
		testenv.Opaque("/etc/apt"),
		testenv.Reg("/etc/apt/only.conf", []byte("x")),
		testenv.Symlink("/usr/local/bin/sh2", "/bin/sh"),
	)
	dir := filepath.Join(t.TempDir(), "layout")
	ref := testenv.WriteOCI(t, img, dir, "v1")
	src, err := image.Open(context.Background(), ref, image.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", ref, err)
	}
	if src.Index != nil || len(src.Images) != 1 {
		t.Fatalf("Open(%s): want one image and no index, got index=%v images=%d", ref, src.Index != nil, len(src.Images))
	}
	want, _ := img.Digest()
	if src.Digest != want {
		t.Errorf("digest = %s, want %s", src.Digest, want)
	}
	fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{Extractor: libcExtractor{}})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if fs.Len() < 5000 {
		t.Errorf("bookworm has %d entries, expected thousands", fs.Len())
	}
	if _, ok := fs.Lookup("/usr/bin/env"); ok {
		t.Error("/usr/bin/env was whited out but is still there")
	}
	if _, ok := fs.Lookup("/etc/apt/sources.list"); ok {
		t.Error("/etc/apt is opaque in the upper layer but /etc/apt/sources.list is still there")
	}
	if e, ok := fs.Lookup("/etc/apt/only.conf"); !ok || e.Layer != 1 {
		t.Errorf("/etc/apt/only.conf: %+v %v", e, ok)
	}
	p, e, err := fs.Resolve("/usr/local/bin/sh2")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if p != "/usr/bin/dash" || e.Type != tar.TypeReg || string(e.Facts) != "\x7fELF" {
		t.Errorf("Resolve(/usr/local/bin/sh2) = %s %+v", p, e)
	}
	_, libc, err := fs.Resolve("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatalf("Resolve libc: %v", err)
	}
	if string(libc.Facts) != "\x7fELF" {
		t.Errorf("libc facts = %q", libc.Facts)
	}
}

func TestOpenErrorsAreClassified(t *testing.T) {
	tests := []struct {
		ref  string
		code int
		msg  string
	}{
		{"oci:/nonexistent/dir", exitcode.Operational, "no index.json"},
		{"oci-archive:/nonexistent/file.tar", exitcode.Operational, "no such file"},
		{"docker-archive:/nonexistent/file.tar", exitcode.Operational, "no such file"},
		{"dir:/x", exitcode.Usage, "not supported"},
		{"", exitcode.Usage, "empty"},
	}
	for _, tt := range tests {
		_, err := image.Open(context.Background(), tt.ref, image.Options{})
		if err == nil {
			t.Errorf("Open(%q): no error", tt.ref)
			continue
		}
		if got := exitcode.Of(err); got != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Open(%q) = %v (code %d), want code %d and %q", tt.ref, err, got, tt.code, tt.msg)
		}
	}
	var e *exitcode.Error
	_, err := image.Open(context.Background(), "oci:/nonexistent", image.Options{})
	if !errors.As(err, &e) {
		t.Errorf("error %v carries no exit code", err)
	}
}
