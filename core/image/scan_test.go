package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// imageOf is a small image whose layers (oldest first) hold the given files.
func imageOf(t *testing.T, layers ...[]testenv.File) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, files := range layers {
		ls = append(ls, testenv.LayerFromFiles(files...))
	}
	return testenv.ImageFromLayers(t, v1.Config{}, amd64, ls...)
}

// contentExtractor keeps the whole content of files under /facts/ as their facts.
type contentExtractor struct{ id string }

func (c contentExtractor) ID() string { return "content-" + c.id }
func (contentExtractor) Want(p string, _ *tar.Header) bool {
	return strings.HasPrefix(p, "/facts/")
}
func (contentExtractor) Extract(_ string, _ *tar.Header, r io.Reader) ([]byte, error) {
	return io.ReadAll(r)
}

type want struct {
	path   string
	exists bool
	typ    byte
	layer  int
	facts  string // "" = not checked
	link   string // "" = not checked
}

func TestScanMerge(t *testing.T) {
	reg := func(p, c string) testenv.File { return testenv.Reg(p, []byte(c)) }
	tests := []struct {
		name   string
		layers [][]testenv.File
		want   []want
	}{{
		name: "whiteout a file",
		layers: [][]testenv.File{
			{testenv.Dir("/etc"), reg("/etc/a", "1"), reg("/etc/b", "2")},
			{testenv.Whiteout("/etc/a")},
		},
		want: []want{{path: "/etc/a"}, {path: "/etc/b", exists: true, typ: tar.TypeReg, layer: 0}, {path: "/etc", exists: true, typ: tar.TypeDir}},
	}, {
		name: "whiteout a directory removes what is below it",
		layers: [][]testenv.File{
			{testenv.Dir("/opt/app/lib"), reg("/opt/app/lib/x.so", "x"), reg("/opt/keep", "k")},
			{testenv.Whiteout("/opt/app")},
		},
		want: []want{{path: "/opt/app"}, {path: "/opt/app/lib"}, {path: "/opt/app/lib/x.so"}, {path: "/opt/keep", exists: true, typ: tar.TypeReg}},
	}, {
		name: "opaque directory hides lower content, keeps its own layer's",
		layers: [][]testenv.File{
			{testenv.Dir("/etc/apt"), reg("/etc/apt/sources.list", "old"), testenv.Dir("/etc/apt/d"), reg("/etc/apt/d/x", "x"), reg("/etc/hosts", "h")},
			{testenv.Dir("/etc/apt"), testenv.Opaque("/etc/apt"), reg("/etc/apt/new.list", "new")},
		},
		want: []want{
			{path: "/etc/apt", exists: true, typ: tar.TypeDir, layer: 1},
			{path: "/etc/apt/sources.list"}, {path: "/etc/apt/d"}, {path: "/etc/apt/d/x"},
			{path: "/etc/apt/new.list", exists: true, typ: tar.TypeReg, layer: 1},
			{path: "/etc/hosts", exists: true, layer: 0, typ: tar.TypeReg},
		},
	}, {
		name: "opaque marker before the new files of the same layer",
		layers: [][]testenv.File{
			{reg("/d/old", "o")},
			{testenv.Opaque("/d"), reg("/d/new", "n")},
		},
		want: []want{{path: "/d/old"}, {path: "/d/new", exists: true, typ: tar.TypeReg, layer: 1}, {path: "/d", exists: true, typ: tar.TypeDir}},
	}, {
		name: "a whiteout only deletes lower layers",
		layers: [][]testenv.File{
			{reg("/x", "lower")},
			{reg("/x", "same layer"), testenv.Whiteout("/x")},
		},
		want: []want{{path: "/x", exists: true, typ: tar.TypeReg, layer: 1}},
	}, {
		name: "a file replacing a directory removes the directory's content",
		layers: [][]testenv.File{
			{testenv.Dir("/srv/data"), reg("/srv/data/f", "f")},
			{reg("/srv/data", "now a file")},
		},
		want: []want{{path: "/srv/data", exists: true, typ: tar.TypeReg, layer: 1}, {path: "/srv/data/f"}},
	}, {
		name: "later layers win",
		layers: [][]testenv.File{
			{reg("/facts/v", "one"), testenv.Symlink("/bin/sh", "dash")},
			{reg("/facts/v", "two")},
			{testenv.Symlink("/bin/sh", "/bin/bash")},
		},
		want: []want{
			{path: "/facts/v", exists: true, typ: tar.TypeReg, layer: 1, facts: "two"},
			{path: "/bin/sh", exists: true, typ: tar.TypeSymlink, layer: 2, link: "/bin/bash"},
		},
	}, {
		name:   "parents that no entry lists exist as directories",
		layers: [][]testenv.File{{reg("/usr/local/lib/deep/file", "x")}},
		want: []want{
			{path: "/usr", exists: true, typ: tar.TypeDir}, {path: "/usr/local/lib/deep", exists: true, typ: tar.TypeDir},
			{path: "/usr/local/lib/deep/file", exists: true, typ: tar.TypeReg},
		},
	}, {
		name: "hard links share their target's facts, in the same layer and across layers",
		layers: [][]testenv.File{
			{reg("/facts/bin", "ELF-ish"), testenv.Hardlink("/facts/same-layer", "/facts/bin")},
			{testenv.Hardlink("/facts/upper", "facts/bin")},
		},
		want: []want{
			{path: "/facts/same-layer", exists: true, typ: tar.TypeLink, facts: "ELF-ish", link: "/facts/bin"},
			{path: "/facts/upper", exists: true, typ: tar.TypeLink, layer: 1, facts: "ELF-ish", link: "/facts/bin"},
		},
	}, {
		name: "names with ./ and ../ that stay inside, and aufs bookkeeping",
		layers: [][]testenv.File{
			{reg("./a/./b/../c", "c"), reg("/e/.wh..wh.plnk", ""), testenv.Dir("/e")},
		},
		want: []want{{path: "/a/c", exists: true, typ: tar.TypeReg}, {path: "/a/b"}, {path: "/e/.wh..wh.plnk"}, {path: "/e", exists: true, typ: tar.TypeDir}},
	}, {
		name: "a file under a lower symlink turns the symlink into a directory (as overlay unpacking does)",
		layers: [][]testenv.File{
			{testenv.Symlink("/lib", "usr/lib"), reg("/usr/lib/libc.so.6", "libc")},
			{reg("/lib/extra.so", "x")},
		},
		want: []want{
			{path: "/lib", exists: true, typ: tar.TypeDir, layer: 1},
			{path: "/lib/extra.so", exists: true, typ: tar.TypeReg, layer: 1},
			{path: "/usr/lib/libc.so.6", exists: true, typ: tar.TypeReg, layer: 0},
		},
	}, {
		name: "the root opaque marker hides everything below",
		layers: [][]testenv.File{
			{reg("/old", "o"), testenv.Dir("/etc")},
			{testenv.Opaque("/"), reg("/new", "n")},
		},
		want: []want{{path: "/old"}, {path: "/etc"}, {path: "/new", exists: true, typ: tar.TypeReg, layer: 1}, {path: "/", exists: true, typ: tar.TypeDir}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := image.Scan(context.Background(), imageOf(t, tt.layers...), image.ScanOptions{Extractor: contentExtractor{}})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			for _, w := range tt.want {
				e, ok := fs.Lookup(w.path)
				if ok != w.exists {
					t.Errorf("%s: exists=%v, want %v", w.path, ok, w.exists)
					continue
				}
				if !ok {
					continue
				}
				if e.Path != w.path || e.Type != w.typ || (w.typ != tar.TypeDir && e.Layer != w.layer) {
					t.Errorf("%s: got path=%s type=%q layer=%d, want type=%q layer=%d", w.path, e.Path, e.Type, e.Layer, w.typ, w.layer)
				}
				if w.facts != "" && string(e.Facts) != w.facts {
					t.Errorf("%s: facts %q, want %q", w.path, e.Facts, w.facts)
				}
				if w.link != "" && e.Linkname != w.link {
					t.Errorf("%s: link %q, want %q", w.path, e.Linkname, w.link)
				}
			}
			// Walk is sorted and sees exactly Len entries.
			var prev string
			n := 0
			if err := fs.Walk(func(e *image.Entry) error {
				if n > 0 && e.Path <= prev {
					t.Errorf("Walk out of order: %s after %s", e.Path, prev)
				}
				prev = e.Path
				n++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != fs.Len() {
				t.Errorf("Walk saw %d entries, Len = %d", n, fs.Len())
			}
		})
	}
}

func TestScanMetadataAndLimits(t *testing.T) {
	img := imageOf(t, []testenv.File{
		testenv.Exec("/facts/tool", []byte("0123456789")).WithOwner(1000, 1001),
		testenv.Reg("/facts/small", []byte("abc")),
	})
	fs, err := image.Scan(context.Background(), img, image.ScanOptions{Extractor: contentExtractor{}, MaxFileSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := fs.Lookup("/facts/tool")
	if e == nil || !e.TooLarge || e.Facts != nil || e.Size != 10 || e.Mode != 0o755 || e.UID != 1000 || e.GID != 1001 {
		t.Errorf("/facts/tool = %+v, want TooLarge, no facts, size 10, mode 0755, owner 1000:1001", e)
	}
	if e, _ := fs.Lookup("facts/small"); e == nil || e.TooLarge || string(e.Facts) != "abc" {
		t.Errorf("/facts/small = %+v", e)
	}
	var called []string
	ex := funcExtractor{want: func(p string) bool { called = append(called, p); return false }}
	if _, err := image.Scan(context.Background(), img, image.ScanOptions{Extractor: ex}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(called, ",") != "/facts/tool,/facts/small" {
		t.Errorf("Want was asked about %v, want only the regular files", called)
	}
	many := make([]testenv.File, 30)
	for i := range many {
		many[i] = testenv.Reg(fmt.Sprintf("/f%02d", i), nil)
	}
	_, err = image.Scan(context.Background(), imageOf(t, many), image.ScanOptions{MaxEntries: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10 entries") || exitcode.Of(err) != exitcode.Operational {
		t.Errorf("30 entries with MaxEntries 10: %v", err)
	}
	_, err = image.Scan(context.Background(), imageOf(t, many[:8], many[8:16]), image.ScanOptions{MaxEntries: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10 filesystem entries") {
		t.Errorf("16 entries over two layers with MaxEntries 10: %v", err)
	}
	failing := funcExtractor{want: func(string) bool { return true }, err: errors.New("disk on fire")}
	_, err = image.Scan(context.Background(), img, image.ScanOptions{Extractor: failing})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "facts/tool") || !strings.Contains(err.Error(), "layer 1/1") {
		t.Errorf("failing extractor: %v, want the error with the layer and the entry", err)
	}
}

type funcExtractor struct {
	want func(string) bool
	err  error
}

func (funcExtractor) ID() string                          { return "func" }
func (f funcExtractor) Want(p string, _ *tar.Header) bool { return f.want(p) }
func (f funcExtractor) Extract(string, *tar.Header, io.Reader) ([]byte, error) {
	return nil, f.err
}

func TestScanRejectsTraversal(t *testing.T) {
	tests := []struct {
		name  string
		files []testenv.File
		entry string
	}{
		{"dot-dot at the start", []testenv.File{testenv.Reg("../etc/passwd", []byte("x"))}, "../etc/passwd"},
		{"dot-dot climbing out in the middle", []testenv.File{testenv.Reg("usr/../../../x", []byte("x"))}, "usr/../../../x"},
		{"hard link target outside", []testenv.File{testenv.Reg("a", nil), {Path: "b", Type: tar.TypeLink, Linkname: "../../etc/shadow"}}, "../../etc/shadow"},
		{"whiteout outside", []testenv.File{testenv.Reg("../.wh.etc", nil)}, "../.wh.etc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := imageOf(t, []testenv.File{testenv.Reg("/ok", nil)}, tt.files)
			_, err := image.Scan(context.Background(), img, image.ScanOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), "layer 2/2") ||
				!strings.Contains(err.Error(), tt.entry) || !strings.Contains(err.Error(), "leaves the image root") {
				t.Errorf("error %q (code %d): want operational, naming layer 2/2, %q and the traversal", err, exitcode.Of(err), tt.entry)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	files := []testenv.File{
		testenv.Dir("/usr/bin"), testenv.Dir("/usr/lib/x86_64-linux-gnu"),
		testenv.Exec("/usr/bin/dash", []byte("dash")),
		testenv.Symlink("/bin", "usr/bin"),
		testenv.Symlink("/lib", "usr/lib"),
		testenv.Symlink("/usr/bin/sh", "dash"),
		testenv.Symlink("/usr/local/bin/app", "../../bin/sh"),
		testenv.Reg("/usr/lib/x86_64-linux-gnu/libc.so.6", []byte("libc")),
		testenv.Symlink("/lib64", "/usr/lib/x86_64-linux-gnu"),
		testenv.Symlink("/escape", "../../../../usr/bin/dash"),
		testenv.Symlink("/abs-escape", "/../../usr/bin/dash"),
		testenv.Symlink("/loop/a", "b"), testenv.Symlink("/loop/b", "a"),
		testenv.Symlink("/self", "self"),
		testenv.Symlink("/dangling", "/nowhere/at/all"),
		testenv.Symlink("/empty", ""),
		testenv.Reg("/etc/file", []byte("f")),
		testenv.Symlink("/dirlink", "usr/bin/"),
	}
	// A chain of exactly MaxSymlinks links resolves; one more is a loop.
	for i := 1; i <= image.MaxSymlinks+1; i++ {
		files = append(files, testenv.Symlink(fmt.Sprintf("/chain/%d", i), fmt.Sprintf("%d", i-1)))
	}
	files = append(files, testenv.Reg("/chain/0", []byte("end")))
	fs, err := image.Scan(context.Background(), imageOf(t, files), image.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, path string
		err      error
	}{
		{"/bin/sh", "/usr/bin/dash", nil},
		{"bin/sh", "/usr/bin/dash", nil},
		{"/usr/local/bin/app", "/usr/bin/dash", nil},
		{"/lib64/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", nil},
		{"/bin/../lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", nil}, // ".." after a link applies to its target
		{"/escape", "/usr/bin/dash", nil},
		{"/abs-escape", "/usr/bin/dash", nil},
		{"/dirlink/dash", "/usr/bin/dash", nil},
		{"/bin", "/usr/bin", nil},
		{"/", "/", nil},
		{fmt.Sprintf("/chain/%d", image.MaxSymlinks), "/chain/0", nil}, // exactly MaxSymlinks links
		{fmt.Sprintf("/chain/%d", image.MaxSymlinks+1), "", image.ErrSymlinkLoop},
		{"/loop/a", "", image.ErrSymlinkLoop},
		{"/self", "", image.ErrSymlinkLoop},
		{"/dangling", "", image.ErrNotExist},
		{"/empty", "", image.ErrNotExist},
		{"/missing", "", image.ErrNotExist},
		{"/etc/file/x", "", image.ErrNotDir},
	}
	for _, tt := range tests {
		p, e, err := fs.Resolve(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("Resolve(%q) = %q, %v; want %v naming the path", tt.in, p, err, tt.err)
			}
			continue
		}
		if err != nil || p != tt.path || e == nil || e.Path != tt.path {
			t.Errorf("Resolve(%q) = %q, %+v, %v; want %q", tt.in, p, e, err, tt.path)
		}
	}
}

func TestScanRejectsBadWhiteouts(t *testing.T) {
	for _, name := range []string{"/etc/.wh..", "/etc/.wh.", "/.wh.."} {
		img := imageOf(t, []testenv.File{testenv.Reg("/etc/x", nil)}, []testenv.File{testenv.Reg(name, nil)})
		_, err := image.Scan(context.Background(), img, image.ScanOptions{})
		if err == nil || !strings.Contains(err.Error(), "a whiteout must name an entry") || exitcode.Of(err) != exitcode.Operational {
			t.Errorf("whiteout %q: %v", name, err)
		}
	}
}

func TestScanProgress(t *testing.T) {
	img := imageOf(t, []testenv.File{testenv.Reg("/big", bytes.Repeat([]byte("x"), 10000))}, []testenv.File{testenv.Reg("/small", nil)})
	var quiet, chatty bytes.Buffer
	if _, err := image.Scan(context.Background(), img, image.ScanOptions{Progress: &quiet}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(quiet.String()), "\n")
	sort.Strings(lines) // layers are scanned in parallel: their lines come in any order
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "layer 1/2 sha256:") || !strings.Contains(lines[0], "1 entries, 11.") || !strings.HasPrefix(lines[1], "layer 2/2 ") {
		t.Errorf("progress, a line per layer:\n%s", quiet.String())
	}
	if _, err := image.Scan(context.Background(), img, image.ScanOptions{Progress: &chatty, ProgressEvery: 4096}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(chatty.String(), "layer 1/2: "); n < 1 || n > 2 || strings.Contains(chatty.String(), "layer 2/2: ") {
		t.Errorf("progress every 4096 bytes of an 11.5 KiB layer: %d lines\n%s", n, chatty.String())
	}
}

// TestScanEmptyImage: an image without layers (FROM scratch with nothing added) is just the root.
func TestScanEmptyImage(t *testing.T) {
	fs, err := image.Scan(context.Background(), testenv.ImageFromLayers(t, v1.Config{}, amd64), image.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := fs.Lookup("/"); fs.Len() != 1 || !ok || e.Type != tar.TypeDir {
		t.Errorf("empty image: %d entries, root %+v", fs.Len(), e)
	}
	if _, _, err := fs.Resolve("/bin/sh"); !errors.Is(err, image.ErrNotExist) {
		t.Errorf("Resolve in an empty image: %v", err)
	}
}
