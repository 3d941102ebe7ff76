package testenv

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// headers lists a layer's tar headers by name.
func headers(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// TestLayerFromDir: modes, owners, symlinks and hard links are kept; device nodes, sockets and what real
// images leave out (/dev, /proc, /sys contents, downloaded .deb files) are not.
func TestLayerFromDir(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/bin", "dev", "proc/1", "var/cache/apt/archives", "etc"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("tool"), 0o750))
	must(os.Chown(filepath.Join(dir, "usr/bin/tool"), 1234, 5678)) // before chmod: chown clears set-uid
	must(os.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o750|os.ModeSetuid))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-hard")))
	must(os.Symlink("tool", filepath.Join(dir, "usr/bin/tool-sym")))
	must(os.Symlink("/usr/bin/tool", filepath.Join(dir, "etc/abs-sym")))
	must(os.WriteFile(filepath.Join(dir, "dev/not-in-images"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "proc/1/status"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "var/cache/apt/archives/libc6.deb"), []byte("deb"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "var/cache/apt/archives/lock"), nil, 0o640))
	must(syscall.Mknod(filepath.Join(dir, "etc/null"), syscall.S_IFCHR|0o666, 0x0103))

	hs := headers(t, LayerFromDir(t, dir))
	tests := []struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
	}{
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/tool", typ: tar.TypeReg, mode: 0o4750, uid: 1234, gid: 5678},
		{name: "usr/bin/tool-hard", typ: tar.TypeLink, link: "usr/bin/tool", uid: 1234, gid: 5678, mode: 0o4750},
		{name: "usr/bin/tool-sym", typ: tar.TypeSymlink, link: "tool", mode: 0o777},
		{name: "etc/abs-sym", typ: tar.TypeSymlink, link: "/usr/bin/tool", mode: 0o777},
		{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "proc/", typ: tar.TypeDir, mode: 0o755},
		{name: "var/cache/apt/archives/lock", typ: tar.TypeReg, mode: 0o640},
	}
	for _, tt := range tests {
		h, ok := hs[tt.name]
		if !ok {
			t.Errorf("%s missing from the layer", tt.name)
			continue
		}
		if h.Typeflag != tt.typ || h.Mode != tt.mode || h.Uid != tt.uid || h.Gid != tt.gid || h.Linkname != tt.link {
			t.Errorf("%s: type %q mode %o owner %d:%d link %q; want %q %o %d:%d %q", tt.name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, tt.typ, tt.mode, tt.uid, tt.gid, tt.link)
		}
	}
	for _, absent := range []string{"dev/not-in-images", "proc/1/", "proc/1/status", "var/cache/apt/archives/libc6.deb", "etc/null", "./", ""} {
		if _, ok := hs[absent]; ok {
			t.Errorf("%s should not be in the layer", absent)
		}
	}
	if hs["usr/bin/tool"].Size != 4 || hs["usr/bin/tool-hard"].Size != 0 {
		t.Errorf("sizes: tool %d, hard link %d", hs["usr/bin/tool"].Size, hs["usr/bin/tool-hard"].Size)
	}
}

// TestRootfsLayerIsCached: a real root filesystem's layer is built once per process and kept on disk.
func TestRootfsLayerIsCached(t *testing.T) {
	dir := Rootfs(t, "bookworm")
	if _, err := os.Stat(filepath.Join(dir, "etc", "debian_version")); err != nil {
		t.Fatalf("Rootfs(bookworm) = %s without /etc/debian_version: %v", dir, err)
	}
	a := LayerFromDir(t, dir)
	b := LayerFromDir(t, dir)
	if a != b {
		t.Error("LayerFromDir built the bookworm layer twice in one process")
	}
	matches, _ := filepath.Glob(filepath.Join(layerCacheDir(dir), "bookworm-*.tar.gz"))
	if len(matches) == 0 {
		t.Errorf("no cached layer file under %s", layerCacheDir(dir))
	}
	img := ImageFromDir(t, dir, v1.Config{Cmd: []string{"bash"}}, v1.Platform{OS: "linux", Architecture: "amd64"})
	cf, err := img.ConfigFile()
	if err != nil || cf.Architecture != "amd64" || cf.OS != "linux" || cf.Config.Cmd[0] != "bash" || len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("config %+v %v", cf, err)
	}
	if _, err := os.Stat(filepath.Join(RepoRoot(t), "scripts", "rootfs.sh")); err != nil {
		t.Errorf("RepoRoot: %v", err)
	}
}

// TestCraftedLayersAndLayouts: whiteout and opaque names, an index of two platforms written as an OCI
// layout with a ref name, an OCI archive and a docker archive.
func TestCraftedLayersAndLayouts(t *testing.T) {
	if w := Whiteout("/etc/hosts"); w.Path != "/etc/.wh.hosts" {
		t.Errorf("Whiteout = %q", w.Path)
	}
	if o := Opaque("/etc/apt/"); o.Path != "/etc/apt/.wh..wh..opq" {
		t.Errorf("Opaque = %q", o.Path)
	}
	base := ImageFromLayers(t, v1.Config{}, v1.Platform{OS: "linux", Architecture: "amd64"}, LayerFromFiles(Reg("/a", []byte("a"))))
	img := AddLayer(base, Whiteout("/a"), Opaque("/d"), Dir("/d"), Exec("/d/x", []byte("x")), Symlink("/s", "/d/x"), Hardlink("/h", "/d/x"))
	layers, _ := img.Layers()
	if len(layers) != 2 {
		t.Fatalf("%d layers", len(layers))
	}
	hs := headers(t, layers[1])
	for name, typ := range map[string]byte{".wh.a": tar.TypeReg, "d/.wh..wh..opq": tar.TypeReg, "d/": tar.TypeDir, "d/x": tar.TypeReg, "s": tar.TypeSymlink, "h": tar.TypeLink} {
		if h, ok := hs[name]; !ok || h.Typeflag != typ {
			t.Errorf("%s: %+v", name, h)
		}
	}
	if hs["h"].Linkname != "d/x" || hs["s"].Linkname != "/d/x" || hs["d/x"].Mode != 0o755 {
		t.Errorf("links/modes: h->%q s->%q x %o", hs["h"].Linkname, hs["s"].Linkname, hs["d/x"].Mode)
	}

	arm := ImageFromLayers(t, v1.Config{}, v1.Platform{OS: "linux", Architecture: "arm64"}, LayerFromFiles(Reg("/b", nil)))
	idx := Index(t, img, arm)
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("index manifests %+v", im.Manifests)
	}
	dir := t.TempDir()
	if ref := WriteOCI(t, idx, dir, "multi"); ref != "oci:"+dir+":multi" {
		t.Errorf("WriteOCI = %q", ref)
	}
	WriteOCI(t, arm, dir, "") // a second, unnamed entry in the same layout
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var top v1.IndexManifest
	if err := json.Unmarshal(b, &top); err != nil || len(top.Manifests) != 2 || top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "multi" {
		t.Errorf("index.json: %s (%v)", b, err)
	}
	if _, err := layout.ImageIndexFromPath(dir); err != nil {
		t.Errorf("go-containerregistry cannot read the layout: %v", err)
	}

	archive := filepath.Join(t.TempDir(), "img.oci.tar")
	if ref := WriteOCIArchive(t, idx, archive, "multi"); ref != "oci-archive:"+archive+":multi" {
		t.Errorf("WriteOCIArchive = %q", ref)
	}
	names := tarNames(t, archive)
	if !strings.Contains(names, "index.json ") || !strings.Contains(names, "oci-layout ") || !strings.Contains(names, "blobs/sha256/") {
		t.Errorf("OCI archive holds %s", names)
	}
	darchive := filepath.Join(t.TempDir(), "img.docker.tar")
	if ref := WriteDockerArchive(t, img, darchive, "example.com/app:1"); ref != "docker-archive:"+darchive {
		t.Errorf("WriteDockerArchive = %q", ref)
	}
	if names := tarNames(t, darchive); !strings.Contains(names, "manifest.json ") {
		t.Errorf("docker archive holds %s", names)
	}
}

func tarNames(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b.WriteString(h.Name + " ")
	}
	return b.String()
}
