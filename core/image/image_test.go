package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	empty := t.TempDir()
	tests := []struct {
		ref  string
		code int
		msg  string
	}{
		{"oci:/nonexistent/dir", exitcode.Operational, "opening OCI layout: stat /nonexistent/dir: no such file or directory"},
		{"oci:" + empty, exitcode.Operational, "OCI layout " + empty + " is not an OCI image layout: it has no index.json"},
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

// TestRealRootfsMatchesDirectory: scanning the real bookworm image gives exactly the files of the root
// filesystem it was built from (what real images leave out aside): same types, symlink targets, sizes,
// modes, and hard links pointing at the first name of their inode.
func TestRealRootfsMatchesDirectory(t *testing.T) {
	dir := testenv.Rootfs(t, "bookworm")
	ref := testenv.WriteOCI(t, bookworm(t), filepath.Join(t.TempDir(), "layout"), "")
	src, err := image.Open(context.Background(), ref, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]uint64]string{}
	n := 1 // the root
	err = filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == ".crs-complete" || rel == "debootstrap" || strings.HasPrefix(rel, "dev/") || strings.HasPrefix(rel, "proc/") ||
			strings.HasPrefix(rel, "sys/") || (strings.HasPrefix(rel, "var/cache/apt/archives/") && strings.HasSuffix(rel, ".deb")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&(iofs.ModeDevice|iofs.ModeCharDevice|iofs.ModeSocket) != 0 {
			return nil
		}
		n++
		e, ok := fs.Lookup("/" + rel)
		if !ok {
			t.Errorf("/%s is in the root filesystem but not in the scan", rel)
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case info.Mode()&iofs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if e.Type != tar.TypeSymlink || e.Linkname != target {
				t.Errorf("/%s: %c -> %q, want a symlink to %q", rel, e.Type, e.Linkname, target)
			}
		case info.IsDir():
			if e.Type != tar.TypeDir {
				t.Errorf("/%s: type %c, want a directory", rel, e.Type)
			}
		case info.Mode().IsRegular():
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				if e.Type != tar.TypeLink || e.Linkname != "/"+first || e.Size != info.Size() {
					t.Errorf("/%s: %c -> %q size %d, want a hard link to /%s", rel, e.Type, e.Linkname, e.Size, first)
				}
			} else {
				seen[key] = rel
				if e.Type != tar.TypeReg || e.Size != info.Size() {
					t.Errorf("/%s: type %c size %d, want a regular file of %d bytes", rel, e.Type, e.Size, info.Size())
				}
			}
		}
		if e.Mode&0o7777 != int64(info.Mode().Perm()) && info.Mode()&(iofs.ModeSetuid|iofs.ModeSetgid|iofs.ModeSticky) == 0 {
			t.Errorf("/%s: mode %o, want %o", rel, e.Mode, info.Mode().Perm())
		}
		if e.UID != int(st.Uid) || e.GID != int(st.Gid) {
			t.Errorf("/%s: owner %d:%d, want %d:%d", rel, e.UID, e.GID, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fs.Len() != n {
		t.Errorf("scan has %d entries, the root filesystem %d", fs.Len(), n)
	}
}

// TestRealMultiArchIndex: an index of the real bookworm root filesystems for amd64 and arm64; each
// platform's dynamic loader resolves through the image's own symlinks.
func TestRealMultiArchIndex(t *testing.T) {
	arm := testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm-arm64"), v1.Config{Entrypoint: []string{"/bin/bash"}}, arm64)
	idx := testenv.Index(t, bookworm(t), arm)
	ref := testenv.WriteOCI(t, idx, filepath.Join(t.TempDir(), "layout"), "bookworm")
	src, err := image.Open(context.Background(), ref, image.Options{Platform: "all"})
	if err != nil {
		t.Fatal(err)
	}
	loaders := map[string]string{"linux/amd64": "/lib64/ld-linux-x86-64.so.2", "linux/arm64": "/lib/ld-linux-aarch64.so.1"}
	if len(src.Images) != 2 {
		t.Fatalf("%d images", len(src.Images))
	}
	for _, pi := range src.Images {
		fs, err := image.Scan(context.Background(), pi.Image, image.ScanOptions{})
		if err != nil {
			t.Fatalf("%s: %v", pi.Platform, err)
		}
		loader := loaders[pi.Platform.String()]
		p, e, err := fs.Resolve(loader)
		if err != nil || e.Type != tar.TypeReg || !strings.HasPrefix(p, "/usr/lib/") {
			t.Errorf("%s: %s resolves to %q %+v %v", pi.Platform, loader, p, e, err)
		}
		other := loaders["linux/arm64"]
		if pi.Platform.Architecture == "arm64" {
			other = loaders["linux/amd64"]
		}
		if _, _, err := fs.Resolve(other); err == nil {
			t.Errorf("%s: the other platform's loader %s exists", pi.Platform, other)
		}
	}
}
