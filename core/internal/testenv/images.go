// Package testenv provides what tests across crs-ci need to use real things: real distribution root
// filesystems (debootstrap, cached outside the repository), images built from them with
// go-containerregistry, upper layers with crafted files, multi-platform indexes, and the on-disk forms
// (OCI layouts and archives, docker archives) that crs-ci reads.
package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RepoRoot returns the repository root (the directory holding go.mod), found from the test's working
// directory upwards.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: working directory: %v", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/crs-ci/crs-ci")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod of github.com/crs-ci/crs-ci above the working directory")
		}
		dir = parent
	}
}

var rootfsMu sync.Mutex

// Rootfs makes sure the real root filesystem NAME (xenial bionic focal jammy noble bullseye bookworm
// trixie sid bookworm-arm64) is built and cached by scripts/rootfs.sh, and returns its directory. The first
// build of one takes about a minute (debootstrap); later calls return at once.
func Rootfs(t testing.TB, name string) string {
	t.Helper()
	rootfsMu.Lock()
	defer rootfsMu.Unlock()
	script := filepath.Join(RepoRoot(t), "scripts", "rootfs.sh")
	var stderr bytes.Buffer
	cmd := exec.Command(script, name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testenv: %s %s: %v\n%s", script, name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("testenv: %s %s printed %q, which is not a directory", script, name, dir)
	}
	return dir
}

// File is one entry of a crafted layer. Build them with Reg, Dir, Symlink, Hardlink, Whiteout, Opaque.
type File struct {
	Path     string // inside the image, absolute or relative
	Type     byte   // tar type flag
	Mode     int64
	Content  []byte
	Linkname string
	UID, GID int
}

// Reg is a regular file with mode 0644 (use Mode to change it: Reg(...).WithMode(0o755)).
func Reg(p string, content []byte) File {
	return File{Path: p, Type: tar.TypeReg, Mode: 0o644, Content: content}
}

// Exec is a regular file with mode 0755.
func Exec(p string, content []byte) File { return Reg(p, content).WithMode(0o755) }

// Dir is a directory with mode 0755.
func Dir(p string) File { return File{Path: p, Type: tar.TypeDir, Mode: 0o755} }

// Symlink is a symbolic link p -> target (target kept as written).
func Symlink(p, target string) File {
	return File{Path: p, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

// Hardlink is a hard link p to target (another path of the same layer, normally).
func Hardlink(p, target string) File {
	return File{Path: p, Type: tar.TypeLink, Mode: 0o644, Linkname: target}
}

// Whiteout deletes p (and what is below it) from lower layers: the entry DIR/.wh.NAME.
func Whiteout(p string) File {
	d, b := path.Split(p)
	return File{Path: d + ".wh." + b, Type: tar.TypeReg, Mode: 0o644}
}

// Opaque hides the lower content of directory dir: the entry DIR/.wh..wh..opq.
func Opaque(dir string) File {
	return File{Path: strings.TrimSuffix(dir, "/") + "/.wh..wh..opq", Type: tar.TypeReg, Mode: 0o644}
}

// WithMode returns f with another mode.
func (f File) WithMode(mode int64) File { f.Mode = mode; return f }

// WithOwner returns f with another owner.
func (f File) WithOwner(uid, gid int) File { f.UID, f.GID = uid, gid; return f }

// TarOf writes files as an uncompressed tar stream, in the order given (leading "/" dropped, as image
// tools write them).
func TarOf(files ...File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Name: strings.TrimPrefix(f.Path, "/"), Typeflag: f.Type, Mode: f.Mode, Linkname: f.Linkname,
			Uid: f.UID, Gid: f.GID, Format: tar.FormatPAX,
		}
		if f.Type == tar.TypeLink {
			hdr.Linkname = strings.TrimPrefix(f.Linkname, "/")
		}
		if f.Type == tar.TypeReg {
			hdr.Size = int64(len(f.Content))
		}
		if f.Type == tar.TypeDir && !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(fmt.Sprintf("testenv: tar header for %s: %v", f.Path, err))
		}
		if f.Type == tar.TypeReg {
			if _, err := tw.Write(f.Content); err != nil {
				panic(fmt.Sprintf("testenv: tar content for %s: %v", f.Path, err))
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(fmt.Sprintf("testenv: closing tar: %v", err))
	}
	return buf.Bytes()
}

// LayerFromFiles is a gzip-compressed OCI layer holding files.
func LayerFromFiles(files ...File) v1.Layer {
	return layerFromTar(TarOf(files...))
}

// layerFromTar compresses an uncompressed tar into a layer (compressed once, in memory).
func layerFromTar(tarBytes []byte) v1.Layer {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(tarBytes)
	zw.Close()
	b := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		panic(fmt.Sprintf("testenv: layer: %v", err))
	}
	return l
}

// AddLayer returns img with one more layer on top holding files.
func AddLayer(img v1.Image, files ...File) v1.Image {
	out, err := mutate.AppendLayers(img, LayerFromFiles(files...))
	if err != nil {
		panic(fmt.Sprintf("testenv: appending a layer: %v", err))
	}
	return out
}

// ImageFromLayers is an OCI image of layers (oldest first) with cfg and platform in its config.
func ImageFromLayers(t testing.TB, cfg v1.Config, platform v1.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatalf("testenv: empty config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = platform.OS, platform.Architecture, platform.Variant, platform.OSVersion
	cf.Config = cfg
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatalf("testenv: setting the config: %v", err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatalf("testenv: appending layers: %v", err)
	}
	return img
}

// ImageFromDir is an OCI image whose single layer is the directory tree dir (symlinks, hard links, modes
// and owners kept; /dev, /proc and /sys contents, debootstrap's leftovers and downloaded .deb files left
// out, as in real images). The layer of a root filesystem from Rootfs is built once and cached on disk
// next to the root filesystem cache; other directories are read afresh each call.
func ImageFromDir(t testing.TB, dir string, cfg v1.Config, platform v1.Platform) v1.Image {
	t.Helper()
	return ImageFromLayers(t, cfg, platform, LayerFromDir(t, dir))
}

var (
	dirLayersMu sync.Mutex
	dirLayers   = map[string]v1.Layer{}
)

// LayerFromDir is a gzip-compressed OCI layer of the directory tree dir (see ImageFromDir).
func LayerFromDir(t testing.TB, dir string) v1.Layer {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	stamp, err := os.Stat(filepath.Join(dir, ".crs-complete"))
	if err != nil {
		// Not a cached root filesystem: small, built fresh in memory.
		var buf bytes.Buffer
		if err := writeDirTar(&buf, dir); err != nil {
			t.Fatalf("testenv: layer from %s: %v", dir, err)
		}
		return layerFromTar(buf.Bytes())
	}
	dirLayersMu.Lock()
	defer dirLayersMu.Unlock()
	if l, ok := dirLayers[dir]; ok {
		return l
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "testenv layer v1\x00%s\x00%d", dir, stamp.ModTime().UnixNano()))
	cache := filepath.Join(layerCacheDir(dir), filepath.Base(dir)+"-"+hex.EncodeToString(sum[:8])+".tar.gz")
	meta, err := readLayerMeta(cache)
	if err != nil {
		if meta, err = writeGzipFile(cache, dir); err != nil {
			t.Fatalf("testenv: layer from %s: %v", dir, err)
		}
	}
	l, err := partial.CompressedToLayer(&fileLayer{path: cache, meta: meta})
	if err != nil {
		t.Fatalf("testenv: layer %s: %v", cache, err)
	}
	dirLayers[dir] = l
	return l
}

// layerMeta is what a cached layer file's sidecar (FILE.json) records, so that no test binary has to read
// the whole layer again to know its digests.
type layerMeta struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

func readLayerMeta(cache string) (layerMeta, error) {
	var m layerMeta
	b, err := os.ReadFile(cache + ".json")
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	st, err := os.Stat(cache)
	if err != nil {
		return m, err
	}
	if st.Size() != m.Size || m.Digest.Hex == "" || m.DiffID.Hex == "" {
		return m, fmt.Errorf("%s does not match its sidecar", cache)
	}
	return m, nil
}

// fileLayer is a gzip layer file with known digests.
type fileLayer struct {
	path string
	meta layerMeta
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.meta.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.meta.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.meta.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

// layerCacheDir is where layers of cached root filesystems are kept: "_layers" beside them.
func layerCacheDir(rootfs string) string {
	return filepath.Join(filepath.Dir(rootfs), "_layers")
}

// writeGzipFile writes the tree dir as a gzip tar to dst (and its sidecar), atomically.
func writeGzipFile(dst, dir string) (layerMeta, error) {
	var m layerMeta
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return m, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-layer-*")
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err != nil {
		return m, err
	}
	defer os.Remove(tmp.Name())
	gzHash, tarHash := sha256.New(), sha256.New()
	counter := &countWriter{w: io.MultiWriter(tmp, gzHash)}
	zw, _ := gzip.NewWriterLevel(counter, gzip.BestSpeed)
	if err := writeDirTar(io.MultiWriter(zw, tarHash), dir); err != nil {
		tmp.Close()
		return m, err
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return m, err
	}
	if err := tmp.Close(); err != nil {
		return m, err
	}
	m = layerMeta{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(gzHash.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(tarHash.Sum(nil))},
		Size:   counter.n,
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(dst+".json.tmp", b, 0o644); err != nil {
		return m, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return m, err
	}
	return m, os.Rename(dst+".json.tmp", dst+".json")
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// skipInDir reports paths of a root filesystem directory that real images do not carry.
func skipInDir(rel string, d fs.DirEntry) bool {
	switch rel {
	case ".crs-complete", "debootstrap":
		return true
	}
	for _, pre := range []string{"dev/", "proc/", "sys/"} {
		if strings.HasPrefix(rel, pre) {
			return true
		}
	}
	return strings.HasPrefix(rel, "var/cache/apt/archives/") && strings.HasSuffix(rel, ".deb")
}

// writeDirTar writes the tree dir as a tar stream, in lexical order.
func writeDirTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skipInDir(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket) != 0 {
			return nil
		}
		link := ""
		if mode&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = info.ModTime(), info.ModTime()
		hdr.Format = tar.FormatPAX
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if mode.IsRegular() && st.Nlink > 1 {
				key := inode{uint64(st.Dev), uint64(st.Ino)}
				if first, ok := seen[key]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					seen[key] = rel
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Index is an OCI image index of imgs, each listed with the platform from its config, in the order given.
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("testenv: index: config: %v", err)
		}
		p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
		mt, err := img.MediaType()
		if err != nil {
			t.Fatalf("testenv: index: media type: %v", err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: mt, Platform: &p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// WriteOCI adds img (a v1.Image or v1.ImageIndex) to the OCI layout in dir (created if needed), named
// refName when it is not "", and returns the reference "oci:DIR[:REF]".
func WriteOCI(t testing.TB, img any, dir, refName string) string {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			t.Fatalf("testenv: creating OCI layout %s: %v", dir, err)
		}
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName}))
	}
	switch x := img.(type) {
	case v1.Image:
		err = p.AppendImage(x, opts...)
	case v1.ImageIndex:
		err = p.AppendIndex(x, opts...)
	default:
		t.Fatalf("testenv: WriteOCI of %T: want a v1.Image or v1.ImageIndex", img)
	}
	if err != nil {
		t.Fatalf("testenv: writing OCI layout %s: %v", dir, err)
	}
	if refName != "" {
		return "oci:" + dir + ":" + refName
	}
	return "oci:" + dir
}

// WriteOCIArchive writes img (a v1.Image or v1.ImageIndex) as an uncompressed tar of an OCI layout, as
// skopeo and podman write them, and returns "oci-archive:FILE[:REF]".
func WriteOCIArchive(t testing.TB, img any, file, refName string) string {
	t.Helper()
	dir := t.TempDir()
	WriteOCI(t, img, dir, refName)
	f, err := os.Create(file)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatalf("testenv: writing OCI archive %s: %v", file, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("testenv: writing OCI archive %s: %v", file, err)
	}
	if refName != "" {
		return "oci-archive:" + file + ":" + refName
	}
	return "oci-archive:" + file
}

// WriteDockerArchive writes img as a `docker save` archive tagged tag (REPO:TAG) and returns
// "docker-archive:FILE".
func WriteDockerArchive(t testing.TB, img v1.Image, file, tag string) string {
	t.Helper()
	tg, err := name.NewTag(tag)
	if err != nil {
		t.Fatalf("testenv: tag %q: %v", tag, err)
	}
	if err := tarball.WriteToFile(file, tg, img); err != nil {
		t.Fatalf("testenv: writing docker archive %s: %v", file, err)
	}
	return "docker-archive:" + file
}
