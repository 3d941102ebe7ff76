package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/version"
)

// Options say how to open an image.
type Options struct {
	Platform      string          // "" = this machine's platform; "all"; "linux/arm64", "linux/arm/v7", ...
	Keychain      authn.Keychain  // nil = authn.DefaultKeychain (docker config, DOCKER_CONFIG, cred helpers)
	RemoteOptions []remote.Option // extra options (transport with proxy/CA, retries) added by callers
	Progress      io.Writer       // optional: progress lines (bytes, layers); terminal vs CI decided by caller
}

// PlatformAll selects every platform of an index.
const PlatformAll = "all"

// Source is an opened image or index, with the platforms selected by Options.Platform, in index order.
type Source struct {
	Ref Reference
	// Digest is the digest of the top-level manifest or index. docker-archive and docker-daemon images carry
	// no manifest of their own: there it is the image ID (the config digest), as docker shows it.
	Digest v1.Hash
	Index  v1.ImageIndex // nil when the reference names a single image
	Images []PlatformImage
}

// PlatformImage is one selected platform of a Source.
type PlatformImage struct {
	Platform v1.Platform
	// Descriptor is the manifest descriptor as listed in the index; for a single image, its own manifest
	// descriptor (for docker-archive and docker-daemon the digest is the image ID, see Source.Digest).
	Descriptor v1.Descriptor
	Image      v1.Image
}

// Open resolves ref (any transport) and selects platforms. Loopback registries (127.0.0.0/8, localhost, ::1)
// are spoken to over plain http. An index lacking the requested platform is a usage error listing what it
// has. Unreadable or corrupt images are operational errors.
func Open(ctx context.Context, ref string, opts Options) (*Source, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	want, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	var top opened
	switch r.Transport {
	case Docker:
		top, err = openRemote(ctx, r, opts)
	case OCI:
		top, err = openLayout(r, dirStore(r.Name))
	case OCIArchive:
		var st *tarStore
		st, err = newTarStore(r.Name)
		if err == nil {
			top, err = openLayout(r, st)
		}
	case DockerArchive:
		top, err = openDockerArchive(r)
	case DockerDaemon:
		top, err = openDaemon(ctx, r)
	default:
		err = exitcode.Usagef("image reference %q: unknown transport %q", ref, r.Transport)
	}
	if err != nil {
		return nil, exitcode.WithCode(exitcode.Operational, err)
	}
	src := &Source{Ref: r, Digest: top.digest, Index: top.index}
	if top.index != nil {
		src.Images, err = selectFromIndex(r, top.index, want)
	} else {
		src.Images, err = selectSingle(r, top.image, top.desc, want)
	}
	if err != nil {
		return nil, exitcode.WithCode(exitcode.Operational, err)
	}
	if opts.Progress != nil {
		var ps []string
		for _, pi := range src.Images {
			ps = append(ps, pi.Platform.String())
		}
		fmt.Fprintf(opts.Progress, "opened %s (%s), platforms: %s\n", r, src.Digest, strings.Join(ps, ", "))
	}
	return src, nil
}

// opened is the top-level object a reference names: an index, or one image with its descriptor.
type opened struct {
	digest v1.Hash
	index  v1.ImageIndex
	image  v1.Image
	desc   v1.Descriptor
}

// wantPlatform is a parsed Options.Platform.
type wantPlatform struct {
	all      bool
	explicit bool // given by the user (not the machine's default)
	p        v1.Platform
}

func parsePlatform(s string) (wantPlatform, error) {
	switch s {
	case PlatformAll:
		return wantPlatform{all: true}, nil
	case "":
		p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
		return wantPlatform{p: p}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return wantPlatform{}, exitcode.Usagef("--platform %q: want OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm/v7) or %q", s, PlatformAll)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return wantPlatform{explicit: true, p: p}, nil
}

// matches reports whether have satisfies w. A missing variant in the request matches any variant; arm64's
// "v8" is its default variant and matches an empty one.
func (w wantPlatform) matches(have v1.Platform) bool {
	if w.all {
		return true
	}
	if have.OS != w.p.OS || have.Architecture != w.p.Architecture {
		return false
	}
	if w.p.Variant == "" || w.p.Variant == have.Variant {
		return true
	}
	return have.Architecture == "arm64" && have.Variant == "" && w.p.Variant == "v8"
}

func (w wantPlatform) String() string {
	if w.all {
		return PlatformAll
	}
	return w.p.String()
}

// isLoopbackHost reports whether a registry host (with optional port) is a loopback address.
func isLoopbackHost(reg string) bool {
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseRegistryRef parses a registry reference, marking loopback registries as plain http.
func parseRegistryRef(s string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, exitcode.Usagef("image reference %q: %v", s, err)
	}
	if isLoopbackHost(r.Context().RegistryStr()) {
		return name.ParseReference(s, name.Insecure)
	}
	return r, nil
}

func openRemote(ctx context.Context, r Reference, opts Options) (opened, error) {
	ref, err := parseRegistryRef(r.Name)
	if err != nil {
		return opened{}, err
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithUserAgent("crs-ci/" + version.Version)}, opts.RemoteOptions...)
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return opened{}, exitcode.Operationalf("fetching manifest of %s from %s: %w", ref, ref.Context().RegistryStr(), err)
	}
	o := opened{digest: desc.Digest, desc: desc.Descriptor}
	switch {
	case desc.MediaType.IsIndex():
		o.index, err = desc.ImageIndex()
	case desc.MediaType.IsImage():
		o.image, err = desc.Image()
	default:
		err = fmt.Errorf("media type %q is neither an image nor an index", desc.MediaType)
	}
	if err != nil {
		return opened{}, exitcode.Operationalf("reading %s: %w", ref, err)
	}
	return o, nil
}

func openDockerArchive(r Reference) (opened, error) {
	if _, err := os.Stat(r.Name); err != nil {
		return opened{}, exitcode.Operationalf("opening docker archive %s: %w", r.Name, err)
	}
	var tag *name.Tag
	if r.Tag != "" {
		t, err := name.NewTag(r.Tag)
		if err != nil {
			return opened{}, exitcode.Usagef("docker-archive %s: %q is not REPO:TAG: %v", r.Name, r.Tag, err)
		}
		tag = &t
	}
	opener := func() (io.ReadCloser, error) { return os.Open(r.Name) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return opened{}, exitcode.Operationalf("reading docker archive %s: manifest.json: %w", r.Name, err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	sort.Strings(tags)
	switch {
	case len(m) == 0:
		return opened{}, exitcode.Operationalf("docker archive %s holds no image", r.Name)
	case tag == nil && len(m) > 1:
		return opened{}, exitcode.Usagef("docker archive %s holds %d images: name one as docker-archive:%s:REPO:TAG (tags: %s)", r.Name, len(m), r.Name, strings.Join(tags, ", "))
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		if tag != nil && strings.Contains(err.Error(), "tag") {
			return opened{}, exitcode.Usagef("docker archive %s has no image tagged %s (tags: %s)", r.Name, r.Tag, strings.Join(tags, ", "))
		}
		return opened{}, exitcode.Operationalf("reading docker archive %s: %w", r.Name, err)
	}
	return openedConfigID(img, "docker archive "+r.Name)
}

func openDaemon(ctx context.Context, r Reference) (opened, error) {
	ref, err := name.ParseReference(r.Name)
	if err != nil {
		return opened{}, exitcode.Usagef("docker-daemon:%s: %v", r.Name, err)
	}
	img, err := daemon.Image(ref, daemon.WithContext(ctx), daemon.WithFileBufferedOpener())
	if err != nil {
		return opened{}, exitcode.Operationalf("reading %s from the docker daemon (DOCKER_HOST=%s): %w", ref, os.Getenv("DOCKER_HOST"), err)
	}
	return openedConfigID(img, "docker-daemon:"+r.Name)
}

// openedConfigID describes an image without a manifest of its own by its image ID (config digest), so that
// nothing has to recompress its layers.
func openedConfigID(img v1.Image, what string) (opened, error) {
	id, err := img.ConfigName()
	if err != nil {
		return opened{}, exitcode.Operationalf("reading the config of %s: %w", what, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		mt = types.DockerManifestSchema2
	}
	return opened{digest: id, image: img, desc: v1.Descriptor{MediaType: mt, Digest: id}}, nil
}

// configPlatform reads an image's platform from its config.
func configPlatform(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	if cf == nil {
		return v1.Platform{}, errors.New("image has no config")
	}
	if p := cf.Platform(); p != nil {
		return *p, nil
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}, nil
}

func selectSingle(r Reference, img v1.Image, desc v1.Descriptor, want wantPlatform) ([]PlatformImage, error) {
	p, err := configPlatform(img)
	if err != nil {
		return nil, exitcode.Operationalf("reading the config of %s: %w", r, err)
	}
	if want.explicit && !want.matches(p) {
		return nil, exitcode.Usagef("%s is a single %s image, not %s", r, platformString(p), want)
	}
	pp := p
	desc.Platform = &pp
	return []PlatformImage{{Platform: p, Descriptor: desc, Image: img}}, nil
}

func platformString(p v1.Platform) string {
	if p.OS == "" && p.Architecture == "" {
		return "unknown-platform"
	}
	return p.String()
}

// isAttestation reports index entries that are not runnable images (buildkit attestations).
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] != "" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// selectFromIndex walks an index (nested indexes flattened, in order) and keeps the images want selects.
func selectFromIndex(r Reference, idx v1.ImageIndex, want wantPlatform) ([]PlatformImage, error) {
	var all []PlatformImage
	if err := flattenIndex(idx, &all, 0); err != nil {
		return nil, exitcode.Operationalf("reading index of %s: %w", r, err)
	}
	var out, have []PlatformImage
	for _, pi := range all {
		have = append(have, pi)
		if want.matches(pi.Platform) {
			out = append(out, pi)
			if !want.all {
				break
			}
		}
	}
	if len(out) == 0 {
		var names []string
		for _, pi := range have {
			names = append(names, platformString(pi.Platform))
		}
		if len(names) == 0 {
			return nil, exitcode.Operationalf("index %s lists no runnable images", r)
		}
		hint := "choose one with --platform OS/ARCH or use --platform all"
		return nil, exitcode.Usagef("index %s has no %s image; it has: %s (%s)", r, want, strings.Join(names, ", "), hint)
	}
	return out, nil
}

func flattenIndex(idx v1.ImageIndex, out *[]PlatformImage, depth int) error {
	if depth > 8 {
		return errors.New("indexes nested more than 8 deep")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return fmt.Errorf("nested index %s: %w", d.Digest, err)
			}
			if err := flattenIndex(child, out, depth+1); err != nil {
				return err
			}
		case d.MediaType.IsImage() || d.MediaType == "":
			if isAttestation(d) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
			var p v1.Platform
			if d.Platform != nil {
				p = *d.Platform
			} else if p, err = configPlatform(img); err != nil {
				return fmt.Errorf("manifest %s: reading its config: %w", d.Digest, err)
			}
			*out = append(*out, PlatformImage{Platform: p, Descriptor: d, Image: img})
		}
	}
	return nil
}
