package image_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// TestRegistry: a real registry (Debian's docker-registry, htpasswd auth) on loopback, spoken to over plain
// http, with credentials from the docker config keychain by default or from Options.Keychain; a blob
// corrupted in the registry's storage is caught while it streams.
func TestRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	idx, digests := multiArch(t)
	single := testenv.AddLayer(tinyImage(t, amd64), testenv.Reg("/data/payload", []byte(strings.Repeat("payload ", 4096))))
	auth := remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})
	push := func(repoTag string, x any) {
		ref, err := name.ParseReference(reg.Host+"/"+repoTag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		switch v := x.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(ref, v, auth)
		case v1.Image:
			err = remote.Write(ref, v, auth)
		}
		if err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}
	push("team/multi:1", idx)
	push("team/single:1", single)
	idxDigest, _ := idx.Digest()
	singleDigest, _ := single.Digest()

	// The default keychain reads $DOCKER_CONFIG/config.json.
	cfgDir := t.TempDir()
	port := strings.TrimPrefix(reg.Host, "127.0.0.1:")
	basic := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q},%q:{"auth":%q}}}`, reg.Host, basic, "localhost:"+port, basic)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)

	good := []struct {
		ref, platform string
		digest        v1.Hash
		images        int
	}{
		{reg.Host + "/team/multi:1", "all", idxDigest, 3},
		{"docker://" + reg.Host + "/team/multi:1", "linux/arm64", idxDigest, 1},
		{reg.Host + "/team/multi@" + idxDigest.String(), "linux/arm/v7", idxDigest, 1},
		{reg.Host + "/team/single:1", "", singleDigest, 1},
	}
	for _, tt := range good {
		src, err := image.Open(context.Background(), tt.ref, image.Options{Platform: tt.platform})
		if err != nil {
			t.Errorf("Open(%s): %v", tt.ref, err)
			continue
		}
		if src.Digest != tt.digest || len(src.Images) != tt.images {
			t.Errorf("Open(%s): digest %s, %d images; want %s, %d", tt.ref, src.Digest, len(src.Images), tt.digest, tt.images)
		}
		for _, pi := range src.Images {
			if src.Index != nil && pi.Descriptor.Digest != digests[pi.Platform.String()] {
				t.Errorf("Open(%s): %s is %s, want %s", tt.ref, pi.Platform, pi.Descriptor.Digest, digests[pi.Platform.String()])
			}
			fs, err := image.Scan(context.Background(), pi.Image, image.ScanOptions{Extractor: allExtractor{}})
			if err != nil {
				t.Errorf("Scan(%s %s): %v", tt.ref, pi.Platform, err)
				continue
			}
			if e, ok := fs.Lookup("/etc/platform"); !ok || string(e.Facts) != pi.Platform.String() {
				t.Errorf("Scan(%s %s): /etc/platform = %+v", tt.ref, pi.Platform, e)
			}
		}
	}

	// "localhost:PORT" is loopback too: plain http.
	if _, err := image.Open(context.Background(), "localhost:"+port+"/team/single:1", image.Options{}); err != nil {
		t.Errorf("Open(localhost:%s/...): %v", port, err)
	}

	wrong := authn.NewMultiKeychain(staticKeychain{&authn.Basic{Username: reg.User, Password: "wrong"}})
	bad := []struct {
		name, ref string
		opts      image.Options
		msg       string
	}{
		{"wrong password", reg.Host + "/team/single:1", image.Options{Keychain: wrong}, "UNAUTHORIZED"},
		{"missing tag", reg.Host + "/team/single:nope", image.Options{}, "MANIFEST_UNKNOWN"},
		{"nothing listening", "127.0.0.1:1/team/single:1", image.Options{}, "connection refused"},
	}
	for _, tt := range bad {
		_, err := image.Open(context.Background(), tt.ref, tt.opts)
		if err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.ref[:strings.LastIndex(tt.ref, ":")]) {
			t.Errorf("%s: Open(%s) = %v; want an operational error naming the image and %q", tt.name, tt.ref, err, tt.msg)
		}
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials at all
	if _, err := image.Open(context.Background(), reg.Host+"/team/single:1", image.Options{}); err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("without credentials: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)

	// Corrupt the payload layer inside the registry's storage (same size): the registry serves it, the
	// digest check while streaming catches it.
	layers, _ := single.Layers()
	ld, _ := layers[len(layers)-1].Digest()
	blob := filepath.Join(reg.Dir, "storage", "docker", "registry", "v2", "blobs", "sha256", ld.Hex[:2], ld.Hex, "data")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("reading the stored blob: %v", err)
	}
	b[4] ^= 0xff // gzip mtime: still decompresses
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := image.Open(context.Background(), reg.Host+"/team/single:1", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = image.Scan(context.Background(), src.Images[0].Image, image.ScanOptions{})
	if err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), "layer 2/2") || !strings.Contains(err.Error(), ld.Hex) {
		t.Errorf("corrupted blob in the registry: %v; want an operational error naming layer 2/2 and its digest", err)
	}
	t.Logf("corrupted blob: %v", err)
}

type staticKeychain struct{ a authn.Authenticator }

func (s staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return s.a, nil }
