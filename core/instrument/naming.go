package instrument

import (
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
)

// DefaultTagSuffix is appended to the source tag to name the instrumented image.
const DefaultTagSuffix = "-layered"

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// TargetRef names the instrumented image.
//
//   - REPO:TAG → REPO:TAG<suffix>; REPO@sha256:HEX → REPO:sha256-HEX<suffix> (a registry source, no --to).
//   - oci:DIR:REF → oci:DIR:REF<suffix> (REF "latest" when the source has none).
//   - to: used as given; a registry reference without a tag or digest gets the tag computed above.
//
// A target equal to the source is refused: the source tag is never written.
func TargetRef(src image.Reference, to, suffix string) (image.Reference, error) {
	if suffix == "" {
		suffix = DefaultTagSuffix
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`).MatchString(suffix) {
		return image.Reference{}, exitcode.Usagef("--tag-suffix %q: use letters, digits, '_', '.' and '-' (at most 40)", suffix)
	}
	tag, err := derivedTag(src, suffix)
	if err != nil && to == "" {
		return image.Reference{}, err
	}
	if to == "" {
		switch src.Transport {
		case image.Docker:
			ref, _ := name.ParseReference(src.Name)
			return image.Reference{Transport: image.Docker, Name: ref.Context().Name() + ":" + tag}, nil
		case image.OCI:
			return image.Reference{Transport: image.OCI, Name: src.Name, Tag: tag}, nil
		}
		return image.Reference{}, exitcode.Usagef("instrumenting %s: a %s source has no registry to push to; give --to REGISTRY/REPO:TAG or --dry-run --output oci:DIR", src, src.Transport)
	}
	target, err := image.ParseReference(to)
	if err != nil {
		return image.Reference{}, exitcode.Usagef("--to: %v", err)
	}
	switch target.Transport {
	case image.Docker:
		ref, err := name.ParseReference(target.Name)
		if err != nil {
			return image.Reference{}, exitcode.Usagef("--to %q: %v", to, err)
		}
		if _, isDigest := ref.(name.Digest); isDigest {
			return image.Reference{}, exitcode.Usagef("--to %q: a digest cannot be pushed to; name a tag", to)
		}
		if !hasExplicitTag(target.Name) {
			if tag == "" {
				tag = "latest" + suffix
			}
			target.Name = ref.Context().Name() + ":" + tag
		} else {
			target.Name = ref.Name()
		}
		if src.Transport == image.Docker {
			sref, err := name.ParseReference(src.Name)
			if err == nil && sref.Name() == target.Name {
				return image.Reference{}, exitcode.Usagef("--to %s is the source image itself; the source tag is never overwritten (drop --to to push %s)", to, tag)
			}
		}
	case image.OCI, image.OCIArchive:
		if target.Tag == "" && tag != "" {
			target.Tag = tag
		}
		if target.Transport == src.Transport && target.Name == src.Name && target.Tag == src.Tag {
			return image.Reference{}, exitcode.Usagef("--to %s is the source image itself", to)
		}
	default:
		return image.Reference{}, exitcode.Usagef("--to %s: cannot write to the %s transport (use a registry reference, oci:DIR or oci-archive:FILE)", to, target.Transport)
	}
	return target, nil
}

// derivedTag is the source's tag (or sha256-HEX for a digest) with the suffix.
func derivedTag(src image.Reference, suffix string) (string, error) {
	var base string
	switch src.Transport {
	case image.Docker:
		ref, err := name.ParseReference(src.Name)
		if err != nil {
			return "", exitcode.Usagef("image %q: %v", src.Name, err)
		}
		switch r := ref.(type) {
		case name.Tag:
			base = r.TagStr()
		case name.Digest:
			base = strings.Replace(r.DigestStr(), ":", "-", 1)
		}
	case image.OCI, image.OCIArchive:
		base = src.Tag
		if base == "" {
			base = "latest"
		}
	default:
		return "", exitcode.Usagef("instrumenting %s: give --to for a %s source", src, src.Transport)
	}
	tag := base + suffix
	if len(tag) > 128 {
		return "", exitcode.Usagef("the instrumented tag %q is longer than 128 characters; choose one with --to", tag)
	}
	if !tagRE.MatchString(tag) {
		return "", exitcode.Usagef("the instrumented tag %q is not a valid tag; choose one with --to", tag)
	}
	return tag, nil
}

// hasExplicitTag reports whether a registry reference names a tag (a ':' after the last '/').
func hasExplicitTag(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}
