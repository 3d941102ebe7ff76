package compat

import (
	"bytes"
	"context"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// BenchmarkCheck checks a two-layer image of real root filesystems (bookworm, trixie) from an OCI layout,
// without the cache: the in-process cost of one cold check (scripts/bench-check.sh measures the command
// against crane export on a bigger image).
func BenchmarkCheck(b *testing.B) {
	img := testenv.ImageFromLayers(b, v1.Config{Cmd: []string{"/bin/bash"}}, amd64,
		testenv.LayerFromDir(b, testenv.Rootfs(b, "bookworm")), testenv.LayerFromDir(b, testenv.Rootfs(b, "trixie")))
	ref := testenv.WriteOCI(b, img, b.TempDir(), "bench")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src, err := image.Open(ctx, ref, image.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rep, _, err := Check(ctx, src, Options{NoCache: true})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Verdict != "compatible" {
			b.Fatalf("verdict %s", rep.Verdict)
		}
	}
}

// BenchmarkExtract is the extractor alone on the real glibc of this machine (the largest file it reads whole
// in a usual image).
func BenchmarkExtract(b *testing.B) {
	data, err := os.ReadFile("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		f, err := analyze("/lib/x86_64-linux-gnu/libc.so.6", int64(len(data)), bytes.NewReader(data))
		if err != nil || f.Soname != "libc.so.6" {
			b.Fatalf("%v %+v", err, f)
		}
	}
}
