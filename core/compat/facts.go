package compat

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// Facts is what the extractor keeps about one file of an image: enough to decide what the dynamic loader
// would do with it, and nothing more. It is stored (as JSON) in image.Entry.Facts and in the layer cache.
type Facts struct {
	Kind string `json:"k"` // KindELF, KindScript, KindPreload or KindOther

	// ELF files.
	Machine   elf.Machine `json:"m,omitempty"`
	Class     elf.Class   `json:"c,omitempty"`
	Type      elf.Type    `json:"t,omitempty"`
	Interp    string      `json:"i,omitempty"` // PT_INTERP; "" = static
	Dynamic   bool        `json:"d,omitempty"` // has PT_DYNAMIC
	Needed    []string    `json:"n,omitempty"` // DT_NEEDED, in order
	Soname    string      `json:"s,omitempty"`
	Verdefs   []string    `json:"v,omitempty"` // version definitions (.gnu.version_d), base name excluded
	Go        bool        `json:"g,omitempty"` // a Go program (.go.buildinfo or the Go build-id note)
	Banner    string      `json:"b,omitempty"` // "GNU C Library (…) … release version 2.N" or "musl libc 1.2.3"
	Partial   bool        `json:"p,omitempty"` // too big to read whole: only headers, notes and the Go marker
	Malformed string      `json:"x,omitempty"` // why the ELF could not be parsed

	// Scripts: the first line without "#!", trimmed.
	Shebang string `json:"h,omitempty"`

	// /etc/ld.so.preload: the entries, in order.
	Preload []string `json:"l,omitempty"`
}

// Kinds of files the extractor tells apart.
const (
	KindELF     = "elf"
	KindScript  = "script"
	KindPreload = "preload"
	KindOther   = "other"
)

// Limits that keep the extractor's memory bounded whatever the image holds.
var (
	// fullReadLimit is the largest ELF file read whole (to parse its dynamic section and version
	// definitions). Bigger ELF files are analysed from their first headReadLimit bytes and a streamed
	// search for the Go build-info marker. C libraries and loaders are far smaller.
	fullReadLimit int64 = 48 << 20
	headReadLimit       = 256 << 10
)

const (
	maxShebang      = 1024
	maxPreloadBytes = 64 << 10
	maxPreloadItems = 256
	maxBanner       = 200
	maxNeeded       = 1024
	maxVerdefs      = 4096
)

// extractorVersion is part of the cache key: bump it whenever Facts or their meaning change.
const extractorVersion = "compat-facts-v1"

// Extractor implements image.Extractor: it keeps Facts for executables, shared libraries, scripts and
// /etc/ld.so.preload, each read once while its layer streams by.
type Extractor struct{}

// ID is part of the layer cache key.
func (Extractor) ID() string { return extractorVersion }

// Want selects files that can be a program, a loader, a library, or the preload list.
func (Extractor) Want(p string, hdr *tar.Header) bool {
	if p == "/etc/ld.so.preload" {
		return true
	}
	if hdr.Mode&0o111 != 0 {
		return true
	}
	return strings.Contains(path.Base(p), ".so")
}

// Extract reads the file and returns its encoded Facts. Malformed content is a fact, not an error: only a
// failing read of the layer itself is returned as an error.
func (Extractor) Extract(p string, hdr *tar.Header, r io.Reader) ([]byte, error) {
	f, err := analyze(p, hdr.Size, r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(f)
}

// DecodeFacts decodes what Extract returned; nil or undecodable input gives nil.
func DecodeFacts(b []byte) *Facts {
	if len(b) == 0 {
		return nil
	}
	var f Facts
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	return &f
}

func analyze(p string, size int64, r io.Reader) (*Facts, error) {
	if p == "/etc/ld.so.preload" {
		b, err := io.ReadAll(io.LimitReader(r, maxPreloadBytes))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return &Facts{Kind: KindPreload, Preload: parsePreload(b)}, nil
	}
	br := bufio.NewReaderSize(r, 4096)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte("#!")):
		line, err := readLine(br, maxShebang)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return &Facts{Kind: KindScript, Shebang: strings.TrimSpace(strings.TrimPrefix(line, "#!"))}, nil
	case bytes.Equal(magic, []byte(elf.ELFMAG)):
		if size <= fullReadLimit {
			buf := make([]byte, size)
			if _, err := io.ReadFull(br, buf); err != nil {
				return nil, fmt.Errorf("reading %s (%d bytes): %w", p, size, err)
			}
			return analyzeELF(p, buf), nil
		}
		return analyzeBigELF(p, br)
	}
	return &Facts{Kind: KindOther}, nil
}

func readLine(br *bufio.Reader, limit int) (string, error) {
	var sb strings.Builder
	for sb.Len() < limit {
		c, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if c == '\n' {
			break
		}
		sb.WriteByte(c)
	}
	return sb.String(), nil
}

// parsePreload splits ld.so.preload the way ld.so does: entries separated by white space or ':', '#' starts
// a comment (glibc ≥ 2.3).
func parsePreload(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ':' || r == '\r' }) {
			if len(out) < maxPreloadItems {
				out = append(out, f)
			}
		}
	}
	return out
}

var (
	goBuildInfoMagic = []byte("\xff Go buildinf:")
	glibcBanner      = []byte("GNU C Library")
	muslMarker       = []byte("musl libc (")
	muslVersionRE    = regexp.MustCompile(`\x00(1\.[0-9]{1,2}\.[0-9]{1,2})\x00`)
)

// analyzeELF parses a whole ELF file held in memory with debug/elf.
func analyzeELF(p string, b []byte) (facts *Facts) {
	facts = &Facts{Kind: KindELF}
	defer func() {
		// debug/elf is hardened, but a hostile file must never take the check down.
		if r := recover(); r != nil {
			facts = &Facts{Kind: KindELF, Malformed: fmt.Sprintf("parsing ELF: %v", r)}
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		facts.Malformed = err.Error()
		return facts
	}
	defer f.Close()
	facts.Machine, facts.Class, facts.Type = f.Machine, f.Class, f.Type
	for _, prog := range f.Progs {
		switch prog.Type {
		case elf.PT_INTERP:
			s, err := readSegment(prog, 4096)
			if err != nil {
				facts.Malformed = "reading PT_INTERP: " + err.Error()
				return facts
			}
			facts.Interp = cstring(s)
		case elf.PT_DYNAMIC:
			facts.Dynamic = true
		case elf.PT_NOTE:
			if s, err := readSegment(prog, 1<<20); err == nil && hasGoNote(s, f.ByteOrder) {
				facts.Go = true
			}
		}
	}
	if f.Section(".go.buildinfo") != nil || f.Section(".note.go.buildid") != nil || f.Section(".gopclntab") != nil {
		facts.Go = true
	}
	if !facts.Go && len(f.Sections) == 0 && bytes.Contains(b, goBuildInfoMagic) {
		facts.Go = true
	}
	if facts.Dynamic {
		if libs, err := f.DynString(elf.DT_NEEDED); err == nil {
			if len(libs) > maxNeeded {
				libs = libs[:maxNeeded]
			}
			facts.Needed = libs
		}
		if so, err := f.DynString(elf.DT_SONAME); err == nil && len(so) > 0 {
			facts.Soname = so[0]
		}
		if defs, err := f.DynamicVersions(); err == nil {
			for _, d := range defs {
				if d.Flags&elf.VER_FLG_BASE != 0 || len(facts.Verdefs) >= maxVerdefs {
					continue
				}
				facts.Verdefs = append(facts.Verdefs, d.Name)
			}
		}
	}
	base := path.Base(p)
	if facts.Soname == "libc.so.6" || strings.HasPrefix(base, "libc.so.6") || strings.HasPrefix(base, "libc-2.") {
		if i := bytes.Index(b, glibcBanner); i >= 0 {
			facts.Banner = bannerAt(b[i:])
		}
	} else if i := bytes.Index(b, muslMarker); i >= 0 {
		if m := muslVersionRE.FindSubmatch(b); m != nil {
			facts.Banner = "musl libc " + string(m[1])
		} else {
			facts.Banner = "musl libc"
		}
	}
	return facts
}

func bannerAt(b []byte) string {
	if len(b) > maxBanner {
		b = b[:maxBanner]
	}
	if i := bytes.IndexAny(b, "\x00\n"); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), ".")
}

func readSegment(prog *elf.Prog, limit uint64) ([]byte, error) {
	if prog.Filesz > limit {
		return nil, fmt.Errorf("segment of %d bytes is larger than %d", prog.Filesz, limit)
	}
	b := make([]byte, prog.Filesz)
	if _, err := prog.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// hasGoNote reports whether a PT_NOTE segment holds the Go build-id note (name "Go", type 4).
func hasGoNote(b []byte, bo binary.ByteOrder) bool {
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		nlen, dlen := align4(namesz), align4(descsz)
		if nlen > uint64(len(b)) || dlen > uint64(len(b))-nlen {
			return false
		}
		if typ == 4 && namesz == 3 && string(b[:2]) == "Go" {
			return true
		}
		b = b[nlen+dlen:]
	}
	return false
}

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

// analyzeBigELF handles an ELF file larger than fullReadLimit: the ELF and program headers, PT_INTERP and
// PT_NOTE are read from the first headReadLimit bytes; the rest is streamed through a search for the Go
// build-info marker, holding only a small overlap window.
func analyzeBigELF(p string, r io.Reader) (*Facts, error) {
	head := make([]byte, headReadLimit)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	head = head[:n]
	facts := parseHeaders(head)
	facts.Partial = true
	if bytes.Contains(head, goBuildInfoMagic) {
		facts.Go = true
	}
	if facts.Go || facts.Malformed != "" {
		return facts, nil
	}
	found, err := streamContains(r, goBuildInfoMagic, head)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	facts.Go = found
	return facts, nil
}

// streamContains reports whether needle occurs in r, reading it in chunks; tail is the data before r (its
// last bytes are kept so that a needle across the boundary is found).
func streamContains(r io.Reader, needle, before []byte) (bool, error) {
	keep := len(needle) - 1
	buf := make([]byte, 0, 64<<10+keep)
	if len(before) > keep {
		before = before[len(before)-keep:]
	}
	buf = append(buf, before...)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, needle) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if len(buf) > keep {
			copy(buf, buf[len(buf)-keep:])
			buf = buf[:keep]
		}
	}
}

// parseHeaders reads the ELF header, the program headers, PT_INTERP and PT_NOTE from the start of a file.
func parseHeaders(b []byte) *Facts {
	facts := &Facts{Kind: KindELF}
	if len(b) < 16 {
		facts.Malformed = "truncated ELF identification"
		return facts
	}
	var bo binary.ByteOrder
	switch elf.Data(b[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		facts.Malformed = fmt.Sprintf("unknown ELF data encoding %d", b[elf.EI_DATA])
		return facts
	}
	facts.Class = elf.Class(b[elf.EI_CLASS])
	var phoff uint64
	var phentsize, phnum uint16
	switch facts.Class {
	case elf.ELFCLASS64:
		if len(b) < 64 {
			facts.Malformed = "truncated ELF header"
			return facts
		}
		facts.Type, facts.Machine = elf.Type(bo.Uint16(b[16:])), elf.Machine(bo.Uint16(b[18:]))
		phoff, phentsize, phnum = bo.Uint64(b[32:]), bo.Uint16(b[54:]), bo.Uint16(b[56:])
	case elf.ELFCLASS32:
		if len(b) < 52 {
			facts.Malformed = "truncated ELF header"
			return facts
		}
		facts.Type, facts.Machine = elf.Type(bo.Uint16(b[16:])), elf.Machine(bo.Uint16(b[18:]))
		phoff, phentsize, phnum = uint64(bo.Uint32(b[28:])), bo.Uint16(b[42:]), bo.Uint16(b[44:])
	default:
		facts.Malformed = fmt.Sprintf("unknown ELF class %d", b[elf.EI_CLASS])
		return facts
	}
	for i := uint64(0); i < uint64(phnum); i++ {
		off := phoff + i*uint64(phentsize)
		var typ elf.ProgType
		var poff, psz uint64
		if facts.Class == elf.ELFCLASS64 {
			if phentsize < 56 || off+56 > uint64(len(b)) {
				facts.Malformed = "program headers beyond the file's first bytes"
				return facts
			}
			typ, poff, psz = elf.ProgType(bo.Uint32(b[off:])), bo.Uint64(b[off+8:]), bo.Uint64(b[off+32:])
		} else {
			if phentsize < 32 || off+32 > uint64(len(b)) {
				facts.Malformed = "program headers beyond the file's first bytes"
				return facts
			}
			typ, poff, psz = elf.ProgType(bo.Uint32(b[off:])), uint64(bo.Uint32(b[off+4:])), uint64(bo.Uint32(b[off+16:]))
		}
		inHead := poff < uint64(len(b)) && psz <= uint64(len(b))-poff
		switch typ {
		case elf.PT_INTERP:
			if !inHead {
				facts.Malformed = "PT_INTERP beyond the file's first bytes"
				return facts
			}
			facts.Interp = cstring(b[poff : poff+psz])
		case elf.PT_DYNAMIC:
			facts.Dynamic = true
		case elf.PT_NOTE:
			if inHead && hasGoNote(b[poff:poff+psz], bo) {
				facts.Go = true
			}
		}
	}
	return facts
}
