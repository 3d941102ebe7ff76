package image

import (
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		in   string
		want Reference
		str  string // String(); "" = in
	}{
		{"registry.example.com/app:1.0", Reference{Transport: Docker, Name: "registry.example.com/app:1.0"}, ""},
		{"127.0.0.1:5000/team/app:v2", Reference{Transport: Docker, Name: "127.0.0.1:5000/team/app:v2"}, ""},
		{"localhost:5000/app", Reference{Transport: Docker, Name: "localhost:5000/app"}, ""},
		{"ubuntu:22.04", Reference{Transport: Docker, Name: "ubuntu:22.04"}, ""},
		{"registry.example.com/app@sha256:" + strings.Repeat("a", 64), Reference{Transport: Docker, Name: "registry.example.com/app@sha256:" + strings.Repeat("a", 64)}, ""},
		{"docker://registry.example.com/app:1.0", Reference{Transport: Docker, Name: "registry.example.com/app:1.0"}, "registry.example.com/app:1.0"},
		{"docker://[::1]:5000/app:1", Reference{Transport: Docker, Name: "[::1]:5000/app:1"}, "[::1]:5000/app:1"},
		{"oci:/tmp/layout", Reference{Transport: OCI, Name: "/tmp/layout"}, ""},
		{"oci:/tmp/layout:v1.2", Reference{Transport: OCI, Name: "/tmp/layout", Tag: "v1.2"}, ""},
		{"oci:relative/dir:latest", Reference{Transport: OCI, Name: "relative/dir", Tag: "latest"}, ""},
		{"oci-archive:/tmp/img.tar", Reference{Transport: OCIArchive, Name: "/tmp/img.tar"}, ""},
		{"oci-archive:/tmp/img.tar:app", Reference{Transport: OCIArchive, Name: "/tmp/img.tar", Tag: "app"}, ""},
		{"docker-archive:/tmp/img.tar", Reference{Transport: DockerArchive, Name: "/tmp/img.tar"}, ""},
		{"docker-archive:/tmp/img.tar:app:1.0", Reference{Transport: DockerArchive, Name: "/tmp/img.tar", Tag: "app:1.0"}, ""},
		{"docker-archive:/tmp/img.tar:localhost:5000/app:1.0", Reference{Transport: DockerArchive, Name: "/tmp/img.tar", Tag: "localhost:5000/app:1.0"}, ""},
		{"docker-daemon:app:1.0", Reference{Transport: DockerDaemon, Name: "app:1.0"}, ""},
		{"docker-daemon:registry.example.com/app@sha256:" + strings.Repeat("b", 64), Reference{Transport: DockerDaemon, Name: "registry.example.com/app@sha256:" + strings.Repeat("b", 64)}, ""},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseReference(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("ParseReference(%q).String() = %q, want %q", tt.in, got.String(), str)
		}
		again, err := ParseReference(got.String())
		if err != nil || again != got {
			t.Errorf("ParseReference(%q) does not round-trip: %+v, %v", got.String(), again, err)
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{" app:1", "white space"},
		{"app:1\n", "white space"},
		{"app\x01:1", "control character"},
		{"docker://", "docker:// needs"},
		{"docker://http://registry/app", "scheme"},
		{"docker://UPPER/App:1", "not a registry reference"},
		{"https://registry.example.com/app:1", "unexpected scheme"},
		{"oci:", "needs a directory path"},
		{"oci::ref", "needs a directory path"},
		{"oci:/dir:", "the REF after ':' is empty"},
		{"docker-archive:/f.tar:", "REPO:TAG after ':' is empty"},
		{"oci:/dir:a:b", "must not contain ':'"},
		{"oci-archive:", "needs a file path"},
		{"docker-archive:", "needs a file path"},
		{"docker-archive:/f.tar:@0", "@N image indexes"},
		{"docker-archive:/f.tar:Bad Tag", "is not REPO:TAG"},
		{"docker-archive:/f.tar:app", "the :TAG is missing"},
		{"docker-daemon:", "needs REPO:TAG"},
		{"docker-daemon:app", "needs a :TAG or @DIGEST"},
		{"dir:/tmp/x", `transport "dir" is not supported`},
		{"containers-storage:app:1", `transport "containers-storage" is not supported`},
		{"app@sha256:short", "not a registry reference"},
		{"registry.example.com/app:bad tag", "not a registry reference"},
	}
	for _, tt := range tests {
		_, err := ParseReference(tt.in)
		if err == nil {
			t.Errorf("ParseReference(%q): no error", tt.in)
			continue
		}
		if exitcode.Of(err) != exitcode.Usage {
			t.Errorf("ParseReference(%q): exit code %d, want %d (usage)", tt.in, exitcode.Of(err), exitcode.Usage)
		}
		if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "oci:DIR[:REF]") {
			t.Errorf("ParseReference(%q) error %q: want it to contain %q and the list of forms", tt.in, err, tt.msg)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.3.2.1", true},
		{"localhost:5000", true},
		{"localhost", true},
		{"reg.localhost:443", true},
		{"[::1]:5000", true},
		{"::1", true},
		{"10.0.0.1:5000", false},
		{"192.168.1.2", false},
		{"registry.example.com", false},
		{"localhost.example.com", false},
		{"128.0.0.1", false},
	}
	for _, tt := range tests {
		if got := isLoopbackHost(tt.host); got != tt.want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	good := map[string]string{"linux/amd64": "linux/amd64", "linux/arm/v7": "linux/arm/v7", "all": "all"}
	for in, want := range good {
		w, err := parsePlatform(in)
		if err != nil || w.String() != want {
			t.Errorf("parsePlatform(%q) = %v, %v", in, w, err)
		}
	}
	for _, in := range []string{"linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/arm/", "amd64"} {
		_, err := parsePlatform(in)
		if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "OS/ARCH") {
			t.Errorf("parsePlatform(%q): %v, want a usage error naming OS/ARCH", in, err)
		}
	}
}
