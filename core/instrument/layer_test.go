package instrument

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/crs-ci/crs-ci/core/probe"
)

type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, tarEntry{*h, b})
	}
}

func TestLayer(t *testing.T) {
	tests := []struct {
		name        string
		in          LayerInput
		wantNames   []string
		wantPreload string
	}{
		{name: "glibc, no preload file in the image",
			in:          LayerInput{Probe: []byte("\x7fELF probe"), Policy: []byte("CRSCIPOL...")},
			wantNames:   []string{"etc/crs-ci/", "etc/crs-ci/policy.bin", "etc/ld.so.preload", "usr/lib/crs-ci/", "usr/lib/crs-ci/probe.so"},
			wantPreload: "/usr/lib/crs-ci/probe.so\n"},
		{name: "glibc, existing entries kept after the probe, duplicates dropped",
			in: LayerInput{Probe: []byte("p"), Policy: []byte("q"),
				Preload: []string{"/usr/lib/libfaketime.so.1", "/usr/lib/crs-ci/probe.so", " ", "/lib/x.so", "/usr/lib/libfaketime.so.1"}},
			wantNames:   []string{"etc/crs-ci/", "etc/crs-ci/policy.bin", "etc/ld.so.preload", "usr/lib/crs-ci/", "usr/lib/crs-ci/probe.so"},
			wantPreload: "/usr/lib/crs-ci/probe.so\n/usr/lib/libfaketime.so.1\n/lib/x.so\n"},
		{name: "musl: no ld.so.preload",
			in:        LayerInput{Probe: []byte("p"), Policy: []byte("q"), Musl: true, Preload: []string{"/x.so"}},
			wantNames: []string{"etc/crs-ci/", "etc/crs-ci/policy.bin", "usr/lib/crs-ci/", "usr/lib/crs-ci/probe.so"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l1, err := Layer(tt.in, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := Layer(tt.in, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := l1.Digest()
			d2, _ := l2.Digest()
			if d1 != d2 {
				t.Errorf("same input, different digests: %s %s", d1, d2)
			}
			rc, err := l1.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			entries := readTar(t, rc)
			var names []string
			for _, e := range entries {
				names = append(names, e.hdr.Name)
				if e.hdr.Uid != 0 || e.hdr.Gid != 0 || !e.hdr.ModTime.Equal(LayerTime) {
					t.Errorf("%s: uid %d gid %d mtime %v", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime)
				}
				want := int64(0o644)
				switch {
				case e.hdr.Typeflag == tar.TypeDir, e.hdr.Name == "usr/lib/crs-ci/probe.so":
					want = 0o755
				}
				if e.hdr.Mode != want {
					t.Errorf("%s: mode %o, want %o", e.hdr.Name, e.hdr.Mode, want)
				}
				if e.hdr.Mode&0o022 != 0 {
					t.Errorf("%s is writable by group or others", e.hdr.Name)
				}
				switch "/" + e.hdr.Name {
				case probe.LibraryPath:
					if !bytes.Equal(e.data, tt.in.Probe) {
						t.Errorf("probe content differs")
					}
				case probe.PolicyPath:
					if !bytes.Equal(e.data, tt.in.Policy) {
						t.Errorf("policy content differs")
					}
				case probe.PreloadPath:
					if string(e.data) != tt.wantPreload {
						t.Errorf("ld.so.preload = %q, want %q", e.data, tt.wantPreload)
					}
				}
			}
			if len(names) != len(tt.wantNames) {
				t.Fatalf("entries %v, want %v", names, tt.wantNames)
			}
			for i := range names {
				if names[i] != tt.wantNames[i] {
					t.Errorf("entry %d: %s, want %s", i, names[i], tt.wantNames[i])
				}
			}
		})
	}
	// A different policy gives a different layer.
	a, _ := Layer(LayerInput{Probe: []byte("p"), Policy: []byte("1")}, types.OCILayer)
	b, _ := Layer(LayerInput{Probe: []byte("p"), Policy: []byte("2")}, types.OCILayer)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da == db {
		t.Error("different policies, same layer digest")
	}
	if mt, _ := a.MediaType(); mt != types.OCILayer {
		t.Errorf("media type %s", mt)
	}
	dl, _ := Layer(LayerInput{Probe: []byte("p"), Policy: []byte("1")}, types.DockerLayer)
	if mt, _ := dl.MediaType(); mt != types.DockerLayer {
		t.Errorf("docker media type: %s", mt)
	}
}

func TestWithPreloadEnv(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, []string{"LD_PRELOAD=/usr/lib/crs-ci/probe.so"}},
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "LD_PRELOAD=/usr/lib/crs-ci/probe.so"}},
		{[]string{"LD_PRELOAD=/a.so /b.so", "X=1"}, []string{"LD_PRELOAD=/usr/lib/crs-ci/probe.so:/a.so:/b.so", "X=1"}},
		{[]string{"LD_PRELOAD=/usr/lib/crs-ci/probe.so:/a.so"}, []string{"LD_PRELOAD=/usr/lib/crs-ci/probe.so:/a.so"}},
	}
	for _, tt := range tests {
		got := withPreloadEnv(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("%v: got %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%v: got %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}
