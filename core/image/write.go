package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// RefNameAnnotation names an image inside an OCI layout (oci:DIR:REF, oci-archive:FILE:REF).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteOptions say how to write an image.
type WriteOptions struct {
	Keychain      authn.Keychain  // nil = authn.DefaultKeychain
	RemoteOptions []remote.Option // transport with proxy/CA, retry settings; they override the defaults
	Progress      io.Writer       // optional progress lines
}

// DefaultRetryBackoff is how pushes retry 408/429/5xx answers and dropped connections: 1s, 2s, 4s, 8s.
var DefaultRetryBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}

// Write writes an image or an index (exactly one of img and idx is non-nil) to ref and returns the digest of
// its manifest or index.
//
//   - docker (registry): blobs the registry already has are not uploaded again and blobs of a remote source
//     in the same registry are mounted across repositories; every blob and child manifest is written before
//     the tagged manifest or index, so a failure never leaves the tag pointing at a half-written image.
//     Transient failures (408, 429, 5xx, dropped connections) are retried with backoff.
//   - oci:DIR[:REF]: added to the layout (created if missing); an image already named REF is replaced.
//   - oci-archive:FILE[:REF]: a tar of such a layout, written to a temporary file and renamed into place.
func Write(ctx context.Context, ref Reference, img v1.Image, idx v1.ImageIndex, opts WriteOptions) (v1.Hash, error) {
	if (img == nil) == (idx == nil) {
		return v1.Hash{}, fmt.Errorf("image.Write: give exactly one of an image and an index")
	}
	var digest v1.Hash
	var err error
	if img != nil {
		digest, err = img.Digest()
	} else {
		digest, err = idx.Digest()
	}
	if err != nil {
		return v1.Hash{}, exitcode.Operationalf("computing the digest to write to %s: %w", ref, err)
	}
	switch ref.Transport {
	case Docker:
		err = writeRemote(ctx, ref, img, idx, opts)
	case OCI:
		err = writeLayout(ref.Name, ref.Tag, img, idx)
	case OCIArchive:
		err = writeOCIArchive(ref.Name, ref.Tag, img, idx)
	default:
		err = exitcode.Usagef("writing to %s: the %s transport cannot be written; use a registry reference, oci:DIR or oci-archive:FILE", ref, ref.Transport)
	}
	if err != nil {
		return v1.Hash{}, err
	}
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "wrote %s (%s)\n", ref, digest)
	}
	return digest, nil
}

func writeRemote(ctx context.Context, ref Reference, img v1.Image, idx v1.ImageIndex, opts WriteOptions) error {
	nref, err := parseRegistryRef(ref.Name)
	if err != nil {
		return err
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{
		remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithRetryBackoff(DefaultRetryBackoff),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
	}
	ropts = append(ropts, opts.RemoteOptions...)
	if opts.Progress != nil {
		ch := make(chan v1.Update, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			reportProgress(opts.Progress, nref.String(), ch)
		}()
		ropts = append(ropts, remote.WithProgress(ch))
		defer func() { <-done }()
	}
	if img != nil {
		err = remote.Write(nref, img, ropts...)
	} else {
		err = remote.WriteIndex(nref, idx, ropts...)
	}
	if err != nil {
		return RegistryError("pushing "+nref.String(), nref.Context().RegistryStr(), err)
	}
	return nil
}

// reportProgress prints a line each time another quarter of the bytes has been uploaded.
func reportProgress(w io.Writer, what string, ch <-chan v1.Update) {
	next := int64(0)
	for u := range ch {
		if u.Error != nil || u.Total == 0 {
			continue
		}
		if u.Complete >= next || u.Complete == u.Total {
			fmt.Fprintf(w, "pushing %s: %d/%d bytes\n", what, u.Complete, u.Total)
			next = u.Complete + u.Total/4
		}
	}
}

// RegistryError turns a registry failure into an operational error that names the registry and what to
// check for 401, 403 and 404 answers. doing is what was being done ("pushing REF").
func RegistryError(doing, registry string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return exitcode.Operationalf("%s: registry %s refused the credentials (HTTP 401): check the username and password "+
				"(docker config / --username with --password-stdin / CRS_REGISTRY_USERNAME+CRS_REGISTRY_PASSWORD / Vault)", doing, registry)
		case http.StatusForbidden:
			return exitcode.Operationalf("%s: registry %s denied access (HTTP 403): the account lacks push or pull permission on this repository", doing, registry)
		case http.StatusNotFound:
			return exitcode.Operationalf("%s: registry %s answered not found (HTTP 404): check the repository name and that it exists", doing, registry)
		}
	}
	return exitcode.Operationalf("%s: registry %s: %w", doing, registry, err)
}

// writeLayout adds img or idx to the OCI layout at dir under refName.
func writeLayout(dir, refName string, img v1.Image, idx v1.ImageIndex) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return exitcode.Operationalf("creating OCI layout %s: %w", dir, err)
		}
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: refName}))
	}
	matcher := match.Annotation(RefNameAnnotation, refName)
	if img != nil {
		err = p.ReplaceImage(img, matcher, opts...)
	} else {
		err = p.ReplaceIndex(idx, matcher, opts...)
	}
	if err != nil {
		return exitcode.Operationalf("writing to OCI layout %s: %w", dir, err)
	}
	return nil
}

// writeOCIArchive writes a one-image OCI layout as a tar file, atomically.
func writeOCIArchive(file, refName string, img v1.Image, idx v1.ImageIndex) error {
	tmpDir, err := os.MkdirTemp(filepath.Dir(file), ".crs-oci-")
	if err != nil {
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	defer os.RemoveAll(tmpDir)
	if err := writeLayout(tmpDir, refName, img, idx); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".crs-oci-archive-")
	if err != nil {
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if err := tarDir(tmp, tmpDir); err != nil {
		tmp.Close()
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return exitcode.Operationalf("writing OCI archive %s: %w", file, err)
	}
	return nil
}

// tarDir writes the files under dir as a tar stream with sorted names, fixed times and root owners.
func tarDir(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		hdr := &tar.Header{Name: rel, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", 0o755
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, fi.Size(), 0o644
		default:
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// ParseRegistryName parses a registry reference the way Open and Write do (loopback registries over http).
func ParseRegistryName(s string) (name.Reference, error) { return parseRegistryRef(s) }
