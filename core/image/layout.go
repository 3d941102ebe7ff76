package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// OCI image layouts are read here rather than with go-containerregistry's layout package for two reasons:
// layout reads only directories (an oci-archive is a tar of one, which we read in place, without unpacking
// it), and it does not check blobs against their digests. Every blob read through a store is verified:
// its size and sha256 must match the descriptor that named it, or reading it ends in an error.

// refNameAnnotation names a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Limits on the JSON documents of a layout, so a hostile file cannot make us read gigabytes into memory.
const (
	maxManifestBytes = 8 << 20
	maxConfigBytes   = 64 << 20
)

// store opens the files of an OCI layout: "index.json" and "blobs/ALG/HEX".
type store interface {
	open(name string) (io.ReadCloser, error)
	where() string
}

// dirStore is an OCI layout directory.
type dirStore string

func (d dirStore) open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
}
func (d dirStore) where() string { return "OCI layout " + string(d) }

// tarStore is an OCI layout inside an uncompressed tar file, read in place: the tar is indexed once and
// each blob is then a section of the file.
type tarStore struct {
	file  string
	files map[string]tarSection
}

type tarSection struct{ off, size int64 }

func newTarStore(file string) (*tarStore, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, exitcode.Operationalf("opening OCI archive %s: %w", file, err)
	}
	defer f.Close()
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		return nil, exitcode.Operationalf("OCI archive %s is gzip-compressed; crs-ci reads uncompressed archives (as skopeo and podman write them): gunzip it first", file)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, exitcode.Operationalf("reading OCI archive %s: %w", file, err)
	}
	st := &tarStore{file: file, files: map[string]tarSection{}}
	clean := func(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }
	links := map[string]string{} // hard links (a blob stored once under two names)
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, exitcode.Operationalf("reading OCI archive %s: %w", file, err)
		}
		if hdr.Typeflag == tar.TypeLink {
			links[clean(hdr.Name)] = clean(hdr.Linkname)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, exitcode.Operationalf("reading OCI archive %s: %w", file, err)
		}
		st.files[clean(hdr.Name)] = tarSection{off: off, size: hdr.Size}
	}
	for name, target := range links {
		if s, ok := st.files[target]; ok {
			st.files[name] = s
		}
	}
	if _, ok := st.files["index.json"]; !ok {
		return nil, exitcode.Operationalf("%s is not an OCI archive: it has no index.json", file)
	}
	return st, nil
}

func (t *tarStore) open(name string) (io.ReadCloser, error) {
	s, ok := t.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: t.file + ":" + name, Err: fs.ErrNotExist}
	}
	f, err := os.Open(t.file)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, s.off, s.size), f}, nil
}
func (t *tarStore) where() string { return "OCI archive " + t.file }

// verifiedBlob opens a blob and checks its size and digest as it is read: the read that reaches the end
// returns an error if either differs from the descriptor.
func verifiedBlob(st store, d v1.Descriptor) (io.ReadCloser, error) {
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 {
		return nil, fmt.Errorf("%s: unsupported digest %q", st.where(), d.Digest)
	}
	if _, err := hex.DecodeString(d.Digest.Hex); err != nil {
		return nil, fmt.Errorf("%s: bad digest %q", st.where(), d.Digest)
	}
	rc, err := st.open("blobs/sha256/" + d.Digest.Hex)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: blob %s is missing", st.where(), d.Digest)
		}
		return nil, fmt.Errorf("%s: opening blob %s: %w", st.where(), d.Digest, err)
	}
	return &verifyReader{rc: rc, r: io.LimitReader(rc, d.Size+1), h: sha256.New(), want: d, where: st.where()}, nil
}

type verifyReader struct {
	rc    io.ReadCloser
	r     io.Reader
	h     hash.Hash
	n     int64
	want  v1.Descriptor
	where string
	err   error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.want.Size {
		v.err = fmt.Errorf("%s: blob %s is larger than the %d bytes its descriptor says", v.where, v.want.Digest, v.want.Size)
		return n, v.err
	}
	if err == io.EOF {
		if v.n != v.want.Size {
			v.err = fmt.Errorf("%s: blob %s is truncated: %d of %d bytes", v.where, v.want.Digest, v.n, v.want.Size)
			return n, v.err
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Digest.Hex {
			v.err = fmt.Errorf("%s: blob %s does not match its digest (content hashes to sha256:%s)", v.where, v.want.Digest, got)
			return n, v.err
		}
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.rc.Close() }

// readVerified reads a whole (small) blob, verified.
func readVerified(st store, d v1.Descriptor, limit int64, what string) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("%s: %s %s is %d bytes, more than the %d allowed", st.where(), what, d.Digest, d.Size, limit)
	}
	rc, err := verifiedBlob(st, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return b, nil
}

// openLayout reads index.json and picks the manifest r names.
func openLayout(r Reference, st store) (opened, error) {
	rc, err := st.open("index.json")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if d, ok := st.(dirStore); ok {
				if _, serr := os.Stat(string(d)); serr != nil {
					return opened{}, exitcode.Operationalf("opening OCI layout: %w", serr)
				}
			}
			return opened{}, exitcode.Operationalf("%s is not an OCI image layout: it has no index.json", st.where())
		}
		return opened{}, exitcode.Operationalf("opening %s: %w", st.where(), err)
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	rc.Close()
	if err != nil {
		return opened{}, exitcode.Operationalf("reading index.json of %s: %w", st.where(), err)
	}
	if len(raw) > maxManifestBytes {
		return opened{}, exitcode.Operationalf("index.json of %s is larger than %d bytes", st.where(), maxManifestBytes)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return opened{}, exitcode.Operationalf("index.json of %s is not a valid OCI index: %v", st.where(), err)
	}
	var names []string
	var chosen []v1.Descriptor
	for _, d := range im.Manifests {
		n := d.Annotations[refNameAnnotation]
		names = append(names, describeRef(n, d))
		if r.Tag == "" || n == r.Tag {
			chosen = append(chosen, d)
		}
	}
	sort.Strings(names)
	switch {
	case len(im.Manifests) == 0:
		return opened{}, exitcode.Operationalf("%s lists no manifests in index.json", st.where())
	case len(chosen) == 0:
		return opened{}, exitcode.Usagef("%s has no manifest named %q (ref names: %s)", st.where(), r.Tag, strings.Join(names, ", "))
	case len(chosen) > 1 && r.Tag == "":
		return opened{}, exitcode.Usagef("%s holds %d manifests: name one as %s:%s:REF (ref names: %s)", st.where(), len(chosen), r.Transport, r.Name, strings.Join(names, ", "))
	case len(chosen) > 1:
		return opened{}, exitcode.Operationalf("%s has %d manifests named %q", st.where(), len(chosen), r.Tag)
	}
	d := chosen[0]
	if d.MediaType == "" {
		// Some tools leave the media type out of index.json: the document says what it is.
		raw, err := readVerified(st, d, maxManifestBytes, "manifest")
		if err != nil {
			return opened{}, exitcode.Operationalf("%w", err)
		}
		d.MediaType = sniffMediaType(raw)
	}
	o := opened{digest: d.Digest, desc: d}
	switch {
	case d.MediaType.IsIndex():
		o.index, err = newLayoutIndex(st, d)
	case d.MediaType.IsImage():
		o.image, err = newLayoutImage(st, d)
	default:
		err = fmt.Errorf("%s: manifest %s has media type %q, neither an image nor an index", st.where(), d.Digest, d.MediaType)
	}
	if err != nil {
		return opened{}, exitcode.Operationalf("%w", err)
	}
	return o, nil
}

// sniffMediaType tells an index from an image manifest by its content.
func sniffMediaType(raw []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType  `json:"mediaType"`
		Manifests *json.RawMessage `json:"manifests"`
		Layers    *json.RawMessage `json:"layers"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Layers != nil:
		return types.OCIManifestSchema1
	}
	return ""
}

func describeRef(n string, d v1.Descriptor) string {
	if n == "" {
		return "(unnamed " + d.Digest.String() + ")"
	}
	return n
}

// layoutIndex is an image index in a store.
type layoutIndex struct {
	st   store
	desc v1.Descriptor
	raw  []byte
	im   *v1.IndexManifest
}

func newLayoutIndex(st store, d v1.Descriptor) (*layoutIndex, error) {
	raw, err := readVerified(st, d, maxManifestBytes, "index")
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: index %s is not valid JSON: %v", st.where(), d.Digest, err)
	}
	return &layoutIndex{st: st, desc: d, raw: raw, im: im}, nil
}

func (i *layoutIndex) MediaType() (types.MediaType, error) {
	if i.im.MediaType != "" {
		return i.im.MediaType, nil
	}
	return i.desc.MediaType, nil
}
func (i *layoutIndex) Digest() (v1.Hash, error)                  { return i.desc.Digest, nil }
func (i *layoutIndex) Size() (int64, error)                      { return i.desc.Size, nil }
func (i *layoutIndex) RawManifest() ([]byte, error)              { return i.raw, nil }
func (i *layoutIndex) IndexManifest() (*v1.IndexManifest, error) { return i.im.DeepCopy(), nil }

func (i *layoutIndex) find(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range i.im.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%s: index %s does not list %s", i.st.where(), i.desc.Digest, h)
}

func (i *layoutIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := i.find(h)
	if err != nil {
		return nil, err
	}
	return newLayoutImage(i.st, d)
}

func (i *layoutIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := i.find(h)
	if err != nil {
		return nil, err
	}
	return newLayoutIndex(i.st, d)
}

// layoutImage is the compressed core of an image in a store; partial.CompressedToImage completes it.
type layoutImage struct {
	st   store
	desc v1.Descriptor
	raw  []byte
	m    *v1.Manifest

	cfgOnce sync.Once
	cfg     *v1.ConfigFile
	cfgErr  error
}

func newLayoutImage(st store, d v1.Descriptor) (v1.Image, error) {
	raw, err := readVerified(st, d, maxManifestBytes, "manifest")
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s is not valid JSON: %v", st.where(), d.Digest, err)
	}
	return partial.CompressedToImage(&layoutImage{st: st, desc: d, raw: raw, m: m})
}

func (i *layoutImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	return i.desc.MediaType, nil
}
func (i *layoutImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *layoutImage) Descriptor() (*v1.Descriptor, error) { d := i.desc; return &d, nil }

func (i *layoutImage) RawConfigFile() ([]byte, error) {
	b, err := readVerified(i.st, i.m.Config, maxConfigBytes, "config")
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &layoutBlob{st: i.st, desc: i.m.Config, img: i, index: -1}, nil
	}
	for n, l := range i.m.Layers {
		if l.Digest == h {
			return &layoutBlob{st: i.st, desc: l, img: i, index: n}, nil
		}
	}
	return nil, fmt.Errorf("%s: manifest %s has no layer %s", i.st.where(), i.desc.Digest, h)
}

// configFile parses the config once.
func (i *layoutImage) configFile() (*v1.ConfigFile, error) {
	i.cfgOnce.Do(func() {
		raw, err := i.RawConfigFile()
		if err != nil {
			i.cfgErr = err
			return
		}
		i.cfg, i.cfgErr = v1.ParseConfigFile(bytes.NewReader(raw))
		if i.cfgErr != nil {
			i.cfgErr = fmt.Errorf("%s: config %s is not valid JSON: %w", i.st.where(), i.m.Config.Digest, i.cfgErr)
		}
	})
	return i.cfg, i.cfgErr
}

// layoutBlob is one layer blob, verified as it is read.
type layoutBlob struct {
	st    store
	desc  v1.Descriptor
	img   *layoutImage
	index int // position in the manifest's layers; -1 for the config
}

// DiffID is the layer's diff ID as the config lists it (so Scan can check the content against it).
func (b *layoutBlob) DiffID() (v1.Hash, error) {
	cf, err := b.img.configFile()
	if err != nil {
		return v1.Hash{}, err
	}
	if b.index < 0 || len(cf.RootFS.DiffIDs) != len(b.img.m.Layers) {
		return v1.Hash{}, fmt.Errorf("%s: manifest %s has %d layers but its config lists %d diff IDs",
			b.st.where(), b.img.desc.Digest, len(b.img.m.Layers), len(cf.RootFS.DiffIDs))
	}
	return cf.RootFS.DiffIDs[b.index], nil
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *layoutBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *layoutBlob) Descriptor() (*v1.Descriptor, error) { d := b.desc; return &d, nil }
func (b *layoutBlob) Compressed() (io.ReadCloser, error)  { return verifiedBlob(b.st, b.desc) }
