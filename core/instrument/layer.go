package instrument

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/probe"
)

// LayerTime is the modification time of every entry of the probe layer (fixed, so the layer is reproducible).
var LayerTime = time.Unix(0, 0).UTC()

// LayerInput is what goes into one platform's probe layer.
type LayerInput struct {
	Probe  []byte // the probe shared library for the platform's libc and architecture
	Policy []byte // the compiled policy
	// Preload, for glibc images: the entries the image's /etc/ld.so.preload already has (nil: no such file).
	// The layer's /etc/ld.so.preload lists the probe first, then these (duplicates of the probe dropped).
	Preload []string
	Musl    bool // musl images get no /etc/ld.so.preload (musl ignores it): LD_PRELOAD goes in the config Env
}

// LayerEntry is one entry of the probe layer (for reports and tests).
type LayerEntry struct {
	Path string // absolute, e.g. /usr/lib/crs-ci/probe.so
	Mode int64
	Dir  bool
	Data []byte
}

// LayerEntries lists the layer's entries in the order they are written (sorted by path): root-owned,
// directories 0755, the probe 0755, other files 0644. Parent directories the image already has (/etc,
// /usr/lib) are not included, so the layer never changes their owner or mode.
func LayerEntries(in LayerInput) []LayerEntry {
	entries := []LayerEntry{
		{Path: path.Dir(probe.LibraryPath), Mode: 0o755, Dir: true},
		{Path: probe.LibraryPath, Mode: 0o755, Data: in.Probe},
		{Path: path.Dir(probe.PolicyPath), Mode: 0o755, Dir: true},
		{Path: probe.PolicyPath, Mode: 0o644, Data: in.Policy},
	}
	if !in.Musl {
		entries = append(entries, LayerEntry{Path: probe.PreloadPath, Mode: 0o644, Data: PreloadFile(in.Preload)})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return entries
}

// PreloadFile is the content of /etc/ld.so.preload: the probe first, then the image's own entries in their
// order, one per line.
func PreloadFile(existing []string) []byte {
	var b strings.Builder
	b.WriteString(probe.LibraryPath + "\n")
	seen := map[string]bool{probe.LibraryPath: true}
	for _, e := range existing {
		e = strings.TrimSpace(e)
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		b.WriteString(e + "\n")
	}
	return []byte(b.String())
}

// LayerTar returns the uncompressed tar of the layer: sorted entries, fixed times, uid/gid 0.
func LayerTar(in LayerInput) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range LayerEntries(in) {
		hdr := &tar.Header{
			Name: strings.TrimPrefix(e.Path, "/"), Mode: e.Mode, ModTime: LayerTime,
			Uid: 0, Gid: 0, Uname: "root", Gname: "root", Format: tar.FormatUSTAR,
		}
		if e.Dir {
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("building the probe layer: %s: %w", e.Path, err)
		}
		if !e.Dir {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("building the probe layer: %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("building the probe layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Layer builds the gzip-compressed probe layer with the given media type (types.OCILayer or
// types.DockerLayer, to match the image's manifest). The same input always gives the same digest.
func Layer(in LayerInput, mt types.MediaType) (v1.Layer, error) {
	raw, err := LayerTar(in)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(mt))
	if err != nil {
		return nil, fmt.Errorf("building the probe layer: %w", err)
	}
	return l, nil
}
