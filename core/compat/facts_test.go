package compat

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"os"
	"slices"
	"strings"
	"testing"
)

func analyzeFile(t *testing.T, imagePath, file string) *Facts {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return analyzeBytes(t, imagePath, b)
}

func analyzeBytes(t *testing.T, imagePath string, b []byte) *Facts {
	t.Helper()
	hdr := &tar.Header{Name: imagePath, Size: int64(len(b)), Mode: 0o755, Typeflag: tar.TypeReg}
	raw, err := Extractor{}.Extract(imagePath, hdr, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Extract(%s): %v", imagePath, err)
	}
	f := DecodeFacts(raw)
	if f == nil {
		t.Fatalf("Extract(%s) gave undecodable facts %q", imagePath, raw)
	}
	return f
}

func TestFactsELF(t *testing.T) {
	tests := []struct {
		name, file, imagePath string
		check                 func(t *testing.T, f *Facts)
	}{
		{"dynamic glibc program", fixture(t, "hello-glibc"), "/usr/bin/hello", func(t *testing.T, f *Facts) {
			want := Facts{Kind: KindELF, Machine: elf.EM_X86_64, Class: elf.ELFCLASS64, Type: elf.ET_DYN,
				Interp: "/lib64/ld-linux-x86-64.so.2", Dynamic: true, Needed: []string{"libc.so.6"}}
			if !factsEqual(f, &want) {
				t.Errorf("got %+v, want %+v", f, want)
			}
		}},
		{"static program", fixture(t, "hello-static"), "/bin/hello", func(t *testing.T, f *Facts) {
			if f.Interp != "" || f.Go || f.Machine != elf.EM_X86_64 || f.Malformed != "" {
				t.Errorf("static program: %+v", f)
			}
		}},
		{"musl program", fixture(t, "hello-musl"), "/bin/hello", func(t *testing.T, f *Facts) {
			if f.Interp != "/lib/ld-musl-x86_64.so.1" || !slices.Equal(f.Needed, []string{"libc.so"}) {
				t.Errorf("musl program: %+v", f)
			}
		}},
		{"arm64 program", fixture(t, "hello-arm64"), "/bin/hello", func(t *testing.T, f *Facts) {
			if f.Machine != elf.EM_AARCH64 || f.Interp != "/lib/ld-linux-aarch64.so.1" {
				t.Errorf("arm64 program: %+v", f)
			}
		}},
		{"Go program", fixture(t, "hello-go"), "/app/server", func(t *testing.T, f *Facts) {
			if !f.Go || f.Interp != "" {
				t.Errorf("Go program: %+v", f)
			}
		}},
		{"synthetic libc", fixture(t, "fakelibc.so.6"), "/lib/x86_64-linux-gnu/libc.so.6", func(t *testing.T, f *Facts) {
			if f.Soname != "libc.so.6" || !slices.Equal(f.Verdefs, []string{"GLIBC_2.2", "GLIBC_2.17"}) || f.Banner != "" {
				t.Errorf("synthetic libc: %+v", f)
			}
		}},
		{"host glibc", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", func(t *testing.T, f *Facts) {
			if f.Soname != "libc.so.6" || !slices.Contains(f.Verdefs, "GLIBC_2.36") || slices.Contains(f.Verdefs, "libc.so.6") {
				t.Errorf("host libc: soname %q verdefs %v", f.Soname, f.Verdefs)
			}
			if !strings.HasPrefix(f.Banner, "GNU C Library (Debian GLIBC 2.36") || !strings.HasSuffix(f.Banner, "release version 2.36") {
				t.Errorf("host libc banner %q", f.Banner)
			}
		}},
		{"host musl loader", "/usr/lib/x86_64-linux-musl/libc.so", "/lib/ld-musl-x86_64.so.1", func(t *testing.T, f *Facts) {
			if f.Banner != "musl libc 1.2.3" {
				t.Errorf("musl banner %q", f.Banner)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, analyzeFile(t, tt.imagePath, tt.file)) })
	}
}

func factsEqual(a, b *Facts) bool {
	return a.Kind == b.Kind && a.Machine == b.Machine && a.Class == b.Class && a.Type == b.Type &&
		a.Interp == b.Interp && a.Dynamic == b.Dynamic && slices.Equal(a.Needed, b.Needed) &&
		a.Soname == b.Soname && a.Go == b.Go && a.Partial == b.Partial && a.Malformed == b.Malformed
}

// TestFactsBigELF lowers the whole-file limit so that the header-only path runs on real programs: it must
// agree with the full analysis on the loader and the Go marker.
func TestFactsBigELF(t *testing.T) {
	saved, savedHead := fullReadLimit, headReadLimit
	defer func() { fullReadLimit, headReadLimit = saved, savedHead }()
	fullReadLimit, headReadLimit = 1024, 4096
	tests := []struct {
		file         string
		interp       string
		goProgram    bool
		wantAnalysed bool
	}{
		{fixture(t, "hello-glibc"), "/lib64/ld-linux-x86-64.so.2", false, true},
		{fixture(t, "hello-static"), "", false, true},
		{fixture(t, "hello-go"), "", true, true},
	}
	for _, tt := range tests {
		f := analyzeFile(t, "/bin/x", tt.file)
		if !f.Partial || f.Interp != tt.interp || f.Go != tt.goProgram || f.Malformed != "" || f.Machine != elf.EM_X86_64 {
			t.Errorf("%s: %+v", tt.file, f)
		}
	}
	// The Go marker is found across a chunk boundary.
	b, err := os.ReadFile(fixture(t, "hello-static"))
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{5000, 64<<10 - 3, 64<<10 + 4096 - 7} {
		m := slices.Clone(b)
		for len(m) < at+len(goBuildInfoMagic) {
			m = append(m, 0)
		}
		copy(m[at:], goBuildInfoMagic)
		if f := analyzeBytes(t, "/bin/x", m); !f.Go {
			t.Errorf("Go marker at %d not found", at)
		}
	}
}

func TestFactsOther(t *testing.T) {
	goodELF, err := os.ReadFile(fixture(t, "hello-glibc"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, imagePath string
		content         []byte
		want            Facts
	}{
		{"script", "/app/run.sh", []byte("#!/bin/bash -e\necho hi\n"), Facts{Kind: KindScript, Shebang: "/bin/bash -e"}},
		{"env script", "/app/run", []byte("#! /usr/bin/env python3\r\nprint(1)"), Facts{Kind: KindScript, Shebang: "/usr/bin/env python3"}},
		{"shebang only", "/app/x", []byte("#!"), Facts{Kind: KindScript}},
		{"long shebang is cut", "/app/x", append([]byte("#!/bin/sh "), bytes.Repeat([]byte("a"), 5000)...),
			Facts{Kind: KindScript, Shebang: "/bin/sh " + strings.Repeat("a", maxShebang-len("#!/bin/sh "))}},
		{"data", "/usr/lib/libfoo.so.txt", []byte("just text"), Facts{Kind: KindOther}},
		{"empty", "/usr/bin/empty", nil, Facts{Kind: KindOther}},
		{"preload", "/etc/ld.so.preload", []byte("# kept\n/usr/lib/liba.so /usr/lib/libb.so:libc.so\n\n  /x.so # tail\n"),
			Facts{Kind: KindPreload, Preload: []string{"/usr/lib/liba.so", "/usr/lib/libb.so", "libc.so", "/x.so"}}},
		{"truncated ELF", "/lib/x86_64-linux-gnu/libc.so.6", goodELF[:40], Facts{Kind: KindELF}},
		{"garbage after ELF magic", "/lib/x86_64-linux-gnu/libc.so.6", append([]byte("\x7fELF"), bytes.Repeat([]byte{0xff}, 200)...), Facts{Kind: KindELF}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := analyzeBytes(t, tt.imagePath, tt.content)
			if strings.Contains(tt.name, "ELF") {
				if f.Kind != KindELF || f.Malformed == "" {
					t.Errorf("malformed ELF not reported: %+v", f)
				}
				return
			}
			if f.Kind != tt.want.Kind || f.Shebang != tt.want.Shebang || !slices.Equal(f.Preload, tt.want.Preload) {
				t.Errorf("got %+v, want %+v", f, tt.want)
			}
		})
	}
}

func TestFactsWant(t *testing.T) {
	tests := []struct {
		path string
		mode int64
		want bool
	}{
		{"/etc/ld.so.preload", 0o644, true},
		{"/usr/bin/env", 0o755, true},
		{"/lib/x86_64-linux-gnu/libc.so.6", 0o644, true},
		{"/usr/lib/x86_64-linux-gnu/libdl.so.2", 0o644, true},
		{"/etc/passwd", 0o644, false},
		{"/usr/share/doc/README", 0o644, false},
	}
	for _, tt := range tests {
		if got := (Extractor{}).Want(tt.path, &tar.Header{Mode: tt.mode}); got != tt.want {
			t.Errorf("Want(%s, %o) = %v, want %v", tt.path, tt.mode, got, tt.want)
		}
	}
}

// TestFactsReadError: a layer that breaks while a file is read is an error (the layer is corrupt), never a
// fact about the file.
func TestFactsReadError(t *testing.T) {
	b, err := os.ReadFile(fixture(t, "hello-glibc"))
	if err != nil {
		t.Fatal(err)
	}
	hdr := &tar.Header{Size: int64(len(b)), Mode: 0o755}
	if _, err := (Extractor{}).Extract("/bin/x", hdr, bytes.NewReader(b[:len(b)/2])); err == nil ||
		!strings.Contains(err.Error(), "/bin/x") {
		t.Errorf("short read: err = %v, want an error naming the file", err)
	}
}

// FuzzFacts: whatever a file holds, the extractor returns facts (never an error, never a panic) when the
// stream itself is complete. Seeds: real programs and libraries cut at many points.
func FuzzFacts(f *testing.F) {
	for _, name := range []string{"hello-glibc", "hello-static", "probe-glibc-amd64.so", "fakelibc.so.6"} {
		b, err := os.ReadFile(fixture(f, name))
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range []int{4, 16, 52, 64, 120, 400, 1000, 4096, len(b) / 2, len(b)} {
			if n <= len(b) {
				f.Add(b[:n])
			}
		}
	}
	f.Add([]byte("#!/bin/sh\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/bin/x", "/etc/ld.so.preload"} {
			raw, err := Extractor{}.Extract(p, &tar.Header{Size: int64(len(b)), Mode: 0o755}, bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Extract(%s): %v", p, err)
			}
			if DecodeFacts(raw) == nil {
				t.Fatalf("Extract(%s) gave undecodable facts %q", p, raw)
			}
		}
	})
}
