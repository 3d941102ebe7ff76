package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// Extractor lets a caller keep facts about chosen files while each layer is streamed exactly once.
type Extractor interface {
	// ID is part of the cache key; bump it when the facts an Extractor produces change.
	ID() string
	// Want reports whether this regular file's content should be given to Extract.
	Want(path string, hdr *tar.Header) bool
	// Extract returns facts (opaque bytes) about a file; r yields at most the file's size. Describe a
	// malformed file in the facts; return an error only when reading failed, as it ends the scan.
	Extract(path string, hdr *tar.Header, r io.Reader) ([]byte, error)
}

// ScanOptions bound and speed up a Scan.
type ScanOptions struct {
	Extractor     Extractor // may be nil
	CacheDir      string    // "" = no cache; else per-layer facts cached by layer digest + Extractor.ID()
	MaxFileSize   int64     // bigger files are not given to Extract (their Entry says so); default 256 MiB
	MaxEntries    int       // default 2,000,000 per image
	MaxLayerBytes int64     // uncompressed bytes per layer, default 64 GiB: a gzip bomb stops with an error
	Parallel      int       // layers scanned at once, default GOMAXPROCS
	// Progress, when set, gets a line per layer (its number, digest, entries and bytes read, or "cached").
	Progress io.Writer
	// ProgressEvery, when > 0, adds a line each time that many more uncompressed bytes of a layer are read
	// (for terminals and long pulls; 0 keeps CI logs to a line per layer).
	ProgressEvery int64
}

// Defaults of ScanOptions.
const (
	DefaultMaxFileSize   = 256 << 20
	DefaultMaxEntries    = 2_000_000
	DefaultMaxLayerBytes = 64 << 30
)

// Entry is one path of the merged filesystem.
type Entry struct {
	Path     string // absolute, cleaned: "/usr/bin/env"
	Type     byte   // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink (hard link), or other tar types
	Mode     int64
	Size     int64
	Linkname string // symlink target as written, or hard link target (cleaned absolute)
	UID, GID int
	Layer    int    // index of the layer it came from, oldest first
	Facts    []byte // Extractor output, nil if not extracted; hard links share their target's facts
	TooLarge bool   // larger than MaxFileSize: content not read
}

// layerRecord is what one layer contributes, independent of its position in an image (so it can be cached).
type layerRecord struct {
	opaque    []string // directories whose lower content this layer hides
	whiteouts []string // paths this layer deletes from lower layers
	entries   []Entry  // in tar order; Layer is set when merged
	bytes     int64    // uncompressed bytes read
}

// Scan streams every layer once (in parallel, nothing extracted to disk) and merges them: later layers win,
// whiteouts (.wh.NAME) delete, opaque dirs (.wh..wh..opq) hide lower content. Paths are cleaned and kept
// inside the root ("../" traversal is rejected with an error naming the layer and the entry). Each layer's
// uncompressed content is checked against its diff ID from the config (and, for registry and OCI layout
// layers, the compressed bytes against the layer digest): a mismatch, a truncated or corrupt layer, or a
// limit exceeded is an exitcode.Operational error.
func Scan(ctx context.Context, img v1.Image, opts ScanOptions) (*FS, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxLayerBytes <= 0 {
		opts.MaxLayerBytes = DefaultMaxLayerBytes
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.GOMAXPROCS(0)
	}
	if err := checkConfigDigest(img); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, exitcode.Operationalf("listing the layers of the image: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	recs := make([]*layerRecord, len(layers))
	errs := make([]error, len(layers))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var progressMu sync.Mutex
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			var tick func(int64)
			if opts.Progress != nil && opts.ProgressEvery > 0 {
				tick = func(n int64) {
					progressMu.Lock()
					fmt.Fprintf(opts.Progress, "layer %d/%d: %s read\n", i+1, len(layers), humanBytes(n))
					progressMu.Unlock()
				}
			}
			var note func(string)
			if opts.Progress != nil {
				note = func(s string) {
					progressMu.Lock()
					fmt.Fprintln(opts.Progress, s)
					progressMu.Unlock()
				}
			}
			rec, cached, err := loadOrScanLayer(ctx, l, fmt.Sprintf("layer %d/%d", i+1, len(layers)), opts, tick, note)
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			recs[i] = rec
			if opts.Progress != nil {
				progressMu.Lock()
				d, _ := l.DiffID()
				if cached {
					fmt.Fprintf(opts.Progress, "layer %d/%d %s: %d entries (cached)\n", i+1, len(layers), shortDigest(d), len(rec.entries))
				} else {
					fmt.Fprintf(opts.Progress, "layer %d/%d %s: %d entries, %s read\n", i+1, len(layers), shortDigest(d), len(rec.entries), humanBytes(rec.bytes))
				}
				progressMu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Report the first real failure, not the cancellations it caused in other layers.
	var first error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			first = err
			break
		}
	}
	if first == nil {
		for _, err := range errs {
			if err != nil {
				first = err
				break
			}
		}
	}
	if first != nil {
		return nil, exitcode.WithCode(exitcode.Operational, first)
	}
	return merge(recs, opts.MaxEntries)
}

// checkConfigDigest verifies the config against the manifest's config digest when the image has a manifest.
func checkConfigDigest(img v1.Image) error {
	raw, err := img.RawConfigFile()
	if err != nil {
		return exitcode.Operationalf("reading the image config: %w", err)
	}
	want, err := img.ConfigName()
	if err != nil {
		return exitcode.Operationalf("reading the image config digest: %w", err)
	}
	sum := sha256.Sum256(raw)
	if want.Algorithm == "sha256" && want.Hex != hex.EncodeToString(sum[:]) {
		return exitcode.Operationalf("image config does not match its digest %s (content hashes to sha256:%x)", want, sum)
	}
	if _, err := img.ConfigFile(); err != nil {
		return exitcode.Operationalf("image config %s is not valid JSON: %w", want, err)
	}
	return nil
}

// loadOrScanLayer returns what layer l (named "layer N/M" in messages) contributes, from the cache or by
// reading it.
// note, when set, gets a line each time a broken download is retried.
func loadOrScanLayer(ctx context.Context, l v1.Layer, what string, opts ScanOptions, tick func(int64), note func(string)) (*layerRecord, bool, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, false, exitcode.Operationalf("%s: reading its diff ID: %w", what, err)
	}
	// Layers read with Uncompressed() (docker archives, the daemon) would have to be recompressed to know
	// their digest: those are named, and cached, by their diff ID alone (checked against the content when
	// cached).
	var digest v1.Hash
	name := "diff ID " + diffID.String()
	if nativelyCompressed(l) {
		if digest, err = l.Digest(); err != nil {
			return nil, false, exitcode.Operationalf("%s: reading its digest: %w", what, err)
		}
		name = digest.String()
	}
	var key string
	if opts.CacheDir != "" {
		key = cacheKey(digest, diffID, opts)
		if rec, ok := readCache(opts.CacheDir, key); ok {
			return rec, true, nil
		}
	}
	rec, err := scanLayer(ctx, l, diffID, opts, tick)
	if isRemoteLayer(l) {
		// A download broken in the middle: open the layer again and scan it from its first byte (see retry.go).
		wait := layerBackoff
		for attempt := 2; attempt <= layerAttempts && err != nil && isTransient(err) && ctx.Err() == nil; attempt++ {
			if note != nil {
				note(fmt.Sprintf("%s %s: download interrupted (%v); reading it again from the start in %s (attempt %d/%d)", what, shortDigest(digest), err, wait, attempt, layerAttempts))
			}
			if serr := sleepCtx(ctx, wait); serr != nil {
				break
			}
			wait *= 2
			rec, err = scanLayer(ctx, l, diffID, opts, tick)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s (%s): %w", what, name, err)
	}
	if key != "" {
		// A cache that cannot be written only costs speed; the scan itself succeeded.
		_ = writeCache(opts.CacheDir, key, rec)
	}
	return rec, false, nil
}

// countingReader counts, hashes and bounds the uncompressed stream of a layer and stops when ctx ends.
type countingReader struct {
	ctx   context.Context
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64

	tick  func(int64) // progress, called each time every more bytes were read
	every int64
	next  int64
}

var errLayerTooBig = errors.New("layer expands beyond the limit")

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.n >= c.limit {
		return 0, fmt.Errorf("%w of %d uncompressed bytes (a decompression bomb?)", errLayerTooBig, c.limit)
	}
	if rem := c.limit - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if c.tick != nil && c.n >= c.next+c.every {
		c.next = c.n - c.n%c.every
		c.tick(c.n)
	}
	return n, err
}

func scanLayer(ctx context.Context, l v1.Layer, diffID v1.Hash, opts ScanOptions, tick func(int64)) (*layerRecord, error) {
	rc, err := openUncompressed(l)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cr := &countingReader{ctx: ctx, r: rc, h: sha256.New(), limit: opts.MaxLayerBytes, tick: tick, every: opts.ProgressEvery}
	rec, err := readTar(cr, opts)
	if err != nil {
		return nil, err
	}
	// Read what the tar reader left (end-of-archive padding, and the end of the compressed stream, where
	// the compressed digest is checked) so the digests cover the whole stream.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, fmt.Errorf("reading the end of the layer: %w", err)
	}
	rec.bytes = cr.n
	if diffID.Algorithm == "sha256" {
		if got := hex.EncodeToString(cr.h.Sum(nil)); got != diffID.Hex {
			return nil, fmt.Errorf("content does not match the diff ID in the image config (content hashes to sha256:%s)", got)
		}
	}
	return rec, nil
}

// nativelyCompressed reports layers whose Compressed() returns the stored bytes (registry, OCI layout and
// archive, compressed docker-archive layers), where the layer source verifies the compressed digest as it
// streams. Other layers (uncompressed docker archives, the daemon) would compress on the fly: those are
// read with Uncompressed(). go-containerregistry exposes no interface for this; its type is pinned with
// the module version, and TestFastPath fails if it changes.
func nativelyCompressed(l v1.Layer) bool {
	if ml, ok := l.(*remote.MountableLayer); ok { // registry layers come wrapped (compat engineer)
		l = ml.Layer
	}
	return fmt.Sprintf("%T", l) == "*partial.compressedLayerExtender"
}

// openUncompressed opens the uncompressed stream of a layer. Natively compressed layers are decompressed
// here with klauspost/compress (about twice as fast as compress/gzip); the compressed stream is read to its
// end when the uncompressed one is, so the source's digest check runs.
func openUncompressed(l v1.Layer) (io.ReadCloser, error) {
	if !nativelyCompressed(l) {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("opening: %w", err)
		}
		return rc, nil
	}
	crc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	br := bufio.NewReaderSize(crc, 1<<16)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		crc.Close()
		return nil, fmt.Errorf("reading: %w", err)
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := kgzip.NewReader(br)
		if err != nil {
			crc.Close()
			return nil, fmt.Errorf("reading the gzip header: %w", err)
		}
		return &decompressed{r: zr, under: br, close: func() error { zr.Close(); return crc.Close() }}, nil
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			crc.Close()
			return nil, fmt.Errorf("reading the zstd header: %w", err)
		}
		return &decompressed{r: zr, under: br, close: func() error { zr.Close(); return crc.Close() }}, nil
	}
	return &decompressed{r: br, under: br, close: crc.Close}, nil
}

// decompressed reads a decompressor; at its end it drains the compressed stream under it so that
// trailing bytes are read and the source's digest check reports.
type decompressed struct {
	r     io.Reader
	under io.Reader
	close func() error
}

func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF {
		if _, derr := io.Copy(io.Discard, d.under); derr != nil {
			return n, derr
		}
	}
	return n, err
}

func (d *decompressed) Close() error { return d.close() }

// readTar reads one layer's tar stream into a record.
func readTar(r io.Reader, opts ScanOptions) (*layerRecord, error) {
	rec := &layerRecord{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return rec, nil
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("truncated tar stream after %d entries: %w", len(rec.entries), err)
			}
			return nil, fmt.Errorf("reading tar entry after %d entries: %w", len(rec.entries), err)
		}
		if len(rec.entries)+len(rec.whiteouts)+len(rec.opaque) >= opts.MaxEntries {
			return nil, fmt.Errorf("more than %d entries", opts.MaxEntries)
		}
		p, err := cleanPath(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		dir, base := path.Split(p)
		if strings.HasPrefix(base, ".wh.") {
			dir = path.Clean(dir)
			switch {
			case base == ".wh..wh..opq":
				rec.opaque = append(rec.opaque, dir)
			case strings.HasPrefix(base, ".wh..wh."):
				// aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the filesystem.
			default:
				switch name := base[len(".wh."):]; name {
				case "", ".", "..":
					return nil, fmt.Errorf("entry %q: a whiteout must name an entry", hdr.Name)
				default:
					rec.whiteouts = append(rec.whiteouts, path.Join(dir, name))
				}
			}
			continue
		}
		if hdr.Size < 0 {
			return nil, fmt.Errorf("entry %q: negative size %d", hdr.Name, hdr.Size)
		}
		e := Entry{Path: p, Type: hdr.Typeflag, Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			e.Type = tar.TypeReg
			e.Size = hdr.Size
			if hdr.Size > opts.MaxFileSize {
				e.TooLarge = true
			} else if opts.Extractor != nil && opts.Extractor.Want(p, hdr) {
				facts, err := opts.Extractor.Extract(p, hdr, io.LimitReader(tr, hdr.Size))
				if err != nil {
					return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
				}
				e.Facts = facts
			}
		case tar.TypeLink:
			t, err := cleanPath(hdr.Linkname)
			if err != nil {
				return nil, fmt.Errorf("hard link %q -> %q: %w", hdr.Name, hdr.Linkname, err)
			}
			e.Linkname = t
		case tar.TypeSymlink:
			e.Linkname = hdr.Linkname
		case tar.TypeDir:
		default:
			e.Size = hdr.Size
		}
		rec.entries = append(rec.entries, e)
	}
}

var errTraversal = errors.New("path leaves the image root")

// cleanPath makes a tar name absolute and clean, refusing names whose ".." components climb above the root.
func cleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("path contains a NUL byte")
	}
	depth := 0
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", errTraversal
			}
		default:
			depth++
		}
	}
	return path.Clean("/" + name), nil
}

// merge applies the layers in order, oldest first.
func merge(recs []*layerRecord, maxEntries int) (*FS, error) {
	fs := &FS{entries: map[string]*Entry{"/": {Path: "/", Type: tar.TypeDir, Mode: 0o755}}}
	for i, rec := range recs {
		// Whiteouts and opaque markers apply to lower layers only, so they go first.
		gone := map[string]bool{} // directories whose lower content disappears
		for _, d := range rec.opaque {
			gone[d] = true
		}
		for _, w := range rec.whiteouts {
			if e, ok := fs.entries[w]; ok {
				if e.Type == tar.TypeDir {
					gone[w] = true
				}
				delete(fs.entries, w)
			}
		}
		for j := range rec.entries {
			e := &rec.entries[j]
			if old, ok := fs.entries[e.Path]; ok && old.Type == tar.TypeDir && e.Type != tar.TypeDir {
				gone[e.Path] = true
			}
		}
		if len(gone) > 0 {
			for p := range fs.entries {
				for d := path.Dir(p); ; d = path.Dir(d) {
					if gone[d] && p != d {
						delete(fs.entries, p)
						break
					}
					if d == "/" {
						break
					}
				}
			}
		}
		for j := range rec.entries {
			e := rec.entries[j] // a copy: cached records stay position-independent
			e.Layer = i
			if e.Path == "/" {
				fs.entries["/"] = &e
				continue
			}
			fs.addParents(e.Path, i)
			if e.Type == tar.TypeLink {
				if t, ok := fs.entries[e.Linkname]; ok && t.Type != tar.TypeDir {
					e.Facts, e.TooLarge = t.Facts, t.TooLarge
					if e.Size == 0 {
						e.Size = t.Size
					}
				}
			}
			fs.entries[e.Path] = &e
		}
		if len(fs.entries) > maxEntries {
			return nil, exitcode.Operationalf("image has more than %d filesystem entries (after layer %d/%d)", maxEntries, i+1, len(recs))
		}
	}
	return fs, nil
}

// addParents creates the directories above p that no layer listed. A parent that a lower layer made a
// symlink or a file becomes a directory, as it does when the layer is unpacked into its own overlay
// directory (the container runtime creates the missing parents there, and they hide the lower entry).
func (fs *FS) addParents(p string, layer int) {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if e, ok := fs.entries[d]; ok && e.Type == tar.TypeDir {
			return
		}
		fs.entries[d] = &Entry{Path: d, Type: tar.TypeDir, Mode: 0o755, Layer: layer}
	}
}

func shortDigest(h v1.Hash) string {
	s := h.String()
	if len(s) > 19 {
		return s[:19]
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
