package hardening

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// maxRSSKiB is the peak memory a crs-ci run may use on any hostile image.
const maxRSSKiB = 512 << 10

// blob is one layer as stored: its compressed bytes (or a stream of repeated gzip members, for bombs) and
// the sha256 of its uncompressed content.
type blob struct {
	parts  [][]byte // concatenated to form the blob
	repeat int      // parts[1] is written this many times (a bomb's body), 0 = once
	diffID string
}

func (b blob) write(t testing.TB, dir string) (digest string, size int64) {
	t.Helper()
	tmp := filepath.Join(dir, "blobs", "sha256", "tmp")
	os.MkdirAll(filepath.Dir(tmp), 0o755)
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	write := func(p []byte) {
		f.Write(p)
		h.Write(p)
		size += int64(len(p))
	}
	for i, p := range b.parts {
		n := 1
		if i == 1 && b.repeat > 0 {
			n = b.repeat
		}
		for ; n > 0; n-- {
			write(p)
		}
	}
	f.Close()
	digest = hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, filepath.Join(dir, "blobs", "sha256", digest)); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + digest, size
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func tarBlob(files ...testenv.File) blob {
	raw := testenv.TarOf(files...)
	return blob{parts: [][]byte{gz(raw)}, diffID: sha(raw)}
}

// layout is an OCI image layout written by hand, so that every part of it can be broken.
type layout struct {
	layers   []blob
	config   func(diffIDs []string) []byte // nil: a valid linux/amd64 config
	manifest func(cfg, layers string) []byte
}

func (l layout) write(t testing.TB, dir string) string {
	t.Helper()
	var descs, diffIDs []string
	for _, b := range l.layers {
		d, n := b.write(t, dir)
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}`, d, n))
		diffIDs = append(diffIDs, b.diffID)
	}
	var cfg []byte
	if l.config != nil {
		cfg = l.config(diffIDs)
	} else {
		cfg = configJSON(`"os":"linux","architecture":"amd64",`, diffIDs)
	}
	cd, cn := blob{parts: [][]byte{cfg}}.write(t, dir)
	cfgDesc := fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d}`, cd, cn)
	var man []byte
	if l.manifest != nil {
		man = l.manifest(cfgDesc, strings.Join(descs, ","))
	} else {
		man = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}`,
			cfgDesc, strings.Join(descs, ",")))
	}
	md, mn := blob{parts: [][]byte{man}}.write(t, dir)
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"hostile"}}]}`, md, mn)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(idx), 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return "oci:" + dir + ":hostile"
}

func configJSON(platform string, diffIDs []string) []byte {
	ids, _ := json.Marshal(diffIDs)
	return []byte(fmt.Sprintf(`{%s"config":{"Entrypoint":["/usr/bin/true"]},"rootfs":{"type":"layers","diff_ids":%s}}`, platform, ids))
}

var (
	filesOnce sync.Once
	realFiles map[string][]byte
)

// glibcFiles are bookworm's /usr/bin/true, dynamic loader, libc and libdl (the probe needs it), read from the real root filesystem.
func glibcFiles(t testing.TB) map[string][]byte {
	t.Helper()
	filesOnce.Do(func() {
		root := testenv.Rootfs(t, "bookworm")
		realFiles = map[string][]byte{}
		for k, p := range map[string]string{"true": "usr/bin/true", "ld": "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "libc": "lib/x86_64-linux-gnu/libc.so.6", "libdl": "lib/x86_64-linux-gnu/libdl.so.2"} {
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			realFiles[k] = b
		}
	})
	return realFiles
}

// program is a glibc program image's files with the loader and libc replaced as given (nil: the real ones).
func program(t testing.TB, loader, libc []testenv.File) []testenv.File {
	f := glibcFiles(t)
	files := []testenv.File{testenv.Dir("/usr"), testenv.Dir("/usr/bin"), testenv.Exec("/usr/bin/true", f["true"]),
		testenv.Dir("/lib64"), testenv.Dir("/lib"), testenv.Dir("/lib/x86_64-linux-gnu"),
		testenv.Reg("/lib/x86_64-linux-gnu/libdl.so.2", f["libdl"])}
	if loader == nil {
		loader = []testenv.File{testenv.Exec("/lib64/ld-linux-x86-64.so.2", f["ld"])}
	}
	if libc == nil {
		libc = []testenv.File{testenv.Reg("/lib/x86_64-linux-gnu/libc.so.6", f["libc"])}
	}
	return append(append(files, loader...), libc...)
}

// bomb is a gzip stream of n MiB of zeros in one tar file at path, written as repeated identical gzip members
// (a 64 MiB member compresses to about 64 KiB), with its real diff ID.
func bomb(t testing.TB, path string, n int64) blob {
	t.Helper()
	const chunk = 64 << 20
	if n%64 != 0 {
		t.Fatalf("bomb size %d MiB is not a multiple of 64", n)
	}
	size := n << 20
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(path, "/"), Typeflag: tar.TypeReg, Size: size, Mode: 0o755})
	tw.Flush()
	zeros := make([]byte, chunk)
	trailer := make([]byte, 1024)
	h := sha256.New()
	h.Write(hdr.Bytes())
	for i := int64(0); i < size/chunk; i++ {
		h.Write(zeros)
	}
	h.Write(trailer)
	return blob{parts: [][]byte{gz(hdr.Bytes()), gz(zeros), gz(trailer)}, repeat: int(size / chunk), diffID: "sha256:" + hex.EncodeToString(h.Sum(nil))}
}

// hugeHeader is a layer whose tar header claims size bytes but holds 4 KiB.
func hugeHeader(size int64) blob {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "usr/bin/big", Typeflag: tar.TypeReg, Size: size, Mode: 0o755})
	tw.Write(make([]byte, 4096))
	return blob{parts: [][]byte{gz(buf.Bytes())}, diffID: sha(buf.Bytes())}
}

func traversal() blob {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../../../../etc/crs-evil", Typeflag: tar.TypeReg, Size: 2, Mode: 0o755})
	tw.Write([]byte("hi"))
	tw.Close()
	return blob{parts: [][]byte{gz(buf.Bytes())}, diffID: sha(buf.Bytes())}
}

// blobFile is the path of the layout's blob d.
func blobFile(dir, d string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

// layerBlob finds the first layer blob of the layout's manifest.
func layerBlob(t testing.TB, dir string) string {
	t.Helper()
	var idx struct{ Manifests []struct{ Digest string } }
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &idx)
	mb, err := os.ReadFile(blobFile(dir, idx.Manifests[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Layers []struct{ Digest string } }
	json.Unmarshal(mb, &m)
	return blobFile(dir, m.Layers[0].Digest)
}

// TestHostileImageCorpus runs the real crs-ci binary (check, and instrument --dry-run for a few) on a corpus
// of hostile and corrupt images built here, and asserts for each: exit 1 (a verdict) or 3 (corrupt input),
// a message naming the problem, no panic, and a peak RSS below 512 MiB measured from crs-ci's rusage (by a
// fresh spawner process, so the test's own memory is not counted; see spawnEnv).
// A control case (the same program image, intact) must pass, so every failure is the hostile part's doing.
// Symlinks that escape the image root point at files that do exist on this host, so following them out
// would turn a rejection into a pass.
func TestHostileImageCorpus(t *testing.T) {
	ldReal := glibcFiles(t)["ld"]
	type tc struct {
		name   string
		build  func(t *testing.T, dir string) string
		args   []string
		code   int
		msgs   []string // each must be in stderr or stdout
		dryRun bool     // also run instrument --dry-run, same code
	}
	simple := func(layers ...blob) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string { return layout{layers: layers}.write(t, dir) }
	}
	tests := []tc{
		{name: "control: intact glibc program", build: simple(tarBlob(program(t, nil, nil)...)), code: 0, dryRun: true},
		{name: "loader symlink escaping the root (absolute)", code: 1, dryRun: true, msgs: []string{"/lib64/ld-linux-x86-64.so.2"},
			build: simple(tarBlob(program(t, []testenv.File{testenv.Symlink("/lib64/ld-linux-x86-64.so.2", "/../../../../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")}, nil)...))},
		{name: "loader symlink escaping the root (relative)", code: 1, msgs: []string{"/lib64/ld-linux-x86-64.so.2"},
			build: simple(tarBlob(program(t, []testenv.File{testenv.Symlink("/lib64/ld-linux-x86-64.so.2", "../../../../../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")}, nil)...))},
		{name: "libc symlink into the host's /proc", code: 1, msgs: []string{"libc.so.6"},
			build: simple(tarBlob(program(t, nil, []testenv.File{testenv.Symlink("/lib/x86_64-linux-gnu/libc.so.6", "/proc/self/root/lib/x86_64-linux-gnu/libc.so.6")})...))},
		{name: "symlink loop on the loader", code: 1, dryRun: true, msgs: []string{"/lib64/ld-linux-x86-64.so.2"},
			build: simple(tarBlob(program(t, []testenv.File{testenv.Symlink("/lib64/ld-linux-x86-64.so.2", "/lib64/loop-a"),
				testenv.Symlink("/lib64/loop-a", "loop-b"), testenv.Symlink("/lib64/loop-b", "/lib64/ld-linux-x86-64.so.2")}, nil)...))},
		{name: "malformed ELF where libc should be", code: 1, dryRun: true, msgs: []string{"libc.so.6"},
			build: simple(tarBlob(program(t, nil, []testenv.File{testenv.Reg("/lib/x86_64-linux-gnu/libc.so.6", append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0xff}, 4000)...))})...))},
		{name: "empty libc", code: 1, msgs: []string{"libc.so.6"},
			build: simple(tarBlob(program(t, nil, []testenv.File{testenv.Reg("/lib/x86_64-linux-gnu/libc.so.6", nil)})...))},
		{name: "empty loader", code: 1, msgs: []string{"ld-linux-x86-64.so.2"},
			build: simple(tarBlob(program(t, []testenv.File{testenv.Exec("/lib64/ld-linux-x86-64.so.2", nil)}, nil)...))},
		{name: "truncated ELF loader", code: 1, msgs: []string{"ld-linux-x86-64.so.2"},
			build: simple(tarBlob(program(t, []testenv.File{testenv.Exec("/lib64/ld-linux-x86-64.so.2", ldReal[:300])}, nil)...))},
		{name: "tar path traversal", code: 3, dryRun: true, msgs: []string{"../../../../etc/crs-evil"},
			build: simple(tarBlob(program(t, nil, nil)...), traversal())},
		{name: "truncated layer blob", code: 3, dryRun: true, msgs: []string{"layer"}, build: func(t *testing.T, dir string) string {
			ref := layout{layers: []blob{tarBlob(program(t, nil, nil)...)}}.write(t, dir)
			p := layerBlob(t, dir)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return ref
		}},
		{name: "layer blob not matching its digest", code: 3, msgs: []string{"layer"}, build: func(t *testing.T, dir string) string {
			ref := layout{layers: []blob{tarBlob(program(t, nil, nil)...)}}.write(t, dir)
			p := layerBlob(t, dir)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x55
			os.WriteFile(p, b, 0o644)
			return ref
		}},
		{name: "diff ID mismatch", code: 3, msgs: []string{"diff ID"}, build: func(t *testing.T, dir string) string {
			b := tarBlob(program(t, nil, nil)...)
			b.diffID = "sha256:" + strings.Repeat("0", 64)
			return layout{layers: []blob{b}}.write(t, dir)
		}},
		{name: "missing layer blob", code: 3, dryRun: true, msgs: []string{"missing"}, build: func(t *testing.T, dir string) string {
			ref := layout{layers: []blob{tarBlob(program(t, nil, nil)...)}}.write(t, dir)
			os.Remove(layerBlob(t, dir))
			return ref
		}},
		{name: "invalid index.json", code: 3, msgs: []string{"index"}, build: func(t *testing.T, dir string) string {
			ref := layout{layers: []blob{tarBlob(program(t, nil, nil)...)}}.write(t, dir)
			os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[{"digest":`), 0o644)
			return ref
		}},
		{name: "invalid manifest JSON", code: 3, msgs: []string{"manifest"}, build: func(t *testing.T, dir string) string {
			return layout{layers: []blob{tarBlob(program(t, nil, nil)...)},
				manifest: func(string, string) []byte { return []byte(`{"schemaVersion":2,"layers":[{"digest":1}`) }}.write(t, dir)
		}},
		{name: "invalid config JSON", code: 3, msgs: []string{"config"}, build: func(t *testing.T, dir string) string {
			return layout{layers: []blob{tarBlob(program(t, nil, nil)...)},
				config: func([]string) []byte { return []byte(`{"architecture":["amd64"],"rootfs":`) }}.write(t, dir)
		}},
		{name: "config without os and architecture", code: 1, msgs: []string{"names no os or architecture"}, build: func(t *testing.T, dir string) string {
			return layout{layers: []blob{tarBlob(program(t, nil, nil)...)},
				config: func(ids []string) []byte { return configJSON("", ids) }}.write(t, dir)
		}},
		{name: "tar header claiming a terabyte", code: 3, msgs: []string{"truncated"},
			build: simple(tarBlob(program(t, nil, nil)...), hugeHeader(1<<40))},
		{name: "tar header claiming a negative size", code: 3, msgs: []string{"layer"}, build: func(t *testing.T, dir string) string {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "usr/bin/neg", Typeflag: tar.TypeReg, Size: 1, Mode: 0o755})
			tw.Write([]byte("x"))
			tw.Close()
			raw := buf.Bytes()
			copy(raw[124:136], "\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff") // base-256 size: -1
			return layout{layers: []blob{tarBlob(program(t, nil, nil)...), {parts: [][]byte{gz(raw)}, diffID: sha(raw)}}}.write(t, dir)
		}},
		{name: "gzip bomb (3 GiB) stopped by --max-layer-bytes", code: 3, args: []string{"--max-layer-bytes", "536870912"},
			msgs:  []string{"536870912"},
			build: simple(tarBlob(program(t, nil, nil)...), bomb(t, "/usr/bin/zeros", 3072))},
		{name: "gzip bomb (3 GiB) as libc, read to the end", code: 1, msgs: []string{"libc.so.6"},
			build: simple(tarBlob(program(t, nil, []testenv.File{})...), bomb(t, "/lib/x86_64-linux-gnu/libc.so.6", 3072))},
	}
	policy := testdata(t, "policy.yaml")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := tt.build(t, dir)
			cmds := [][]string{append([]string{"check", ref, "--no-cache", "--ci", "none"}, tt.args...)}
			if tt.dryRun {
				cmds = append(cmds, append([]string{"instrument", ref, "--policy", policy, "--dry-run", "--no-cache", "--ci", "none",
					"--output", "oci:" + filepath.Join(t.TempDir(), "out")}, tt.args...))
			}
			for _, args := range cmds {
				res := crs(t, runOpts{}, args...)
				t.Logf("%s: exit %d, peak RSS %d MiB", args[0], res.code, res.maxRSSKiB>>10)
				if res.code != tt.code {
					t.Fatalf("exit %d, want %d\n%s", res.code, tt.code, res)
				}
				for _, m := range tt.msgs {
					if !strings.Contains(res.stderr+res.stdout, m) {
						t.Errorf("output does not name the problem (%q)\n%s", m, res)
					}
				}
				if res.code != 0 && !strings.Contains(res.stderr, "crs-ci") {
					t.Errorf("a failing run says nothing on stderr\n%s", res)
				}
				if res.maxRSSKiB == 0 || res.maxRSSKiB > maxRSSKiB {
					t.Errorf("peak RSS %d KiB, want (0, %d]", res.maxRSSKiB, maxRSSKiB)
				}
			}
			if _, err := os.Stat("/etc/crs-evil"); err == nil {
				t.Fatal("a tar entry was written outside the image: /etc/crs-evil exists on the host")
			}
		})
	}
}
