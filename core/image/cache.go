package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The per-layer cache keeps what a layer contributes to the merged filesystem (entries, whiteouts, opaque
// directories and the Extractor's facts) in one file per (layer digest and diff ID, Extractor.ID,
// MaxFileSize).
// A file is written to a temporary name and renamed, so readers never see half of one; it ends with the
// sha256 of its content, so a damaged file is detected, ignored and rewritten.

const (
	cacheMagic   = "CRSLAYR1"
	cacheVersion = "crs-ci layer cache v1"
)

// cacheKey names the cache file of a layer. It covers the layer digest (the compressed blob, when the layer
// has one stored) and the diff ID, so an image whose config claims the diff ID of a layer seen before while
// its blob holds something else cannot borrow that layer's facts; and the Extractor and size limit that
// produced the facts.
func cacheKey(digest, diffID v1.Hash, opts ScanOptions) string {
	id := ""
	if opts.Extractor != nil {
		id = opts.Extractor.ID()
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%d", cacheVersion, digest, diffID, id, opts.MaxFileSize))
	return hex.EncodeToString(sum[:])
}

func cachePath(dir, key string) string { return filepath.Join(dir, "layers", key[:2], key+".layer") }

func readCache(dir, key string) (*layerRecord, bool) {
	b, err := os.ReadFile(cachePath(dir, key))
	if err != nil {
		return nil, false
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return nil, false
	}
	return rec, true
}

func writeCache(dir, key string, rec *layerRecord) error {
	p := cachePath(dir, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(encodeRecord(rec)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func encodeRecord(rec *layerRecord) []byte {
	var b []byte
	b = append(b, cacheMagic...)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	b = binary.AppendUvarint(b, uint64(len(rec.opaque)))
	for _, s := range rec.opaque {
		str(s)
	}
	b = binary.AppendUvarint(b, uint64(len(rec.whiteouts)))
	for _, s := range rec.whiteouts {
		str(s)
	}
	b = binary.AppendUvarint(b, uint64(len(rec.entries)))
	for i := range rec.entries {
		e := &rec.entries[i]
		str(e.Path)
		b = append(b, e.Type)
		b = binary.AppendVarint(b, e.Mode)
		b = binary.AppendVarint(b, e.Size)
		str(e.Linkname)
		b = binary.AppendVarint(b, int64(e.UID))
		b = binary.AppendVarint(b, int64(e.GID))
		var flags byte
		if e.TooLarge {
			flags |= 1
		}
		if e.Facts != nil {
			flags |= 2
		}
		b = append(b, flags)
		if e.Facts != nil {
			str(string(e.Facts))
		}
	}
	b = binary.AppendVarint(b, rec.bytes)
	sum := sha256.Sum256(b[len(cacheMagic):])
	return append(b, sum[:]...)
}

var errBadCache = errors.New("damaged cache file")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadCache
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadCache
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errBadCache
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errBadCache
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every item takes at least one byte
		d.err = errBadCache
		return 0
	}
	return int(n)
}

func decodeRecord(b []byte) (*layerRecord, error) {
	if len(b) < len(cacheMagic)+sha256.Size || !bytes.HasPrefix(b, []byte(cacheMagic)) {
		return nil, errBadCache
	}
	payload := b[len(cacheMagic) : len(b)-sha256.Size]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		return nil, errBadCache
	}
	d := &decoder{b: payload}
	rec := &layerRecord{}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		rec.opaque = append(rec.opaque, string(d.bytes()))
	}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		rec.whiteouts = append(rec.whiteouts, string(d.bytes()))
	}
	n := d.count()
	rec.entries = make([]Entry, 0, n)
	for ; n > 0 && d.err == nil; n-- {
		var e Entry
		e.Path = string(d.bytes())
		e.Type = d.byte1()
		e.Mode = d.varint()
		e.Size = d.varint()
		e.Linkname = string(d.bytes())
		e.UID = int(d.varint())
		e.GID = int(d.varint())
		flags := d.byte1()
		e.TooLarge = flags&1 != 0
		if flags&2 != 0 {
			e.Facts = bytes.Clone(d.bytes())
			if e.Facts == nil {
				e.Facts = []byte{}
			}
		}
		rec.entries = append(rec.entries, e)
	}
	rec.bytes = d.varint()
	if d.err != nil || len(d.b) != 0 {
		return nil, errBadCache
	}
	return rec, nil
}
