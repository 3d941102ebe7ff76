package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

func TestRegistryError(t *testing.T) {
	tests := []struct {
		err  error
		want []string
	}{
		{&transport.Error{StatusCode: http.StatusUnauthorized}, []string{"reg.example.com", "401", "credentials"}},
		{&transport.Error{StatusCode: http.StatusForbidden}, []string{"reg.example.com", "403", "permission"}},
		{&transport.Error{StatusCode: http.StatusNotFound}, []string{"reg.example.com", "404", "repository"}},
		{fmt.Errorf("wrapped: %w", &transport.Error{StatusCode: http.StatusForbidden}), []string{"403"}},
		{errors.New("connection refused"), []string{"reg.example.com", "connection refused"}},
	}
	for _, tt := range tests {
		err := RegistryError("pushing reg.example.com/a:b", "reg.example.com", tt.err)
		if exitcode.Of(err) != exitcode.Operational {
			t.Errorf("%v: exit %d", tt.err, exitcode.Of(err))
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q lacks %q", err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "pushing reg.example.com/a:b") {
			t.Errorf("%q does not say what was being done", err)
		}
	}
}

// TestWriteLocal writes images and indexes to OCI layouts and archives and reads them back with Open.
func TestWriteLocal(t *testing.T) {
	ctx := context.Background()
	img1, _ := random.Image(512, 1)
	img2, _ := random.Image(512, 2)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img1}, mutate.IndexAddendum{Add: img2})
	dir := filepath.Join(t.TempDir(), "layout")

	d1, err := Write(ctx, Reference{Transport: OCI, Name: dir, Tag: "a"}, img1, nil, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(ctx, Reference{Transport: OCI, Name: dir, Tag: "b"}, img2, nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Writing "a" again replaces it; "b" stays.
	d2, err := Write(ctx, Reference{Transport: OCI, Name: dir, Tag: "a"}, img2, nil, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"a": d2.String(), "b": d2.String()} {
		src, err := Open(ctx, "oci:"+dir+":"+ref, Options{Platform: PlatformAll})
		if err != nil {
			t.Fatal(err)
		}
		if src.Digest.String() != want {
			t.Errorf("oci:%s:%s = %s, want %s (first write was %s)", dir, ref, src.Digest, want, d1)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	li, _ := lp.ImageIndex()
	if im, _ := li.IndexManifest(); len(im.Manifests) != 2 {
		t.Errorf("layout lists %d manifests after replacing a, want 2", len(im.Manifests))
	}
	archive := filepath.Join(t.TempDir(), "x.tar")
	di, err := Write(ctx, Reference{Transport: OCIArchive, Name: archive, Tag: "idx"}, nil, idx, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctx, "oci-archive:"+archive+":idx", Options{Platform: PlatformAll})
	if err != nil {
		t.Fatal(err)
	}
	if src.Digest != di || src.Index == nil {
		t.Errorf("archive: digest %s (want %s), index %v", src.Digest, di, src.Index != nil)
	}
	if _, err := Write(ctx, Reference{Transport: DockerDaemon, Name: "x:y"}, img1, nil, WriteOptions{}); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("docker-daemon write: exit %d (%v), want usage", exitcode.Of(err), err)
	}
	if _, err := Write(ctx, Reference{Transport: OCI, Name: dir}, img1, idx, WriteOptions{}); err == nil {
		t.Error("image and index together: want an error")
	}
}
