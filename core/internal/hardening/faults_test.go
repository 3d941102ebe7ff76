package hardening

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// TestRegistryFaults runs the real crs-ci instrument through a fault-injecting proxy in front of the real
// docker-registry (source and target are the same repository, as in the default -layered naming). Transient
// faults — 429 with Retry-After, connections cut in the middle of a blob (download and upload), slow answers —
// are retried and the run succeeds with a complete image (every blob of the tag read back and verified).
// Permanent ones — 429 for ever, the registry vanishing between the blob uploads and the manifest — end in
// exit 3 naming the registry, and no tag. In every case the source tag is unchanged and nothing is deleted.
func TestRegistryFaults(t *testing.T) {
	reg := registry(t)
	img := bookworm(t)
	srcDigest := push(t, reg, "faults/app:1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, _ := layers[0].Digest()
	layerPath := "/blobs/" + layerDigest.String()
	policy := testdata(t, "policy.yaml")
	env := []string{"CRS_REGISTRY_USERNAME=" + reg.User, "CRS_REGISTRY_PASSWORD=" + reg.Password}

	tests := []struct {
		name   string
		suffix string
		faults []fault
		code   int
		msg    string
	}{
		{name: "429 with Retry-After on the uploads and the manifest", suffix: "-429", code: 0, faults: []fault{
			{method: http.MethodPost, path: "/blobs/uploads/", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}, times: 1},
			{method: http.MethodPut, path: "/manifests/", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}, times: 2},
		}},
		{name: "429 with Retry-After on the source manifest and layer", suffix: "-429src", code: 0, faults: []fault{
			{method: http.MethodGet, path: "/manifests/1", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}, times: 1},
			{method: http.MethodGet, path: layerPath, status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}, times: 1},
		}},
		// The registry refuses everything for 4.8 s and says so with Retry-After: 5. go-containerregistry's own
		// retries (about 1 s, then 3 s, jitter included under 4.5 s) would all fall inside the window; core/creds'
		// RetryAfter waits the 5 s asked for and the next attempt succeeds.
		{name: "429 with a Retry-After longer than the built-in backoff", suffix: "-429long", code: 0, faults: []fault{
			{method: http.MethodGet, path: "/manifests/1", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "5"}, window: 4800 * time.Millisecond},
			{method: http.MethodPut, path: "/manifests/", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "5"}, window: 4800 * time.Millisecond},
		}},
		// core/image opens the layer again and scans it from its first byte (the broken attempt's entries
		// thrown away), so a download cut twice in the middle is survived.
		{name: "connection cut in the middle of the source layer", suffix: "-cutdown", code: 0, faults: []fault{
			{method: http.MethodGet, path: layerPath, cutRespAt: 1 << 20, times: 2},
		}},
		{name: "connection cut in the middle of a blob upload", suffix: "-cutup", code: 0, faults: []fault{
			{method: http.MethodPatch, path: "/blobs/uploads/", cutReqAt: 2048, times: 1},
		}},
		{name: "slow answers", suffix: "-slow", code: 0, faults: []fault{
			{method: http.MethodGet, path: layerPath, trickle: 2 * time.Millisecond},
			{path: "/manifests/", delay: 700 * time.Millisecond, times: 3},
		}},
		{name: "429 for ever on the manifest", suffix: "-429ever", code: 3, msg: "429", faults: []fault{
			{method: http.MethodPut, path: "/manifests/", status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}},
		}},
		{name: "registry vanishes between the blob uploads and the manifest", suffix: "-vanish", code: 3, msg: "connection refused", faults: []fault{
			{method: http.MethodPut, path: "/manifests/", vanish: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startFaultProxy(t, reg.Host)
			proxy.inject(tt.faults...)
			res := crs(t, runOpts{env: env, timeout: 3 * time.Minute}, "instrument", proxy.Host+"/faults/app:1", "--policy", policy,
				"--tag-suffix", tt.suffix, "--no-cache", "--ci", "none")
			reqs := proxy.requests()
			t.Logf("exit %d; %d requests through the proxy, %d faults injected", res.code, len(reqs), proxy.injected())
			if res.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\nrequests:\n%s", res.code, tt.code, res, strings.Join(reqs, "\n"))
			}
			if proxy.injected() == 0 {
				t.Fatalf("no fault was injected: the test proves nothing\nrequests:\n%s", strings.Join(reqs, "\n"))
			}
			if tt.code != 0 && (!strings.Contains(res.stderr, proxy.Host) || !strings.Contains(res.stderr, tt.msg)) {
				t.Errorf("the error does not name the registry %s and %q\n%s", proxy.Host, tt.msg, res)
			}
			for _, r := range reqs {
				if strings.HasPrefix(r, "DELETE ") || strings.HasPrefix(r, "PUT /v2/faults/app/manifests/1 ") {
					t.Errorf("the source was written to: %s", r)
				}
			}
			if d := tagDigest(t, reg, "faults/app:1"); d != srcDigest.String() {
				t.Errorf("source tag now %q, was %s", d, srcDigest)
			}
			tagged := tagDigest(t, reg, "faults/app:1"+tt.suffix)
			if tt.code != 0 {
				if tagged != "" {
					t.Errorf("a failed run left the tag %s pointing at %s", tt.suffix, tagged)
				}
				return
			}
			// The tag must point at an image that fully exists: read every blob back and verify it.
			ref, _ := name.ParseReference(reg.Host+"/faults/app:1"+tt.suffix, name.Insecure)
			out, err := remote.Image(ref, regAuth(reg))
			if err != nil {
				t.Fatalf("pulling the layered image: %v", err)
			}
			if err := verifyImage(out); err != nil {
				t.Errorf("the tag points at an incomplete or corrupt image: %v", err)
			}
			if ls, _ := out.Layers(); len(ls) != 2 {
				t.Errorf("layered image has %d layers, want 2", len(ls))
			}
		})
	}
}

// TestSourceCutDuringCrossRegistryPush: instrumenting into another registry streams the base layer from the
// source registry into the upload (no mount is possible across registries). The source connection is cut in
// the middle of that stream (the analysis' download, the first, passes): the upload is retried with the layer
// opened again, the run succeeds, and the target tag holds a complete image.
func TestSourceCutDuringCrossRegistryPush(t *testing.T) {
	src := registry(t)
	img := bookworm(t)
	srcDigest := push(t, src, "cross/app:1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, _ := layers[0].Digest()
	dst, err := testenv.NewRegistry(src.User, src.Password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Close)
	proxy := startFaultProxy(t, src.Host)
	proxy.inject(fault{method: http.MethodGet, path: "/blobs/" + layerDigest.String(), skip: 1, cutRespAt: 1 << 20, times: 1})
	// Explicit credentials go to the target only; the source's come from the docker config.
	dockerCfg := t.TempDir()
	auth := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, proxy.Host, base64.StdEncoding.EncodeToString([]byte(src.User+":"+src.Password)))
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CRS_REGISTRY_USERNAME=" + dst.User, "CRS_REGISTRY_PASSWORD=" + dst.Password, "DOCKER_CONFIG=" + dockerCfg}
	res := crs(t, runOpts{env: env, timeout: 3 * time.Minute}, "instrument", proxy.Host+"/cross/app:1", "--policy", testdata(t, "policy.yaml"),
		"--to", dst.Host+"/cross/app:1-layered", "--no-cache", "--ci", "none")
	reqs := proxy.requests()
	if res.code != 0 {
		t.Fatalf("exit %d, want 0\n%s\nrequests:\n%s", res.code, res, strings.Join(reqs, "\n"))
	}
	if proxy.injected() != 1 {
		t.Fatalf("%d faults injected, want 1 (the layer was not downloaded twice?)\nrequests:\n%s", proxy.injected(), strings.Join(reqs, "\n"))
	}
	gets := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, layerDigest.String()) {
			gets++
		}
	}
	if gets != 3 { // the analysis, the cut stream, the retried stream
		t.Errorf("%d GETs of the layer, want 3\n%s", gets, strings.Join(reqs, "\n"))
	}
	if d := tagDigest(t, src, "cross/app:1"); d != srcDigest.String() {
		t.Errorf("source tag now %q, was %s", d, srcDigest)
	}
	ref, _ := name.ParseReference(dst.Host+"/cross/app:1-layered", name.Insecure)
	out, err := remote.Image(ref, regAuth(dst))
	if err != nil {
		t.Fatalf("pulling the layered image from the target registry: %v", err)
	}
	if err := verifyImage(out); err != nil {
		t.Errorf("the tag points at an incomplete or corrupt image: %v", err)
	}
}

// verifyImage reads the config and every layer of img from the registry, compressed and uncompressed, and
// checks each against its digest and diff ID.
func verifyImage(img v1.Image) error {
	if _, err := img.ConfigFile(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range ls {
		d, _ := l.Digest()
		diffID, _ := l.DiffID()
		for _, c := range []struct {
			open func() (io.ReadCloser, error)
			want v1.Hash
		}{{l.Compressed, d}, {l.Uncompressed, diffID}} {
			rc, err := c.open()
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, d, err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, d, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != c.want.Hex {
				return fmt.Errorf("layer %d: content sha256:%s, want %s", i, got, c.want)
			}
		}
	}
	return nil
}
