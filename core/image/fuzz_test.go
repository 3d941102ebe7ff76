package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzExtractor keeps the first bytes of every regular file.
type fuzzExtractor struct{}

func (fuzzExtractor) ID() string                    { return "fuzz" }
func (fuzzExtractor) Want(string, *tar.Header) bool { return true }
func (fuzzExtractor) Extract(_ string, _ *tar.Header, r io.Reader) ([]byte, error) {
	b := make([]byte, 16)
	n, err := io.ReadFull(r, b)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:n], nil
}

// FuzzScanTar feeds arbitrary bytes to the layer reader as a tar stream. Whatever the input: no panic;
// every path kept is absolute, clean and inside the root; the cache encoding round-trips; merging the
// layer twice (over itself) works; Resolve of every path ends (found, missing, loop or not-a-dir).
func FuzzScanTar(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic("FuzzScanTar: one input took more than 10s") })
		defer watchdog.Stop()
		opts := ScanOptions{Extractor: fuzzExtractor{}, MaxFileSize: 1 << 10, MaxEntries: 1000}
		rec, err := readTar(&countingReader{ctx: t.Context(), r: bytes.NewReader(data), h: nopHash{}, limit: 1 << 20}, opts)
		if err != nil {
			return
		}
		for _, e := range rec.entries {
			if !strings.HasPrefix(e.Path, "/") || strings.Contains(e.Path, "/../") || strings.HasSuffix(e.Path, "/..") || (e.Path != "/" && strings.HasSuffix(e.Path, "/")) {
				t.Fatalf("entry path %q is not clean and absolute", e.Path)
			}
			if e.Type == tar.TypeLink && !strings.HasPrefix(e.Linkname, "/") {
				t.Fatalf("hard link target %q is not absolute", e.Linkname)
			}
		}
		back, err := decodeRecord(encodeRecord(rec))
		if err != nil {
			t.Fatalf("cache round trip: %v", err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(rec)) {
			t.Fatalf("cache round trip changed the record:\n%+v\n%+v", back, rec)
		}
		fs, err := merge([]*layerRecord{rec, rec}, 5000)
		if err != nil {
			return
		}
		fs.Walk(func(e *Entry) error {
			fs.Resolve(e.Path)
			return nil
		})
	})
}

// normalize makes empty slices nil so DeepEqual compares content.
func normalize(r *layerRecord) *layerRecord {
	c := *r
	if len(c.opaque) == 0 {
		c.opaque = nil
	}
	if len(c.whiteouts) == 0 {
		c.whiteouts = nil
	}
	if len(c.entries) == 0 {
		c.entries = nil
	}
	return &c
}

type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// FuzzParseReference: no panic, and a parsed reference prints to a string that parses back to it.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"registry.example.com/app:1.0", "docker://localhost:5000/a/b@sha256:" + strings.Repeat("a", 64),
		"oci:/tmp/layout:v1", "oci-archive:img.tar", "docker-archive:/f.tar:app:1", "docker-daemon:app:1",
		"dir:/x", "oci::", "docker://", "[::1]:5000/app", "app@sha256:", "UPPER/case", "a:b:c:d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		back, err := ParseReference(r.String())
		if err != nil {
			t.Fatalf("ParseReference(%q) = %+v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		if back != r {
			t.Fatalf("ParseReference(%q) = %+v; its String %q parses to %+v", s, r, r.String(), back)
		}
	})
}

// fuzzSeeds are small layers exercising each rule of the merge: the same inputs are committed under
// testdata/fuzz/FuzzScanTar (regenerate with `go test ./core/image -run TestWriteFuzzCorpus -args -write-fuzz-corpus`).
func fuzzSeeds() [][]byte {
	reg := func(p, c string) testenvFile { return testenvFile{name: p, typ: tar.TypeReg, body: c} }
	return [][]byte{
		tarOf(reg("etc/hosts", "127.0.0.1 localhost\n"), testenvFile{name: "bin/", typ: tar.TypeDir}, testenvFile{name: "bin/sh", typ: tar.TypeSymlink, link: "dash"}),
		tarOf(reg("etc/.wh.hosts", ""), reg("usr/.wh..wh..opq", ""), reg("usr/new", "n")),
		tarOf(reg("../escape", "x")),
		tarOf(reg("a", "ELF"), testenvFile{name: "b", typ: tar.TypeLink, link: "a"}, testenvFile{name: "c", typ: tar.TypeLink, link: "../../x"}),
		tarOf(testenvFile{name: "l1", typ: tar.TypeSymlink, link: "l2"}, testenvFile{name: "l2", typ: tar.TypeSymlink, link: "/l1"}),
		tarOf(reg(strings.Repeat("long/", 40)+"file", "pax long name")),
		tarOf(reg("./x/./y/../z", "z"), reg(".wh..wh.plnk", ""), testenvFile{name: "dev/null", typ: tar.TypeChar}),
		[]byte("not a tar at all"),
	}
}

type testenvFile struct {
	name, body, link string
	typ              byte
}

func tarOf(files ...testenvFile) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Typeflag: f.typ, Linkname: f.link, Mode: 0o644}
		if f.typ == tar.TypeReg {
			hdr.Size = int64(len(f.body))
		}
		tw.WriteHeader(hdr)
		tw.Write([]byte(f.body))
	}
	tw.Close()
	return buf.Bytes()
}

var writeFuzzCorpus = flag.Bool("write-fuzz-corpus", false, "write the fuzz seed corpus to testdata/fuzz")

// TestWriteFuzzCorpus checks the committed seed corpus matches fuzzSeeds (and rewrites it with
// -write-fuzz-corpus).
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzScanTar")
	for i, seed := range fuzzSeeds() {
		p := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *writeFuzzCorpus {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (err %v): run go test ./core/image -run TestWriteFuzzCorpus -args -write-fuzz-corpus", p, err)
		}
	}
}
