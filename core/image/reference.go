// Package image resolves image references (skopeo's transport names), opens images and multi-platform
// indexes from registries, OCI layouts, OCI and docker archives and the docker daemon, and builds the merged
// filesystem of an image by streaming each layer once (whiteouts and opaque directories honoured, nothing
// extracted to disk, per-layer facts cached by layer digest).
package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// Transport names, as skopeo spells them.
const (
	Docker        = "docker"
	OCI           = "oci"
	OCIArchive    = "oci-archive"
	DockerArchive = "docker-archive"
	DockerDaemon  = "docker-daemon"
)

// Reference is a parsed image reference in skopeo's transport names.
type Reference struct {
	Transport string // "docker", "oci", "oci-archive", "docker-archive", "docker-daemon"
	Name      string // registry reference for docker / docker-daemon; file or directory path otherwise
	Tag       string // oci / oci-archive REF (matches org.opencontainers.image.ref.name); docker-archive REPO:TAG; may be ""
}

const referenceForms = "REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:..., docker://REGISTRY/REPO:TAG, oci:DIR[:REF], " +
	"oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG], docker-daemon:REPO:TAG"

// ParseReference parses an image reference. Bad syntax is an exitcode.Usage error that says what was
// expected.
func ParseReference(s string) (Reference, error) {
	bad := func(format string, args ...any) (Reference, error) {
		return Reference{}, exitcode.Usagef("image reference %q: %s (forms: %s)", s, fmt.Sprintf(format, args...), referenceForms)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.TrimSpace(s) != s {
		return bad("leading or trailing white space")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return bad("control character %q", c)
		}
	}
	transport, rest, hasColon := strings.Cut(s, ":")
	switch {
	case strings.HasPrefix(s, "docker://"):
		ref := strings.TrimPrefix(s, "docker://")
		if ref == "" {
			return bad("docker:// needs REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST")
		}
		if err := checkRegistryRef(ref, false); err != nil {
			return bad("%v", err)
		}
		return Reference{Transport: Docker, Name: ref}, nil
	case hasColon && (transport == OCI || transport == OCIArchive):
		path, ref, hasRef := strings.Cut(rest, ":")
		if hasRef && ref == "" {
			return bad("%s: the REF after ':' is empty", transport)
		}
		if path == "" {
			return bad("%s: needs a %s path before the optional :REF", transport, map[bool]string{true: "directory", false: "file"}[transport == OCI])
		}
		if strings.Contains(ref, ":") {
			return bad("%s: REF %q must not contain ':'", transport, ref)
		}
		return Reference{Transport: transport, Name: path, Tag: ref}, nil
	case hasColon && transport == DockerArchive:
		path, tag, hasTag := strings.Cut(rest, ":")
		if hasTag && tag == "" {
			return bad("docker-archive: the REPO:TAG after ':' is empty")
		}
		if path == "" {
			return bad("docker-archive: needs a file path before the optional :REPO:TAG")
		}
		if tag != "" {
			if strings.HasPrefix(tag, "@") {
				return bad("docker-archive: @N image indexes are not supported; name the image as REPO:TAG")
			}
			if _, err := name.NewTag(tag); err != nil {
				return bad("docker-archive: %q is not REPO:TAG: %v", tag, err)
			}
			if !hasTagOrDigest(tag) || strings.Contains(tag, "@") {
				return bad("docker-archive: %q is not REPO:TAG: the :TAG is missing", tag)
			}
		}
		return Reference{Transport: DockerArchive, Name: path, Tag: tag}, nil
	case hasColon && transport == DockerDaemon:
		if rest == "" {
			return bad("docker-daemon: needs REPO:TAG or REPO@DIGEST")
		}
		if err := checkRegistryRef(rest, true); err != nil {
			return bad("docker-daemon: %v", err)
		}
		return Reference{Transport: DockerDaemon, Name: rest}, nil
	case hasColon && isOtherTransport(transport):
		return bad("transport %q is not supported", transport)
	}
	if err := checkRegistryRef(s, false); err != nil {
		return bad("%v", err)
	}
	return Reference{Transport: Docker, Name: s}, nil
}

// isOtherTransport reports skopeo transports crs-ci does not read, so their refs get a clear message
// rather than a registry-syntax one.
func isOtherTransport(t string) bool {
	switch t {
	case "dir", "containers-storage", "ostree", "sif", "tarball":
		return true
	}
	return false
}

// checkRegistryRef validates a registry reference; daemon references must carry a tag or digest.
func checkRegistryRef(ref string, needTagOrDigest bool) error {
	if strings.Contains(ref, "://") {
		return fmt.Errorf("unexpected scheme in %q", ref)
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("not a registry reference: %v", err)
	}
	if needTagOrDigest && !hasTagOrDigest(ref) {
		return fmt.Errorf("%q needs a :TAG or @DIGEST", ref)
	}
	return nil
}

// hasTagOrDigest reports whether a reference names its tag or digest explicitly.
func hasTagOrDigest(ref string) bool {
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":") || strings.Contains(ref, "@")
}

// String returns the reference in the form ParseReference accepts.
func (r Reference) String() string {
	switch r.Transport {
	case Docker, "":
		return r.Name
	case OCI, OCIArchive, DockerArchive:
		if r.Tag != "" {
			return r.Transport + ":" + r.Name + ":" + r.Tag
		}
		return r.Transport + ":" + r.Name
	default:
		return r.Transport + ":" + r.Name
	}
}
