package instrument

import (
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
)

func TestTargetRef(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		src, to, suffix string
		want            string // Reference.String()
		errSubstr       string
	}{
		{src: "registry.example.com/team/app:1.2", want: "registry.example.com/team/app:1.2-layered"},
		{src: "registry.example.com/team/app", want: "registry.example.com/team/app:latest-layered"},
		{src: "127.0.0.1:5000/app@sha256:" + hex, want: "127.0.0.1:5000/app:sha256-" + hex + "-layered"},
		{src: "127.0.0.1:5000/app:v1", suffix: "-crs", want: "127.0.0.1:5000/app:v1-crs"},
		{src: "docker://127.0.0.1:5000/app:v1", want: "127.0.0.1:5000/app:v1-layered"},
		{src: "127.0.0.1:5000/app:v1", to: "other.example.com/secure/app:v1", want: "other.example.com/secure/app:v1"},
		{src: "127.0.0.1:5000/app:v1", to: "other.example.com/secure/app", want: "other.example.com/secure/app:v1-layered"},
		{src: "127.0.0.1:5000/app:v1", to: "127.0.0.1:5000/app:v1", errSubstr: "source image itself"},
		{src: "127.0.0.1:5000/app:v1", to: "docker://127.0.0.1:5000/app:v1", errSubstr: "source image itself"},
		{src: "127.0.0.1:5000/app", to: "127.0.0.1:5000/app:latest", errSubstr: "source image itself"},
		{src: "127.0.0.1:5000/app:v1", to: "127.0.0.1:5000/app@sha256:" + hex, errSubstr: "digest cannot be pushed"},
		{src: "127.0.0.1:5000/app:v1", to: "docker-daemon:app:v1", errSubstr: "cannot write"},
		{src: "127.0.0.1:5000/app:v1", suffix: "/bad", errSubstr: "--tag-suffix"},
		{src: "127.0.0.1:5000/app:" + strings.Repeat("a", 125), errSubstr: "longer than 128"},
		{src: "oci:/tmp/layout:v1", want: "oci:/tmp/layout:v1-layered"},
		{src: "oci:/tmp/layout", want: "oci:/tmp/layout:latest-layered"},
		{src: "oci:/tmp/layout:v1", to: "oci:/tmp/layout:v1", errSubstr: "source image itself"},
		{src: "oci-archive:/tmp/a.tar", errSubstr: "give --to"},
		{src: "oci-archive:/tmp/a.tar:v1", to: "127.0.0.1:5000/app", want: "127.0.0.1:5000/app:v1-layered"},
		{src: "docker-archive:/tmp/a.tar", to: "127.0.0.1:5000/app:x", want: "127.0.0.1:5000/app:x"},
		{src: "docker-archive:/tmp/a.tar", to: "127.0.0.1:5000/app", want: "127.0.0.1:5000/app:latest-layered"},
	}
	for _, tt := range tests {
		t.Run(tt.src+" "+tt.to+" "+tt.suffix, func(t *testing.T) {
			src, err := image.ParseReference(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TargetRef(src, tt.to, tt.suffix)
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("want error with %q, got %v (%v)", tt.errSubstr, err, got)
				}
				if exitcode.Of(err) != exitcode.Usage {
					t.Errorf("exit code %d, want usage", exitcode.Of(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
