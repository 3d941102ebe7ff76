package instrument

import (
	"archive/tar"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/creds"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

// One real docker-registry (htpasswd auth) per test binary, started on first use.
var (
	regOnce   sync.Once
	regShared *testenv.Registry
	regErr    error
	cacheDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crs-instrument-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	cacheDir = dir
	code := m.Run()
	if regShared != nil {
		regShared.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func sharedRegistry(t *testing.T) *testenv.Registry {
	t.Helper()
	regOnce.Do(func() {
		regShared, regErr = testenv.NewRegistry("crs", fmt.Sprintf("pw-%d", time.Now().UnixNano()))
	})
	if regErr != nil {
		t.Fatal(regErr)
	}
	return regShared
}

func basicAuth(r *testenv.Registry) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password})
}

func push(t *testing.T, r *testenv.Registry, ref string, img v1.Image, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	n, err := name.ParseReference(r.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if img != nil {
		err = remote.Write(n, img, basicAuth(r))
	} else {
		err = remote.WriteIndex(n, idx, basicAuth(r))
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", n, err)
	}
	d, err := remote.Head(n, basicAuth(r))
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// exists reports whether host/ref (a tag) is in the registry.
func exists(t *testing.T, r *testenv.Registry, ref string) bool {
	t.Helper()
	n, _ := name.ParseReference(r.Host+"/"+ref, name.Insecure)
	_, err := remote.Head(n, basicAuth(r))
	return err == nil
}

// keychain gives the registry's credentials the way users do: --username with --password-stdin.
func keychain(t *testing.T, user, password string, hosts ...string) authn.Keychain {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	kc, err := creds.Keychain(context.Background(), creds.Options{Username: user, PasswordStdin: true,
		Stdin: strings.NewReader(password + "\n"), Registries: hosts, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func policyFile(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func baseOptions(t *testing.T, image string, kc authn.Keychain) Options {
	return Options{
		Image: image, PolicyFile: policyFile(t, "policy.yaml"), Keychain: kc,
		Compat: compat.Options{CacheDir: cacheDir, Probes: testProbesFor(t)},
	}
}

func isWrite(req string) bool {
	return strings.HasPrefix(req, "PUT ") || strings.HasPrefix(req, "POST ") || strings.HasPrefix(req, "PATCH ") ||
		strings.HasPrefix(req, "DELETE ")
}

func bookwormImage(t *testing.T) v1.Image {
	return testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm"),
		v1.Config{Cmd: []string{"/bin/bash"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		v1.Platform{OS: "linux", Architecture: "amd64"})
}

func minimalAMD64(t *testing.T) v1.Image {
	return testenv.MinimalImage(t, testenv.Rootfs(t, "bookworm"), v1.Config{Cmd: []string{"/usr/bin/cat"}},
		v1.Platform{OS: "linux", Architecture: "amd64"},
		[]string{"/usr/bin/cat", "/usr/bin/true", "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libdl.so.2"})
}

func minimalARM64(t *testing.T) v1.Image {
	return testenv.MinimalImage(t, testenv.Rootfs(t, "bookworm-arm64"), v1.Config{Cmd: []string{"/usr/bin/true"}},
		v1.Platform{OS: "linux", Architecture: "arm64"},
		[]string{"/usr/bin/true", "/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libdl.so.2"})
}

// TestInstrumentRegistry instruments a real Debian bookworm image in the real docker-registry and checks the
// result as a client would: it pulls, its first layers are the source's, the added layer holds the probe
// files with the right owners and modes, the labels are there, the source tag is unchanged, only the new
// blobs travelled, a second run gives the same digest, a dry run pushes nothing, and a digest source gets
// the sha256-HEX-layered tag.
func TestInstrumentRegistry(t *testing.T) {
	reg := sharedRegistry(t)
	proxy := testenv.StartFaultProxy(t, reg.Host)
	src := bookwormImage(t)
	srcDigest := push(t, reg, "debian/bookworm:1", src, nil)
	kc := keychain(t, reg.User, reg.Password, proxy.Host)
	ctx := context.Background()

	proxy.Clear()
	rep, err := Run(ctx, baseOptions(t, proxy.Host+"/debian/bookworm:1", kc))
	if err != nil {
		t.Fatalf("instrument: %v (exit %d)", err, exitcode.Of(err))
	}
	uploaded := proxy.Uploaded()
	if rep.Command != "instrument" || rep.Verdict != report.Compatible || rep.Layered == nil || !rep.Layered.Pushed {
		t.Fatalf("report: %+v", rep)
	}
	if want := proxy.Host + "/debian/bookworm:1-layered"; rep.Layered.Ref != want {
		t.Errorf("layered ref %s, want %s", rep.Layered.Ref, want)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Name != "instrument-test" || len(rep.Policies[0].SHA256) != 64 {
		t.Errorf("policy entry %+v", rep.Policies)
	}

	// Pull it back with go-containerregistry as a client.
	lref, _ := name.ParseReference(reg.Host+"/debian/bookworm:1-layered", name.Insecure)
	desc, err := remote.Get(lref, basicAuth(reg))
	if err != nil {
		t.Fatalf("pulling the layered image: %v", err)
	}
	if desc.Digest.String() != rep.Layered.Digest {
		t.Errorf("registry has %s, report says %s", desc.Digest, rep.Layered.Digest)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	srcLayers, _ := src.Layers()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(srcLayers)+1 {
		t.Fatalf("%d layers, want %d", len(layers), len(srcLayers)+1)
	}
	for i := range srcLayers {
		a, _ := srcLayers[i].Digest()
		b, _ := layers[i].Digest()
		if a != b {
			t.Errorf("layer %d: %s, source has %s", i, b, a)
		}
	}
	added := layers[len(layers)-1]
	rc, err := added.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, rc)
	rc.Close()
	art, _ := testProbesFor(t)(probe.Glibc, "amd64")
	want := map[string]struct {
		typ  byte
		mode int64
	}{
		"usr/lib/crs-ci/": {tar.TypeDir, 0o755}, "usr/lib/crs-ci/probe.so": {tar.TypeReg, 0o755},
		"etc/crs-ci/": {tar.TypeDir, 0o755}, "etc/crs-ci/policy.bin": {tar.TypeReg, 0o644}, "etc/ld.so.preload": {tar.TypeReg, 0o644},
	}
	if len(entries) != len(want) {
		t.Errorf("added layer has %d entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		w, ok := want[e.hdr.Name]
		if !ok || e.hdr.Typeflag != w.typ || e.hdr.Mode != w.mode || e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("entry %s: type %c mode %o uid %d gid %d", e.hdr.Name, e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid)
		}
		if e.hdr.Name == "usr/lib/crs-ci/probe.so" && string(e.data) != string(art.Bytes) {
			t.Error("probe.so differs from the probe")
		}
		if e.hdr.Name == "etc/crs-ci/policy.bin" && !strings.HasPrefix(string(e.data), "CRSCIPOL") {
			t.Error("policy.bin is not a compiled policy")
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		LabelPolicyName: "instrument-test", LabelPolicySHA256: "sha256:" + rep.Policies[0].SHA256,
		LabelProbeDigest: art.Digest, LabelBaseName: proxy.Host + "/debian/bookworm:1", LabelBaseDigest: srcDigest.String(),
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	if strings.Join(cf.Config.Cmd, " ") != "/bin/bash" {
		t.Errorf("Cmd changed: %v", cf.Config.Cmd)
	}

	// The source tag is unchanged.
	sref, _ := name.ParseReference(reg.Host+"/debian/bookworm:1", name.Insecure)
	if d, err := remote.Head(sref, basicAuth(reg)); err != nil || d.Digest != srcDigest {
		t.Errorf("source tag now %v (%v), was %s", d, err, srcDigest)
	}

	// Only the new layer, the config and the manifest travelled (1% slack for protocol framing).
	size, _ := added.Size()
	rawCfg, _ := img.RawConfigFile()
	rawMf, _ := img.RawManifest()
	budget := size + int64(len(rawCfg)) + int64(len(rawMf))
	t.Logf("uploaded %d bytes; new layer %d + config %d + manifest %d = %d", uploaded, size, len(rawCfg), len(rawMf), budget)
	if uploaded > budget+budget/100 {
		t.Errorf("uploaded %d bytes, budget %d (layer %d + config %d + manifest %d)", uploaded, budget, size, len(rawCfg), len(rawMf))
	}
	if uploaded < size {
		t.Errorf("uploaded %d bytes, less than the new layer (%d): counting is broken", uploaded, size)
	}

	t.Run("second run gives the same digest", func(t *testing.T) {
		rep2, err := Run(ctx, baseOptions(t, proxy.Host+"/debian/bookworm:1", kc))
		if err != nil {
			t.Fatal(err)
		}
		if rep2.Layered.Digest != rep.Layered.Digest {
			t.Errorf("second run %s, first %s", rep2.Layered.Digest, rep.Layered.Digest)
		}
	})

	t.Run("dry run pushes nothing", func(t *testing.T) {
		proxy.Clear()
		out := filepath.Join(t.TempDir(), "layout")
		o := baseOptions(t, proxy.Host+"/debian/bookworm:1", kc)
		o.DryRun, o.TagSuffix, o.Output = true, "-dry", "oci:"+out+":dry"
		rep, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range proxy.Requests() {
			if isWrite(r) {
				t.Errorf("dry run wrote to the registry: %s", r)
			}
		}
		if exists(t, reg, "debian/bookworm:1-dry") {
			t.Error("dry run created a tag")
		}
		if rep.Layered.Pushed || rep.Layered.Ref != proxy.Host+"/debian/bookworm:1-dry" || len(rep.Layered.Layers) != 1 || rep.Layered.Layers[0].Size == 0 {
			t.Errorf("layered: %+v", rep.Layered)
		}
		p, err := layout.FromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		idx, _ := p.ImageIndex()
		im, _ := idx.IndexManifest()
		if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != rep.Layered.Digest || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "dry" {
			t.Errorf("layout index %+v, want digest %s", im.Manifests, rep.Layered.Digest)
		}
		if rep.Layered.Digest != rep.Layered.Digest || rep.Layered.Digest == "" {
			t.Error("no digest")
		}
	})

	t.Run("digest reference gets sha256-HEX-layered", func(t *testing.T) {
		rep, err := Run(ctx, baseOptions(t, proxy.Host+"/debian/bookworm@"+srcDigest.String(), kc))
		if err != nil {
			t.Fatal(err)
		}
		tag := "debian/bookworm:sha256-" + srcDigest.Hex + "-layered"
		if !exists(t, reg, tag) || !strings.HasSuffix(rep.Layered.Ref, tag) {
			t.Errorf("tag %s missing (report: %s)", tag, rep.Layered.Ref)
		}
	})

	t.Run("an instrumented image is not instrumented again", func(t *testing.T) {
		proxy.Clear()
		rep, err := Run(ctx, baseOptions(t, proxy.Host+"/debian/bookworm:1-layered", kc))
		if exitcode.Of(err) != exitcode.Rejected {
			t.Fatalf("exit %d (%v), want 1", exitcode.Of(err), err)
		}
		var found bool
		for _, f := range rep.Platforms[0].Findings {
			found = found || f.Code == CodeAlreadyInstrumented
		}
		if !found || rep.Verdict != report.Incompatible {
			t.Errorf("report: verdict %s, findings %+v", rep.Verdict, rep.Platforms[0].Findings)
		}
		for _, r := range proxy.Requests() {
			if isWrite(r) {
				t.Errorf("rejected run wrote: %s", r)
			}
		}
	})

	t.Run("invalid policy: exit 1, nothing written", func(t *testing.T) {
		proxy.Clear()
		o := baseOptions(t, proxy.Host+"/debian/bookworm:1", kc)
		o.PolicyFile, o.TagSuffix = policyFile(t, "invalid.yaml"), "-invalid"
		rep, err := Run(ctx, o)
		if exitcode.Of(err) != exitcode.Rejected {
			t.Fatalf("exit %d (%v), want 1", exitcode.Of(err), err)
		}
		if rep == nil || rep.Verdict != report.Invalid || rep.Policies[0].Verdict != report.Invalid || rep.Layered != nil {
			t.Errorf("report %+v", rep)
		}
		for _, r := range proxy.Requests() {
			if isWrite(r) {
				t.Errorf("rejected run wrote: %s", r)
			}
		}
		if exists(t, reg, "debian/bookworm:1-invalid") {
			t.Error("tag created")
		}
	})
}

// TestInstrumentCredentials: the source registry's credentials come from the docker config keychain, the
// target's from --username/--password-stdin; wrong target credentials end with exit 3, a message naming the
// registry, and no tag.
func TestInstrumentCredentials(t *testing.T) {
	reg := sharedRegistry(t)
	target := testenv.StartRegistry(t)
	push(t, reg, "creds/app:1", minimalAMD64(t), nil)
	ctx := context.Background()

	// The docker config keychain (DOCKER_CONFIG) for the source.
	dockerCfg := t.TempDir()
	auth := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, reg.Host, reg.User, reg.Password)
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, password, repo string
		wantCode             int
	}{
		{"right target credentials", target.Password, "mirror/ok", exitcode.OK},
		{"wrong target credentials", "not-" + target.Password, "mirror/refused", exitcode.Operational},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", dockerCfg)
			kc, err := creds.Keychain(ctx, creds.Options{Username: target.User, PasswordStdin: true,
				Stdin: strings.NewReader(tt.password + "\n"), Registries: []string{target.Host}, Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatal(err)
			}
			o := baseOptions(t, reg.Host+"/creds/app:1", kc)
			o.To = target.Host + "/" + tt.repo
			o.RemoteOptions = []remote.Option{remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 2})}
			rep, err := Run(ctx, o)
			if got := exitcode.Of(err); got != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.wantCode)
			}
			pushed := exists(t, target, tt.repo+":1-layered")
			if tt.wantCode == exitcode.OK {
				if !pushed || rep.Layered.Ref != target.Host+"/"+tt.repo+":1-layered" {
					t.Errorf("not pushed to the target: %+v", rep.Layered)
				}
				return
			}
			if pushed {
				t.Error("a tag exists after a refused push")
			}
			msg := err.Error()
			if !strings.Contains(msg, target.Host) || !strings.Contains(msg, "401") {
				t.Errorf("message does not name the registry and the 401: %s", msg)
			}
			if strings.Contains(msg, tt.password) {
				t.Errorf("message shows the password: %s", msg)
			}
		})
	}
}

// TestInstrumentIndex: a multi-arch index (real bookworm amd64 and arm64 files, plus a platform no probe
// exists for) gives an index back with each platform's own probe, in order, annotations kept; the
// unsupported platform rejects the run (exit 1, nothing written) unless --skip-incompatible-platforms.
func TestInstrumentIndex(t *testing.T) {
	reg := sharedRegistry(t)
	kc := keychain(t, reg.User, reg.Password, reg.Host)
	amd, arm := minimalAMD64(t), minimalARM64(t)
	s390 := testenv.ImageFromLayers(t, v1.Config{Cmd: []string{"/app"}}, v1.Platform{OS: "linux", Architecture: "s390x"},
		testenv.LayerFromFiles(testenv.Exec("/app", []byte("not really"))))
	desc := func(img v1.Image, arch, flavour string) mutate.IndexAddendum {
		return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch},
			Annotations: map[string]string{"org.example.flavour": flavour}}}
	}
	idx := mutate.AppendManifests(empty.Index, desc(arm, "arm64", "arm"), desc(s390, "s390x", "z"), desc(amd, "amd64", "amd"))
	idx = mutate.Annotations(idx, map[string]string{"org.opencontainers.image.source": "https://example.com/multi"}).(v1.ImageIndex)
	srcDigest := push(t, reg, "multi/app:1", nil, idx)
	ctx := context.Background()

	o := baseOptions(t, reg.Host+"/multi/app:1", kc)
	rep, err := Run(ctx, o)
	if exitcode.Of(err) != exitcode.Rejected || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("want exit 1 naming linux/s390x, got %d: %v", exitcode.Of(err), err)
	}
	if rep.Verdict != report.Incompatible || exists(t, reg, "multi/app:1-layered") {
		t.Fatalf("rejected run: verdict %s, tag exists %v", rep.Verdict, exists(t, reg, "multi/app:1-layered"))
	}

	o.SkipIncompatiblePlatforms = true
	rep, err = Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var skipped bool
	for _, p := range rep.Platforms {
		for _, f := range p.Findings {
			if f.Code == CodePlatformSkipped && p.Platform == "linux/s390x" {
				skipped = true
			}
		}
	}
	if !skipped {
		t.Errorf("report does not say linux/s390x was skipped: %+v", rep.Platforms)
	}
	lref, _ := name.ParseReference(reg.Host+"/multi/app:1-layered", name.Insecure)
	out, err := remote.Index(lref, basicAuth(reg))
	if err != nil {
		t.Fatalf("layered index: %v", err)
	}
	im, err := out.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "arm64" || im.Manifests[1].Platform.Architecture != "amd64" {
		t.Fatalf("index manifests %+v", im.Manifests)
	}
	if im.Annotations["org.opencontainers.image.source"] != "https://example.com/multi" || im.Annotations[LabelBaseDigest] != srcDigest.String() {
		t.Errorf("index annotations %v", im.Annotations)
	}
	probes := testProbesFor(t)
	for i, flavour := range []string{"arm", "amd"} {
		m := im.Manifests[i]
		if m.Annotations["org.example.flavour"] != flavour {
			t.Errorf("manifest %d annotations %v", i, m.Annotations)
		}
		img, err := out.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		art, _ := probes(probe.Glibc, m.Platform.Architecture)
		if cf.Config.Labels[LabelProbeDigest] != art.Digest || cf.Architecture != m.Platform.Architecture {
			t.Errorf("%s: probe label %s, want %s", m.Platform.Architecture, cf.Config.Labels[LabelProbeDigest], art.Digest)
		}
		layers, _ := img.Layers()
		last := layers[len(layers)-1]
		rc, _ := last.Uncompressed()
		for _, e := range readTar(t, rc) {
			if e.hdr.Name == "usr/lib/crs-ci/probe.so" && string(e.data) != string(art.Bytes) {
				t.Errorf("%s: the layer holds another platform's probe", m.Platform.Architecture)
			}
		}
	}
	if d, _ := out.Digest(); d.String() != rep.Layered.Digest {
		t.Errorf("index digest %s, report %s", d, rep.Layered.Digest)
	}
}

// TestInstrumentFaults puts the fault-injecting proxy between crs-ci and the real registry: bursts of 5xx,
// cut connections and slow answers are survived; a registry that keeps refusing the manifest ends with exit
// 3 and no tag.
func TestInstrumentFaults(t *testing.T) {
	reg := sharedRegistry(t)
	proxy := testenv.StartFaultProxy(t, reg.Host)
	push(t, reg, "faults/app:1", minimalAMD64(t), nil)
	kc := keychain(t, reg.User, reg.Password, proxy.Host)
	ctx := context.Background()
	fast := []remote.Option{remote.WithRetryBackoff(remote.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4})}

	tests := []struct {
		name     string
		faults   []testenv.Fault
		suffix   string
		wantCode int
	}{
		{name: "5xx bursts on uploads and the manifest", suffix: "-burst", wantCode: exitcode.OK, faults: []testenv.Fault{
			{Method: http.MethodPost, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable, Times: 2},
			{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusBadGateway, Times: 1},
			{Method: http.MethodPut, Path: "/manifests/", Status: http.StatusInternalServerError, Times: 2},
		}},
		{name: "cut connections", suffix: "-cut", wantCode: exitcode.OK, faults: []testenv.Fault{
			{Method: http.MethodHead, Path: "/blobs/", Cut: true, Times: 1},
			{Method: http.MethodPut, Path: "/manifests/", Cut: true, Times: 1},
		}},
		{name: "slow answers", suffix: "-slow", wantCode: exitcode.OK, faults: []testenv.Fault{
			{Path: "/blobs/", Delay: 300 * time.Millisecond, Times: 3},
		}},
		{name: "manifest always refused", suffix: "-down", wantCode: exitcode.Operational, faults: []testenv.Fault{
			{Method: http.MethodPut, Path: "/manifests/", Status: http.StatusServiceUnavailable},
		}},
		{name: "connection always cut on the manifest", suffix: "-gone", wantCode: exitcode.Operational, faults: []testenv.Fault{
			{Method: http.MethodPut, Path: "/manifests/", Cut: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy.Clear()
			proxy.Inject(tt.faults...)
			o := baseOptions(t, proxy.Host+"/faults/app:1", kc)
			o.TagSuffix, o.RemoteOptions = tt.suffix, fast
			_, err := Run(ctx, o)
			if got := exitcode.Of(err); got != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.wantCode)
			}
			if proxy.Injected() == 0 {
				t.Error("no fault was injected: the test proves nothing")
			}
			tagged := exists(t, reg, "faults/app:1"+tt.suffix)
			if tagged != (tt.wantCode == exitcode.OK) {
				t.Errorf("tag present = %v", tagged)
			}
			if tt.wantCode != exitcode.OK && !strings.Contains(err.Error(), proxy.Host) {
				t.Errorf("error does not name the registry: %v", err)
			}
		})
	}
}
